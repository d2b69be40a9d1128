"""From what a user typed (``heqis gateway`` options, fleet commands) to the gateway's brains and sources.

Kept out of the CLI so it is tested directly and raises ``InvalidValue`` (exit 2) for a malformed
spec and ``HeqisError`` (exit 1) for a spec that is well formed but cannot be served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from heqis.errors import HeqisError, InvalidValue
from heqis.runtime.gateway import BrainTarget
from heqis.runtime.sources import Aligner, ModbusMap, ReplaySource

SOURCE_KINDS = ("replay", "tushare", "modbus")
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"


def parse_port(text: str, option: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidValue(option, f"'{text}' is not a port (1-65535)")
    return int(text)


def parse_host_port(spec: str, option: str) -> tuple[str, int]:
    host, sep, port = spec.rpartition(":")
    if not sep or not host:
        raise InvalidValue(option, f"'{spec}' is not HOST:PORT")
    return host.strip("[]"), parse_port(port, option)


def parse_targets(target_ip: list[str] | None, port: int, target: list[str] | None, reset: str | None,
                  target_reset: list[str] | None) -> list[BrainTarget]:
    """Brains from ``--target-ip`` (each on ``port``) and ``--target NAME@HOST:PORT``, with their reset actions."""
    reset = None if reset in (None, "none") else reset
    out = [BrainTarget(f"brain-{i + 1}", ip, port, reset) for i, ip in enumerate(target_ip or [])]
    for spec in target or []:
        name, sep, address = spec.partition("@")
        if not sep:
            name, address = f"brain-{len(out) + 1}", spec
        if not re.fullmatch(NAME, name):
            raise InvalidValue("--target", f"'{name}' cannot name a brain (letters, digits, '.', '_', '-')")
        host, p = parse_host_port(address, "--target")
        out.append(BrainTarget(name, host, p, reset))
    if not out:
        raise InvalidValue("--target-ip", "give at least one --target-ip or --target")
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise InvalidValue("--target", f"brain names repeat: {', '.join(repeated)}")
    for spec in target_reset or []:
        name, sep, command = spec.partition("=")
        match = next((t for t in out if t.name == name), None)
        if not sep or match is None or not command.strip():
            raise InvalidValue("--target-reset", f"'{spec}' is not NAME=COMMAND for a known brain "
                               f"({', '.join(names)})")
        match.reset = command
    return out


def parse_modbus_maps(specs: list[str]) -> list[ModbusMap]:
    """``SYMBOL@ADDRESS[/UNIT]`` specs (register address and Modbus unit id)."""
    maps = []
    for spec in specs:
        sym, sep, rest = spec.partition("@")
        address, _, unit = rest.partition("/")
        if not sep or not sym.strip() or not address.isdigit() or (unit and not unit.isdigit()):
            raise InvalidValue("--modbus-map", f"'{spec}' is not SYMBOL@ADDRESS[/UNIT] (e.g. 600519.SH@0/1)")
        if int(address) > 65535 - 14 or int(unit or 1) > 247:
            raise InvalidValue("--modbus-map", f"'{spec}': register address 0-65521, unit 0-247")
        maps.append(ModbusMap(sym.strip().upper(), int(address), int(unit or 1)))
    return maps


@dataclass
class SourceSpec:
    """The gateway's sources as the options name them."""

    kinds: list[str] = field(default_factory=lambda: ["replay"])
    data_dir: Path = Path("heqis-data")
    replay_pack: Path | None = None
    symbols: list[str] | None = None
    start: date | None = None
    end: date | None = None
    replay_from: date | None = None     # replay from this date even where signals are stored
    rate: float = 0.0
    limit: int | None = None
    modbus: str | None = None
    modbus_map: list[str] = field(default_factory=list)
    poll_interval: float = 1.0


def check_sources(spec: SourceSpec) -> tuple[tuple[str, int], list[ModbusMap]] | None:
    """Usage errors in ``spec`` (before anything is opened); the parsed Modbus server and maps."""
    for kind in spec.kinds:
        if kind not in SOURCE_KINDS:
            raise InvalidValue("--source", f"'{kind}' is not one of {', '.join(SOURCE_KINDS)}")
    if "modbus" in spec.kinds and (not spec.modbus or not spec.modbus_map):
        raise InvalidValue("--source", "modbus needs --modbus HOST:PORT and at least one --modbus-map")
    return (parse_host_port(spec.modbus or "", "--modbus"), parse_modbus_maps(spec.modbus_map)) \
        if "modbus" in spec.kinds else None


def build_sources(spec: SourceSpec, window: int, history: int, done: set[tuple[str, int]] | None,
                  settings: Any = None) -> Aligner:
    """The sources of ``spec`` behind one Aligner. ``done``: bars with a stored signal of this artifact set."""
    from heqis.runtime.replay_pack import load_pack, store_arrays

    modbus = check_sources(spec)
    # bars for replay and the history live sources start from: a replay pack (edge hosts: numpy only)
    # or the data store (research machines)
    arrays = load_pack(spec.replay_pack) if spec.replay_pack else store_arrays(spec.data_dir, spec.symbols)
    if spec.symbols:
        unknown = sorted(set(spec.symbols) - set(arrays))
        if unknown and "replay" in spec.kinds:
            raise HeqisError(f"no stored bars for {', '.join(unknown)}",
                             hint=f"stored: {', '.join(sorted(arrays)) or 'none'}")
        arrays = {k: v for k, v in arrays.items() if k in spec.symbols}
    built: list[Any] = []
    if "replay" in spec.kinds:
        start = spec.replay_from or spec.start
        built.append(ReplaySource(arrays, history, start, spec.end, spec.rate,
                                  None if spec.replay_from else done, spec.limit, min_bars=2 * window + 10))
    if "tushare" in spec.kinds:
        from heqis.config import load_settings, read_token
        from heqis.runtime.sources.tushare import TushareSource

        settings = settings or load_settings()
        token = read_token(settings)
        try:
            from heqis.data.sources.tushare import TushareApi

            api = TushareApi(token, url=settings.tushare_url, timeout_s=settings.tushare_timeout_s,
                             calls_per_min=settings.tushare_calls_per_min, retries=settings.tushare_retries,
                             backoff_s=settings.tushare_backoff_s)
        except ImportError as exc:
            raise HeqisError(f"--source tushare needs the tushare client (module '{exc.name}' is missing)",
                             hint="pip install 'heqis[tushare]' on this host") from None
        built.append(TushareSource(api, arrays, spec.symbols or sorted(arrays), history, spec.poll_interval))
    if "modbus" in spec.kinds:
        from heqis.runtime.sources import ModbusSource

        assert modbus is not None
        (host, port), maps = modbus
        built.append(ModbusSource(host, port, maps, history, arrays, spec.poll_interval))
    return Aligner(built)


@dataclass
class GatewayOptions:
    """Everything ``heqis gateway`` is told, resolved (settings applied) but not yet checked."""

    targets: list[BrainTarget]
    sources: SourceSpec
    artifacts: Path
    db: Path
    telemetry_port: int
    control_port: int
    ws_port: int
    bind: str = "127.0.0.1"
    fleet: str = "local"
    ring: int = 4096
    max_in_flight: int = 64
    keys: Path | None = None
    insecure: bool = False
    exit_when_done: bool = False
    state_file: Path | None = None
    settings: Any = None         # the resolved settings (the Tushare source's token, URL and limits)
    ws_bind: str = "127.0.0.1"
    request_deadline_s: float = 5.0
    max_attempts: int = 3
    watchdog: str = "warn"       # the watchdog's policy (heqis.runtime.watchdog.POLICIES)


def gateway_from(opts: GatewayOptions) -> tuple[Any, Aligner]:
    """(GatewayConfig, sources) for ``opts``: checks the network safety rules, reads the artifact set's
    window and id, and resumes replay after the bars this artifact set already answered."""
    from heqis.formats.artifacts import ArtifactSet
    from heqis.runtime.bars import history_length
    from heqis.runtime.gateway import GatewayConfig
    from heqis.runtime.security import KeyConfig, require_safe
    from heqis.runtime.signal_store import SignalStore
    from heqis.runtime.watchdog import Watchdog

    check_sources(opts.sources)
    key_cfg = KeyConfig(opts.keys, "gateway") if opts.keys else None
    for t in opts.targets:
        require_safe(t.host, key_cfg, opts.insecure, f"connecting to {t.name}")
    require_safe(opts.bind, key_cfg, opts.insecure, "telemetry and control")
    if opts.ws_port:
        require_safe(opts.ws_bind, key_cfg, opts.insecure, "the WebSocket")
    ports = {"--telemetry-port": opts.telemetry_port, "--control-port": opts.control_port}
    if opts.ws_port:
        ports["--ws-port"] = opts.ws_port
    if len(set(ports.values())) != len(ports):
        raise InvalidValue("--telemetry-port", f"the gateway's ports collide: {ports}")
    artifacts = ArtifactSet.open(opts.artifacts)
    window = artifacts.max_window
    done = None
    if "replay" in opts.sources.kinds and opts.db.exists() and opts.sources.replay_from is None:
        store = SignalStore(opts.db)
        done = store.done(artifacts=artifacts.set_id)
        store.close()
    source = build_sources(opts.sources, window, history_length(window), done, opts.settings)
    cfg = GatewayConfig(opts.targets, opts.db, opts.fleet, opts.bind, opts.telemetry_port, opts.control_port,
                        opts.ws_port, opts.ring, opts.max_in_flight, keys=key_cfg,
                        exit_when_done=opts.exit_when_done, state_file=opts.state_file,
                        artifacts_id=artifacts.set_id, routing=artifacts.routing(), ws_bind=opts.ws_bind,
                        ws_token=key_cfg.ws_token() if key_cfg is not None and opts.ws_port else None,
                        request_deadline_s=opts.request_deadline_s, max_attempts=opts.max_attempts,
                        watchdog=Watchdog(opts.watchdog, watchdog_model(artifacts) if opts.watchdog != "off" else None))
    return cfg, source


def watchdog_model(artifacts: Any) -> Any:
    """The artifact set's watchdog model (None: it has none; the rule checks run alone)."""
    from heqis.runtime.watchdog_model import WatchdogModel

    return WatchdogModel.open(artifacts)

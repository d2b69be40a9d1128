"""CLI commands of the edge runtime: brain, gateway, keys, up --local, status, down, bench runtime.

Kept apart from ``heqis.cli`` only for size; the same conventions hold (thin shells, one-line errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from heqis.cli import EndOpt, StartOpt, bench_app, emit_json, err, show, stdout, user_errors
from heqis.errors import HeqisError

PANEL = "Edge runtime"


def _keys(keys: Path | None, identity: str) -> Any:
    if keys is None:
        return None
    from heqis.runtime.security import KeyConfig

    return KeyConfig(keys, identity)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(brain)
    app.command(rich_help_panel=PANEL)(gateway)
    app.command(rich_help_panel=PANEL)(keys)
    bench_app.command("runtime")(bench_runtime)


def brain(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="PULL port (windows in); PUSH on port+1 (signals out).")] = 5555,
    artifacts: Annotated[Path, typer.Option("--artifacts", "-a", help="Artifact folder from heqis export.")] =
        Path("deploy_output"),
    backend: Annotated[str, typer.Option(help="onnxruntime | tensorrt | rknn | torch.")] = "onnxruntime",
    bind: Annotated[str, typer.Option(help="Address to bind (127.0.0.1; 0.0.0.0 for the network).")] = "127.0.0.1",
    name: Annotated[str, typer.Option(help="Name reported in heartbeats and status.")] = "brain",
    threads: Annotated[int | None, typer.Option(help="Inference threads (onnxruntime / torch).")] = None,
    keys_dir: Annotated[Path | None, typer.Option("--keys", help="CURVE key folder (heqis keys).")] = None,
    insecure: Annotated[bool, typer.Option(help="Allow plain TCP beyond loopback.")] = False,
) -> None:
    """The brain (Jetson role): features + scaler + inference for every window, signals back to the gateway."""
    from heqis.runtime.brain import BrainConfig, run_brain
    from heqis.runtime.security import require_safe

    with user_errors(ctx):
        key_cfg = _keys(keys_dir, "brain")
        require_safe(bind, key_cfg, insecure, "the brain")
        run_brain(BrainConfig(port, artifacts, backend, bind, name, key_cfg, threads))


def _targets(target: list[str] | None, target_ip: list[str] | None, port: int, reset: str | None) -> list[Any]:
    from heqis.runtime.gateway import BrainTarget

    out = []
    for i, ip in enumerate(target_ip or []):
        out.append(BrainTarget(f"brain-{i + 1}", ip, port, reset))
    for spec in target or []:
        try:
            name, address = spec.split("@", 1) if "@" in spec else (f"brain-{len(out) + 1}", spec)
            host, p = address.rsplit(":", 1)
            out.append(BrainTarget(name, host, int(p), reset))
        except ValueError:
            raise typer.BadParameter(f"'{spec}' is not NAME@HOST:PORT", param_hint="--target") from None
    if not out:
        raise typer.BadParameter("give at least one --target-ip or --target", param_hint="--target-ip")
    return out


def gateway(
    ctx: typer.Context,
    target_ip: Annotated[list[str] | None, typer.Option("--target-ip", help="Brain host (repeatable); each "
                                                        "listens on --port.")] = None,
    port: Annotated[int, typer.Option(help="The brains' PULL port (their PUSH is port+1).")] = 5555,
    target: Annotated[list[str] | None, typer.Option(help="Brain as NAME@HOST:PORT (repeatable).")] = None,
    source: Annotated[list[str] | None, typer.Option(help="replay | tushare | modbus (repeatable: aligned by "
                                                     "bar time).")] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", "-d", help="Data store (replay, and history for live "
                                           "sources).")] = Path("heqis-data"),
    replay_pack: Annotated[Path | None, typer.Option(help="Replay pack (.npz) instead of the data store: what "
                                                     "edge hosts use.")] = None,
    artifacts: Annotated[Path, typer.Option("--artifacts", "-a", help="Artifact folder (its window size).")] =
        Path("deploy_output"),
    symbols: Annotated[str | None, typer.Option(help="Comma-separated ts_codes (default: every stored one).")]
        = None,
    rate: Annotated[float, typer.Option(help="Replay bars per second; 0 = as fast as the brains take them.")]
        = 0.0,
    start: StartOpt = None,
    end: EndOpt = None,
    limit: Annotated[int | None, typer.Option(help="Replay at most this many bars.")] = None,
    modbus: Annotated[str | None, typer.Option(help="Modbus TCP server HOST:PORT.")] = None,
    modbus_map: Annotated[list[str] | None, typer.Option(help="SYMBOL@ADDRESS[/UNIT] (repeatable).")] = None,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls of live sources.")] = 1.0,
    db: Annotated[Path, typer.Option(help="SQLite file of stored signals.")] = Path(".heqis/signals.sqlite"),
    reset: Annotated[str | None, typer.Option(help="Reset action for a dead brain: local, or a command "
                                              "(e.g. 'ssh heqis@host sudo systemctl reboot').")] = None,
    target_reset: Annotated[list[str] | None, typer.Option(help="Per-brain reset command, NAME=COMMAND "
                                                           "(repeatable; overrides --reset).")] = None,
    state_file: Annotated[Path | None, typer.Option(help="Local fleet state file (for --reset local).")] = None,
    telemetry_port: Annotated[int, typer.Option(help="Telemetry PUB port.")] = 5560,
    control_port: Annotated[int, typer.Option(help="Control REP port.")] = 5561,
    ws_port: Annotated[int, typer.Option(help="WebSocket port (0 = off).")] = 8765,
    ring: Annotated[int, typer.Option(min=1, help="Ring buffer capacity (requests).")] = 4096,
    max_in_flight: Annotated[int, typer.Option(min=1, help="Requests in flight per brain.")] = 64,
    bind: Annotated[str, typer.Option(help="Address for telemetry and control.")] = "127.0.0.1",
    fleet: Annotated[str, typer.Option(help="Fleet name in status.")] = "local",
    keys_dir: Annotated[Path | None, typer.Option("--keys", help="CURVE key folder (heqis keys).")] = None,
    insecure: Annotated[bool, typer.Option(help="Allow plain TCP beyond loopback.")] = False,
    exit_when_done: Annotated[bool, typer.Option(help="Exit once the replay is fully answered.")] = False,
) -> None:
    """The gateway (RK3568 role): sources → ring buffer → brains; signals → SQLite → telemetry."""
    from heqis.export.artifacts import verify
    from heqis.runtime.bars import history_length
    from heqis.runtime.gateway import GatewayConfig, run_gateway
    from heqis.runtime.security import require_safe
    from heqis.runtime.signal_store import SignalStore
    from heqis.runtime.sources import Aligner, ModbusMap, ModbusSource, ReplaySource, TushareSource

    targets = _targets(target, target_ip, port, None if reset in (None, "none") else reset)
    for spec in target_reset or []:
        name, sep, command = spec.partition("=")
        match = next((t for t in targets if t.name == name), None)
        if not sep or match is None or not command.strip():
            raise typer.BadParameter(f"'{spec}' is not NAME=COMMAND for a known brain", param_hint="--target-reset")
        match.reset = command
    sources = source or ["replay"]
    for s in sources:
        if s not in ("replay", "tushare", "modbus"):
            raise typer.BadParameter(f"'{s}' is not replay, tushare or modbus", param_hint="--source")
    with user_errors(ctx):
        key_cfg = _keys(keys_dir, "gateway")
        for t in targets:
            require_safe(t.host, key_cfg, insecure, f"connecting to {t.name}")
        require_safe(bind, key_cfg, insecure, "telemetry and control")
        window = int(verify(artifacts)["window"])
        history = history_length(window)
        from heqis.runtime.replay_pack import load_pack, store_arrays

        syms = [s.strip().upper() for s in symbols.split(",")] if symbols else None
        # bars for replay and the history live sources start from: a replay pack (edge hosts: numpy
        # only) or the data store (research machines)
        arrays = load_pack(replay_pack) if replay_pack else store_arrays(data_dir, syms)
        if syms:
            arrays = {k: v for k, v in arrays.items() if k in syms}
        built: list[Any] = []
        if "replay" in sources:
            done = SignalStore(db).done(list(arrays)) if db.exists() else set()
            built.append(ReplaySource(arrays, history, start.date() if start else None,
                                      end.date() if end else None, rate, done, limit, min_bars=2 * window + 10))
        if "tushare" in sources:
            from heqis.config import load_settings, read_token
            from heqis.data.sources.tushare import TushareApi

            settings = load_settings()
            api = TushareApi(read_token(settings), url=settings.tushare_url,
                             calls_per_min=settings.tushare_calls_per_min)
            built.append(TushareSource(api, arrays, syms or list(arrays), history, poll_interval))
        if "modbus" in sources:
            if not modbus or not modbus_map:
                raise HeqisError("--source modbus needs --modbus HOST:PORT and at least one --modbus-map")
            host, mport = modbus.rsplit(":", 1)
            maps = []
            for spec in modbus_map:
                sym, _, addr = spec.partition("@")
                address, _, unit = addr.partition("/")
                maps.append(ModbusMap(sym.upper(), int(address), int(unit or 1)))
            built.append(ModbusSource(host, int(mport), maps, history, arrays, poll_interval))
        cfg = GatewayConfig(targets, db, fleet, bind, telemetry_port, control_port, ws_port, ring, max_in_flight,
                            keys=key_cfg, exit_when_done=exit_when_done, state_file=state_file)
        gw = run_gateway(cfg, Aligner(built))
    err.print(f"gateway stopped: {dict(gw.counters)}")


def keys(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the key pairs.")] = Path(".heqis/keys"),
    force: Annotated[bool, typer.Option(help="Replace existing keys.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Generate CURVE key pairs for gateway, brain and console (secret files 0600) and the allow-list."""
    from heqis.runtime.security import generate_keys

    with user_errors(ctx):
        written = generate_keys(directory, force)
    if json_out:
        emit_json({"directory": str(directory), "files": [str(p) for p in written]})
    else:
        stdout.print(f"wrote {len(written)} key files to {directory} (secrets 0600; allow-list in "
                     f"{directory / 'clients'}); copy brain.key_secret only to the brains, gateway.key_secret only "
                     f"to the gateway")


def bench_runtime(
    ctx: typer.Context,
    artifacts: Annotated[Path, typer.Option("--artifacts", "-a")] = Path("deploy_output"),
    data_dir: Annotated[Path, typer.Option("--data-dir", "-d")] = Path("heqis-data"),
    rate: Annotated[float, typer.Option(help="Fixed rate for the latency measurement (windows/s).")] = 1000.0,
    seconds: Annotated[float, typer.Option(help="Duration of each measurement.")] = 5.0,
    brains: Annotated[str, typer.Option(help="Brain counts for the throughput scaling, e.g. 1,2,4.")] = "1,2",
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """End-to-end latency at a fixed rate and max zero-loss throughput, next to a raw pyzmq ping-pong."""
    from heqis.runtime.bench import bench_runtime as run_bench

    with user_errors(ctx):
        result = run_bench(artifacts, data_dir, rate, seconds, [int(b) for b in brains.split(",")])
    show(result, json_out, "render_runtime_bench")


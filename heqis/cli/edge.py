"""The "Edge runtime" panel: ``brain``, ``gateway``, ``keys``, ``up``, ``status``, ``down``, ``logs``, ``console``.

The composition root's lazy imports live here: ``heqis_remote`` (the SSH fleet) inside up/status/
down/logs/console when a fleet.toml is meant, ``heqis_console`` (Textual) inside ``console`` and the
demo — listed one by one in the import-linter contract's ``ignore_imports``.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from heqis.cli.common import (
    ArtifactsOpt,
    DataDirOpt,
    JsonOpt,
    SymbolsOpt,
    date_option,
    day,
    dim_line,
    emit_json,
    err,
    parse_symbols,
    progress,
    settings,
    show,
    stdout,
    user_errors,
)
from heqis.errors import HeqisError

PANEL = "Edge runtime"
Backend = Literal["onnxruntime", "tensorrt", "rknn", "torch"]
FleetOpt = Annotated[Path | None, typer.Option("--fleet", "-f", metavar="FILE", help="fleet.toml of an SSH fleet "
                                               "(default: a local fleet running here, else ./fleet.toml).")]
LocalOpt = Annotated[bool, typer.Option("--local", help="This directory's local fleet (heqis up --local).")]
KeysOpt = Annotated[Path | None, typer.Option("--keys", metavar="DIR", help="CURVE key folder (heqis keys).")]
InsecureOpt = Annotated[bool, typer.Option("--insecure", help="Allow plain TCP beyond loopback (not "
                                           "recommended).")]


def service_logging(ctx: typer.Context) -> None:
    """Long-running processes log their INFO lines (start-up, migrations) with a time stamp."""
    verbose = bool(ctx.obj and ctx.obj.verbose)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("heqis").setLevel(logging.DEBUG if verbose else logging.INFO)


def brain(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(min=1, max=65534, help="PULL port for windows; signals go out on "
                                             "port+1 (default 5555; \\[runtime] brain_port).")] = None,
    artifacts: ArtifactsOpt = None,
    backend: Annotated[Backend, typer.Option(help="Inference engine.")] = "onnxruntime",
    bind: Annotated[str, typer.Option(help="Address to bind (0.0.0.0 for the network, with --keys).")]
        = "127.0.0.1",
    name: Annotated[str, typer.Option(help="Name reported in heartbeats and status.")] = "brain",
    threads: Annotated[int | None, typer.Option(min=1, help="Inference threads (onnxruntime / torch).")] = None,
    keys_dir: KeysOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """The brain (Jetson role): features + scaler + inference for every window, signals back to the gateway."""
    from heqis.runtime.brain import BrainConfig, run_brain
    from heqis.runtime.security import KeyConfig, require_safe

    service_logging(ctx)
    with user_errors(ctx):
        s = settings(runtime_brain_port=port, artifacts_dir=artifacts)
        key_cfg = KeyConfig(keys_dir, "brain") if keys_dir else None
        require_safe(bind, key_cfg, insecure, "the brain")
        run_brain(BrainConfig(s.runtime_brain_port, s.artifacts_dir, backend, bind, name, key_cfg, threads))


def gateway(
    ctx: typer.Context,
    target_ip: Annotated[list[str] | None, typer.Option("--target-ip", metavar="HOST", help="Brain host "
                                                        "(repeatable); each listens on --port.")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65534, help="The --target-ip brains' PULL port (their "
                                             "PUSH is port+1; default 5555).")] = None,
    target: Annotated[list[str] | None, typer.Option(metavar="NAME@HOST:PORT", help="A brain (repeatable).")]
        = None,
    source: Annotated[list[str] | None, typer.Option(metavar="replay|tushare|modbus", help="Where bars come from "
                                                     "(repeatable: aligned by bar time; default replay).")] = None,
    data_dir: DataDirOpt = None,
    replay_pack: Annotated[Path | None, typer.Option(metavar="FILE", help="Replay pack (.npz) instead of the data "
                                                     "store: what edge hosts use.")] = None,
    artifacts: ArtifactsOpt = None,
    symbols: SymbolsOpt = None,
    rate: Annotated[float, typer.Option(min=0, help="Replay bars per second; 0 = as fast as the brains take "
                                        "them.")] = 0.0,
    start: Annotated[datetime | None, date_option("Replay from this date, skipping bars already answered by these "
                                      "artifacts")] = None,
    end: Annotated[datetime | None, date_option("Replay up to this date")] = None,
    replay_from: Annotated[datetime | None, date_option(
        "Replay from this date even where signals are stored (duplicates are ignored)", "--replay-from")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most this many bars.")] = None,
    modbus: Annotated[str | None, typer.Option(metavar="HOST:PORT", help="Modbus TCP server (--source "
                                               "modbus).")] = None,
    modbus_map: Annotated[list[str] | None, typer.Option(metavar="SYMBOL@ADDRESS[/UNIT]", help=r"Where a symbol's "
                                                         r"registers start, e.g. 600519.SH@0/1 (repeatable).")]
        = None,
    poll_interval: Annotated[float, typer.Option(min=0.01, help="Seconds between polls of live sources.")] = 1.0,
    db: Annotated[Path | None, typer.Option(metavar="FILE", help="SQLite file of stored signals (default "
                                            ".heqis/signals.sqlite; \\[runtime] db).")] = None,
    reset: Annotated[str | None, typer.Option(metavar="ACTION", help="Reset action for a dead brain: local, or a "
                                              "command (e.g. 'ssh heqis@host sudo systemctl reboot').")] = None,
    target_reset: Annotated[list[str] | None, typer.Option(metavar="NAME=COMMAND", help="Per-brain reset command "
                                                           "(repeatable; overrides --reset).")] = None,
    state_file: Annotated[Path | None, typer.Option(metavar="FILE", help="Local fleet state file (for --reset "
                                                    "local).")] = None,
    telemetry_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Telemetry PUB port (default 5560).")]
        = None,
    control_port: Annotated[int | None, typer.Option(min=1, max=65535, help="Control REP port (default 5561).")]
        = None,
    ws_port: Annotated[int | None, typer.Option(min=0, max=65535, help="WebSocket port (default 8765; 0 = off).")]
        = None,
    ring: Annotated[int, typer.Option(min=1, help="Ring buffer capacity (requests).")] = 4096,
    max_in_flight: Annotated[int, typer.Option(min=1, help="Requests in flight per brain.")] = 64,
    bind: Annotated[str | None, typer.Option(help="Address for telemetry and control (default 127.0.0.1).")]
        = None,
    fleet: Annotated[str, typer.Option(help="Fleet name in status.")] = "local",
    keys_dir: KeysOpt = None,
    insecure: InsecureOpt = False,
    exit_when_done: Annotated[bool, typer.Option("--exit-when-done", help="Exit once the replay is fully "
                                                 "answered (every bar stored, or stored as failed).")] = False,
    ws_bind: Annotated[str, typer.Option(help="Address of the WebSocket (signals and status; with --keys it asks "
                                         "for the token in the key folder).")] = "127.0.0.1",
    request_deadline: Annotated[float, typer.Option(min=0.05, metavar="SECONDS", help="Send a request again when "
                                                    "no valid reply came within this time.")] = 5.0,
    max_attempts: Annotated[int, typer.Option(min=1, help="Sends of one bar before it is stored as failed.")] = 3,
    watchdog: Annotated[Literal["warn", "hold", "off"], typer.Option(
        help="What a bar the watchdog flags (rule checks, and the artifact set's watchdog.onnx when it has one) "
             "does: warn = sent on, its signal marked suspect; hold = not sent, counted and alerted, kept out of "
             "later requests; off = no checks.")] = "warn",
) -> None:
    """The gateway (RK3568 role): sources → watchdog → ring buffer → brains; signals → SQLite → telemetry.

    [bold]Examples[/]

      heqis gateway --target brain-1@127.0.0.1:5555 --rate 20
      heqis gateway --target-ip 192.0.2.11 --keys .heqis/keys --bind 192.0.2.10
      heqis gateway --target brain-1@127.0.0.1:5555 --source modbus --modbus 127.0.0.1:5020 \\
          --modbus-map 600519.SH@0
    """
    from heqis.runtime.assembly import GatewayOptions, SourceSpec, gateway_from, parse_targets
    from heqis.runtime.gateway import run_gateway

    service_logging(ctx)
    with user_errors(ctx):
        s = settings(data_dir=data_dir, artifacts_dir=artifacts, runtime_brain_port=port, runtime_db=db,
                     runtime_telemetry_port=telemetry_port, runtime_control_port=control_port,
                     runtime_ws_port=ws_port, runtime_bind=bind)
        targets = parse_targets(target_ip, s.runtime_brain_port, target, reset, target_reset)
        spec = SourceSpec(kinds=list(source or ["replay"]), data_dir=s.data_dir, replay_pack=replay_pack,
                          symbols=parse_symbols(symbols), start=day(start), end=day(end),
                          replay_from=day(replay_from), rate=rate, limit=limit, modbus=modbus,
                          modbus_map=list(modbus_map or []), poll_interval=poll_interval)
        cfg, sources = gateway_from(GatewayOptions(
            targets, spec, s.artifacts_dir, s.runtime_db, s.runtime_telemetry_port, s.runtime_control_port,
            s.runtime_ws_port, s.runtime_bind, fleet, ring, max_in_flight, keys_dir, insecure, exit_when_done,
            state_file, s, ws_bind, request_deadline, max_attempts, watchdog))
        gw = run_gateway(cfg, sources)
    err.print(f"gateway stopped: {dict(gw.counters)}")


KeyDirOpt = Annotated[Path | None, typer.Option("--dir", metavar="DIR", help="The key folder (default "
                                                 ".heqis/keys).")]
DEFAULT_KEYS = Path(".heqis/keys")


def keys(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Option("--dir", metavar="DIR", help="Where to write the key pairs.")] =
        DEFAULT_KEYS,
    force: Annotated[bool, typer.Option("--force", help="Replace existing keys (consoles added with `keys add` "
                                        "too).")] = False,
    json_out: JsonOpt = False,
) -> None:
    """CURVE keys of the fleet (secrets 0600), allow-lists per role, console roles, the WebSocket token.

    With no subcommand it makes the key folder (a folder of the old layout is converted in place,
    keeping its keys). A brain accepts only the gateway's key (allow/brain); the gateway's telemetry
    and control accept only console keys (allow/gateway), each an operator or a viewer (roles.json).

    Examples:
      heqis keys --dir .heqis/keys
      heqis keys add alice --role viewer --dir .heqis/keys
      heqis keys list --dir .heqis/keys
      heqis keys revoke alice --dir .heqis/keys
    """
    if ctx.invoked_subcommand is not None:
        return
    from heqis.runtime.security import generate_keys, needs_completion

    with user_errors(ctx):
        converted = directory.is_dir() and not force and needs_completion(directory)
        written = generate_keys(directory, force)
    if json_out:
        emit_json({"directory": str(directory), "converted": converted, "files": [str(p) for p in written]})
    elif converted:
        stdout.print(f"converted {directory} to the role layout (kept its key pairs; wrote {len(written)} files: "
                     f"allow/brain, allow/gateway, roles.json, ws.token); restart the gateway and brains with it",
                     soft_wrap=True)
    else:
        stdout.print(f"wrote {len(written)} key files to {directory} (secrets 0600): the brains get brain.key_secret "
                     f"and allow/brain/, the gateway gets gateway.key_secret, allow/gateway/, roles.json and "
                     f"ws.token; console.key_secret is the operator console's", soft_wrap=True)


def _key_dir(ctx: typer.Context, directory: Path | None) -> Path:
    """--dir after the subcommand, else --dir before it (heqis keys --dir D list), else the default."""
    parent = ctx.parent.params.get("directory") if ctx.parent is not None else None
    return directory or parent or DEFAULT_KEYS


def keys_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The console's name: 1–64 of A–Z a–z 0–9 _ . -")],
    role: Annotated[Literal["operator", "viewer"], typer.Option(help="operator: watch and control (pause, "
                                                                "reset a brain); viewer: watch only.")] =
        "operator",
    directory: KeyDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a console key pair (consoles/NAME.key_secret, 0600) that the gateway accepts, with a role."""
    from heqis.runtime.security import add_console

    folder = _key_dir(ctx, directory)
    with user_errors(ctx):
        added = add_console(folder, name, role)
    if json_out:
        emit_json({"directory": str(folder), **added})
        return
    stdout.print(f"added console {name} ({role}), key {added['public_key']}: its user needs a key folder DIR "
                 f"holding consoles/{name}.key_secret (from {added['secret']}) and gateway.key, and connects with "
                 f"`heqis console --keys DIR --key-name {name}`. A running gateway accepts it from the next "
                 f"connection (on an SSH fleet once `heqis up` has shipped allow/gateway and roles.json)",
                 soft_wrap=True)


def keys_list(
    ctx: typer.Context,
    directory: KeyDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The console keys: name, role, public key, whether the gateway accepts it."""
    from heqis.runtime.security import list_consoles

    folder = _key_dir(ctx, directory)
    with user_errors(ctx):
        rows = list_consoles(folder)
    if json_out:
        emit_json({"directory": str(folder), "keys": rows})
        return
    from rich.table import Table

    table = Table("name", "role", "public key", "accepted", "secret here", box=None)
    for r in rows:
        table.add_row(r["name"], str(r["role"]), r["public_key"], "yes" if r["allowed"] else "NO",
                      "yes" if r["secret"] else "-")
    stdout.print(table)


def keys_revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The console key to revoke (see heqis keys list).")],
    directory: KeyDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a console key: its operator rights end at once; new connections with it are refused."""
    from heqis.runtime.security import revoke_console

    folder = _key_dir(ctx, directory)
    with user_errors(ctx):
        revoked = revoke_console(folder, name)
    if json_out:
        emit_json({"directory": str(folder), **revoked})
        return
    stdout.print(f"revoked {name} ({revoked['public_key']}): removed from roles.json and allow/gateway, its key "
                 f"files deleted. The gateway refuses it control at once and new connections with it; a "
                 f"connection it has open now keeps receiving telemetry until it drops — restart the gateway to "
                 f"cut it (on an SSH fleet: `heqis up` first, to ship the change)", soft_wrap=True)


def up(
    ctx: typer.Context,
    fleet: FleetOpt = None,
    local: Annotated[bool, typer.Option("--local", help="Run the fleet on this machine instead.")] = False,
    rollback: Annotated[bool, typer.Option("--rollback", help="SSH fleet: go back to each host's previous "
                                           "release.")] = False,
    trust_new_hosts: Annotated[bool, typer.Option("--trust-new-hosts", help="SSH fleet: accept and record host "
                                                  "keys not in known_hosts (first contact only).")] = False,
    artifacts: ArtifactsOpt = None,
    data_dir: DataDirOpt = None,
    brains: Annotated[int, typer.Option(min=1, max=16, help="--local: number of brains.")] = 1,
    backend: Annotated[Backend, typer.Option(help="--local: the brains' inference engine.")] = "onnxruntime",
    rate: Annotated[float, typer.Option(min=0, help="--local: replay bars per second (0 = as fast as the brains "
                                        "take them).")] = 0.0,
    start: Annotated[datetime | None, date_option("--local: replay from this date (bars already answered by these "
                                      "artifacts are skipped)")] = None,
    end: Annotated[datetime | None, date_option("--local: replay up to this date")] = None,
    replay_from: Annotated[datetime | None, date_option("--local: replay from this date even where signals are stored",
                                            "--replay-from")] = None,
    symbols: Annotated[str | None, typer.Option(metavar="A,B", help="--local: comma-separated ts_codes to "
                                                "replay (default: every stored stock and fund).")] = None,
    base_port: Annotated[int | None, typer.Option(min=1, max=65500, help="--local: the first port: telemetry, then "
                                                  "control, WebSocket, and two per brain (default 5560; "
                                                  "\\[local] base_port).")] = None,
    telemetry_port: Annotated[int | None, typer.Option(min=1, max=65535, help="--local: telemetry port (default "
                                                       "base).")] = None,
    control_port: Annotated[int | None, typer.Option(min=1, max=65535, help="--local: control port (default "
                                                     "base+1).")] = None,
    ws_port: Annotated[int | None, typer.Option(min=0, max=65535, help="--local: WebSocket port (default base+2; "
                                                "0 = off).")] = None,
    brain_port: Annotated[int | None, typer.Option(min=1, max=65534, help="--local: brain 1's port; brain i takes "
                                                   "this + 2(i-1) and +1 (default base+3).")] = None,
    watchdog: Annotated[Literal["warn", "hold", "off"], typer.Option(
        help="--local: the gateway's data watchdog policy, as heqis gateway --watchdog (an SSH fleet sets it "
             "in fleet.toml: [fleet] watchdog).")] = "warn",
    json_out: JsonOpt = False,
) -> None:
    """Bring the fleet up: over SSH from fleet.toml (idempotent), or --local on this machine.

    Over SSH: strict host keys, parallel to every host, upload only what changed into releases/<id>
    with a `current` link, offline install from a wheelhouse, secrets as 0600 files, systemd units or
    setsid + pidfile, then wait until the gateway reports every brain's heartbeat.

    --local: brains and a gateway replaying the data store as detached processes of this directory
    (.heqis/local-fleet.json); every port follows --base-port or its own flag, and a port in use stops
    it before anything starts.
    """
    from heqis.runtime.local_fleet import choose_fleet

    with user_errors(ctx):
        fleet_file = None if local else choose_fleet(fleet, False)
        if fleet_file is None:
            if not local:
                raise HeqisError("no fleet.toml here", hint="write one (README, section Fleet), pass --fleet FILE, "
                                 "or use --local")
            doc = up_local_fleet(artifacts, data_dir, brains, backend, rate, day(start), day(end), day(replay_from),
                                 parse_symbols(symbols),
                                 {"base_port": base_port, "telemetry_port": telemetry_port,
                                  "control_port": control_port, "ws_port": ws_port, "brain_port": brain_port},
                                 watchdog)
            show(doc, json_out, "render_status")
            return
        from heqis_remote.deploy import rollback_fleet, up_fleet
        from heqis_remote.fleet import load_fleet

        cfg = load_fleet(fleet_file)
        with progress(json_out, "up") as update:
            def report(host: str, step: str) -> None:
                update(f"{host}: {step}", 0, len(cfg.hosts))
                if not json_out and not sys.stdout.isatty():
                    dim_line(f"{host}: {step}")

            result = rollback_fleet(cfg, report) if rollback else up_fleet(cfg, report, trust_new_hosts)
    show(result.to_dict(), json_out, "render_up")
    if not result.ok:
        raise typer.Exit(1)


def up_local_fleet(artifacts: Path | None, data_dir: Path | None, brains: int, backend: str, rate: float,
                   start: Any, end: Any, replay_from: Any, symbols: list[str] | None,
                   ports: dict[str, int | None], watchdog: str = "warn") -> dict[str, Any]:
    """``heqis up --local`` with settings applied (also what ``heqis demo`` calls)."""
    from heqis.runtime.local_fleet import LocalFleetRequest, port_layout, up_local

    s = settings(artifacts_dir=artifacts, data_dir=data_dir, local_base_port=ports.get("base_port"))
    layout = port_layout(brains, s.local_base_port, ports.get("telemetry_port"), ports.get("control_port"),
                         ports.get("ws_port"), ports.get("brain_port"))
    iso = {k: v.isoformat() if v else None for k, v in (("start", start), ("end", end), ("from", replay_from))}
    return up_local(LocalFleetRequest(artifacts=s.artifacts_dir, data_dir=s.data_dir, brains=brains, ports=layout,
                                      backend=backend, rate=rate, start=iso["start"], end=iso["end"],
                                      replay_from=iso["from"], symbols=symbols, watchdog=watchdog))


def status(
    ctx: typer.Context,
    fleet: FleetOpt = None,
    local: LocalOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the status document: {fleet, nodes: [{name, "
                                           "role, host, pid, alive, heartbeat_age_s, version, artifacts_sha256, "
                                           "counters}]}.")] = False,
    watch: Annotated[float, typer.Option(min=0, help="Repeat every N seconds (0 = once).")] = 0.0,
) -> None:
    """Each process of the fleet: reachable, alive, heartbeat age, version, artifact set, counters.

    A local fleet reports only this directory's own processes (each pid checked against the command
    line it was started with); a brain that never answers shows as silent, with the likely cause.
    """
    from heqis.runtime.local_fleet import choose_fleet

    with user_errors(ctx):
        fleet_file = choose_fleet(fleet, local)
        while True:
            if fleet_file is None:
                from heqis.runtime.local_fleet import status_local

                doc = status_local()
            else:
                from heqis_remote.deploy import status_fleet
                from heqis_remote.fleet import load_fleet

                doc = status_fleet(load_fleet(fleet_file))
            show(doc, json_out, "render_status")
            if watch <= 0:
                break
            time.sleep(watch)


def down(
    ctx: typer.Context,
    fleet: FleetOpt = None,
    local: LocalOpt = False,
    timeout: Annotated[float, typer.Option(min=0, help="Seconds between SIGTERM and SIGKILL.")] = 5.0,
    json_out: JsonOpt = False,
) -> None:
    """Stop the fleet (the gateway first): SIGTERM, then SIGKILL after --timeout."""
    from heqis.runtime.local_fleet import choose_fleet

    with user_errors(ctx):
        fleet_file = choose_fleet(fleet, local)
        if fleet_file is None:
            from heqis.runtime.local_fleet import down_local

            results = down_local(timeout=timeout)
        else:
            from heqis_remote.deploy import down_fleet
            from heqis_remote.fleet import load_fleet

            results = down_fleet(load_fleet(fleet_file), timeout)
    if json_out:
        emit_json({"stopped": results})
    else:
        for r in results:
            state = "stopped" if r.get("stopped") else \
                ("UNREACHABLE: " + r["error"] if "error" in r else "STILL RUNNING")
            stdout.print(f"{r['name']}: {state}{' (was not running)' if r.get('was_running') is False else ''}")
    if not all(r.get("stopped") for r in results):
        raise typer.Exit(1)


def logs(
    ctx: typer.Context,
    host: Annotated[str, typer.Argument(metavar="NODE", help="Host (fleet.toml name) or local node (gateway, "
                                        "brain-1, …).")],
    fleet: FleetOpt = None,
    local: LocalOpt = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="How many lines.")] = 50,
) -> None:
    """The last lines of a host's (or local node's) log."""
    from heqis.runtime.local_fleet import choose_fleet

    with user_errors(ctx):
        fleet_file = choose_fleet(fleet, local)
        if fleet_file is None:
            from heqis.runtime.local_fleet import read_state

            state = read_state()
            nodes = [state["gateway"], *state["brains"]]
            node = next((n for n in nodes if n["name"] == host), None)
            if node is None:
                raise HeqisError(f"no local node named '{host}'", hint=f"nodes: {', '.join(n['name'] for n in nodes)}")
            try:
                text = "\n".join(Path(node["log"]).read_text(errors="replace").splitlines()[-lines:]) + "\n"
            except FileNotFoundError:
                raise HeqisError(f"{node['log']}: no log yet", hint="heqis up --local first") from None
        else:
            from heqis_remote.deploy import logs_fleet
            from heqis_remote.fleet import load_fleet

            text = logs_fleet(load_fleet(fleet_file), host, lines)
    typer.echo(text, nl=False)


def console_endpoints(connect: str | None, control: str | None, fleet: Path | None,
                      local: bool) -> tuple[str, str | None, Path | None]:
    """(telemetry, control, keys dir) of the gateway to watch: --connect [--control], fleet.toml, or the
    local fleet. With --connect alone the console learns the control port from the gateway's telemetry."""
    from heqis.runtime.local_fleet import choose_fleet, read_state

    if connect:
        def tcp(address: str) -> str:
            return address if address.startswith("tcp://") else f"tcp://{address}"

        return tcp(connect), tcp(control) if control else None, None
    fleet_file = choose_fleet(fleet, local)
    if fleet_file is not None:
        from heqis_remote.fleet import load_fleet

        cfg = load_fleet(fleet_file)
        gw = cfg.gateway.host
        return f"tcp://{gw}:{cfg.fleet.telemetry_port}", f"tcp://{gw}:{cfg.fleet.control_port}", cfg.fleet.keys
    state = read_state()
    return state["telemetry"], state["control"], None


def console(
    ctx: typer.Context,
    connect: Annotated[str | None, typer.Option(metavar="HOST:PORT", help="A gateway's telemetry address "
                                                "(tcp://HOST:PORT).")] = None,
    control: Annotated[str | None, typer.Option(metavar="HOST:PORT", help="Its control address (default: the "
                                                "one its telemetry announces).")] = None,
    fleet: FleetOpt = None,
    local: LocalOpt = False,
    run: Annotated[Path | None, typer.Option("--run", metavar="RUN_DIR", help="Research views of a training run "
                                             "instead: curves, backtest table, K-line with trades.")] = None,
    keys_dir: Annotated[Path | None, typer.Option("--keys", metavar="DIR", help="CURVE key folder (console "
                                                  "identity).")] = None,
    key_name: Annotated[str | None, typer.Option("--key-name", metavar="NAME", help="Use the console key "
                                                 "added with `heqis keys add NAME` (default: console.key).")] = None,
) -> None:
    """The full-screen operator console: fleet, latency, queue, signals, K-line, alerts (live); or --run views.

    With no option it attaches to the local fleet of this directory, else to the gateway named in
    fleet.toml. Keys: ? help · q quit · / symbol · p pause · r reset a brain.
    """
    with user_errors(ctx):
        if run is not None:
            from heqis.formats.run import RunFolder

            RunFolder.open(run)
            telemetry, control_address, keys_path = None, None, None
        else:
            telemetry, control_address, keys_path = console_endpoints(connect, control, fleet, local)
        key_cfg = None
        if keys_dir or keys_path:
            from heqis.runtime.security import KeyConfig

            key_cfg = KeyConfig(keys_dir or keys_path, "console", name=key_name)  # type: ignore[arg-type]
            key_cfg.keypair()           # a missing or readable secret: one line now, not a silent console
        elif key_name:
            raise HeqisError("--key-name needs a key folder", hint="add --keys DIR (or use a fleet.toml with keys)")
        if not sys.stdout.isatty():
            raise HeqisError("the console needs a terminal", hint="use `heqis status --watch 1` in scripts")
        from heqis_console.app import run_console

        run_console(telemetry, control_address, key_cfg, run)


def register(app: typer.Typer) -> None:
    for command in (brain, gateway):
        app.command(rich_help_panel=PANEL)(command)
    group = typer.Typer(invoke_without_command=True, rich_markup_mode="rich")
    group.callback()(keys)
    group.command("add")(keys_add)
    group.command("list")(keys_list)
    group.command("revoke")(keys_revoke)
    app.add_typer(group, name="keys", rich_help_panel=PANEL)
    for command in (up, status, down, logs, console):
        app.command(rich_help_panel=PANEL)(command)

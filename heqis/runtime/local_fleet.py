"""``heqis up --local`` / ``status`` / ``down``: the fleet as detached processes on this machine.

State lives in ``.heqis/local-fleet.json`` in the current directory (ports, pids, command lines,
log paths), written atomically; ``status``, ``down`` and ``console`` read it, and the gateway
rewrites a brain's pid when it restarts one. Processes are started with ``setsid`` semantics
(``start_new_session``) and their output goes to ``.heqis/logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import zmq

from heqis.errors import HeqisError
from heqis.fileio import atomic_write_bytes

STATE_DIR = Path(".heqis")
STATE_FILE = STATE_DIR / "local-fleet.json"


def heqis_command() -> list[str]:
    """How to start a heqis process with this interpreter (works in venvs and editable installs)."""
    return [sys.executable, "-m", "heqis"]


def read_state(path: Path = STATE_FILE) -> dict[str, Any]:
    if not path.exists():
        raise HeqisError(f"{path}: no local fleet recorded here", hint="start one with: heqis up --local")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HeqisError(f"{path}: corrupt fleet state ({exc})", hint="heqis down --force, then heqis up --local") \
            from None


def write_state(state: dict[str, Any], path: Path = STATE_FILE) -> None:
    atomic_write_bytes(path, (json.dumps(state, indent=2) + "\n").encode())


def spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, **(env or {})}, close_fds=True)
    return proc.pid


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill(pid: int | None, timeout: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True when the process is gone."""
    if not alive(pid):
        return True
    assert pid is not None
    try:
        os.kill(pid, signal.SIGTERM)
        psutil.Process(pid).wait(timeout)
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(timeout)
    except (ProcessLookupError, psutil.Error):
        pass
    return not alive(pid)


def restart_node(state_file: Path, name: str) -> int:
    """Kill brain ``name`` if it still runs, start it again from its recorded command, record the pid."""
    state = read_state(state_file)
    node = next((n for n in state["brains"] if n["name"] == name), None)
    if node is None:
        raise HeqisError(f"{state_file}: no brain named {name}")
    if alive(node.get("pid")):
        os.kill(node["pid"], signal.SIGKILL)
    node["pid"] = spawn(node["cmd"], Path(node["log"]))
    node["restarts"] = node.get("restarts", 0) + 1
    write_state(state, state_file)
    return int(node["pid"])


@dataclass
class LocalFleetRequest:
    artifacts: Path = Path("deploy_output")
    data_dir: Path = Path("heqis-data")
    brains: int = 1
    base_port: int = 5555
    backend: str = "onnxruntime"
    rate: float = 0.0
    start: str | None = None
    end: str | None = None
    symbols: list[str] | None = None
    telemetry_port: int = 5560
    control_port: int = 5561
    ws_port: int = 8765
    db: Path = STATE_DIR / "signals.sqlite"
    ring: int = 4096
    wait_s: float = 60.0
    exit_when_done: bool = False


def up_local(req: LocalFleetRequest, state_file: Path = STATE_FILE) -> dict[str, Any]:
    """Start N brains and a gateway replaying the data store; wait until every brain answers."""
    from heqis.export.artifacts import verify

    verify(req.artifacts)
    if state_file.exists():
        old = read_state(state_file)
        running = [n["name"] for n in [old["gateway"], *old["brains"]] if alive(n.get("pid"))]
        if running:
            raise HeqisError(f"a local fleet is already running ({', '.join(running)})", hint="heqis down first")
    logs = state_file.parent / "logs"
    brains = []
    for i in range(req.brains):
        port = req.base_port + 2 * i
        name = f"brain-{i + 1}"
        cmd = [*heqis_command(), "brain", "--port", str(port), "--artifacts", str(req.artifacts.resolve()),
               "--backend", req.backend, "--name", name, "--threads", "1"]
        brains.append({"name": name, "role": "brain", "host": "127.0.0.1", "port": port, "cmd": cmd,
                       "log": str((logs / f"{name}.log").resolve()), "pid": None, "restarts": 0})
    gw_cmd = [*heqis_command(), "gateway", "--source", "replay", "--data-dir", str(req.data_dir.resolve()),
              "--artifacts", str(req.artifacts.resolve()), "--db", str(req.db.resolve()),
              "--state-file", str(state_file.resolve()), "--rate", str(req.rate),
              "--telemetry-port", str(req.telemetry_port), "--control-port", str(req.control_port),
              "--ws-port", str(req.ws_port), "--ring", str(req.ring), "--reset", "local"]
    for b in brains:
        gw_cmd += ["--target", f"{b['name']}@127.0.0.1:{b['port']}"]
    if req.start:
        gw_cmd += ["--start", req.start]
    if req.end:
        gw_cmd += ["--end", req.end]
    if req.symbols:
        gw_cmd += ["--symbols", ",".join(req.symbols)]
    if req.exit_when_done:
        gw_cmd.append("--exit-when-done")
    state = {"fleet": "local", "created_at": time.time(), "artifacts": str(req.artifacts.resolve()),
             "db": str(req.db.resolve()), "telemetry": f"tcp://127.0.0.1:{req.telemetry_port}",
             "control": f"tcp://127.0.0.1:{req.control_port}", "websocket": f"ws://127.0.0.1:{req.ws_port}",
             "gateway": {"name": "gateway", "role": "gateway", "host": "127.0.0.1", "cmd": gw_cmd,
                         "log": str((logs / "gateway.log").resolve()), "pid": None},
             "brains": brains}
    write_state(state, state_file)
    for b in brains:
        b["pid"] = spawn(b["cmd"], Path(b["log"]))
    write_state(state, state_file)
    state["gateway"]["pid"] = spawn(gw_cmd, Path(state["gateway"]["log"]))
    write_state(state, state_file)
    return wait_ready(state, req.wait_s)


def control(address: str, request: dict[str, Any], timeout_s: float = 2.0,
            keys: Any = None) -> dict[str, Any] | None:
    """One request to the gateway's control socket; None when it does not answer in time."""
    from heqis.runtime.security import client_socket_security

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    client_socket_security(sock, keys, "gateway")
    sock.connect(address)
    try:
        sock.send_json(request)
        if sock.poll(int(timeout_s * 1000)):
            return sock.recv_json()  # type: ignore[no-any-return]
        return None
    finally:
        sock.close(linger=0)


def wait_ready(state: dict[str, Any], wait_s: float) -> dict[str, Any]:
    """Poll the gateway until every brain is alive; HeqisError naming the laggards and their log tails."""
    deadline = time.monotonic() + wait_s
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if not alive(state["gateway"]["pid"]):
            raise HeqisError("the gateway exited during start-up", hint=tail_hint(state["gateway"]["log"]))
        last = control(state["control"], {"cmd": "status"}, 1.0)
        if last and all(n["alive"] for n in last["nodes"]):
            return last
        time.sleep(0.3)
    down = [n["name"] for n in (last or {"nodes": []})["nodes"] if not n["alive"]] or ["gateway"]
    logs = {n["name"]: n["log"] for n in [state["gateway"], *state["brains"]]}
    raise HeqisError(f"not ready after {wait_s:.0f} s: {', '.join(down)}",
                     hint=tail_hint(logs.get(down[0], state["gateway"]["log"])))


def tail_hint(log: str, lines: int = 3) -> str:
    try:
        tail = Path(log).read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        tail = []
    return f"see {log}" + (": " + " | ".join(t.strip() for t in tail) if tail else "")


def status_local(state_file: Path = STATE_FILE) -> dict[str, Any]:
    """DESIGN.md §8's status document, from the gateway when it answers, else from the pids alone."""
    state = read_state(state_file)
    live = control(state["control"], {"cmd": "status"}, 1.5) if alive(state["gateway"]["pid"]) else None
    if live:
        doc = {"fleet": live["fleet"], "nodes": live["nodes"]}
        for node in doc["nodes"]:
            if node["role"] == "brain":
                rec = next((b for b in state["brains"] if b["name"] == node["name"]), {})
                node["pid"] = node["pid"] or rec.get("pid")
                node["log"] = rec.get("log")
            else:
                node["log"] = state["gateway"]["log"]
        return doc
    nodes = []
    for n in [state["gateway"], *state["brains"]]:
        nodes.append({"name": n["name"], "role": n["role"], "host": n["host"], "pid": n["pid"],
                      "alive": alive(n["pid"]), "heartbeat_age_s": None, "version": None, "artifacts_sha256": None,
                      "counters": {}, "log": n["log"]})
    return {"fleet": state["fleet"], "nodes": nodes}


def down_local(state_file: Path = STATE_FILE, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Stop the gateway first (it flushes its store), then the brains: SIGTERM, SIGKILL after ``timeout``."""
    state = read_state(state_file)
    results = []
    for node in [state["gateway"], *state["brains"]]:
        was = alive(node.get("pid"))
        gone = kill(node.get("pid"), timeout)
        results.append({"name": node["name"], "pid": node.get("pid"), "was_running": was, "stopped": gone})
    state["stopped_at"] = time.time()
    write_state(state, state_file)
    return results

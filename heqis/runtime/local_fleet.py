"""``heqis up --local`` / ``status`` / ``down``: the fleet as detached processes on this machine.

State lives in ``.heqis/local-fleet.json`` in the fleet's directory (its ports, and each process's
pid, exact command line and log), written atomically; ``status``, ``down`` and ``console`` read it,
and the gateway rewrites a brain's pid when it restarts one. Processes are started with ``setsid``
semantics (``start_new_session``) and their output goes to ``.heqis/logs/<name>.log``.

The local fleet never reports what is not its own (docs/architecture.md, "Local fleet"):

* ports: every port follows ``--base-port`` (telemetry, control, WebSocket, then two per brain) or
  its own flag; a layout where two collide is a usage error, and a port another process listens
  on stops ``up`` before anything starts, with one line naming the port and, when it is another
  HEQIS fleet, its directory;
* identity: a recorded pid counts as this fleet's only while it runs the recorded command line
  (pids are reused), and a gateway's answer counts only when it comes from the recorded gateway pid;
* start-up: brains first, the gateway once every brain listens; anything that fails leaves nothing
  running.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from heqis.errors import HeqisError, InvalidValue
from heqis.fileio import write_json

STATE_DIR = Path(".heqis")
STATE_FILE = STATE_DIR / "local-fleet.json"
DEFAULT_BASE_PORT = 5560


def heqis_command() -> list[str]:
    """How to start a heqis process with this interpreter (works in venvs and editable installs)."""
    return [sys.executable, "-m", "heqis"]


# ---------------------------------------------------------------------------------------------
# ports
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PortLayout:
    """The local fleet's ports: telemetry, control, WebSocket (0 = off), and brain i on brain_port + 2i (+1)."""

    telemetry: int
    control: int
    ws: int
    brain: int
    brains: int

    def brain_ports(self, i: int) -> tuple[int, int]:
        return self.brain + 2 * i, self.brain + 2 * i + 1

    def named(self) -> dict[str, int]:
        """Every port by what uses it."""
        out = {"telemetry (--telemetry-port)": self.telemetry, "control (--control-port)": self.control}
        if self.ws:
            out["WebSocket (--ws-port)"] = self.ws
        for i in range(self.brains):
            a, b = self.brain_ports(i)
            out[f"brain-{i + 1} windows (--brain-port)"] = a
            out[f"brain-{i + 1} signals (--brain-port + 1)"] = b
        return out


def port_layout(brains: int, base_port: int | None = None, telemetry_port: int | None = None,
                control_port: int | None = None, ws_port: int | None = None,
                brain_port: int | None = None) -> PortLayout:
    """Ports from ``base_port`` (telemetry, control, WebSocket, then the brains), each overridable by its
    flag; InvalidValue when two collide or one is out of range."""
    base = DEFAULT_BASE_PORT if base_port is None else base_port
    layout = PortLayout(telemetry=base if telemetry_port is None else telemetry_port,
                        control=base + 1 if control_port is None else control_port,
                        ws=base + 2 if ws_port is None else ws_port,
                        brain=base + 3 if brain_port is None else brain_port, brains=brains)
    seen: dict[int, str] = {}
    for what, port in layout.named().items():
        if not 1 <= port <= 65535:
            raise InvalidValue("--base-port", f"{what} would be port {port} (outside 1-65535)")
        if port in seen:
            raise InvalidValue("--base-port", f"{what} and {seen[port]} would both use port {port}",
                               hint="choose ports that do not overlap (brain i takes --brain-port + 2i and +1)")
        seen[port] = what
    return layout


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on ``port`` (SO_REUSEADDR, as ZeroMQ binds: a TIME_WAIT is not 'in use')."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def port_owner(port: int) -> str:
    """Who listens on ``port``, in words: another HEQIS fleet's directory when it is one."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return "another process"
    pid = next((c.pid for c in conns if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN), None)
    if pid is None:
        return "another process"
    try:
        proc = psutil.Process(pid)
        cmd = proc.cmdline()
        if len(cmd) >= 4 and cmd[1:3] == ["-m", "heqis"] and cmd[3] in ("gateway", "brain"):
            where = proc.cwd()
            if (Path(where) / STATE_FILE).exists():
                return f"the local fleet in {where} (its {cmd[3]}, pid {pid}; `heqis down` there stops it)"
            return f"a heqis {cmd[3]} (pid {pid}, started in {where})"
        return f"pid {pid} ({proc.name()})"
    except psutil.Error:
        return f"pid {pid}"


def require_free(layout: PortLayout) -> None:
    for what, port in layout.named().items():
        if port_in_use(port):
            raise HeqisError(f"port {port} ({what}) is in use by {port_owner(port)}",
                             hint="stop that, or give this fleet other ports: heqis up --local --base-port PORT")


# ---------------------------------------------------------------------------------------------
# state and processes
# ---------------------------------------------------------------------------------------------
def read_state(path: Path = STATE_FILE) -> dict[str, Any]:
    if not path.exists():
        raise HeqisError(f"{path}: no local fleet recorded here", hint="start one with: heqis up --local")
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise HeqisError(f"{path}: corrupt fleet state ({exc})",
                         hint=f"stop its processes by hand (see {path.parent / 'logs'}), delete {path}") from None
    if not isinstance(state, dict) or "gateway" not in state or "brains" not in state:
        raise HeqisError(f"{path}: not a local fleet state file", hint=f"delete {path} and run heqis up --local")
    return state


def write_state(state: dict[str, Any], path: Path = STATE_FILE) -> None:
    write_json(path, state)


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
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def is_ours(node: dict[str, Any]) -> bool:
    """The node's recorded pid runs, and runs its recorded command line (not a reused pid)."""
    pid = node.get("pid")
    if not alive(pid):
        return False
    try:
        return psutil.Process(pid).cmdline() == list(node.get("cmd") or [])
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


def stop_node(node: dict[str, Any], timeout: float = 5.0) -> bool:
    """Stop the node if it is ours; True when it is not running afterwards."""
    return kill(node.get("pid"), timeout) if is_ours(node) else True


def restart_node(state_file: Path, name: str) -> int:
    """Kill brain ``name`` if it still runs, start it again from its recorded command, record the pid."""
    state = read_state(state_file)
    node = next((n for n in state["brains"] if n["name"] == name), None)
    if node is None:
        raise HeqisError(f"{state_file}: no brain named {name}")
    if is_ours(node):
        os.kill(node["pid"], signal.SIGKILL)
    node["pid"] = spawn(node["cmd"], Path(node["log"]))
    node["restarts"] = node.get("restarts", 0) + 1
    write_state(state, state_file)
    return int(node["pid"])


# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------
@dataclass
class LocalFleetRequest:
    artifacts: Path = Path("deploy_output")
    data_dir: Path = Path("heqis-data")
    brains: int = 1
    ports: PortLayout = field(default_factory=lambda: port_layout(1))
    backend: str = "onnxruntime"
    rate: float = 0.0
    start: str | None = None
    end: str | None = None
    replay_from: str | None = None
    symbols: list[str] | None = None
    db: Path = STATE_DIR / "signals.sqlite"
    ring: int = 4096
    wait_s: float = 120.0
    exit_when_done: bool = False
    watchdog: str = "warn"              # the gateway's data watchdog policy (heqis.runtime.watchdog.POLICIES)


def _commands(req: LocalFleetRequest, state_file: Path) -> tuple[list[dict[str, Any]], list[str]]:
    logs = state_file.parent / "logs"
    brains = []
    for i in range(req.brains):
        port, _ = req.ports.brain_ports(i)
        name = f"brain-{i + 1}"
        cmd = [*heqis_command(), "brain", "--port", str(port), "--artifacts", str(req.artifacts.resolve()),
               "--backend", req.backend, "--name", name, "--threads", "1"]
        brains.append({"name": name, "role": "brain", "host": "127.0.0.1", "port": port, "cmd": cmd,
                       "log": str((logs / f"{name}.log").resolve()), "pid": None, "restarts": 0})
    gw = [*heqis_command(), "gateway", "--source", "replay", "--data-dir", str(req.data_dir.resolve()),
          "--artifacts", str(req.artifacts.resolve()), "--db", str(req.db.resolve()),
          "--state-file", str(state_file.resolve()), "--rate", str(req.rate),
          "--telemetry-port", str(req.ports.telemetry), "--control-port", str(req.ports.control),
          "--ws-port", str(req.ports.ws), "--ring", str(req.ring), "--reset", "local", "--watchdog", req.watchdog]
    for b in brains:
        gw += ["--target", f"{b['name']}@127.0.0.1:{b['port']}"]
    for flag, value in (("--start", req.start), ("--end", req.end), ("--replay-from", req.replay_from)):
        if value:
            gw += [flag, value]
    if req.symbols:
        gw += ["--symbols", ",".join(req.symbols)]
    if req.exit_when_done:
        gw.append("--exit-when-done")
    return brains, gw


def up_local(req: LocalFleetRequest, state_file: Path = STATE_FILE) -> dict[str, Any]:
    """Start N brains and a gateway replaying the data store; wait until every brain answers."""
    from heqis.formats.artifacts import ArtifactSet

    ArtifactSet.open(req.artifacts)
    if state_file.exists():
        old = read_state(state_file)
        running = [n["name"] for n in [old["gateway"], *old["brains"]] if is_ours(n)]
        if running:
            raise HeqisError(f"a local fleet is already running here ({', '.join(running)})",
                             hint="heqis down first (heqis status shows it)")
    require_free(req.ports)
    brains, gw_cmd = _commands(req, state_file)
    ports = req.ports
    state = {"fleet": "local", "dir": str(Path.cwd().resolve()), "created_at": time.time(),
             "artifacts": str(req.artifacts.resolve()), "db": str(req.db.resolve()),
             "ports": {"telemetry": ports.telemetry, "control": ports.control, "ws": ports.ws, "brain": ports.brain},
             "telemetry": f"tcp://127.0.0.1:{ports.telemetry}", "control": f"tcp://127.0.0.1:{ports.control}",
             "websocket": f"ws://127.0.0.1:{ports.ws}" if ports.ws else None,
             "gateway": {"name": "gateway", "role": "gateway", "host": "127.0.0.1", "cmd": gw_cmd,
                         "log": str((state_file.parent / "logs" / "gateway.log").resolve()), "pid": None},
             "brains": brains}
    try:
        for b in brains:
            b["pid"] = spawn(b["cmd"], Path(b["log"]))
        write_state(state, state_file)
        _wait_listening(state, req.wait_s)
        state["gateway"]["pid"] = spawn(gw_cmd, Path(state["gateway"]["log"]))
        write_state(state, state_file)
        return wait_ready(state, req.wait_s)
    except BaseException:
        for node in [state["gateway"], *brains]:      # nothing is left running after a failed start
            stop_node(node, 2.0)
        raise


def _wait_listening(state: dict[str, Any], wait_s: float) -> None:
    """Until every brain listens on its port (so the gateway's first heartbeats reach a brain)."""
    deadline = time.monotonic() + wait_s
    waiting = list(state["brains"])
    while waiting and time.monotonic() < deadline:
        for b in list(waiting):
            if not alive(b["pid"]):
                raise HeqisError(f"{b['name']} exited during start-up", hint=tail_hint(b["log"]))
            if port_in_use(b["port"]):
                waiting.remove(b)
        time.sleep(0.1)
    if waiting:
        raise HeqisError(f"not listening after {wait_s:.0f} s: {', '.join(b['name'] for b in waiting)}",
                         hint=tail_hint(waiting[0]["log"]))


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
            reply = sock.recv_json()
            return reply if isinstance(reply, dict) else None
        return None
    finally:
        sock.close(linger=0)


def own_status(state: dict[str, Any], timeout_s: float = 1.5) -> dict[str, Any] | None:
    """The gateway's status, when the answer comes from this fleet's recorded gateway (not another fleet's)."""
    if not is_ours(state["gateway"]):
        return None
    doc = control(state["control"], {"cmd": "status"}, timeout_s)
    if not doc or not doc.get("nodes") or doc["nodes"][0].get("pid") != state["gateway"]["pid"]:
        return None
    return doc


def wait_ready(state: dict[str, Any], wait_s: float) -> dict[str, Any]:
    """Poll our gateway until every brain is alive (and is our brain); HeqisError naming the laggards."""
    deadline = time.monotonic() + wait_s
    last: dict[str, Any] | None = None
    pids = {b["name"]: b["pid"] for b in state["brains"]}
    while time.monotonic() < deadline:
        if not alive(state["gateway"]["pid"]):
            raise HeqisError("the gateway exited during start-up", hint=tail_hint(state["gateway"]["log"]))
        for b in state["brains"]:
            if not alive(b["pid"]):
                raise HeqisError(f"{b['name']} exited during start-up", hint=tail_hint(b["log"]))
        last = own_status(state, 1.0)
        if last and all(n["alive"] and (n["role"] != "brain" or n.get("pid") == pids.get(n["name"]))
                        for n in last["nodes"]):
            return _with_logs(last, state)
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


def _with_logs(doc: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    logs = {n["name"]: n["log"] for n in [state["gateway"], *state["brains"]]}
    out = {"fleet": doc.get("fleet", "local"), "dir": state.get("dir"), "nodes": []}
    for node in doc["nodes"]:
        out["nodes"].append({**node, "log": logs.get(node["name"])})
    return out


# ---------------------------------------------------------------------------------------------
# status, down
# ---------------------------------------------------------------------------------------------
def status_local(state_file: Path = STATE_FILE) -> dict[str, Any]:
    """The status document of this directory's fleet: from its own gateway when it answers, else from
    its own pids (checked against their command lines) alone."""
    state = read_state(state_file)
    live = own_status(state)
    if live:
        doc = _with_logs(live, state)
        records = {b["name"]: b for b in state["brains"]}
        for node in doc["nodes"]:
            rec = records.get(node["name"])
            if rec is not None:
                node["pid"] = rec.get("pid") if is_ours(rec) else None
                node["alive"] = bool(node["alive"]) and is_ours(rec)
        return doc
    nodes = []
    for n in [state["gateway"], *state["brains"]]:
        ours = is_ours(n)
        nodes.append({"name": n["name"], "role": n["role"], "host": n["host"], "pid": n["pid"] if ours else None,
                      "alive": ours, "heartbeat_age_s": None, "version": None, "artifacts_sha256": None,
                      "counters": {}, "log": n["log"]})
    return {"fleet": state["fleet"], "dir": state.get("dir"), "nodes": nodes}


def down_local(state_file: Path = STATE_FILE, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Stop the gateway first (it flushes its store), then the brains: SIGTERM, SIGKILL after ``timeout``.
    Only processes that are still this fleet's (recorded pid + command line) are signalled."""
    state = read_state(state_file)
    results = []
    for node in [state["gateway"], *state["brains"]]:
        was = is_ours(node)
        gone = stop_node(node, timeout)
        results.append({"name": node["name"], "pid": node.get("pid"), "was_running": was, "stopped": gone})
    state["stopped_at"] = time.time()
    write_state(state, state_file)
    return results


def running_here(state_file: Path = STATE_FILE) -> bool:
    """True when this directory has a local fleet with at least one of its processes running."""
    if not state_file.exists():
        return False
    try:
        state = read_state(state_file)
    except HeqisError:
        return False
    return any(is_ours(n) for n in [state["gateway"], *state["brains"]])


def choose_fleet(fleet_file: Path | None, local: bool, default: Path = Path("fleet.toml")) -> Path | None:
    """Which fleet a command means: a fleet.toml (returned) or this directory's local fleet (None).

    ``--fleet FILE`` and ``--local`` say it outright; otherwise a local fleet that is running here
    wins (its processes are checked, so a stale state file never does), then ./fleet.toml, then the
    local fleet's state (stopped, or never started)."""
    if fleet_file is not None and local:
        raise InvalidValue("--local", "--local and --fleet name different fleets: give one of them")
    if fleet_file is not None:
        return fleet_file
    if local or running_here():
        return None
    return default if default.exists() else None

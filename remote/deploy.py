"""``heqis up`` / ``down`` / ``status`` / ``logs`` / ``up --rollback`` for a fleet over SSH.

On each host (in parallel; a failing host is reported and the others go on)::

    <workdir>/store/<sha256>        every uploaded file, content-addressed: uploaded only when missing
                                    (to a temporary name, then renamed)
    <workdir>/releases/<id>/        a release: links into the store (wheels/, artifacts/, replay.npz)
    <workdir>/current -> releases/<id>
    <workdir>/venvs/<id>/           the venv of a wheel set, installed with --no-index (offline hosts)
    <workdir>/secrets/              CURVE keys and the Tushare token, 0600 files in a 0700 folder
    <workdir>/engines/              TensorRT engines built on that host, cached across releases
    <workdir>/run/<node>.pid|release, logs/<node>.log, signals.sqlite (gateway)

A second ``up`` with nothing changed uploads nothing and restarts nothing: the store already has
every file, the release id is the same, and a process already running that release is left alone.
Processes run as systemd units where the host has systemd (they return after a reboot), else
detached with ``setsid`` and a pidfile.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from heqis.errors import HeqisError
from heqis.fileio import sha256_file
from heqis.formats.artifacts import ArtifactSet
from heqis_remote.executor import SSHExecutor, StepFailed
from heqis_remote.fleet import FleetConfig, HostSpec
from heqis_remote.wheelhouse import build_wheel, wheelhouse

Report = Callable[[str, str], None]   # (host, step)


@dataclass
class HostResult:
    host: str
    role: str
    ok: bool
    step: str = ""
    error: str = ""
    log_tail: str = ""
    uploaded: int = 0
    uploaded_bytes: int = 0
    started: list[str] = field(default_factory=list)
    release: str = ""
    seconds: float = 0.0


@dataclass
class UpResult:
    fleet: str
    hosts: list[HostResult]
    status: dict[str, Any] | None
    seconds: float

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts) and self.status is not None

    def to_dict(self) -> dict[str, Any]:
        return {"fleet": self.fleet, "ok": self.ok, "hosts": [asdict(h) for h in self.hosts], "status": self.status,
                "seconds": round(self.seconds, 2)}


def connect(cfg: FleetConfig, h: HostSpec, trust_new_hosts: bool = False) -> SSHExecutor:
    return SSHExecutor(h.name, h.host, h.user, h.port, cfg.fleet.known_hosts, h.identity_file,
                       cfg.fleet.connect_timeout_s, cfg.fleet.command_timeout_s, trust_new_hosts)


def q(path: str) -> str:
    """Quote a remote path, keeping a leading ~ for the remote shell to expand."""
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


class HostDeploy:
    """One host's bring-up, step by step; every failure names its step and brings the log tail."""

    def __init__(self, cfg: FleetConfig, h: HostSpec, ex: Any, report: Report) -> None:
        self.cfg, self.h, self.ex, self.report = cfg, h, ex, report
        self.wd = h.workdir.rstrip("/")
        self.result = HostResult(h.name, h.role, ok=False)

    def sh(self, step: str, command: str, timeout_s: float | None = None) -> str:
        self.report(self.h.name, step)
        r = self.ex.run(command, timeout_s)
        if not r.ok:
            raise StepFailed(self.h.name, step, (r.stderr or r.stdout).strip().splitlines()[-1:][0]
                             if (r.stderr or r.stdout).strip() else f"exit code {r.rc}", self.log_tail())
        return r.stdout

    def log_tail(self, lines: int = 5) -> str:
        r = self.ex.run(f"tail -n {lines} {q(self.wd)}/logs/*.log 2>/dev/null | tail -n {lines}", 20)
        return " | ".join(x.strip() for x in r.stdout.strip().splitlines() if x.strip())

    def probe(self) -> tuple[str, str, bool]:
        out = self.sh("probe", f"{shlex.quote(self.h.python)} -c 'import platform, sys; "
                               f"print(platform.machine(), \"%d.%d\" % sys.version_info[:2])' && "
                               "( [ -d /run/systemd/system ] && command -v systemctl >/dev/null && "
                               "[ \"$(id -u)\" = 0 ] && echo systemd || echo nosystemd )")
        lines = out.split()
        machine, python, init = lines[0], lines[1], lines[2]
        use_systemd = {"yes": True, "no": False}.get(self.h.systemd, init == "systemd")
        return machine, python, use_systemd

    def upload(self, files: dict[str, Path]) -> dict[str, str]:
        """Put every file whose sha256 the host's store lacks; returns relative name → sha."""
        self.report(self.h.name, "upload")
        shas = {name: sha256_file(p) for name, p in files.items()}
        have = set(self.sh("upload", f"mkdir -p {q(self.wd)}/store && ls {q(self.wd)}/store").split())
        home = self.sh("upload", "echo $HOME").strip()
        wd = self.wd.replace("~", home, 1) if self.wd.startswith("~") else self.wd
        for name, sha in sorted(shas.items()):
            if sha in have:
                continue
            tmp = f"{wd}/store/.tmp-{sha}"
            self.ex.put(files[name], tmp)
            self.sh("upload", f"mv -f {shlex.quote(tmp)} {shlex.quote(wd)}/store/{sha}")
            have.add(sha)
            self.result.uploaded += 1
            self.result.uploaded_bytes += files[name].stat().st_size
        return shas

    def release(self, shas: dict[str, str]) -> str:
        rel = hashlib.sha256(json.dumps(sorted(shas.items())).encode()).hexdigest()[:16]
        wheelset = hashlib.sha256(json.dumps(sorted((k, v) for k, v in shas.items()
                                                    if k.startswith("wheels/"))).encode()).hexdigest()[:16]
        self.result.release = rel
        d = f"{q(self.wd)}/releases/{rel}"
        links = [f"mkdir -p {d}/wheels {d}/artifacts {q(self.wd)}/engines", f"echo {wheelset} > {d}/wheelset"]
        for name, sha in sorted(shas.items()):
            depth = name.count("/")
            links.append(f"ln -sfn {'../' * (depth + 2)}store/{sha} {d}/{shlex.quote(name)}")
        links.append(f"ln -sfn ../../../engines {d}/artifacts/engines")
        self.sh("release", " && ".join(links))
        return rel

    def switch(self, rel: str) -> None:
        self.sh("release", f"cd {q(self.wd)} && current=$(readlink current 2>/dev/null || true); "
                           f"if [ \"$current\" != releases/{rel} ]; then ln -sfn releases/{rel} current.new && "
                           f"mv -Tf current.new current && echo releases/{rel} >> releases.log; fi")

    def current(self) -> tuple[str, str]:
        """(release id, wheel-set id) that ``current`` points at."""
        out = self.sh("release", f"cd {q(self.wd)} && basename $(readlink current) && cat current/wheelset").split()
        return out[0], out[1]

    def venv(self, wheelset: str) -> str:
        """The venv of a wheel set (shared by releases that differ only in artifacts)."""
        venv = f"{self.wd}/venvs/{wheelset}"
        self.sh("install", f"if [ ! -x {q(venv)}/bin/heqis ]; then rm -rf {q(venv)} && "
                           f"{shlex.quote(self.h.python)} -m venv {q(venv)} && "
                           f"PIP_INDEX_URL=http://127.0.0.1:9/unreachable {q(venv)}/bin/python -m pip install "
                           f"--quiet --no-index --find-links {q(self.wd)}/current/wheels heqis; fi",
                timeout_s=max(self.cfg.fleet.command_timeout_s, 600))
        return venv

    def secrets(self, keys: Path | None) -> None:
        token = Path("~/.config/heqis/tushare_token").expanduser()
        files = sorted(keys.glob("*")) if keys else []
        self.sh("secrets", f"mkdir -p {q(self.wd)}/secrets/keys/clients && chmod 700 {q(self.wd)}/secrets")
        for f in files:
            if f.is_dir():
                for pub in sorted(f.glob("*.key")):
                    self._secret(pub, f"secrets/keys/clients/{pub.name}")
            elif f.name.endswith(".key") or f.name == f"{'brain' if self.h.role == 'brain' else 'gateway'}.key_secret":
                self._secret(f, f"secrets/keys/{f.name}")   # a node receives only its own secret key
        if token.exists() and self.h.role == "gateway":
            self._secret(token, "secrets/tushare_token")

    def _secret(self, local: Path, rel: str) -> None:
        sha = sha256_file(local)
        path = f"{q(self.wd)}/{rel}"
        have = self.ex.run(f"sha256sum {path} 2>/dev/null | cut -d' ' -f1", 20).stdout.strip()
        if have == sha:
            return
        home = self.sh("secrets", "echo $HOME").strip()
        wd = self.wd.replace("~", home, 1) if self.wd.startswith("~") else self.wd
        tmp = f"{wd}/{rel}.tmp"
        self.sh("secrets", f"umask 077 && : > {shlex.quote(tmp)}")
        self.ex.put(local, tmp)
        self.sh("secrets", f"chmod 600 {shlex.quote(tmp)} && mv -f {shlex.quote(tmp)} {shlex.quote(wd)}/{rel}")


def node_command(cfg: FleetConfig, h: HostSpec, venv: str, wd: str) -> str:
    """The command line of the host's process (brain, or the gateway with every brain as a target)."""
    keys = f" --keys {q(wd)}/secrets/keys" if cfg.fleet.keys else ""
    insecure = " --insecure" if cfg.fleet.insecure else ""
    if h.role == "brain":
        return (f"{q(venv)}/bin/heqis brain --port {h.brain_port} --artifacts {q(wd)}/current/artifacts "
                f"--backend {h.backend} --name {h.name} --bind {h.host}{keys}{insecure}")
    targets = " ".join(f"--target {b.name}@{b.host}:{b.brain_port}" for b in cfg.brains)
    resets = " ".join(f"--target-reset {shlex.quote(f'{b.name}={b.reset_command}')}"
                      for b in cfg.brains if b.reset_command)
    start = f" --start {cfg.fleet.replay_start}" if cfg.fleet.replay_start else ""
    return (f"{q(venv)}/bin/heqis gateway {targets} {resets} --source replay --replay-pack "
            f"{q(wd)}/current/replay.npz --artifacts {q(wd)}/current/artifacts --db {q(wd)}/signals.sqlite "
            f"--rate {cfg.fleet.replay_rate}{start} --fleet {shlex.quote(cfg.fleet.name)} --bind {h.host} "
            f"--telemetry-port {cfg.fleet.telemetry_port} --control-port {cfg.fleet.control_port} "
            f"--ws-port {cfg.fleet.ws_port}{keys}{insecure}")


def systemd_unit(name: str, command: str, workdir: str) -> str:
    """A unit that restarts the process on failure and starts it at boot (after a hard reset too)."""
    return (f"[Unit]\nDescription=HEQIS {name}\nAfter=network-online.target\nWants=network-online.target\n\n"
            f"[Service]\nWorkingDirectory={workdir}\nExecStart={command}\nRestart=always\nRestartSec=2\n"
            f"KillSignal=SIGTERM\nTimeoutStopSec=10\nStandardOutput=append:{workdir}/logs/{name}.log\n"
            f"StandardError=append:{workdir}/logs/{name}.log\n\n[Install]\nWantedBy=multi-user.target\n")


def start_script(name: str, command: str, rel: str, wd: str, use_systemd: bool) -> str:
    """Start ``name`` unless it already runs this release; a running older release is stopped first."""
    if use_systemd:
        unit = systemd_unit(name, command.replace("~", "$HOME"), wd.replace("~", "$HOME"))
        return (f"mkdir -p {q(wd)}/logs && cat > /etc/systemd/system/heqis-{name}.service <<EOF\n{unit}EOF\n"
                f"systemctl daemon-reload && systemctl enable heqis-{name} >/dev/null 2>&1; "
                f"if systemctl is-active --quiet heqis-{name} && [ \"$(cat {q(wd)}/run/{name}.release 2>/dev/null)\" "
                f"= {rel} ]; then echo running; else mkdir -p {q(wd)}/run && echo {rel} > {q(wd)}/run/{name}.release "
                f"&& systemctl restart heqis-{name} && echo started; fi")
    pid = f"{q(wd)}/run/{name}.pid"
    return (f"cd {q(wd)} && mkdir -p run logs && "
            f"if [ -f {pid} ] && kill -0 $(cat {pid}) 2>/dev/null && "
            f"[ \"$(cat run/{name}.release 2>/dev/null)\" = {rel} ]; then echo running; else "
            f"{stop_script(name, wd, False)}; "
            f"setsid nohup {command} </dev/null >>logs/{name}.log 2>&1 & echo $! > {pid}; "
            f"echo {rel} > run/{name}.release; echo started; fi")


def stop_script(name: str, wd: str, use_systemd: bool, timeout_s: float = 10.0) -> str:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; the pidfile goes away."""
    if use_systemd:
        return f"systemctl stop heqis-{name} 2>/dev/null; systemctl disable heqis-{name} >/dev/null 2>&1; true"
    pid = f"{q(wd)}/run/{name}.pid"
    steps = int(timeout_s * 10)
    return (f"if [ -f {pid} ]; then p=$(cat {pid}); if kill -0 $p 2>/dev/null; then kill -TERM $p; "
            f"for i in $(seq {steps}); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; "
            f"kill -0 $p 2>/dev/null && kill -KILL $p; fi; rm -f {pid}; fi; true")


@dataclass
class Bundle:
    """What goes to the hosts: files per role, by their name inside a release."""

    common: dict[str, Path]
    gateway: dict[str, Path]


def make_bundle(cfg: FleetConfig, machine: str, python: str, workdir: Path) -> Bundle:
    from heqis.runtime.replay_pack import store_arrays, write_pack

    manifest = ArtifactSet.open(cfg.fleet.artifacts).manifest
    common: dict[str, Path] = {}
    wheel = build_wheel(workdir / "dist")
    common[f"wheels/{wheel.name}"] = wheel
    for w in sorted(wheelhouse(machine, python).glob("*.whl")):
        common[f"wheels/{w.name}"] = w
    for name in manifest["files"]:
        common[f"artifacts/{name}"] = Path(cfg.fleet.artifacts) / name
    common["artifacts/manifest.json"] = Path(cfg.fleet.artifacts) / "manifest.json"
    pack = workdir / "replay.npz"
    if not pack.exists() or pack.stat().st_mtime < (Path(cfg.fleet.data_dir) / "manifest.json").stat().st_mtime:
        write_pack(store_arrays(cfg.fleet.data_dir), pack)
    return Bundle(common, {"replay.npz": pack})


def up_fleet(cfg: FleetConfig, report: Report | None = None, trust_new_hosts: bool = False,
             only_start: bool = False, workdir: Path = Path(".heqis/fleet")) -> UpResult:
    """Bring the fleet up (idempotent). Hosts that fail are reported; the others still come up."""
    report = report or (lambda host, step: None)
    t0 = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    bundles: dict[tuple[str, str], Bundle] = {}
    results: dict[str, HostResult] = {}
    commands: dict[str, tuple[HostDeploy, str, str, bool]] = {}

    def prepare(h: HostSpec) -> None:
        t = time.monotonic()
        ex = None
        try:
            report(h.name, "connect")
            ex = connect(cfg, h, trust_new_hosts)
            d = HostDeploy(cfg, h, ex, report)
            results[h.name] = d.result
            machine, python, use_systemd = d.probe()
            if not only_start:
                key = (machine, python)
                if key not in bundles:
                    bundles[key] = make_bundle(cfg, machine, python, workdir)
                b = bundles[key]
                shas = d.upload({**b.common, **(b.gateway if h.role == "gateway" else {})})
                d.switch(d.release(shas))
            rel, wheelset = d.current()
            d.result.release = rel
            venv = d.venv(wheelset)
            d.secrets(cfg.fleet.keys)
            if h.role == "brain" and h.backend == "tensorrt":
                d.sh("engine", f"{q(venv)}/bin/heqis convert --to tensorrt --artifacts {q(d.wd)}/current/artifacts "
                               f"--precision {h.precision}")
            commands[h.name] = (d, node_command(cfg, h, venv, d.wd), rel, use_systemd)
            d.result.ok = True
        except HeqisError as exc:
            r = results.setdefault(h.name, HostResult(h.name, h.role, ok=False))
            r.ok = False
            r.step = getattr(exc, "step", "connect")
            r.error = exc.message
            r.log_tail = exc.hint or ""
            if ex is not None:
                ex.close()
        finally:
            if h.name in results:
                results[h.name].seconds = round(time.monotonic() - t, 2)

    ordered = sorted(cfg.hosts, key=lambda h: h.role != "gateway")   # the gateway builds the shared bundle first
    prepare(ordered[0])
    with ThreadPoolExecutor(max_workers=min(8, len(ordered))) as pool:
        list(pool.map(prepare, ordered[1:]))
    # start the brains first, then the gateway (it finds them listening)
    for h in [*cfg.brains, cfg.gateway]:
        if h.name not in commands:
            continue
        d, command, rel, use_systemd = commands[h.name]
        try:
            out = d.sh("start", start_script(h.name, command, rel, d.wd, use_systemd))
            if "started" in out:
                d.result.started.append(h.name)
        except HeqisError as exc:
            d.result.ok, d.result.step, d.result.error = False, "start", exc.message
            d.result.log_tail = exc.hint or ""
    for d, *_ in commands.values():
        d.ex.close()
    status = None
    gateway_ok = results.get(cfg.gateway.name, HostResult("", "", False)).ok
    if gateway_ok:
        report(cfg.gateway.name, "wait for heartbeats")
        status = wait_for_brains(cfg, [b.name for b in cfg.brains if results.get(b.name) and results[b.name].ok])
        if status is None:
            r = results[cfg.gateway.name]
            r.ok, r.step, r.error = False, "wait", "the gateway did not report every brain's heartbeat in time"
    return UpResult(cfg.fleet.name, [results.get(h.name, HostResult(h.name, h.role, False, "connect", "not reached"))
                                     for h in cfg.hosts], status, time.monotonic() - t0)


def gateway_control(cfg: FleetConfig, request: dict[str, Any], timeout_s: float = 2.0) -> dict[str, Any] | None:
    from heqis.runtime.local_fleet import control
    from heqis.runtime.security import KeyConfig

    keys = KeyConfig(cfg.fleet.keys, "console") if cfg.fleet.keys else None
    return control(f"tcp://{cfg.gateway.host}:{cfg.fleet.control_port}", request, timeout_s, keys)


def wait_for_brains(cfg: FleetConfig, names: list[str]) -> dict[str, Any] | None:
    deadline = time.monotonic() + cfg.fleet.ready_timeout_s
    while time.monotonic() < deadline:
        doc = gateway_control(cfg, {"cmd": "status"}, 1.0)
        if doc:
            alive = {n["name"] for n in doc["nodes"] if n["alive"]}
            if set(names) <= alive:
                return {"fleet": doc["fleet"], "nodes": doc["nodes"]}
        time.sleep(0.5)
    return None


def _on_host(cfg: FleetConfig, h: HostSpec, fn: Callable[[HostSpec, Any], dict[str, Any]]) -> dict[str, Any]:
    try:
        ex = connect(cfg, h)
    except HeqisError as exc:
        return {"name": h.name, "role": h.role, "reachable": False, "error": exc.message}
    try:
        return {"name": h.name, "role": h.role, "reachable": True, **fn(h, ex)}
    finally:
        ex.close()


def _each(cfg: FleetConfig, fn: Callable[[HostSpec, Any], dict[str, Any]]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=min(8, len(cfg.hosts))) as pool:
        return list(pool.map(lambda h: _on_host(cfg, h, fn), cfg.hosts))


def process_pattern(cfg: FleetConfig, h: HostSpec) -> str:
    """pgrep -f pattern of the host's process (names are unique within a fleet)."""
    if h.role == "brain":
        return f"heqis brain .*--name {h.name}( |$)"
    return f"heqis gateway .*--fleet {cfg.fleet.name}( |$)"


def down_fleet(cfg: FleetConfig, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Stop every process — the gateway first, so it flushes its store and raises no false alarms —
    SIGTERM then SIGKILL after ``timeout_s``; report whether anything is left."""
    def stop(h: HostSpec, ex: Any) -> dict[str, Any]:
        wd = h.workdir.rstrip("/")
        r = ex.run(f"{stop_script(h.name, wd, True)}; {stop_script(h.name, wd, False, timeout_s)}; "
                   f"pgrep -u $(id -u) -f {shlex.quote(process_pattern(cfg, h))} >/dev/null && echo left || echo clean",
                   timeout_s + 20)
        return {"stopped": "clean" in r.stdout}

    return [_on_host(cfg, h, stop) for h in sorted(cfg.hosts, key=lambda h: h.role != "gateway")]


def status_fleet(cfg: FleetConfig) -> dict[str, Any]:
    """The status document (docs/architecture.md, "Status document") for the fleet, plus per host: reachable,
    release, process alive."""
    live = gateway_control(cfg, {"cmd": "status"}, 2.0)
    by_name = {n["name"]: n for n in (live or {"nodes": []})["nodes"]}

    def probe(h: HostSpec, ex: Any) -> dict[str, Any]:
        wd = h.workdir.rstrip("/")
        r = ex.run(f"cd {q(wd)} 2>/dev/null && (p=$(cat run/{h.name}.pid 2>/dev/null); "
                   f"[ -n \"$p\" ] && kill -0 $p 2>/dev/null && echo alive $p || "
                   f"(systemctl is-active --quiet heqis-{h.name} 2>/dev/null && echo alive systemd || echo dead -)); "
                   f"basename $(readlink current 2>/dev/null || echo none)", 20)
        words = r.stdout.split()
        return {"process_alive": bool(words) and words[0] == "alive",
                "pid_on_host": words[1] if len(words) > 1 else None, "release": words[2] if len(words) > 2 else None}

    hosts = {r["name"]: r for r in _each(cfg, probe)}
    nodes = []
    for h in cfg.hosts:
        node = by_name.get(h.name if h.role == "brain" else "gateway", {})
        info = hosts[h.name]
        nodes.append({
            "name": h.name, "role": h.role, "host": h.host, "pid": node.get("pid") or info.get("pid_on_host"),
            "alive": bool(node.get("alive")) if node else bool(info.get("process_alive")),
            "heartbeat_age_s": node.get("heartbeat_age_s"), "version": node.get("version"),
            "artifacts_sha256": node.get("artifacts_sha256"), "counters": node.get("counters", {}),
            "reachable": info["reachable"], "process_alive": info.get("process_alive", False),
            "release": info.get("release"), **({"error": info["error"]} if "error" in info else {}),
        })
    return {"fleet": cfg.fleet.name, "nodes": nodes}


def logs_fleet(cfg: FleetConfig, name: str, lines: int = 50) -> str:
    h = cfg.host(name)
    ex = connect(cfg, h)
    try:
        r = ex.run(f"tail -n {int(lines)} {q(h.workdir.rstrip('/'))}/logs/{h.name}.log", 30)
        if not r.ok:
            raise HeqisError(f"{name}: no log yet ({r.stderr.strip()[:120]})", hint="heqis up first")
        return r.stdout
    finally:
        ex.close()


def rollback_fleet(cfg: FleetConfig, report: Report | None = None) -> UpResult:
    """Point every host's ``current`` at its previous release and restart its process."""
    report = report or (lambda host, step: None)

    def back(h: HostSpec, ex: Any) -> dict[str, Any]:
        wd = h.workdir.rstrip("/")
        r = ex.run(f"cd {q(wd)} && cur=$(readlink current) && prev=$(grep -v \"^$cur$\" releases.log | tail -n 1) "
                   f"&& [ -n \"$prev\" ] && ln -sfn $prev current.new && mv -Tf current.new current && "
                   f"echo $prev >> releases.log && basename $prev", 30)
        if not r.ok or not r.stdout.strip():
            return {"ok": False, "error": "no previous release to go back to"}
        return {"ok": True, "release": r.stdout.strip()}

    t0 = time.monotonic()
    moved = _each(cfg, back)
    failed = [m for m in moved if not m.get("ok")]
    if failed:
        raise HeqisError(f"rollback impossible on {', '.join(m['name'] for m in failed)}: "
                         f"{failed[0].get('error', 'unreachable')}")
    report(cfg.gateway.name, "restart")
    up = up_fleet(cfg, report, only_start=True)   # same files: uploads nothing, restarts on the old release
    up.seconds = time.monotonic() - t0
    return up

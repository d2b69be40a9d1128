"""``heqis up`` / ``down`` / ``status`` / ``logs`` / ``up --rollback`` for a fleet over SSH.

On each host (in parallel; a failing host is reported and the others go on)::

    <workdir>/store/<sha256>        every uploaded file, content-addressed: uploaded only when missing
                                    (to a temporary name, then renamed)
    <workdir>/releases/<id>/        a release: links into the store (wheels/, artifacts/, replay.npz)
    <workdir>/current -> releases/<id>
    <workdir>/venvs/<id>/           the venv of a wheel set, installed with --no-index (offline hosts)
    <workdir>/secrets/              CURVE keys and the Tushare token, 0600 files in a 0700 folder
    <workdir>/engines/              TensorRT engines built on that host, cached across releases
    <workdir>/run/<node>.pid|release, logs/<node>.log
    <workdir>/data/                 the process's own folder (its working directory, owned by run_as):
                                    signals.sqlite (gateway)

A second ``up`` with nothing changed uploads nothing and restarts nothing: the store already has
every file, the release id is the same, and a process already running that release is left alone.
Processes run as systemd units where the host has systemd (they return after a reboot), else
detached with ``setsid`` and a pidfile; either way as the host's ``run_as`` user (never root).

Nothing from ``fleet.toml``, a manifest or the host reaches a shell unquoted: every remote command is
built from ``shlex.quote``'d words (``q`` keeps a leading ``~/`` for the remote shell to expand), the
node's command line is an argv list (``node_argv``), and a systemd unit is uploaded as a file (SFTP)
and installed with ``install -m 644`` — never written through a heredoc — with its values escaped the
way systemd reads them (``systemd_quote``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from heqis.errors import HeqisError
from heqis.fileio import read_json, sha256_file
from heqis.formats.artifacts import ArtifactSet, artifact_path, check_artifact_name
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


def expand(path: str, home: str) -> str:
    """A remote path made absolute: a leading ``~/`` (or a relative path: commands start in the home folder)
    resolved against the remote ``$HOME``."""
    home = home.rstrip("/") or "/"
    if path.startswith("~/"):
        return f"{home}/{path[2:]}"
    return path if path.startswith("/") else f"{home}/{path}"


HEX = re.compile(r"[0-9a-f]{16}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def release_name(name: str) -> str:
    """A file's name inside a release (``wheels/…``, ``artifacts/…``, ``replay.npz``): plain and relative."""
    try:
        return check_artifact_name(name, Path("release"))
    except HeqisError:
        raise HeqisError(f"refusing to ship {name!r}: not a plain relative file name",
                         hint="an artifact manifest or a wheel name was altered") from None


def ere(text: str) -> str:
    """``text`` as a literal inside a POSIX extended regular expression (pgrep -f)."""
    return re.sub(r"([\\.\[\](){}*+?|^$])", r"\\\1", text)


class HostDeploy:
    """One host's bring-up, step by step; every failure names its step and brings the log tail."""

    def __init__(self, cfg: FleetConfig, h: HostSpec, ex: Any, report: Report) -> None:
        self.cfg, self.h, self.ex, self.report = cfg, h, ex, report
        self.wd = h.workdir.rstrip("/")
        self.result = HostResult(h.name, h.role, ok=False)
        self._home: str | None = None

    @property
    def home(self) -> str:
        """The SSH user's ``$HOME`` on the host (asked once)."""
        if self._home is None:
            home = self.sh("probe", 'echo "$HOME"').strip()
            if not home.startswith("/") or CONTROL.search(home):
                raise StepFailed(self.h.name, "probe", f"the host's $HOME is not an absolute path ({home!r})")
            self._home = home
        return self._home

    @property
    def abs_wd(self) -> str:
        """The workdir with ``~`` resolved (what systemd, SFTP and process command lines see)."""
        return expand(self.wd, self.home)

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
        out = self.sh("probe", f"{q(self.h.python)} -c 'import platform, sys; "
                               f"print(platform.machine(), \"%d.%d\" % sys.version_info[:2])' && "
                               "( [ -d /run/systemd/system ] && command -v systemctl >/dev/null && "
                               "[ \"$(id -u)\" = 0 ] && echo systemd || echo nosystemd )")
        lines = out.split()
        if len(lines) < 3:
            raise StepFailed(self.h.name, "probe", f"unexpected answer from {self.h.python}: {out.strip()[:120]!r}")
        machine, python, init = lines[0], lines[1], lines[2]
        use_systemd = {"yes": True, "no": False}.get(self.h.systemd, init == "systemd")
        return machine, python, use_systemd

    def upload(self, files: dict[str, Path]) -> dict[str, str]:
        """Put every file whose sha256 the host's store lacks; returns relative name → sha."""
        self.report(self.h.name, "upload")
        shas = {name: sha256_file(p) for name, p in files.items()}
        have = set(self.sh("upload", f"mkdir -p {q(self.wd)}/store && ls {q(self.wd)}/store").split())
        wd = self.abs_wd
        for name, sha in sorted(shas.items()):
            if sha in have:
                continue
            tmp = f"{wd}/store/.tmp-{sha}"
            self.ex.put(files[name], tmp)
            self.sh("upload", f"mv -f {shlex.quote(tmp)} {shlex.quote(f'{wd}/store/{sha}')}")
            have.add(sha)
            self.result.uploaded += 1
            self.result.uploaded_bytes += files[name].stat().st_size
        return shas

    def release(self, shas: dict[str, str]) -> str:
        rel = hashlib.sha256(json.dumps(sorted(shas.items())).encode()).hexdigest()[:16]
        wheelset = hashlib.sha256(json.dumps(sorted((k, v) for k, v in shas.items()
                                                    if k.startswith("wheels/"))).encode()).hexdigest()[:16]
        self.result.release = rel
        d = f"{self.wd}/releases/{rel}"
        names = {release_name(name): sha for name, sha in shas.items()}
        folders = sorted({f"{d}/{n.rpartition('/')[0]}" for n in names if "/" in n} | {f"{d}/wheels", f"{d}/artifacts"})
        links = [f"mkdir -p {' '.join(q(f) for f in folders)} {q(self.wd)}/engines",
                 f"echo {wheelset} > {q(d)}/wheelset"]
        for name, sha in sorted(names.items()):
            up = "../" * (name.count("/") + 2)
            links.append(f"ln -sfn {shlex.quote(f'{up}store/{sha}')} {q(f'{d}/{name}')}")
        links.append(f"ln -sfn ../../../engines {q(d)}/artifacts/engines")
        self.sh("release", " && ".join(links))
        return rel

    def switch(self, rel: str) -> None:
        self.sh("release", f"cd {q(self.wd)} && current=$(readlink current 2>/dev/null || true); "
                           f"if [ \"$current\" != releases/{rel} ]; then ln -sfn releases/{rel} current.new && "
                           f"mv -Tf current.new current && echo releases/{rel} >> releases.log; fi")

    def current(self) -> tuple[str, str]:
        """(release id, wheel-set id) that ``current`` points at."""
        out = self.sh("release", f"cd {q(self.wd)} && basename \"$(readlink current)\" && cat current/wheelset").split()
        if len(out) != 2 or not all(HEX.fullmatch(x) for x in out):
            raise StepFailed(self.h.name, "release", f"{self.wd}/current is not a release heqis made ({out[:2]})")
        return out[0], out[1]

    def venv(self, wheelset: str) -> str:
        """The venv of a wheel set (shared by releases that differ only in artifacts)."""
        venv = f"{self.wd}/venvs/{wheelset}"
        self.sh("install", f"if [ ! -x {q(venv)}/bin/heqis ]; then rm -rf {q(venv)} && "
                           f"{q(self.h.python)} -m venv {q(venv)} && "
                           f"PIP_INDEX_URL=http://127.0.0.1:9/unreachable {q(venv)}/bin/python -m pip install "
                           f"--quiet --no-index --find-links {q(self.wd)}/current/wheels heqis; fi",
                timeout_s=max(self.cfg.fleet.command_timeout_s, 600))
        return venv

    def secrets(self, keys: Path | None) -> None:
        """The key files this host's role needs (``node_secret_files``) and nothing more; the role's
        allow-list is mirrored (a key revoked here is deleted there)."""
        token = Path("~/.config/heqis/tushare_token").expanduser()
        other = self.h.run_user != self.h.user     # the process runs as run_as: it reads its secrets, writes data/
        domain = "brain" if self.h.role == "brain" else "gateway"
        allow = f"{q(self.wd)}/secrets/keys/allow/{domain}"
        self.sh("secrets", f"mkdir -p {allow} {q(self.wd)}/data && rm -rf {q(self.wd)}/secrets/keys/clients && "
                           f"chmod {'711' if other else '700'} {q(self.wd)}/secrets"
                           + (f" && chown {shlex.quote(self.h.run_user)}: {q(self.wd)}/data" if other else ""))
        if keys is not None:
            files = node_secret_files(keys, self.h.role)
            for rel, local in files.items():
                self._secret(local, f"secrets/keys/{rel}")
            wanted = {Path(rel).name for rel in files if rel.startswith(f"allow/{domain}/")}
            stale = [n for n in self.sh("secrets", f"ls {allow}").split() if n not in wanted]
            if stale:
                self.sh("secrets", "rm -f " + " ".join(shlex.quote(f"{self.abs_wd}/secrets/keys/allow/{domain}/{n}")
                                                       for n in stale))
        if token.exists() and self.h.role == "gateway":
            self._secret(token, "secrets/tushare_token")

    def _secret(self, local: Path, rel: str) -> None:
        sha = sha256_file(local)
        path = q(f"{self.wd}/{release_name(rel)}")
        have = self.ex.run(f"sha256sum {path} 2>/dev/null | cut -d' ' -f1", 20).stdout.strip()
        owner = f" && chown {shlex.quote(self.h.run_user)}: {path}" if self.h.run_user != self.h.user else ""
        if have == sha:
            if owner:
                self.sh("secrets", owner.removeprefix(" && "))
            return
        wd = self.abs_wd
        tmp = f"{wd}/{rel}.tmp"
        self.sh("secrets", f"umask 077 && rm -f {shlex.quote(tmp)} && : > {shlex.quote(tmp)}")
        self.ex.put(local, tmp)
        self.sh("secrets", f"chmod 600 {shlex.quote(tmp)} && mv -f {shlex.quote(tmp)} {shlex.quote(f'{wd}/{rel}')}"
                           + owner)

    def start(self, argv: list[str], rel: str, use_systemd: bool) -> str:
        """Start the host's process unless it already runs ``rel``; returns the script's answer."""
        name, wd = self.h.name, self.abs_wd
        env = [f"{k}={v}" for k, v in node_env(wd).items()]
        if not use_systemd:
            command = shlex.join(["env", *env, *argv])
            if self.h.run_user != self.h.user:
                command = f"{run_as_prefix(self.h.run_user)} {command}"
            return self.sh("start", start_script(name, command, rel, wd, False))
        tmp = f"{wd}/run/.heqis-{name}.service.tmp"
        self.sh("start", f"mkdir -p {shlex.quote(f'{wd}/run')}")
        with tempfile.TemporaryDirectory() as t:
            unit = Path(t) / f"heqis-{name}.service"
            unit.write_text(systemd_unit(name, argv, wd, self.h.run_user, env), encoding="utf-8")
            self.ex.put(unit, tmp)
        return self.sh("start", start_script(name, "", rel, wd, True, unit_tmp=tmp))


def node_argv(cfg: FleetConfig, h: HostSpec, venv: str, wd: str) -> list[str]:
    """The argv of the host's process (brain, or the gateway with every brain as a target); ``venv`` and ``wd``
    are absolute paths on the host."""
    keys = ["--keys", f"{wd}/secrets/keys"] if cfg.fleet.keys else []
    insecure = ["--insecure"] if cfg.fleet.insecure else []
    heqis = [f"{venv}/bin/python", "-m", "heqis"]    # never bin/heqis: pip's launcher for a path with spaces is
    if h.role == "brain":                          # a /bin/sh script that would expand $(…) in the path
        return [*heqis, "brain", "--port", str(h.brain_port), "--artifacts", f"{wd}/current/artifacts",
                "--backend", h.backend, "--name", h.name, "--bind", h.host, *keys, *insecure]
    argv = [*heqis, "gateway"]
    for b in cfg.brains:
        host = f"[{b.host}]" if ":" in b.host else b.host        # an IPv6 address
        argv += ["--target", f"{b.name}@{host}:{b.brain_port}"]
    for b in cfg.brains:
        if b.reset_command:
            argv += ["--target-reset", f"{b.name}={b.reset_command}"]
    argv += ["--source", "replay", "--replay-pack", f"{wd}/current/replay.npz", "--artifacts",
             f"{wd}/current/artifacts", "--db", f"{wd}/data/signals.sqlite", "--rate", str(cfg.fleet.replay_rate),
             "--watchdog", cfg.fleet.watchdog]
    if cfg.fleet.replay_start:
        argv += ["--start", cfg.fleet.replay_start.isoformat()]
    return [*argv, "--fleet", cfg.fleet.name, "--bind", h.host, "--telemetry-port", str(cfg.fleet.telemetry_port),
            "--control-port", str(cfg.fleet.control_port), "--ws-port", str(cfg.fleet.ws_port), *keys, *insecure]


def node_env(wd: str) -> dict[str, str]:
    """The process's environment additions: numba caches in ``data/`` (the venv is not the run user's)."""
    return {"NUMBA_CACHE_DIR": f"{wd}/data/numba-cache"}


def node_secret_files(keys: Path, role: str) -> dict[str, Path]:
    """Key-folder files a node of ``role`` needs (relative name there → local file): its own secret key,
    the public keys, and its role's allow-list; the gateway also the console roles and the WebSocket
    token. No console secret ever leaves this machine."""
    from heqis.runtime.security import needs_completion

    if needs_completion(keys) or not (keys / "gateway.key_secret").exists():
        raise HeqisError(f"{keys}: the key folder is incomplete or of the old layout (one clients/ allow-list)",
                         hint=f"run: heqis keys --dir {keys} (converts it in place, keeping the fleet's keys)")
    domain = "brain" if role == "brain" else "gateway"
    names = [f"{role if role == 'brain' else 'gateway'}.key_secret", "gateway.key", "brain.key"]
    if role != "brain":
        names += ["roles.json", "ws.token"]
    out = {n: keys / n for n in names if (keys / n).exists()}
    out |= {f"allow/{domain}/{p.name}": p for p in sorted((keys / "allow" / domain).glob("*.key"))}
    return out


def node_command(cfg: FleetConfig, h: HostSpec, venv: str, wd: str) -> str:
    """``node_argv`` as one shell command line, every word quoted."""
    return shlex.join(node_argv(cfg, h, venv, wd))


def run_as_prefix(user: str) -> str:
    """Run the rest of the command line as ``user`` (the SSH user is root, no systemd): setpriv execs, so the
    pidfile's pid is the process's own."""
    u = shlex.quote(user)
    return f"setpriv --reuid={u} --regid=\"$(id -g {u})\" --init-groups --reset-env --no-new-privs"


SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9_+=:,./@-]+")


def systemd_quote(arg: str, variables: bool = True) -> str:
    """One word of a unit's ``ExecStart=`` (or ``Environment=`` with ``variables=False``) as systemd parses it:
    ``%`` is a specifier (``%%``), ``$`` a variable (``$$``, ExecStart only); anything but plain characters goes
    in double quotes with C-style escapes, so ``;``, quotes, backslashes and whitespace stay one literal word."""
    out = arg.replace("%", "%%")
    if variables:
        out = out.replace("$", "$$")
    if arg and SYSTEMD_PLAIN.fullmatch(arg):
        return out
    escaped = []
    for ch in out:
        if ch in ('"', "\\"):
            escaped.append("\\" + ch)
        elif ch == "\n":
            escaped.append("\\n")
        elif ch == "\t":
            escaped.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            escaped.append(f"\\x{ord(ch):02x}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


def systemd_value(value: str) -> str:
    """A path-like unit value (WorkingDirectory=, StandardOutput=append:…): specifiers escaped; no line breaks."""
    if CONTROL.search(value) or value.endswith("\\"):
        raise HeqisError(f"cannot write {value!r} into a systemd unit (control character or trailing backslash)")
    return value.replace("%", "%%")


def systemd_exec(argv: list[str]) -> str:
    """``ExecStart=``'s value from an argv list: the executable must be an absolute path."""
    if not argv or not argv[0].startswith("/"):
        raise HeqisError(f"a unit's executable must be an absolute path (got {argv[:1]})")
    return " ".join(systemd_quote(a) for a in argv)


def systemd_unit(name: str, argv: list[str], workdir: str, user: str, env: list[str] | None = None) -> str:
    """A unit that restarts the process on failure and starts it at boot (after a hard reset too), as ``user``
    (never root), in ``workdir/data``."""
    if user == "root":
        raise HeqisError(f"{name}: fleet processes never run as root", hint="set run_as in fleet.toml")
    log = systemd_value(f"{workdir}/logs/{name}.log")
    return (f"[Unit]\nDescription=HEQIS {systemd_value(name)}\nAfter=network-online.target\n"
            f"Wants=network-online.target\n\n"
            f"[Service]\nUser={systemd_value(user)}\nWorkingDirectory={systemd_value(f'{workdir}/data')}\n"
            + "".join(f"Environment={systemd_quote(e, variables=False)}\n" for e in env or []) +
            f"ExecStart={systemd_exec(argv)}\nRestart=always\nRestartSec=2\n"
            f"KillSignal=SIGTERM\nTimeoutStopSec=10\nStandardOutput=append:{log}\n"
            f"StandardError=append:{log}\n\n[Install]\nWantedBy=multi-user.target\n")


def unit_path(name: str) -> str:
    return f"/etc/systemd/system/heqis-{name}.service"


def start_script(name: str, command: str, rel: str, wd: str, use_systemd: bool, unit_tmp: str = "") -> str:
    """Start ``name`` unless it already runs this release; a running older release is stopped first.

    ``command`` is the shell-quoted command line (no systemd); with systemd the unit uploaded to ``unit_tmp``
    is installed (``install -m 644``) and the service restarted when the unit or the release changed."""
    service, r = shlex.quote(f"heqis-{name}"), shlex.quote(rel)
    release = q(f"{wd}/run/{name}.release")
    if use_systemd:
        unit, tmp = shlex.quote(unit_path(name)), shlex.quote(unit_tmp)
        return (f"mkdir -p {q(wd)}/logs {q(wd)}/run {q(wd)}/data && changed= && "
                f"if ! cmp -s {tmp} {unit}; then install -m 644 -o root -g root {tmp} {unit} && "
                f"systemctl daemon-reload && changed=1 || exit 1; fi; rm -f {tmp}; "
                f"systemctl enable {service} >/dev/null 2>&1; "
                f"if [ -z \"$changed\" ] && systemctl is-active --quiet {service} && "
                f"[ \"$(cat {release} 2>/dev/null)\" = {r} ]; then echo running; else echo {r} > {release} "
                f"&& systemctl restart {service} && echo started; fi")
    pid = q(f"{wd}/run/{name}.pid")
    log = shlex.quote(f"logs/{name}.log")
    return (f"cd {q(wd)} && mkdir -p run logs data && "
            f"if [ -f {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null && "
            f"[ \"$(cat {release} 2>/dev/null)\" = {r} ]; then echo running; else "
            f"{stop_script(name, wd, False)}; "
            f"(cd data && exec setsid nohup {command} </dev/null >>../{log} 2>&1) & echo $! > {pid}; "
            f"echo {r} > {release}; echo started; fi")


def stop_script(name: str, wd: str, use_systemd: bool, timeout_s: float = 10.0) -> str:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; the pidfile goes away."""
    if use_systemd:
        service = shlex.quote(f"heqis-{name}")
        return f"systemctl stop {service} 2>/dev/null; systemctl disable {service} >/dev/null 2>&1; true"
    pid = q(f"{wd}/run/{name}.pid")
    steps = int(timeout_s * 10)
    return (f"if [ -f {pid} ]; then p=$(cat {pid}); if kill -0 \"$p\" 2>/dev/null; then kill -TERM \"$p\"; "
            f"for i in $(seq {steps}); do kill -0 \"$p\" 2>/dev/null || break; sleep 0.1; done; "
            f"kill -0 \"$p\" 2>/dev/null && kill -KILL \"$p\"; fi; rm -f {pid}; fi; true")


@dataclass
class Bundle:
    """What goes to the hosts: files per role, by their name inside a release."""

    common: dict[str, Path]
    gateway: dict[str, Path]


def rknn_files(root: Path) -> dict[str, Path]:
    """The set's converted RKNN models (``heqis convert --to rknn``) and their record, for the boards'
    NPU (the gateway's watchdog loads rknn/watchdog.rknn only with a matching record): each model the
    record names, from the set's rknn/ folder; none when the set was never converted."""
    record = root / "rknn" / "manifest.json"
    if not record.is_file():
        return {}
    entries = read_json(record, "RKNN record", hint="re-run heqis convert --to rknn")
    out = {"artifacts/rknn/manifest.json": record}
    for entry in entries.values() if isinstance(entries, dict) else ():
        name = Path(str(entry.get("path", ""))).name if isinstance(entry, dict) else ""
        model = root / "rknn" / name
        if name.endswith(".rknn") and model.is_file() and not model.is_symlink():
            out[f"artifacts/rknn/{name}"] = model
    return out


def make_bundle(cfg: FleetConfig, machine: str, python: str, workdir: Path) -> Bundle:
    from heqis.runtime.replay_pack import store_arrays, write_pack

    arts = ArtifactSet.open(cfg.fleet.artifacts)
    common: dict[str, Path] = {}
    wheel = build_wheel(workdir / "dist")
    common[f"wheels/{wheel.name}"] = wheel
    for w in sorted(wheelhouse(machine, python).glob("*.whl")):
        common[f"wheels/{w.name}"] = w
    for name in arts.manifest["files"]:
        common[f"artifacts/{name}"] = artifact_path(arts.root, name, contained=True)   # no symlink out of it
    common["artifacts/manifest.json"] = Path(cfg.fleet.artifacts) / "manifest.json"
    common.update(rknn_files(arts.root))
    pack = workdir / "replay.npz"
    if not pack.exists() or pack.stat().st_mtime < (Path(cfg.fleet.data_dir) / "manifest.json").stat().st_mtime:
        write_pack(store_arrays(cfg.fleet.data_dir), pack)
    return Bundle(common, {"replay.npz": pack})


def up_fleet(cfg: FleetConfig, report: Report | None = None, trust_new_hosts: bool = False,
             only_start: bool = False, workdir: Path = Path(".heqis/fleet")) -> UpResult:
    """Bring the fleet up (idempotent). Hosts that fail are reported; the others still come up."""
    report = report or (lambda host, step: None)
    t0 = time.monotonic()
    if cfg.fleet.keys is not None:
        node_secret_files(cfg.fleet.keys, "gateway")     # an incomplete key folder stops up before any host
    workdir.mkdir(parents=True, exist_ok=True)
    bundles: dict[tuple[str, str], Bundle] = {}
    results: dict[str, HostResult] = {}
    commands: dict[str, tuple[HostDeploy, list[str], str, bool]] = {}

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
                d.sh("engine", f"{q(venv)}/bin/python -m heqis convert --to tensorrt --artifacts "
                               f"{q(d.wd)}/current/artifacts --precision {shlex.quote(h.precision)}")
            if not use_systemd and h.run_user != h.user:
                missing = shlex.quote(f"no setpriv (util-linux) to run as {h.run_user}: install it, or use systemd")
                d.sh("start", f"command -v setpriv >/dev/null || {{ echo {missing} >&2; exit 1; }}")
            commands[h.name] = (d, node_argv(cfg, h, expand(venv, d.home), d.abs_wd), rel, use_systemd)
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
        d, argv, rel, use_systemd = commands[h.name]
        try:
            out = d.start(argv, rel, use_systemd)
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
    host = f"[{cfg.gateway.host}]" if ":" in cfg.gateway.host else cfg.gateway.host
    return control(f"tcp://{host}:{cfg.fleet.control_port}", request, timeout_s, keys)


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


def process_pattern(cfg: FleetConfig, h: HostSpec, wd: str) -> str:
    """pgrep -f pattern of the host's process: its heqis runs from a venv under this fleet's workdir ``wd``
    (absolute), so another fleet's brain of the same name on the same machine never matches."""
    heqis = f"{ere(wd)}/venvs/[^/ ]+/bin/(python -m heqis|heqis)"
    if h.role == "brain":
        return f"{heqis} brain .*--name {ere(h.name)}( |$)"
    return f"{heqis} gateway .*--fleet {ere(cfg.fleet.name)}( |$)"


def down_fleet(cfg: FleetConfig, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Stop every process — the gateway first, so it flushes its store and raises no false alarms —
    SIGTERM then SIGKILL after ``timeout_s``; report whether anything is left."""
    def stop(h: HostSpec, ex: Any) -> dict[str, Any]:
        wd = h.workdir.rstrip("/")
        home = ex.run('echo "$HOME"', 20).stdout.strip()
        pattern = shlex.quote(process_pattern(cfg, h, expand(wd, home)))
        r = ex.run(f"{stop_script(h.name, wd, True)}; {stop_script(h.name, wd, False, timeout_s)}; "
                   f"pgrep -f {pattern} >/dev/null && echo left || echo clean", timeout_s + 20)
        return {"stopped": "clean" in r.stdout}

    return [_on_host(cfg, h, stop) for h in sorted(cfg.hosts, key=lambda h: h.role != "gateway")]


def status_fleet(cfg: FleetConfig) -> dict[str, Any]:
    """The status document (docs/architecture.md, "Status document") for the fleet, plus per host: reachable,
    release, process alive."""
    live = gateway_control(cfg, {"cmd": "status"}, 2.0)
    by_name = {n["name"]: n for n in (live or {"nodes": []})["nodes"]}

    def probe(h: HostSpec, ex: Any) -> dict[str, Any]:
        wd = h.workdir.rstrip("/")
        r = ex.run(f"cd {q(wd)} 2>/dev/null && (p=$(cat {shlex.quote(f'run/{h.name}.pid')} 2>/dev/null); "
                   f"[ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null && echo alive \"$p\" || "
                   f"(systemctl is-active --quiet {shlex.quote(f'heqis-{h.name}')} 2>/dev/null && echo alive systemd "
                   f"|| echo dead -)); basename \"$(readlink current 2>/dev/null || echo none)\"", 20)
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
        r = ex.run(f"tail -n {int(lines)} {q(h.workdir.rstrip('/') + f'/logs/{h.name}.log')}", 30)
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

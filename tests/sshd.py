"""Real OpenSSH servers for the fleet tests: one sshd per test host, on loopback ports.

Each server gets its own host key, config, pid file and log; the test's user key is the only
authorised key. sshd refuses to start until its privilege-separation directory exists, so it is
created first (as root; `.ci/run` runs the tests as root with HEQIS_REQUIRE_SSHD=1).

The hosts log in as root but their fleet processes run as an unprivileged user (``RUN_AS``, via the
fleet's ``run_as``), so each host's work directory lies outside pytest's root-only temporary folder:
``cleanup()`` stops the server and removes it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
RUN_AS = "nobody"          # who the test fleets' processes run as (fleet processes never run as root)


def world_usable(path: Path) -> bool:
    """Whether every folder on the way to ``path`` lets other users through (RUN_AS must reach it)."""
    path = Path(path).resolve()
    return all(p.stat().st_mode & 0o001 for p in path.parents) and bool(path.stat().st_mode & 0o005)


def host_python() -> str | None:
    """An interpreter of this Python version that RUN_AS can run (the wheelhouse is this version's)."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (Path(sys.base_prefix) / "bin" / "python3", Path(f"/usr/bin/python{version}")):
        if candidate.exists() and world_usable(candidate):
            probe = subprocess.run([str(candidate), "-c", "import venv, ensurepip, sys; print('%d.%d' % "
                                    "sys.version_info[:2])"], capture_output=True, text=True)
            if probe.returncode == 0 and probe.stdout.strip() == version:
                return str(candidate)
    return None


def skip_reason() -> str | None:
    if not Path(SSHD).exists():
        return "no sshd (apt install openssh-server; .ci/run does)"
    if os.geteuid() != 0:
        return "sshd tests need root (privilege separation); .ci/run runs them as root"
    if not shutil.which("ssh-keygen"):
        return "no ssh-keygen"
    if not shutil.which("setpriv"):
        return "no setpriv (util-linux) to run the fleet's processes as an unprivileged user"
    if host_python() is None:
        return (f"no python{sys.version_info[0]}.{sys.version_info[1]} with venv that {RUN_AS} can run "
                "(apt install python3-venv)")
    return None


def require_sshd() -> None:
    reason = skip_reason()
    if reason:
        if os.environ.get("HEQIS_REQUIRE_SSHD") == "1":
            pytest.fail(f"HEQIS_REQUIRE_SSHD=1 but {reason}")
        pytest.skip(reason)


@dataclass
class SSHHost:
    name: str
    port: int
    workdir: Path
    proc: subprocess.Popen
    host_pub: str

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_pub}"

    def cleanup(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(root: Path, name: str, user_pub: Path) -> SSHHost:
    d = root / f"sshd-{name}"
    d.mkdir(parents=True)
    keygen(d / "host_key")
    (d / "authorized_keys").write_text(user_pub.read_text())
    port = free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel ERROR
""")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    log = (d / "sshd.log").open("wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(d / 'sshd.log').read_text()}")
        time.sleep(0.05)
    workdir = Path(tempfile.mkdtemp(prefix=f"heqis-host-{name}-"))   # outside pytest's 0700 folder: RUN_AS enters
    workdir.chmod(0o755)
    host_pub = " ".join((d / "host_key.pub").read_text().split()[:2])
    return SSHHost(name, port, workdir, proc, host_pub)

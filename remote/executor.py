"""Where fleet commands run: over SSH with Fabric, with strict host-key checking.

Fabric's ``Connection`` installs paramiko's AutoAddPolicy in its constructor; the SSH executor
replaces it with ``RejectPolicy`` and loads the fleet's ``known_hosts`` (entries for a non-22 port
read ``[host]:port``), so an unknown or changed host key is refused — unless the user asked for
``--trust-new-hosts``, which records the key it sees.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from heqis.errors import HeqisError


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class StepFailed(HeqisError):
    """A step on one host failed; carries the host and step for the per-host report."""

    def __init__(self, host: str, step: str, message: str, log_tail: str = "") -> None:
        super().__init__(f"{host}: {step}: {message}", hint=log_tail or None)
        self.host, self.step, self.log_tail = host, step, log_tail


class SSHExecutor:
    """Commands over one Fabric connection (RejectPolicy + known_hosts; timeouts on connect and commands)."""

    def __init__(self, name: str, host: str, user: str, port: int, known_hosts: Path,
                 identity_file: Path | None = None, connect_timeout_s: float = 10.0, timeout_s: float = 900.0,
                 trust_new_hosts: bool = False) -> None:
        import paramiko
        from fabric import Connection

        self.name = name
        self.timeout_s = timeout_s
        kwargs: dict[str, object] = {"allow_agent": False, "look_for_keys": identity_file is None}
        if identity_file is not None:
            kwargs["key_filename"] = str(identity_file)
        self.conn = Connection(host, user=user, port=port, connect_timeout=connect_timeout_s,
                               connect_kwargs=kwargs)
        client = self.conn.client
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy() if trust_new_hosts else paramiko.RejectPolicy())
        if known_hosts.exists():
            client.load_host_keys(str(known_hosts))
        elif not trust_new_hosts:
            raise StepFailed(name, "connect", f"known_hosts file {known_hosts} does not exist",
                             f"add the host keys (ssh-keyscan -p {port} {host} >> {known_hosts}) or --trust-new-hosts")
        self.known_hosts = known_hosts
        self.trust_new_hosts = trust_new_hosts
        try:
            self.conn.open()
        except paramiko.SSHException as exc:
            raise StepFailed(name, "connect", f"{host}:{port} refused: {exc}",
                             "an unknown or changed host key is refused; check known_hosts (or --trust-new-hosts)") \
                from None
        except OSError as exc:
            raise StepFailed(name, "connect", f"cannot reach {host}:{port} ({exc.strerror or exc})") from None
        if trust_new_hosts:
            known_hosts.parent.mkdir(parents=True, exist_ok=True)
            client.save_host_keys(str(known_hosts))

    def run(self, command: str, timeout_s: float | None = None) -> Result:
        from invoke.exceptions import CommandTimedOut

        try:
            r = self.conn.run(f"bash -lc {shlex.quote(command)}", hide=True, warn=True, in_stream=False,
                              timeout=timeout_s or self.timeout_s)
        except CommandTimedOut:
            return Result(124, "", f"timed out after {timeout_s or self.timeout_s:.0f} s")
        return Result(r.exited, r.stdout, r.stderr)

    def put(self, local: Path, remote: str) -> None:
        self.conn.put(str(local), remote)

    def close(self) -> None:
        self.conn.close()

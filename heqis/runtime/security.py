"""CURVE encryption and allow-listed peers for the fleet's sockets (``heqis keys``).

Key directory layout (made by ``heqis keys --dir DIR``)::

    DIR/gateway.key  DIR/gateway.key_secret    the gateway (client of the brains, server of telemetry)
    DIR/brain.key    DIR/brain.key_secret      every brain (server)
    DIR/console.key  DIR/console.key_secret    operator consoles (client of telemetry and control)
    DIR/clients/*.key                          public keys a server accepts (gateway, console)

Secret files are 0600. Servers run pyzmq's ThreadAuthenticator, which admits only the public
keys in ``clients/``; a client with any other key gets nothing. Without keys, plain TCP is allowed
on loopback only, unless the user says ``--insecure``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq

from heqis.errors import HeqisError

ROLES = ("gateway", "brain", "console")
_authenticators: dict[int, object] = {}


@dataclass(frozen=True)
class KeyConfig:
    directory: Path
    identity: str           # whose key pair this process uses: gateway | brain | console

    def keypair(self, name: str | None = None) -> tuple[bytes, bytes]:
        import zmq.auth

        secret = self.directory / f"{name or self.identity}.key_secret"
        if not secret.exists():
            raise HeqisError(f"{secret}: CURVE secret key missing", hint=f"run: heqis keys --dir {self.directory}")
        mode = secret.stat().st_mode & 0o777
        if mode & 0o077:
            raise HeqisError(f"{secret}: secret key is readable by others (mode {mode:o})", hint=f"chmod 600 {secret}")
        public, private = zmq.auth.load_certificate(str(secret))
        assert private is not None
        return public, private

    def ws_token(self) -> str | None:
        """The WebSocket token (``DIR/ws.token``, 0600), or None where the folder has none."""
        path = self.directory / "ws.token"
        return path.read_text().strip() or None if path.exists() else None

    def public(self, name: str) -> bytes:
        import zmq.auth

        path = self.directory / f"{name}.key"
        if not path.exists():
            raise HeqisError(f"{path}: CURVE public key missing", hint=f"run: heqis keys --dir {self.directory}")
        return zmq.auth.load_certificate(str(path))[0]


def generate_keys(directory: Path, force: bool = False) -> list[Path]:
    """Key pairs for every role and the allow-list of client keys; refuses to overwrite without ``force``."""
    import zmq.auth

    directory = Path(directory)
    existing = [directory / f"{r}.key_secret" for r in ROLES if (directory / f"{r}.key_secret").exists()]
    if existing and not force:
        raise HeqisError(f"{directory} already holds keys ({existing[0].name})",
                         hint="pass --force to replace them (every node then needs the new keys)")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    written = []
    for role in ROLES:
        public, secret = zmq.auth.create_certificates(str(directory), role)
        os.chmod(secret, 0o600)
        written += [Path(public), Path(secret)]
    clients = directory / "clients"
    shutil.rmtree(clients, ignore_errors=True)
    clients.mkdir()
    for role in ("gateway", "console"):
        shutil.copyfile(directory / f"{role}.key", clients / f"{role}.key")
    return written


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_safe(host: str, keys: KeyConfig | None, insecure: bool, what: str) -> None:
    """Plain TCP is for loopback; anything else needs CURVE keys or an explicit --insecure."""
    if keys is None and not insecure and not is_loopback(host):
        raise HeqisError(f"{what} on {host} without CURVE keys would be plain TCP on the network",
                         hint="create keys with `heqis keys` and pass --keys DIR, or add --insecure")


def server_socket_security(sock: zmq.Socket, keys: KeyConfig | None, ctx: zmq.Context) -> None:
    """Make ``sock`` a CURVE server that admits only the allow-listed client keys."""
    if keys is None:
        return
    from zmq.auth.thread import ThreadAuthenticator

    if id(ctx) not in _authenticators:
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(keys.directory / "clients"))
        _authenticators[id(ctx)] = auth
    public, secret = keys.keypair()
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_server = True


def client_socket_security(sock: zmq.Socket, keys: KeyConfig | None, server: str) -> None:
    """Make ``sock`` a CURVE client of the ``server`` role's public key."""
    if keys is None:
        return
    public, secret = keys.keypair()
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_serverkey = keys.public(server)

"""CURVE encryption, allow-listed peers per role, and console roles for the fleet (``heqis keys``).

Key directory layout (made by ``heqis keys --dir DIR``)::

    DIR/gateway.key  DIR/gateway.key_secret    the gateway (client of the brains, server of telemetry/control)
    DIR/brain.key    DIR/brain.key_secret      every brain (server)
    DIR/console.key  DIR/console.key_secret    the default operator console (client of telemetry and control)
    DIR/consoles/NAME.key  NAME.key_secret     consoles added with ``heqis keys add NAME``
    DIR/allow/brain/*.key                      the keys a brain accepts: the gateway's only
    DIR/allow/gateway/*.key                    the keys the gateway's telemetry and control accept: consoles
    DIR/roles.json                             {z85 public key: {"name", "role": operator|viewer}} of consoles
    DIR/ws.token                               the token a WebSocket client presents (0600)

Secret files are 0600. Every server socket names its ZAP domain (``brain`` or ``gateway``); the
context's one ThreadAuthenticator admits, per domain, only the public keys in ``allow/DOMAIN`` and
re-reads that folder when it changes, so a key added or revoked counts from the next CURVE
handshake (a connection already open stays open until it drops). The authenticator gives each
message the client's z85 public key as its ZAP User-Id (``peer_key``); ``KeyConfig.role_of`` maps it
to the console's role, re-reading roles.json when it changes. Without keys, plain TCP is allowed on
loopback only, unless the user says ``--insecure``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from heqis.errors import HeqisError, InvalidValue
from heqis.fileio import atomic_write

ROLES = ("gateway", "brain", "console")          # the fleet's key pairs (files DIR/ROLE.key[_secret])
DOMAINS = ("brain", "gateway")                   # server sockets: who accepts which allow-list
CONSOLE_ROLES = ("operator", "viewer")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_authenticators: dict[int, tuple[zmq.Context, Any]] = {}
_roles_cache: dict[Path, tuple[tuple[int, int, int], dict[str, dict[str, str]]]] = {}


def _fix(directory: Path) -> str:
    return f"heqis keys --dir {directory}"


@dataclass(frozen=True)
class KeyConfig:
    directory: Path
    identity: str               # whose key pair this process uses: gateway | brain | console
    name: str | None = None     # a console added with `heqis keys add NAME` (DIR/consoles/NAME.key_secret)

    def secret_path(self) -> Path:
        if self.identity == "console" and self.name not in (None, "console"):
            return self.directory / "consoles" / f"{self.name}.key_secret"
        return self.directory / f"{self.identity}.key_secret"

    def keypair(self) -> tuple[bytes, bytes]:
        import zmq.auth

        secret = self.secret_path()
        if not secret.exists():
            hint = f"add it: heqis keys add {self.name} --dir {self.directory}" if secret.parent.name == "consoles" \
                else f"run: {_fix(self.directory)}"
            raise HeqisError(f"{secret}: CURVE secret key missing", hint=hint)
        _require_private(secret, "secret key")
        public, private = zmq.auth.load_certificate(str(secret))
        assert private is not None
        return public, private

    def ws_token(self) -> str:
        """The WebSocket token (``DIR/ws.token``, 0600). A folder with keys but no token is refused: the
        WebSocket would otherwise serve signals and status to anyone."""
        path = self.directory / "ws.token"
        if not path.exists():
            raise HeqisError(f"{path}: WebSocket token missing",
                             hint=f"run: {_fix(self.directory)} (adds it), or turn the WebSocket off with --ws-port 0")
        _require_private(path, "WebSocket token")
        token = path.read_text().strip()
        if not token:
            raise HeqisError(f"{path}: WebSocket token is empty", hint=f"delete it and run: {_fix(self.directory)}")
        return token

    def public(self, name: str) -> bytes:
        import zmq.auth

        path = self.directory / f"{name}.key"
        if not path.exists():
            raise HeqisError(f"{path}: CURVE public key missing", hint=f"run: {_fix(self.directory)}")
        return zmq.auth.load_certificate(str(path))[0]

    def role_of(self, key: str | None) -> str | None:
        """The console role (operator | viewer) of a client's z85 public key, None when unknown.

        roles.json is re-read whenever it changes, so ``heqis keys revoke`` counts at once."""
        if not key:
            return None
        entry = read_roles(self.directory).get(key)
        role = entry.get("role") if isinstance(entry, dict) else None
        return role if role in CONSOLE_ROLES else None


def _require_private(path: Path, what: str) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise HeqisError(f"{path}: {what} is readable by others (mode {mode:o})", hint=f"chmod 600 {path}")


def peer_key(frame: zmq.Frame) -> str | None:
    """The z85 public key of the CURVE client that sent ``frame`` (its ZAP User-Id), None without CURVE.

    Receive with ``copy=False`` to get frames: ``sock.recv_multipart(copy=False)``."""
    try:
        user = frame.get("User-Id")
    except (zmq.ZMQError, AttributeError, TypeError):
        return None
    if isinstance(user, bytes):
        user = user.decode("ascii", "replace")
    return user if isinstance(user, str) and len(user) == 40 else None   # not "anonymous" (NULL via ZAP)


# -- the key folder ------------------------------------------------------------------------------------
def old_layout(directory: Path) -> bool:
    """A folder of the first layout: one allow-list ``clients/`` for every server, no roles."""
    return (directory / "clients").is_dir() and not (directory / "allow").is_dir()


def _z85(public_file: Path) -> str:
    import zmq.auth

    return zmq.auth.load_certificate(str(public_file))[0].decode("ascii")


def read_roles(directory: Path) -> dict[str, dict[str, str]]:
    """roles.json, cached until the file changes (inode, size or mtime); {} when it is missing."""
    path = Path(directory) / "roles.json"
    try:
        st = path.stat()
    except FileNotFoundError:
        _roles_cache.pop(path, None)
        return {}
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    cached = _roles_cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HeqisError(f"{path}: not readable as JSON ({exc})",
                         hint=f"restore it, or run: {_fix(directory)} --force") from exc
    roles = {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
    _roles_cache[path] = (stamp, roles)
    return roles


def _write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Atomically (a new inode each time: readers notice the change), with ``mode`` from the start."""
    atomic_write(path, text.encode(), mode=mode)


def _write_roles(directory: Path, roles: dict[str, dict[str, str]]) -> Path:
    path = directory / "roles.json"
    _write_private(path, json.dumps(roles, indent=2, sort_keys=True) + "\n")
    return path


def _write_token(directory: Path) -> Path:
    path = directory / "ws.token"
    _write_private(path, secrets.token_urlsafe(32) + "\n")
    return path


def _complete(directory: Path) -> list[Path]:
    """Add what a folder of fleet key pairs lacks: allow-lists, roles.json, ws.token, consoles/;
    drop the old shared ``clients/``. Keeps every key pair."""
    written: list[Path] = []
    for role in ROLES:
        if not (directory / f"{role}.key").exists():
            raise HeqisError(f"{directory / (role + '.key')}: CURVE public key missing",
                             hint=f"make a new set: {_fix(directory)} --force")
    for domain, client in (("brain", "gateway"), ("gateway", "console")):
        allow = directory / "allow" / domain
        if not allow.is_dir():
            allow.mkdir(parents=True)
            shutil.copyfile(directory / f"{client}.key", allow / f"{client}.key")
            written.append(allow / f"{client}.key")
    (directory / "consoles").mkdir(mode=0o700, exist_ok=True)
    if not (directory / "roles.json").exists():
        written.append(_write_roles(directory, {_z85(directory / "console.key"): {"name": "console",
                                                                                   "role": "operator"}}))
    if not (directory / "ws.token").exists():
        written.append(_write_token(directory))
    if (directory / "clients").is_dir():
        shutil.rmtree(directory / "clients")
    return written


def generate_keys(directory: Path, force: bool = False) -> list[Path]:
    """Key pairs for every role, the allow-lists per server role, roles.json and ws.token.

    Without ``force``: a folder of the old layout (or one missing the allow-lists, roles or token) is
    completed in place, keeping its key pairs; a complete one is refused. ``force`` starts afresh
    (consoles added with ``heqis keys add`` are dropped too)."""
    import zmq.auth

    directory = Path(directory)
    existing = [directory / f"{r}.key_secret" for r in ROLES if (directory / f"{r}.key_secret").exists()]
    if existing and not force:
        if needs_completion(directory):
            return _complete(directory)
        raise HeqisError(f"{directory} already holds keys ({existing[0].name})",
                         hint="pass --force to replace them (every node then needs the new keys)")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for stale in ("clients", "allow", "consoles"):
        shutil.rmtree(directory / stale, ignore_errors=True)
    for stale in ("roles.json", "ws.token"):
        (directory / stale).unlink(missing_ok=True)
    written = []
    for role in ROLES:
        public, secret = zmq.auth.create_certificates(str(directory), role)
        os.chmod(secret, 0o600)
        written += [Path(public), Path(secret)]
    return written + _complete(directory)


def needs_completion(directory: Path) -> bool:
    """Key pairs present but the role layout incomplete (the old ``clients/`` layout, or parts missing)."""
    if not all((directory / f"{r}.key").exists() for r in ROLES):
        return False
    return old_layout(directory) or not all(
        p.exists() for p in (directory / "allow" / "brain", directory / "allow" / "gateway",
                             directory / "roles.json", directory / "ws.token"))


# -- consoles: add, list, revoke --------------------------------------------------------------------------
def _require_layout(directory: Path) -> None:
    if not (directory / "gateway.key").exists():
        raise HeqisError(f"{directory}: no key folder here", hint=f"make one: {_fix(directory)}")
    if old_layout(directory) or not (directory / "allow" / "gateway").is_dir():
        raise HeqisError(f"{directory} has the old key layout (one allow-list clients/ for every server)",
                         hint=f"run: {_fix(directory)} (converts it in place, keeping the fleet's keys)")


def add_console(directory: Path, name: str, role: str = "operator") -> dict[str, Any]:
    """A new console key pair DIR/consoles/NAME.key[_secret], allowed by the gateway, with a role."""
    import zmq.auth

    directory = Path(directory)
    if not _NAME.fullmatch(name):
        raise InvalidValue("NAME", f"{name!r} is not a key name",
                           hint="use 1–64 of A–Z a–z 0–9 _ . - (not starting with . or -)")
    if name in ROLES:
        raise InvalidValue("NAME", f"{name!r} is reserved for the fleet's own keys", hint="choose another name")
    if role not in CONSOLE_ROLES:
        raise InvalidValue("--role", f"unknown role {role!r}", hint="operator or viewer")
    _require_layout(directory)
    roles = read_roles(directory)
    consoles = directory / "consoles"
    if any(e.get("name") == name for e in roles.values()) or (consoles / f"{name}.key_secret").exists():
        raise HeqisError(f"a console key named {name!r} exists already in {directory}",
                         hint=f"revoke it first: heqis keys revoke {name} --dir {directory}")
    consoles.mkdir(mode=0o700, exist_ok=True)
    public, secret = (Path(p) for p in zmq.auth.create_certificates(str(consoles), name))
    os.chmod(secret, 0o600)
    key = _z85(public)
    shutil.copyfile(public, directory / "allow" / "gateway" / f"{name}.key")
    _write_roles(directory, {**roles, key: {"name": name, "role": role}})
    return {"name": name, "role": role, "public_key": key, "public": str(public), "secret": str(secret)}


def list_consoles(directory: Path) -> list[dict[str, Any]]:
    """Every console key of roles.json: name, role, public key, whether the gateway allows it, secret file."""
    directory = Path(directory)
    _require_layout(directory)
    allowed = {_z85(p) for p in (directory / "allow" / "gateway").glob("*.key")}
    out = []
    for key, entry in sorted(read_roles(directory).items(), key=lambda kv: str(kv[1].get("name"))):
        name = str(entry.get("name"))
        secret = directory / "console.key_secret" if name == "console" else \
            directory / "consoles" / f"{name}.key_secret"
        out.append({"name": name, "role": entry.get("role"), "public_key": key, "allowed": key in allowed,
                    "secret": str(secret) if secret.exists() else None})
    return out


def revoke_console(directory: Path, name: str) -> dict[str, Any]:
    """Drop a console key: its roles.json entry (operator rights end at once), its allow/gateway file
    (new connections refused), its key files."""
    directory = Path(directory)
    _require_layout(directory)
    roles = read_roles(directory)
    found = [k for k, e in roles.items() if e.get("name") == name]
    if not found:
        raise HeqisError(f"no console key named {name!r} in {directory / 'roles.json'}",
                         hint=f"see them: heqis keys list --dir {directory}")
    _write_roles(directory, {k: e for k, e in roles.items() if k not in found})
    removed = []
    for allow in sorted((directory / "allow" / "gateway").glob("*.key")):
        if _z85(allow) in found:
            allow.unlink()
            removed.append(str(allow))
    base = directory if name == "console" else directory / "consoles"
    for suffix in (".key", ".key_secret"):
        f = base / f"{name}{suffix}"
        if f.exists():
            f.unlink()
            removed.append(str(f))
    return {"name": name, "public_key": found[0], "removed": removed}


# -- sockets -----------------------------------------------------------------------------------------------
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


class AllowList:
    """The public keys of ``allow/DOMAIN``, re-read when a file in it changes (called by the authenticator
    thread at every CURVE handshake; the folder holds a handful of files)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stamp: tuple[Any, ...] | None = None
        self.keys: set[bytes] = set()

    def _stamp(self) -> tuple[Any, ...]:
        try:
            return tuple(sorted((e.name, e.inode(), e.stat().st_mtime_ns, e.stat().st_size)
                                for e in os.scandir(self.folder) if e.name.endswith(".key")))
        except FileNotFoundError:
            return ()

    def callback(self, domain: str, key: bytes) -> bool:
        import zmq.auth

        stamp = self._stamp()
        if stamp != self.stamp:
            self.keys = set(zmq.auth.load_certificates(str(self.folder))) if stamp else set()
            self.stamp = stamp
        return key in self.keys


def _zap_domain(domain: str, directory: Path) -> str:
    """One ZAP domain per role and key folder: two fleets' sockets in one process (tests) never mix."""
    return f"{domain}.{hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:12]}"


def server_socket_security(sock: zmq.Socket, keys: KeyConfig | None, ctx: zmq.Context,
                           domain: str | None = None) -> None:
    """Make ``sock`` a CURVE server that admits only the keys in ``allow/DOMAIN``: ``brain`` for a
    brain's sockets (the gateway's key), ``gateway`` for the gateway's telemetry and control (consoles).
    Call before bind. ``domain`` defaults to the identity of ``keys`` (a brain's or the gateway's)."""
    if domain is None and keys is not None:
        domain = keys.identity
    if domain is not None and domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, not {domain!r}")
    if keys is None or domain is None:
        return
    from zmq.auth.thread import ThreadAuthenticator

    folder = keys.directory / "allow" / domain
    if not folder.is_dir():
        if old_layout(keys.directory):
            _require_layout(keys.directory)
        raise HeqisError(f"{folder}: allow-list missing (the keys this {domain}'s sockets accept)",
                         hint=f"copy it from the folder `heqis keys` made, or run: {_fix(keys.directory)}")
    public, secret = keys.keypair()
    entry = _authenticators.get(id(ctx))
    if entry is None or entry[0] is not ctx:
        auth = ThreadAuthenticator(ctx)
        auth.start()
        entry = _authenticators[id(ctx)] = (ctx, auth)
    zap = _zap_domain(domain, keys.directory)
    auth = entry[1]
    if zap not in auth.credentials_providers:
        auth.configure_curve_callback(domain=zap, credentials_provider=AllowList(folder))
    sock.zap_domain = zap.encode()
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


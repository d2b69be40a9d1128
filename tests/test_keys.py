"""Roles on the wire: per-role CURVE allow-lists, peer keys, console roles, ``heqis keys add|list|revoke``.

Real ZeroMQ sockets on loopback; the CLI as a subprocess (tests.test_cli.run)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from heqis.errors import HeqisError
from heqis.runtime.security import (
    KeyConfig,
    add_console,
    client_socket_security,
    generate_keys,
    list_consoles,
    peer_key,
    revoke_console,
    server_socket_security,
)
from tests.test_cli import assert_one_line_error, run

ACCEPT_S = 15.0     # a loaded 2-core machine: generous for the CURVE handshake, never a speed test
REFUSE_S = 2.0      # how long a refused client is given to (not) get through


@pytest.fixture
def keys(tmp_path) -> Path:
    d = tmp_path / "keys"
    generate_keys(d)
    return d


def z85(path: Path) -> str:
    return zmq.auth.load_certificate(str(path))[0].decode()


class Server:
    """A bound server socket of one domain, read in the test's thread."""

    def __init__(self, kind: int, keys: Path, identity: str, domain: str) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        server_socket_security(self.sock, KeyConfig(keys, identity), self.ctx, domain)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")

    def close(self) -> None:
        self.sock.close(0)


def push_from(server: Server, cfg: KeyConfig, server_role: str, wait_s: float) -> str | bool | None:
    """A PUSH client with ``cfg`` sends to a PULL server: the peer key the server saw, or False when
    nothing arrived within ``wait_s``."""
    push = server.ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    client_socket_security(push, cfg, server_role)
    push.connect(f"tcp://127.0.0.1:{server.port}")
    try:
        push.send(b"hello")                  # queued until a handshake succeeds
        if not server.sock.poll(int(wait_s * 1000)):
            return False
        frame = server.sock.recv(copy=False)
        assert frame.bytes == b"hello"
        return peer_key(frame)
    finally:
        push.close(0)


def request_from(server: Server, cfg: KeyConfig | None, wait_s: float,
                 server_key: Path | None = None) -> str | bool | None:
    """A REQ client asks a REP server: the peer key the server saw, or False when refused."""
    req = server.ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    client_socket_security(req, cfg, "gateway")
    if server_key is not None:
        req.curve_serverkey = zmq.auth.load_certificate(str(server_key))[0]
    req.connect(f"tcp://127.0.0.1:{server.port}")
    try:
        req.send(b"status")
        if not server.sock.poll(int(wait_s * 1000)):
            return False
        frames = server.sock.recv_multipart(copy=False)
        server.sock.send(b"ok")
        assert req.poll(int(ACCEPT_S * 1000)) and req.recv() == b"ok"
        return peer_key(frames[0])
    finally:
        req.close(0)


# -- the wire --------------------------------------------------------------------------------------------
def test_a_brain_accepts_the_gateway_key_only(keys):
    server = Server(zmq.PULL, keys, "brain", "brain")
    try:
        assert push_from(server, KeyConfig(keys, "gateway"), "brain", ACCEPT_S) == z85(keys / "gateway.key")
        assert push_from(server, KeyConfig(keys, "console"), "brain", REFUSE_S) is False
        add_console(keys, "alice")
        assert push_from(server, KeyConfig(keys, "console", name="alice"), "brain", REFUSE_S) is False
    finally:
        server.close()


def test_the_gateway_accepts_console_keys_only_and_sees_who_asks(keys):
    server = Server(zmq.REP, keys, "gateway", "gateway")
    try:
        assert request_from(server, KeyConfig(keys, "console"), ACCEPT_S) == z85(keys / "console.key")
        brain = KeyConfig(keys, "brain")
        assert request_from(server, brain, REFUSE_S, server_key=keys / "gateway.key") is False
        assert request_from(server, KeyConfig(keys, "gateway"), REFUSE_S) is False
        # added while the server runs: accepted from the next handshake, with its own key and role
        alice = add_console(keys, "alice", "viewer")
        seen = request_from(server, KeyConfig(keys, "console", name="alice"), ACCEPT_S)
        assert seen == alice["public_key"]
        gw = KeyConfig(keys, "gateway")
        assert gw.role_of(seen) == "viewer" and gw.role_of(z85(keys / "console.key")) == "operator"
        revoke_console(keys, "alice")                     # no role at once
        assert gw.role_of(seen) is None
    finally:
        server.close()


def test_a_revoked_key_is_refused_on_its_next_connection(keys, tmp_path):
    alice = add_console(keys, "alice")
    saved = tmp_path / "alice"                         # what alice's own machine holds
    saved.mkdir()
    shutil.copy(keys / "consoles" / "alice.key_secret", saved / "console.key_secret")
    shutil.copy(keys / "gateway.key", saved / "gateway.key")
    server = Server(zmq.REP, keys, "gateway", "gateway")
    try:
        assert request_from(server, KeyConfig(saved, "console"), ACCEPT_S) == alice["public_key"]
        revoke_console(keys, "alice")
        assert KeyConfig(keys, "gateway").role_of(alice["public_key"]) is None
        assert request_from(server, KeyConfig(saved, "console"), REFUSE_S) is False
        assert request_from(server, KeyConfig(keys, "console"), ACCEPT_S) == z85(keys / "console.key")
    finally:
        server.close()


def test_telemetry_pub_serves_console_keys_not_the_brain_key(keys):
    server = Server(zmq.PUB, keys, "gateway", "gateway")

    def receives(cfg: KeyConfig, wait_s: float, server_key: Path | None = None) -> bool:
        sub = server.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        client_socket_security(sub, cfg, "gateway")
        if server_key is not None:
            sub.curve_serverkey = zmq.auth.load_certificate(str(server_key))[0]
        sub.connect(f"tcp://127.0.0.1:{server.port}")
        try:
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                server.sock.send_multipart([b"telemetry", b"{}"])
                if sub.poll(100):
                    return sub.recv_multipart() == [b"telemetry", b"{}"]
            return False
        finally:
            sub.close(0)

    try:
        assert receives(KeyConfig(keys, "console"), ACCEPT_S)
        assert not receives(KeyConfig(keys, "brain"), REFUSE_S, server_key=keys / "gateway.key")
    finally:
        server.close()


def test_two_key_folders_in_one_process_never_mix(keys, tmp_path):
    other = tmp_path / "other"
    generate_keys(other)
    a = Server(zmq.REP, keys, "gateway", "gateway")
    b = Server(zmq.REP, other, "gateway", "gateway")
    try:
        assert request_from(a, KeyConfig(keys, "console"), ACCEPT_S)
        assert request_from(b, KeyConfig(other, "console"), ACCEPT_S)
        assert request_from(b, KeyConfig(keys, "console"), REFUSE_S, server_key=other / "gateway.key") is False
    finally:
        a.close()
        b.close()


def test_peer_key_is_none_without_curve():
    ctx = zmq.Context.instance()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    try:
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
        push.send(b"x")
        assert pull.poll(int(ACCEPT_S * 1000))
        assert peer_key(pull.recv(copy=False)) is None
    finally:
        pull.close(0)
        push.close(0)


def test_the_domain_is_checked(keys):
    sock = zmq.Context.instance().socket(zmq.REP)
    try:
        with pytest.raises(ValueError):
            server_socket_security(sock, KeyConfig(keys, "gateway"), zmq.Context.instance(), "console")
    finally:
        sock.close(0)


# -- the folder ------------------------------------------------------------------------------------------
def test_layout_and_modes(keys):
    for f in ("gateway.key_secret", "brain.key_secret", "console.key_secret", "ws.token", "roles.json"):
        assert (keys / f).stat().st_mode & 0o777 == 0o600, f
    assert [p.name for p in (keys / "allow" / "brain").iterdir()] == ["gateway.key"]
    assert [p.name for p in (keys / "allow" / "gateway").iterdir()] == ["console.key"]
    roles = json.loads((keys / "roles.json").read_text())
    assert roles == {z85(keys / "console.key"): {"name": "console", "role": "operator"}}
    assert "secret" not in (keys / "roles.json").read_text()
    assert len(KeyConfig(keys, "gateway").ws_token()) >= 40
    added = add_console(keys, "alice")
    assert Path(added["secret"]).stat().st_mode & 0o777 == 0o600
    assert KeyConfig(keys, "console", name="alice").keypair()[0].decode() == added["public_key"]
    assert {r["name"] for r in list_consoles(keys)} == {"console", "alice"}


def test_a_readable_token_or_secret_is_refused_with_a_chmod_hint(keys):
    (keys / "ws.token").chmod(0o644)
    with pytest.raises(HeqisError) as exc:
        KeyConfig(keys, "gateway").ws_token()
    assert "chmod 600" in str(exc.value)
    (keys / "ws.token").unlink()
    with pytest.raises(HeqisError, match="WebSocket token missing"):
        KeyConfig(keys, "gateway").ws_token()
    add_console(keys, "alice")
    (keys / "consoles" / "alice.key_secret").chmod(0o640)
    with pytest.raises(HeqisError, match="chmod 600"):
        KeyConfig(keys, "console", name="alice").keypair()
    with pytest.raises(HeqisError, match="heqis keys add bob"):
        KeyConfig(keys, "console", name="bob").keypair()


def test_role_of_follows_roles_json_at_once(keys):
    gw = KeyConfig(keys, "gateway")
    bob = add_console(keys, "bob", "viewer")
    assert gw.role_of(bob["public_key"]) == "viewer"
    assert gw.role_of(None) is None and gw.role_of("x" * 40) is None
    revoke_console(keys, "bob")
    assert gw.role_of(bob["public_key"]) is None
    bob2 = add_console(keys, "bob", "operator")            # the name is free again, with a new key
    assert bob2["public_key"] != bob["public_key"] and gw.role_of(bob2["public_key"]) == "operator"
    assert gw.role_of(bob["public_key"]) is None


def old_layout(directory: Path) -> None:
    """A key folder as the first `heqis keys` made it: three pairs and one shared clients/."""
    directory.mkdir(mode=0o700)
    for role in ("gateway", "brain", "console"):
        _, secret = zmq.auth.create_certificates(str(directory), role)
        Path(secret).chmod(0o600)
    (directory / "clients").mkdir()
    for role in ("gateway", "console"):
        shutil.copy(directory / f"{role}.key", directory / "clients" / f"{role}.key")


def test_an_old_folder_is_refused_in_one_line_then_converted_keeping_its_keys(tmp_path):
    d = tmp_path / "old"
    old_layout(d)
    brain_key = (d / "brain.key").read_text()
    sock = zmq.Context.instance().socket(zmq.PULL)
    try:
        with pytest.raises(HeqisError) as exc:
            server_socket_security(sock, KeyConfig(d, "brain"), zmq.Context.instance(), "brain")
        assert "old key layout" in str(exc.value) and f"heqis keys --dir {d}" in str(exc.value)
    finally:
        sock.close(0)
    proc = run("keys", "--dir", str(d), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["converted"] is True
    assert (d / "brain.key").read_text() == brain_key and not (d / "clients").exists()
    assert [p.name for p in (d / "allow" / "brain").iterdir()] == ["gateway.key"]
    assert KeyConfig(d, "gateway").role_of(z85(d / "console.key")) == "operator"
    assert_one_line_error(run("keys", "--dir", str(d)), 1, "already holds keys")   # complete now


# -- the command ------------------------------------------------------------------------------------------
def test_keys_command_makes_adds_lists_and_revokes(tmp_path):
    d = tmp_path / "k"
    made = run("keys", "--dir", str(d))
    assert made.returncode == 0, made.stderr
    assert "allow/brain" in made.stdout and (d / "ws.token").exists()
    assert_one_line_error(run("keys", "--dir", str(d)), 1, "already holds keys", "--force")

    added = run("keys", "add", "alice", "--role", "viewer", "--dir", str(d), "--json")
    assert added.returncode == 0, added.stderr
    alice = json.loads(added.stdout)
    assert alice["role"] == "viewer" and (d / "allow" / "gateway" / "alice.key").exists()
    assert (d / "consoles" / "alice.key_secret").stat().st_mode & 0o777 == 0o600
    text = run("keys", "--dir", str(d), "add", "bob")                      # --dir before the subcommand
    assert text.returncode == 0 and "--key-name bob" in text.stdout, text.stderr

    assert_one_line_error(run("keys", "add", "alice", "--dir", str(d)), 1, "exists already")
    assert_one_line_error(run("keys", "add", "../evil", "--dir", str(d)), 2, "not a key name")
    assert_one_line_error(run("keys", "add", "brain", "--dir", str(d)), 2, "reserved")
    assert run("keys", "add", "carol", "--role", "root", "--dir", str(d)).returncode == 2

    listed = json.loads(run("keys", "list", "--dir", str(d), "--json").stdout)
    assert {(k["name"], k["role"], k["allowed"]) for k in listed["keys"]} == {
        ("console", "operator", True), ("alice", "viewer", True), ("bob", "operator", True)}
    table = run("keys", "list", "--dir", str(d))
    assert table.returncode == 0 and "alice" in table.stdout and "viewer" in table.stdout

    revoked = run("keys", "revoke", "alice", "--dir", str(d))
    assert revoked.returncode == 0, revoked.stderr
    assert "restart the gateway" in revoked.stdout
    assert not (d / "allow" / "gateway" / "alice.key").exists() and not (d / "consoles" / "alice.key_secret").exists()
    assert KeyConfig(d, "gateway").role_of(alice["public_key"]) is None
    assert_one_line_error(run("keys", "revoke", "alice", "--dir", str(d)), 1, "no console key named 'alice'")
    assert {k["name"] for k in json.loads(run("keys", "list", "--dir", str(d), "--json").stdout)["keys"]} == {
        "console", "bob"}

    again = run("keys", "--dir", str(d), "--force")                        # a fresh set drops added consoles
    assert again.returncode == 0, again.stderr
    assert not list((d / "consoles").iterdir()) and [p.name for p in (d / "allow" / "gateway").iterdir()] == [
        "console.key"]


def test_keys_help_teaches_the_subcommands():
    page = run("keys", "--help", env={"COLUMNS": "120"}).stdout
    for needle in ("add", "list", "revoke", "--dir", "--force", "heqis keys add alice --role viewer"):
        assert needle in page, needle
    assert "--key-name" in run("console", "--help", env={"COLUMNS": "120"}).stdout


def test_list_on_a_folder_without_keys_is_one_line(tmp_path):
    assert_one_line_error(run("keys", "list", "--dir", str(tmp_path / "none")), 1, "no key folder")


def test_peer_key_on_a_router_socket(keys):
    """The gateway's control socket is a ROUTER: every frame of a request carries the asker's key."""
    server = Server(zmq.ROUTER, keys, "gateway", "gateway")
    req = server.ctx.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    try:
        add_console(keys, "viewer1", "viewer")
        client_socket_security(req, KeyConfig(keys, "console", name="viewer1"), "gateway")
        req.connect(f"tcp://127.0.0.1:{server.port}")
        req.send(b'{"cmd": "pause"}')
        assert server.sock.poll(int(ACCEPT_S * 1000))
        frames = server.sock.recv_multipart(copy=False)
        key = peer_key(frames[-1])
        assert key == z85(keys / "consoles" / "viewer1.key") and all(peer_key(f) == key for f in frames)
        assert KeyConfig(keys, "gateway").role_of(key) == "viewer"
        assert peer_key(None) is None
    finally:
        req.close(0)
        server.close()

"""The console's connections: a SUB socket on the gateway's telemetry, a REQ for its control socket.

Both are used from worker threads only; the UI thread never touches a socket. ZeroMQ reconnects by
itself when the gateway restarts, so the feed simply keeps polling.
"""

from __future__ import annotations

import json
from typing import Any

import zmq

from heqis.runtime.local_fleet import control
from heqis.runtime.security import KeyConfig, client_socket_security


class TelemetryFeed:
    def __init__(self, address: str, keys: KeyConfig | None = None) -> None:
        self.address = address
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 10_000)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        client_socket_security(self.sock, keys, "gateway")
        self.sock.connect(address)
        self.bad = 0

    def poll(self, timeout_ms: int = 250, limit: int = 2000) -> list[tuple[str, dict[str, Any]]]:
        """Every document waiting (up to ``limit``), after waiting at most ``timeout_ms`` for the first."""
        out: list[tuple[str, dict[str, Any]]] = []
        if not self.sock.poll(timeout_ms):
            return out
        while len(out) < limit:
            try:
                topic, body = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except ValueError:        # not two frames: not ours
                self.bad += 1
                continue
            try:
                out.append((topic.decode(), json.loads(body)))
            except (UnicodeDecodeError, json.JSONDecodeError):
                self.bad += 1
        return out

    def close(self) -> None:
        self.sock.close(linger=0)


def control_address(telemetry: str, endpoints: Any) -> str | None:
    """The control address a telemetry snapshot announces: its ``endpoints.control`` port on the
    host the console already reaches the telemetry on (the gateway knows its ports, not the name or
    address by which this console sees it: NAT, SSH tunnels, several interfaces)."""
    port = endpoints.get("control") if isinstance(endpoints, dict) else None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return None
    scheme, sep, rest = telemetry.rpartition("://")
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    return f"{scheme}{sep}{host}:{port}" if host else None


class ControlClient:
    """The gateway's control socket, one REQ per request (a REQ socket that missed a reply is stuck).

    ``address`` may be unknown at start (``heqis console --connect`` without ``--control``): then
    requests answer None until ``learn`` has read it from the first telemetry snapshot. An address
    given up front is never replaced by a learned one."""

    def __init__(self, address: str | None, keys: KeyConfig | None = None) -> None:
        self.address = address
        self.keys = keys
        self.learned = False

    def learn(self, telemetry: str | None, endpoints: Any) -> bool:
        """Take the control address from a telemetry snapshot's ``endpoints``; True when newly known."""
        if self.address or not telemetry:
            return False
        address = control_address(telemetry, endpoints)
        if address is None:
            return False
        self.address, self.learned = address, True
        return True

    def request(self, request: dict[str, Any], timeout_s: float = 3.0) -> dict[str, Any] | None:
        """The reply, or None when the address is not known yet or the gateway did not answer in time."""
        address = self.address
        if not address:
            return None
        return control(address, request, timeout_s, self.keys)

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


class ControlClient:
    def __init__(self, address: str | None, keys: KeyConfig | None = None) -> None:
        self.address = address
        self.keys = keys

    def request(self, request: dict[str, Any], timeout_s: float = 3.0) -> dict[str, Any] | None:
        if not self.address:
            return None
        return control(self.address, request, timeout_s, self.keys)

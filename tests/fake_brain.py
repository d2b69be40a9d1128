"""A scripted brain for the gateway's fault tests: real ZeroMQ sockets, the real wire format, no models.

The thing under test is the gateway, so its peer must be able to misbehave on purpose: answer with a
wrong payload, a spoofed symbol, an error, only every other request, or not at all. ``answer(msg)``
returns the replies (lists of frames) to send for one request; the default is a valid signal for
the model routing.json assigns the symbol, so a healthy fake brain is indistinguishable on the wire
from a real one.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import zmq

from heqis.formats.artifacts import route_for
from heqis.runtime.protocol import Message, decode, encode


class FakeBrain:
    def __init__(self, port: int, routing: dict[str, Any], artifacts_id: str,
                 answer: Callable[[FakeBrain, Message], list[list[bytes]]] | None = None) -> None:
        self.port, self.routing, self.artifacts_id = port, routing, artifacts_id
        self.answer = answer or FakeBrain.valid
        self.incarnation = secrets.token_hex(8)
        self.requests: list[Message] = []
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.push = self.ctx.socket(zmq.PUSH)
        for s in (self.pull, self.push):
            s.setsockopt(zmq.LINGER, 0)
        self.pull.bind(f"tcp://127.0.0.1:{port}")
        self.push.bind(f"tcp://127.0.0.1:{port + 1}")
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def model(self, symbol: str) -> str:
        return route_for(self.routing, symbol)["generator"]

    def signal(self, msg: Message, data: Any = None, symbol: str | None = None, **extra: Any) -> list[bytes]:
        payload = np.array([0.001, 0.2, 0.3, 0.5, 1.0], np.float32) if data is None else data
        fields = {"model": self.model(msg.symbol), "artifacts": self.artifacts_id, "inc": self.incarnation,
                  "queue_us": 1.0, "pre_us": 2.0, "inf_us": 3.0, **extra}
        return encode("signal", msg.seq, msg.symbol if symbol is None else symbol, msg.bar_time, payload, fields,
                      sent_ns=msg.sent_ns)

    @staticmethod
    def valid(brain: FakeBrain, msg: Message) -> list[list[bytes]]:
        return [brain.signal(msg)]

    def _run(self) -> None:
        while self.running:
            if not self.pull.poll(50):
                continue
            frames = self.pull.recv_multipart()
            msg = decode(frames)
            if msg.kind == "heartbeat":
                self.push.send_multipart(encode("heartbeat", msg.seq, extra={
                    "name": "fake", "pid": 1, "incarnation": self.incarnation, "artifacts_sha256": self.artifacts_id,
                    "counters": {"windows": len(self.requests)}}, sent_ns=msg.sent_ns))
            elif msg.kind == "window":
                self.requests.append(msg)
                for reply in self.answer(self, msg):
                    self.push.send_multipart(reply)

    def close(self) -> None:
        self.running = False
        self.thread.join(5)
        self.pull.close(0)
        self.push.close(0)
        self.ctx.term()

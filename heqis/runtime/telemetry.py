"""Telemetry: rolling latency statistics, and the WebSocket mirror of the PUB stream.

The gateway publishes JSON on its PUB socket (topics ``telemetry`` at 2–5 Hz and ``signal`` per
signal); ``WebSocketFeed`` sends the same JSON documents to web dashboards. Both are fire and
forget: a slow subscriber never slows the gateway (ZeroMQ drops at the high-water mark; the
WebSocket side keeps only the newest documents per client).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections import deque
from http import HTTPStatus
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class LatencyWindow:
    """The last ``size`` latencies (µs) and the completion times of the last ``horizon_s`` seconds."""

    def __init__(self, size: int = 4096, horizon_s: float = 5.0) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.parts: dict[str, deque[float]] = {k: deque(maxlen=size) for k in ("queue_us", "pre_us", "inf_us")}
        self.stamps: deque[float] = deque()
        self.horizon = horizon_s
        self.history: deque[float] = deque(maxlen=240)   # p50 per snapshot, for sparklines

    def add(self, latency_us: float, parts: dict[str, float] | None = None) -> None:
        self.values.append(latency_us)
        for k, v in (parts or {}).items():
            if k in self.parts and v is not None:
                self.parts[k].append(float(v))
        self.stamps.append(time.monotonic())

    def throughput(self) -> float:
        now = time.monotonic()
        while self.stamps and now - self.stamps[0] > self.horizon:
            self.stamps.popleft()
        return len(self.stamps) / self.horizon

    def snapshot(self) -> dict[str, Any]:
        if not self.values:
            return {"count": 0, "p50_us": None, "p99_us": None, "max_us": None, "throughput_per_s": 0.0,
                    "parts_p50_us": {}, "p50_history_us": list(self.history)}
        v = np.fromiter(self.values, dtype=np.float64)
        p50 = float(np.percentile(v, 50))
        self.history.append(round(p50, 1))
        return {"count": len(v), "p50_us": round(p50, 1), "p99_us": round(float(np.percentile(v, 99)), 1),
                "max_us": round(float(v.max()), 1), "throughput_per_s": round(self.throughput(), 1),
                "parts_p50_us": {k: round(float(np.median(d)), 1) for k, d in self.parts.items() if d},
                "p50_history_us": list(self.history)}


class WebSocketFeed:
    """A WebSocket server (``websockets``) in its own thread that relays the telemetry JSON.

    With a ``token`` a client must present it, either at the handshake (HTTP header
    ``Authorization: Bearer TOKEN``; a wrong one is answered 401 before the upgrade) or, without that
    header, as its first message ``{"token": "TOKEN"}`` within ``AUTH_TIMEOUT_S`` seconds (a missing or
    wrong one closes the connection with code 1008). ``refused`` counts the clients turned away.
    Without a token every client receives the documents."""

    AUTH_TIMEOUT_S = 5.0

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.host, self.port = host, port
        self.token = token or None
        self.refused = 0
        self.clients: set[Any] = set()
        self.tasks: set[asyncio.Future[None]] = set()   # keep references until each send finishes
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopped: asyncio.Future[None]
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heqis-websocket", daemon=True)
        self.error: str | None = None
        self.thread.start()
        self.ready.wait(5)

    def _matches(self, given: object) -> bool:
        assert self.token is not None
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self.token.encode())

    def _process_request(self, connection: Any, request: Any) -> Any:
        """Before the upgrade: a wrong ``Authorization`` header is answered 401 (no header: the first
        message decides)."""
        if self.token is None:
            return None
        header = request.headers.get("Authorization")
        if header is None:
            return None
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and self._matches(given.strip()):
            connection.heqis_authorized = True
            return None
        self.refused += 1
        return connection.respond(HTTPStatus.UNAUTHORIZED, "a valid token is required\n")

    async def _first_message_token(self, ws: Any) -> bool:
        try:
            message = await asyncio.wait_for(ws.recv(), self.AUTH_TIMEOUT_S)
            given = json.loads(message).get("token")
        except Exception:   # timeout, closed, not JSON, not an object
            return False
        return self._matches(given)

    def _run(self) -> None:
        from websockets.asyncio.server import serve

        async def handler(ws: Any) -> None:
            pending = self.token is not None and not getattr(ws, "heqis_authorized", False)
            if pending and not await self._first_message_token(ws):
                self.refused += 1
                with contextlib.suppress(Exception):
                    await ws.close(1008, "a valid token is required")
                return
            self.clients.add(ws)
            try:
                await ws.wait_closed()
            finally:
                self.clients.discard(ws)

        async def main() -> None:
            self.stopped = asyncio.get_running_loop().create_future()
            try:
                async with serve(handler, self.host, self.port, process_request=self._process_request):
                    self.ready.set()
                    await self.stopped          # leaving the block closes the server cleanly
            except OSError as exc:
                self.error = str(exc)
                self.ready.set()

        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(main())
        self.loop.close()

    def broadcast(self, document: dict[str, Any]) -> None:
        if not self.clients or self.loop is None:
            return
        text = json.dumps(document, default=str)

        def send() -> None:
            for ws in list(self.clients):
                task = asyncio.ensure_future(self._send(ws, text))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        self.loop.call_soon_threadsafe(send)

    @staticmethod
    async def _send(ws: Any, text: str) -> None:
        with contextlib.suppress(Exception):  # a closing client is simply dropped
            await ws.send(text)

    def close(self) -> None:
        if self.loop is not None and not self.loop.is_closed() and self.error is None:
            with contextlib.suppress(RuntimeError):   # the loop may be closing already
                self.loop.call_soon_threadsafe(lambda: self.stopped.done() or self.stopped.set_result(None))
            self.thread.join(2)

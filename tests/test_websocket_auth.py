"""The gateway's WebSocket with a token: real ``websockets`` clients against ``WebSocketFeed``."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from heqis.runtime.telemetry import WebSocketFeed

TOKEN = "s3cret-token-for-the-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def feed():
    made: list[WebSocketFeed] = []

    def make(token: str | None = TOKEN) -> WebSocketFeed:
        f = WebSocketFeed("127.0.0.1", free_port(), token=token)
        assert f.error is None, f.error
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


class Broadcaster:
    """Sends a document every 50 ms from a plain thread, as the gateway's loop does."""

    def __init__(self, feed: WebSocketFeed) -> None:
        self.feed, self.running = feed, True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        seq = 0
        while self.running:
            seq += 1
            self.feed.broadcast({"topic": "telemetry", "seq": seq})
            time.sleep(0.05)

    def stop(self) -> None:
        self.running = False
        self.thread.join(2)


async def first_document(url: str, headers: dict | None = None, first: str | None = None,
                         timeout: float = 10) -> dict:
    async with connect(url, additional_headers=headers, open_timeout=timeout) as ws:
        if first is not None:
            await ws.send(first)
        return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def close_code(url: str, first: str | None = None, timeout: float = 15) -> int | None:
    """The close code the server sends when it refuses a client (no document arrives first)."""
    async with connect(url, open_timeout=timeout) as ws:
        if first is not None:
            await ws.send(first)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), timeout)
        return closed.value.rcvd.code if closed.value.rcvd else None


def url(f: WebSocketFeed) -> str:
    return f"ws://127.0.0.1:{f.port}"


def test_without_a_token_everyone_receives(feed):
    f = feed(None)
    b = Broadcaster(f)
    try:
        assert asyncio.run(first_document(url(f)))["topic"] == "telemetry"
        assert f.refused == 0
    finally:
        b.stop()


def test_a_client_without_a_token_is_closed_with_1008(feed, monkeypatch):
    monkeypatch.setattr(WebSocketFeed, "AUTH_TIMEOUT_S", 0.5)
    f = feed()
    b = Broadcaster(f)
    try:
        assert asyncio.run(close_code(url(f))) == 1008         # silent: closed when the wait ends
        assert asyncio.run(close_code(url(f), first="hello")) == 1008        # not JSON
        assert asyncio.run(close_code(url(f), first=json.dumps({"token": 42}))) == 1008
        assert f.refused == 3 and not f.clients
    finally:
        b.stop()


def test_a_wrong_token_is_refused(feed):
    f = feed()
    b = Broadcaster(f)
    try:
        with pytest.raises(InvalidStatus) as refused:                      # before the upgrade
            asyncio.run(first_document(url(f), headers={"Authorization": "Bearer wrong"}))
        assert refused.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            asyncio.run(first_document(url(f), headers={"Authorization": f"Basic {TOKEN}"}))
        assert asyncio.run(close_code(url(f), first=json.dumps({"token": "wrong"}))) == 1008
        assert f.refused == 3 and not f.clients
    finally:
        b.stop()


def test_the_header_token_receives_the_documents(feed):
    f = feed()
    b = Broadcaster(f)
    try:
        doc = asyncio.run(first_document(url(f), headers={"Authorization": f"Bearer {TOKEN}"}))
        assert doc["topic"] == "telemetry" and doc["seq"] > 0
        assert f.refused == 0
    finally:
        b.stop()


def test_the_first_message_token_receives_the_documents(feed):
    f = feed()
    b = Broadcaster(f)
    try:
        doc = asyncio.run(first_document(url(f), first=json.dumps({"token": TOKEN})))
        assert doc["topic"] == "telemetry"
        assert f.refused == 0
    finally:
        b.stop()


def test_a_refused_client_never_receives_a_document(feed, monkeypatch):
    """Documents broadcast while a client has not yet presented its token are not sent to it."""
    monkeypatch.setattr(WebSocketFeed, "AUTH_TIMEOUT_S", 1.0)
    f = feed()
    b = Broadcaster(f)

    async def listen() -> list[str]:
        got = []
        async with connect(url(f)) as ws:
            with pytest.raises(ConnectionClosed):
                while True:
                    got.append(await asyncio.wait_for(ws.recv(), 10))
        return got

    try:
        assert asyncio.run(listen()) == []
        assert f.refused == 1
    finally:
        b.stop()

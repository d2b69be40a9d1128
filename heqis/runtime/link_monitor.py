"""What the gateway's connection to a brain went through: ZeroMQ socket-monitor events, in words.

A brain that never answers is reported as silent after a few heartbeats (docs/architecture.md,
"Watchdog"), and the operator needs the likely cause, not only the symptom. The gateway's sockets
tell it: nothing listening (connect retried), the TCP connection made but the security handshake
failed (CURVE keys on one side only, or keys that do not match), the brain refused the gateway's key,
or everything connected and still no answer.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_DISCONNECTED
          | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
          | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class LinkMonitor:
    """The monitor of one connecting socket; ``poll()`` drains its events (never blocks)."""

    def __init__(self, sock: zmq.Socket) -> None:
        self.monitor = sock.get_monitor_socket(EVENTS)
        self.events: Counter[str] = Counter()
        self.connected = False          # a TCP connection is up now
        self.handshake_ok = False       # the last handshake succeeded
        self.handshake_failed = ""      # "protocol" | "auth" | "" : the last handshake failure

    def poll(self) -> None:
        while True:
            try:
                message = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:        # the socket is closing
                return
            event = message["event"]
            if event == zmq.EVENT_CONNECTED:
                self.connected = True
                self.events["connected"] += 1
            elif event == zmq.EVENT_CONNECT_RETRIED:
                self.connected = False
                self.events["connect_retried"] += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.connected = False
                self.events["disconnected"] += 1
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshake_ok, self.handshake_failed = True, ""
                self.events["handshake_ok"] += 1
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self.handshake_ok, self.handshake_failed = False, "auth"
                self.events["handshake_failed"] += 1
            elif event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                self.handshake_ok, self.handshake_failed = False, "protocol"
                self.events["handshake_failed"] += 1

    def close(self) -> None:
        self.monitor.close(linger=0)


def likely_cause(push: LinkMonitor, pull: LinkMonitor, host: str, port: int, keys: bool) -> str:
    """Why a brain that never answered is silent, from what its two connections went through."""
    failed = push.handshake_failed or pull.handshake_failed
    if failed == "auth":
        return "the brain refused the gateway's CURVE key (it is not in the brain's clients/ allow-list)"
    if failed:
        return ("the CURVE handshake failed: the gateway uses --keys but the brain runs without them (or with keys "
                "from another `heqis keys`)") if keys else \
            "the security handshake failed: the brain runs with --keys but the gateway has none"
    if not push.connected:
        return (f"nothing listens on {host}:{port}: the brain is not running there, or the address or port is "
                "wrong")
    if not pull.connected:
        return f"the brain takes requests on {port} but nothing answers on its signal port {port + 1}"
    return ("connected, but no answer to heartbeats: the brain may still be loading its models, be blocked, or "
            "the port belongs to another program")


def events(push: LinkMonitor, pull: LinkMonitor) -> dict[str, Any]:
    return {"requests": dict(push.events), "replies": dict(pull.events)}

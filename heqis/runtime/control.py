"""The gateway's control socket: a ROUTER that answers every request exactly once (docs/architecture.md, "Control").

A REP socket has a strict send/receive state machine: a request of the wrong shape left it unable to
answer (``ZMQError: Operation cannot be accomplished in current state``), and the gateway died. A
ROUTER has no such state. Each incoming message is split here into its routing envelope (the peer
identity, plus the empty delimiter a REQ client adds) and its body; anything but one JSON object
with a string ``cmd`` in one frame gets an error answer, never an exception. REQ and DEALER clients
both work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_REQUEST = 64 * 1024
# commands that change the fleet's state: with keys, only a console key with the operator role
OPERATOR_COMMANDS = ("pause", "resume", "reset", "stop")


@dataclass
class ControlRequest:
    envelope: list[bytes]
    body: Any                     # the frame the request came in (for the peer's CURVE key), or None
    request: dict[str, Any] | None
    error: str | None


def split_request(frames: list[Any]) -> ControlRequest:
    """Envelope, body frame and parsed request of one ROUTER message (``frames``: zmq.Frame or bytes)."""
    raw = [f.bytes if hasattr(f, "bytes") else bytes(f) for f in frames]
    if not raw:
        return ControlRequest([], None, None, "empty message")
    delimiter = next((i for i in range(1, len(raw)) if raw[i] == b""), None)
    cut = 1 if delimiter is None else delimiter + 1
    envelope, body = raw[:cut], raw[cut:]
    if len(body) != 1:
        return ControlRequest(envelope, None, None, f"send one JSON frame (got {len(body)})")
    if len(body[0]) > MAX_REQUEST:
        return ControlRequest(envelope, None, None, f"request larger than {MAX_REQUEST} bytes")
    try:
        request = json.loads(body[0])
    except (ValueError, UnicodeDecodeError):
        return ControlRequest(envelope, frames[cut], None, "send a JSON object with 'cmd'")
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return ControlRequest(envelope, frames[cut], None, "send a JSON object with 'cmd'")
    return ControlRequest(envelope, frames[cut], request, None)

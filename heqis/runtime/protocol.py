"""The wire format: ZeroMQ multipart ``[header, payload]`` — never pickle.

header: msgpack map ``{v, k, s, sym, t, shape, dtype, ns, x}``: protocol version, kind, sequence
number, symbol, bar time (ns since the epoch), payload shape and dtype, the sender's clock at
send time (ns; only ever compared with the same host's clock), and a small map of extras.
payload: raw little-endian float32, exactly prod(shape) × 4 bytes (empty for shape []).

The decoder is strict: wrong frame count, bad msgpack, unknown version or kind, missing or
ill-typed fields, oversized shapes, or a payload of the wrong length raise ``ProtocolError``;
``Decoder`` counts and logs those and returns None, so a bad peer can never crash a process.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from heqis.runtime.ratelog import RateLimitedLog

VERSION = 1
KINDS = ("window", "signal", "heartbeat", "control")
DTYPE = "<f4"
MAX_HEADER = 64 * 1024
MAX_PAYLOAD = 64 * 1024 * 1024
MAX_DIMS = 4
MAX_SYMBOL = 64

log = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """A message that does not follow the wire format."""


@dataclass
class Message:
    kind: str
    seq: int
    symbol: str = ""
    bar_time: int = 0
    data: np.ndarray | None = None
    sent_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Packed:
    """An array already in wire form (shape and little-endian float32 bytes): a request is packed once when
    it is made, so sending it — again, after a failure — only packs its header."""

    shape: list[int]
    raw: bytes


def pack(data: np.ndarray) -> Packed:
    arr = np.ascontiguousarray(data, dtype=DTYPE)
    return Packed(list(arr.shape), arr.tobytes())


def encode(kind: str, seq: int, symbol: str = "", bar_time: int = 0, data: np.ndarray | Packed | None = None,
           extra: dict[str, Any] | None = None, sent_ns: int | None = None) -> list[bytes]:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    packed = data if isinstance(data, Packed) else pack(data) if data is not None else Packed([], b"")
    header = {"v": VERSION, "k": kind, "s": int(seq), "sym": symbol, "t": int(bar_time), "shape": packed.shape,
              "dtype": DTYPE, "ns": int(time.monotonic_ns() if sent_ns is None else sent_ns), "x": extra or {}}
    return [msgpack.packb(header, use_bin_type=True), packed.raw]


def _field(h: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in h:
        raise ProtocolError(f"header lacks '{key}'")
    value = h[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ProtocolError(f"header field '{key}' has type {type(value).__name__}")
    return value


def decode(frames: list[bytes]) -> Message:
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames, got {len(frames)}")
    raw_header, payload = bytes(frames[0]), bytes(frames[1])
    if len(raw_header) > MAX_HEADER:
        raise ProtocolError(f"header of {len(raw_header)} bytes exceeds {MAX_HEADER}")
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        h = msgpack.unpackb(raw_header, raw=False, strict_map_key=True, max_bin_len=0, max_ext_len=0,
                            max_str_len=MAX_HEADER, max_array_len=1024, max_map_len=256)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise ProtocolError(f"header is not msgpack ({type(exc).__name__})") from None
    if not isinstance(h, dict):
        raise ProtocolError("header is not a map")
    version = _field(h, "v", int)
    if version != VERSION:
        raise ProtocolError(f"protocol version {version}, expected {VERSION}")
    kind = _field(h, "k", str)
    if kind not in KINDS:
        raise ProtocolError(f"unknown kind {kind[:20]!r}")
    seq = _field(h, "s", int)
    symbol = _field(h, "sym", str)
    if len(symbol) > MAX_SYMBOL:
        raise ProtocolError("symbol too long")
    bar_time = _field(h, "t", int)
    sent = _field(h, "ns", int)
    shape = _field(h, "shape", list)
    if _field(h, "dtype", str) != DTYPE:
        raise ProtocolError(f"dtype {h['dtype'][:10]!r}, expected {DTYPE}")
    extra = _field(h, "x", dict)
    if len(shape) > MAX_DIMS or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 1 << 24
                                        for d in shape):
        raise ProtocolError(f"bad shape {shape[:8]}")
    count = math.prod(shape) if shape else 0     # Python ints: exact, and no array round trip per message
    if count * 4 > MAX_PAYLOAD:
        raise ProtocolError(f"shape {shape} is larger than the payload limit")
    if len(payload) != count * 4:
        raise ProtocolError(f"payload has {len(payload)} bytes, shape {shape} needs {count * 4}")
    data = np.frombuffer(payload, dtype=DTYPE).reshape(shape) if shape else None
    return Message(kind, seq, symbol, bar_time, data, sent, extra)


class Decoder:
    """``decode`` that counts bad messages (by reason) and logs them rate-limited instead of raising."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.ok = 0
        self.rejected: Counter[str] = Counter()
        self.last_error = ""
        self.log = RateLimitedLog(log, f"{who}: malformed message")

    def __call__(self, frames: list[bytes]) -> Message | None:
        try:
            msg = decode(frames)
        except ProtocolError as exc:
            reason = str(exc).split(" ")[0] if str(exc) else "invalid"
            self.rejected[reason] += 1
            self.last_error = str(exc)
            self.log.warn(reason, str(exc))
            return None
        self.ok += 1
        return msg

    @property
    def dropped(self) -> int:
        return sum(self.rejected.values())

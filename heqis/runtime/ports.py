"""Free loopback ports for benchmarks and tests (a block, because a brain takes PORT and PORT+1)."""

from __future__ import annotations

import socket

from heqis.errors import HeqisError


def free_port_block(count: int, tries: int = 200) -> int:
    """A base port such that base … base+count-1 are free on 127.0.0.1 right now."""
    for _ in range(tries):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65535:
            continue
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise HeqisError(f"no block of {count} free loopback ports")

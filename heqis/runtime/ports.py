"""Free loopback ports for benchmarks and tests (a block, because a brain takes PORT and PORT+1).

The block is drawn *below* the kernel's ephemeral range (``net.ipv4.ip_local_port_range``). A ZeroMQ
socket that keeps reconnecting to a port in that range where nothing listens yet (a brain that starts
late) can, once in some thousand attempts, be given that very port as its own source port: TCP
"simultaneous open" then connects the socket to itself, the port is taken, and the brain that starts
later cannot bind it. A port outside the range is never handed out as a source port. The block is
still checked free by binding every port, so two runs that draw the same block see it taken.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

from heqis.errors import HeqisError

LOWEST = 10_000                       # below this are well-known services (5555/5560 fleets, databases …)
RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range() -> tuple[int, int]:
    """The kernel's source-port range (Linux); the IANA range where it cannot be read."""
    try:
        low, high = (int(v) for v in RANGE_FILE.read_text().split()[:2])
        return low, high
    except (OSError, ValueError):
        return 49152, 65535


def _all_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_block(count: int, tries: int = 200) -> int:
    """A base port such that base … base+count-1 are free on 127.0.0.1 right now, outside the ephemeral
    range when there is room below it (else any block the OS reports free)."""
    low, high = ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(tries):
        if low - count > LOWEST:
            base = rng.randrange(LOWEST, low - count)
        elif high + count < 65535:
            base = rng.randrange(high + 1, 65535 - count)
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                base = s.getsockname()[1]
            if base + count >= 65535:
                continue
        if _all_free(base, count):
            return base
    raise HeqisError(f"no block of {count} free loopback ports")

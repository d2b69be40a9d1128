"""Port blocks for tests and benchmarks lie outside the kernel's source-port range (see heqis.runtime.ports)."""

from __future__ import annotations

import socket

from heqis.runtime.ports import ephemeral_range, free_port_block


def test_a_block_is_free_and_never_a_source_port():
    low, high = ephemeral_range()
    for _ in range(20):
        base = free_port_block(8)
        assert not low <= base <= high and not low <= base + 7 <= high
        for port in range(base, base + 8):
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))


def test_a_taken_port_is_never_part_of_a_block(monkeypatch):
    import heqis.runtime.ports as ports

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    draws = iter([port - 1, port + 1])
    monkeypatch.setattr(ports.random.SystemRandom, "randrange", lambda self, a, b: next(draws))
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (60000, 60999))
    try:
        assert free_port_block(2) == port + 1          # port-1 … port is refused: port is bound
    finally:
        taken.close()

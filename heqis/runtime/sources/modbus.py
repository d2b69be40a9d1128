"""Modbus TCP: bars a PLC or sensor gateway writes into holding registers (pymodbus)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np

from heqis.runtime.bars import history_row
from heqis.runtime.replay_pack import Arrays
from heqis.runtime.sources.history import Bar
from heqis.runtime.sources.polled import PolledSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModbusMap:
    """Where one symbol's bar lives: ``count`` = 14 holding registers from ``address`` on unit ``unit``.

    Layout (16-bit registers, 32-bit values high word first): [0] sequence, bumped by the writer
    after each new bar; [1-2] date as YYYYMMDD; [3-4] open, [5-6] high, [7-8] low, [9-10] close,
    each raw (unadjusted) × 1000; [11-12] volume in lots; [13] turnover in percent × 100
    (0xFFFF: unknown — then estimated from the volume, see History). The prices are taken on the
    stored history's adjustment basis (a PLC knows no adjustment factor: the last one is kept).
    """

    symbol: str
    address: int
    unit: int = 1
    count: int = 14


UNKNOWN_TURNOVER = 0xFFFF


def decode_registers(regs: list[int]) -> tuple[int, int, np.ndarray]:
    """(sequence, bar time ns, HISTORY_COLUMNS row) from 14 registers."""
    def u32(i: int) -> int:
        return (regs[i] << 16) | regs[i + 1]

    ymd = u32(1)
    t = int(np.datetime64(f"{ymd // 10000:04d}-{ymd // 100 % 100:02d}-{ymd % 100:02d}", "ns").astype(np.int64))
    turnover = np.nan if regs[13] == UNKNOWN_TURNOVER else regs[13] / 100
    row = history_row(u32(3) / 1000, u32(5) / 1000, u32(7) / 1000, u32(9) / 1000, float(u32(11)), turnover)
    return regs[0], t, row


def encode_registers(seq: int, day: date, open_: float, high: float, low: float, close: float,
                     vol: int, turnover: float | None = None) -> list[int]:
    """The inverse of ``decode_registers`` (for tests, simulators and PLC programmers)."""
    def split(v: int) -> list[int]:
        return [(v >> 16) & 0xFFFF, v & 0xFFFF]

    ymd = day.year * 10000 + day.month * 100 + day.day
    turn = UNKNOWN_TURNOVER if turnover is None else min(round(turnover * 100), UNKNOWN_TURNOVER - 1)
    return [seq & 0xFFFF, *split(ymd), *split(round(open_ * 1000)), *split(round(high * 1000)),
            *split(round(low * 1000)), *split(round(close * 1000)), *split(int(vol)), turn]


class ModbusSource(PolledSource):
    """Polls Modbus TCP holding registers; a changed sequence register announces a new bar."""

    kind = "modbus"

    def __init__(self, host: str, port: int, maps: list[ModbusMap], history: int, seed: Arrays | None = None,
                 interval: float = 0.2) -> None:
        from pymodbus.client import ModbusTcpClient

        super().__init__([m.symbol for m in maps], history, interval, seed)
        self.client = ModbusTcpClient(host, port=port, timeout=2)
        self.maps = maps
        self.seen: dict[str, int] = {}
        self.errors = 0

    def poll(self, room: int) -> list[Bar]:
        if not self.due():
            return []
        out = []
        if not self.client.connected and not self.client.connect():
            self.errors += 1
            return out
        for m in self.maps:
            try:
                rr = self.client.read_holding_registers(m.address, count=m.count, device_id=m.unit)
            except Exception as exc:  # connection drops: counted, retried next poll
                self.errors += 1
                log.warning("modbus: %s", exc)
                continue
            if rr.isError():
                self.errors += 1
                continue
            regs = list(rr.registers)
            if not regs or regs[0] == 0 or self.seen.get(m.symbol) == regs[0]:
                continue                      # nothing written yet, or no new bar since the last poll
            self.seen[m.symbol] = regs[0]
            try:
                _, t, row = decode_registers(regs)
            except (ValueError, IndexError) as exc:   # a half-written or garbled block: counted, never fatal
                self.errors += 1
                log.warning("modbus: %s registers at %d are not a bar (%s)", m.symbol, m.address, exc)
                continue
            bar = self.hist.append(m.symbol, row, t)
            if bar is not None:
                out.append(bar)
                self.emitted(t)
        return out

    @property
    def counters(self) -> dict[str, int]:
        return {**super().counters, **({"modbus errors": self.errors} if self.errors else {})}

    def close(self) -> None:
        self.client.close()

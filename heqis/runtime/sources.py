"""Where the gateway's bars come from, and how several sources are put in time order.

* ``ReplaySource`` — the data store, bar by bar in date order across symbols, at a chosen rate
  (bars per second) or as fast as the brains take them (rate 0: back-pressure, nothing dropped).
* ``TushareSource`` — polls Tushare's ``daily`` for new trading days of the watchlist.
* ``ModbusSource`` — reads bars a PLC or sensor gateway writes into Modbus TCP holding registers.

Each source keeps every symbol's recent history, because a request carries the bars the brain
needs (the window plus the indicator warm-up). ``Aligner`` merges the sources by bar time: a bar
is released once every live source has reported a time at or beyond it.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date

import numpy as np

from heqis.runtime.replay_pack import Arrays

log = logging.getLogger(__name__)
DAY_NS = 86_400 * 10**9


@dataclass(order=True)
class Bar:
    bar_time: int                                   # ns since the epoch (the trade date at midnight)
    symbol: str = field(compare=True)
    history: np.ndarray = field(compare=False)      # [n, 6] float32, the last row is this bar


class History:
    """The last ``length`` bars of every symbol, as WINDOW_COLUMNS rows."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.rows: dict[str, deque[np.ndarray]] = {}
        self.last_time: dict[str, int] = {}

    def seed(self, symbol: str, values: np.ndarray, last_time: int) -> None:
        self.rows[symbol] = deque((r for r in values[-self.length:].astype(np.float32)), maxlen=self.length)
        self.last_time[symbol] = last_time

    def append(self, symbol: str, row: np.ndarray, bar_time: int) -> Bar | None:
        """Add one bar; None when it is not newer than what the symbol already has."""
        if bar_time <= self.last_time.get(symbol, -1):
            return None
        self.rows.setdefault(symbol, deque(maxlen=self.length)).append(np.asarray(row, np.float32))
        self.last_time[symbol] = bar_time
        return Bar(bar_time, symbol, np.stack(self.rows[symbol]))


class ReplaySource:
    """Bars (from the store or a replay pack) from ``start`` on, in (date, symbol) order; the bars before
    ``start`` seed each request's history."""

    live = False

    def __init__(self, arrays: Arrays, history: int, start: date | None = None,
                 end: date | None = None, rate: float = 0.0, skip: set[tuple[str, int]] | None = None,
                 limit: int | None = None, min_bars: int = 0) -> None:
        self.rate = rate
        self.history = history
        self.skipped_history = 0
        self.skipped_done = 0
        events: list[tuple[int, str, int]] = []
        self.arrays: dict[str, np.ndarray] = {}
        lo = np.datetime64(start, "ns").astype(np.int64) if start else None
        hi = np.datetime64(end, "ns").astype(np.int64) if end else None
        for sym, (times, values) in arrays.items():
            self.arrays[sym] = values
            for i, t in enumerate(times):
                if (lo is not None and t < lo) or (hi is not None and t > hi):
                    continue
                if i + 1 < min_bars:         # not enough history for complete features yet
                    self.skipped_history += 1
                    continue
                if skip and (sym, int(t)) in skip:
                    self.skipped_done += 1
                    continue
                events.append((int(t), sym, i))
        events.sort()
        self.events = deque(events[:limit] if limit else events)
        self.total = len(self.events)
        self.t0 = time.monotonic()
        self.emitted = 0
        self.watermark = -1

    @property
    def done(self) -> bool:
        return not self.events

    def next_due(self) -> float | None:
        """Seconds until the next bar is due: 0 at rate 0 (whenever the ring buffer has room), None when done."""
        if not self.events:
            return None
        if self.rate <= 0:
            return 0.0
        return max(0.0, (self.emitted + 1) / self.rate - (time.monotonic() - self.t0))

    def poll(self, room: int) -> list[Bar]:
        """Bars due now: at ``rate`` per second, or — rate 0 — as many as the ring buffer has ``room`` for."""
        due = len(self.events) if self.rate <= 0 else int((time.monotonic() - self.t0) * self.rate) - self.emitted
        if self.rate <= 0:
            due = min(due, room)
        out = []
        while due > 0 and self.events:
            t, sym, i = self.events.popleft()
            self.emitted += 1
            due -= 1
            self.watermark = t
            hist = self.arrays[sym][max(0, i + 1 - self.history): i + 1]
            out.append(Bar(t, sym, hist))
        return out


class PolledSource:
    """A live source read every ``interval`` seconds; each symbol's history is seeded from stored bars
    (a symbol without any starts empty and becomes usable once enough bars have arrived)."""

    live = True
    done = False

    def __init__(self, symbols: list[str], history: int, interval: float, seed: Arrays | None) -> None:
        self.interval = interval
        self.next_poll = 0.0
        self.hist = History(history)
        for sym in symbols:
            if seed and sym in seed:
                self.hist.seed(sym, seed[sym][1], int(seed[sym][0][-1]))
            else:
                log.warning("%s: no stored history for %s", type(self).__name__, sym)
        self.watermark = -1

    def next_due(self) -> float | None:
        return max(0.0, self.next_poll - time.monotonic())

    def due(self) -> bool:
        """True (and the next poll scheduled) when it is time to read the source."""
        now = time.monotonic()
        if now < self.next_poll:
            return False
        self.next_poll = now + self.interval
        return True


class TushareSource(PolledSource):
    """Polls ``daily`` for the watchlist every ``interval`` seconds."""

    def __init__(self, api: object, seed: Arrays, symbols: list[str], history: int, interval: float = 60.0,
                 today: date | None = None) -> None:
        super().__init__(symbols, history, interval, seed)
        self.api = api
        self.symbols = symbols
        self.today = today
        self.watermark = max(self.hist.last_time.values(), default=-1)

    def poll(self, room: int) -> list[Bar]:
        if not self.due():
            return []
        day = (self.today or date.today()).strftime("%Y%m%d")
        out = []
        df = self.api.query("daily", fields="ts_code,trade_date,open,high,low,close,vol",  # type: ignore[attr-defined]
                            ts_code=",".join(self.symbols), trade_date=day)
        for rec in df.to_dict("records"):
            t = int(np.datetime64(f"{rec['trade_date'][:4]}-{rec['trade_date'][4:6]}-{rec['trade_date'][6:]}",
                                  "ns").astype(np.int64))
            row = np.array([rec["open"], rec["high"], rec["low"], rec["close"], rec["vol"], np.nan], np.float32)
            bar = self.hist.append(rec["ts_code"], row, t)
            if bar is not None:
                out.append(bar)
                self.watermark = max(self.watermark, t)
        return out


@dataclass(frozen=True)
class ModbusMap:
    """Where one symbol's bar lives: ``count`` = 14 holding registers from ``address`` on unit ``unit``.

    Layout (16-bit registers, 32-bit values high word first): [0] sequence, bumped by the writer
    after each new bar; [1-2] date as YYYYMMDD; [3-4] open, [5-6] high, [7-8] low, [9-10] close,
    each × 1000; [11-12] volume in lots; [13] reserved.
    """

    symbol: str
    address: int
    unit: int = 1
    count: int = 14


def decode_registers(regs: list[int]) -> tuple[int, int, np.ndarray]:
    """(sequence, bar time ns, WINDOW_COLUMNS row) from 14 registers."""
    def u32(i: int) -> int:
        return (regs[i] << 16) | regs[i + 1]

    ymd = u32(1)
    t = int(np.datetime64(f"{ymd // 10000:04d}-{ymd // 100 % 100:02d}-{ymd % 100:02d}", "ns").astype(np.int64))
    row = np.array([u32(3) / 1000, u32(5) / 1000, u32(7) / 1000, u32(9) / 1000, float(u32(11)), np.nan], np.float32)
    return regs[0], t, row


def encode_registers(seq: int, day: date, open_: float, high: float, low: float, close: float,
                     vol: int) -> list[int]:
    """The inverse of ``decode_registers`` (for tests, simulators and PLC programmers)."""
    def split(v: int) -> list[int]:
        return [(v >> 16) & 0xFFFF, v & 0xFFFF]

    ymd = day.year * 10000 + day.month * 100 + day.day
    return [seq & 0xFFFF, *split(ymd), *split(round(open_ * 1000)), *split(round(high * 1000)),
            *split(round(low * 1000)), *split(round(close * 1000)), *split(int(vol)), 0]


class ModbusSource(PolledSource):
    """Polls Modbus TCP holding registers; a changed sequence register announces a new bar."""

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
            except ValueError as exc:         # a half-written or garbled block: counted, never fatal
                self.errors += 1
                log.warning("modbus: %s registers at %d are not a bar (%s)", m.symbol, m.address, exc)
                continue
            bar = self.hist.append(m.symbol, row, t)
            if bar is not None:
                out.append(bar)
                self.watermark = max(self.watermark, t)
        return out

    def close(self) -> None:
        self.client.close()


class Aligner:
    """Merges bars of several sources by bar time (a min-heap); a bar leaves once every live source's
    watermark has reached it, or at once when there is a single source."""

    def __init__(self, sources: list) -> None:
        self.sources = sources
        self.heap: list[Bar] = []

    def poll(self, room: int) -> list[Bar]:
        for src in self.sources:
            for bar in src.poll(room):
                heapq.heappush(self.heap, bar)
        if len(self.sources) == 1:
            out = sorted(self.heap)
            self.heap.clear()
            return out
        live = [s.watermark for s in self.sources if not s.done]
        horizon = min(live) if live else float("inf")
        out = []
        while self.heap and self.heap[0].bar_time <= horizon:
            out.append(heapq.heappop(self.heap))
        return out

    @property
    def done(self) -> bool:
        return all(s.done for s in self.sources) and not self.heap

    def next_due(self) -> float | None:
        """Seconds until some source has a bar due (None when none is scheduled)."""
        dues = [d for d in (s.next_due() for s in self.sources) if d is not None]
        return min(dues) if dues else None

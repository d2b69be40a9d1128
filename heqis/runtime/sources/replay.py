"""Replay: stored bars (the data store, or a replay pack on an edge host) in (date, symbol) order."""

from __future__ import annotations

import time
from collections import deque
from datetime import date

import numpy as np

from heqis.runtime.bars import HISTORY_COLUMNS
from heqis.runtime.replay_pack import Arrays
from heqis.runtime.sources.history import Bar


class ReplaySource:
    """Bars from ``start`` on, in (date, symbol) order; the bars before ``start`` seed each request's history.

    ``skip`` holds (symbol, bar time) pairs that already have a stored signal of this artifact set:
    they are not replayed (a restarted gateway resumes), unless the caller passes none (a replay
    asked for on purpose, ``--replay-from``)."""

    live = False
    kind = "replay"

    def __init__(self, arrays: Arrays, history: int, start: date | None = None,
                 end: date | None = None, rate: float = 0.0, skip: set[tuple[str, int]] | None = None,
                 limit: int | None = None, min_bars: int = 0) -> None:
        self.rate = rate
        self.history = history
        self.skipped_history = 0
        self.skipped_done = 0
        events: list[tuple[int, str, int]] = []
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.symbols = sorted(arrays)
        lo = np.datetime64(start, "ns").astype(np.int64) if start else None
        hi = np.datetime64(end, "ns").astype(np.int64) if end else None
        for sym, (times, values) in arrays.items():
            self.arrays[sym] = (times, values)
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
        self.position = {sym: self._start_index(times, lo) for sym, (times, _) in self.arrays.items()}
        self.t0 = time.monotonic()
        self.emitted = 0
        self.watermark = -1
        self.last_bar_time: int | None = None
        self.counters: dict[str, int] = {}

    @staticmethod
    def _start_index(times: np.ndarray, lo: int | None) -> int:
        """Index of the last bar before the replay starts (-1: none)."""
        return int(np.searchsorted(times, lo, side="left")) - 1 if lo is not None else -1

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
            self.last_bar_time = t
            self.position[sym] = max(self.position[sym], i)
            lo = max(0, i + 1 - self.history)
            out.append(Bar(t, sym, self.arrays[sym][1][lo: i + 1], self.arrays[sym][0][lo: i + 1]))
        return out

    def recent(self, symbol: str, n: int) -> tuple[list[int], np.ndarray]:
        """The last ``n`` bars up to the replay's position in ``symbol`` (what the console's K-line starts from)."""
        if symbol not in self.arrays:
            return [], np.zeros((0, len(HISTORY_COLUMNS)), np.float32)
        times, values = self.arrays[symbol]
        end = self.position[symbol] + 1
        return [int(t) for t in times[max(0, end - n):end]], values[max(0, end - n):end]

"""Several sources in one time order: a bar leaves once every live source has reported a time at or beyond it."""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from heqis.runtime.bars import HISTORY_COLUMNS
from heqis.runtime.sources.history import Bar


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

    def recent(self, symbol: str, n: int) -> tuple[list[int], np.ndarray]:
        """The most recent bars of ``symbol`` any source holds."""
        best: tuple[list[int], np.ndarray] = ([], np.zeros((0, len(HISTORY_COLUMNS)), np.float32))
        for src in self.sources:
            times, rows = src.recent(symbol, n)
            if times and (not best[0] or times[-1] > best[0][-1]):
                best = (times, rows)
        return best

    def rejected(self) -> list[tuple[str, int, str]]:
        """(symbol, bar time, reason) of the bars the live sources' cleaning refused since the last call."""
        out: list[tuple[str, int, str]] = []
        for src in self.sources:
            hist = getattr(src, "hist", None)
            while hist is not None and hist.rejected:
                out.append(hist.rejected.popleft())
        return out

    def describe(self) -> dict[str, Any]:
        """What telemetry says about the sources: kinds, done, the last bar time, and their counters."""
        last = [s.last_bar_time for s in self.sources if getattr(s, "last_bar_time", None) is not None]
        counters: dict[str, int] = {}
        for s in self.sources:
            for k, v in getattr(s, "counters", {}).items():
                counters[k] = counters.get(k, 0) + int(v)
        return {"kinds": [s.kind for s in self.sources], "done": self.done, "live": any(s.live for s in self.sources),
                "last_bar_time": max(last) if last else None, "counters": counters}

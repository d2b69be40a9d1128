"""The base of the live sources: read every ``interval`` seconds, history seeded from stored bars."""

from __future__ import annotations

import logging
import time

import numpy as np

from heqis.runtime.replay_pack import Arrays
from heqis.runtime.sources.history import History

log = logging.getLogger(__name__)


class PolledSource:
    """A live source read every ``interval`` seconds; each symbol's history is seeded from stored bars
    (a symbol without any starts empty and becomes usable once enough bars have arrived)."""

    live = True
    done = False
    kind = "live"

    def __init__(self, symbols: list[str], history: int, interval: float, seed: Arrays | None) -> None:
        self.interval = interval
        self.next_poll = 0.0
        self.hist = History(history)
        self.symbols = list(symbols)
        missing = []
        for sym in symbols:
            if seed and sym in seed and len(seed[sym][0]):
                self.hist.seed(sym, seed[sym][0], seed[sym][1])
            else:
                missing.append(sym)
        if missing:
            log.warning("%s: no stored history for %s: their first requests wait for enough live bars",
                        type(self).__name__, ", ".join(missing))
        self.watermark = max((self.hist.last_time(s) for s in symbols), default=-1)
        self.last_bar_time: int | None = None

    @property
    def counters(self) -> dict[str, int]:
        return dict(self.hist.counters)

    def next_due(self) -> float | None:
        return max(0.0, self.next_poll - time.monotonic())

    def due(self) -> bool:
        """True (and the next poll scheduled) when it is time to read the source."""
        now = time.monotonic()
        if now < self.next_poll:
            return False
        self.next_poll = now + self.interval
        return True

    def recent(self, symbol: str, n: int) -> tuple[list[int], np.ndarray]:
        return self.hist.recent(symbol, n)

    def emitted(self, bar_time: int) -> None:
        self.watermark = max(self.watermark, bar_time)
        self.last_bar_time = max(self.last_bar_time or bar_time, bar_time)

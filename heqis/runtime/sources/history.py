"""Each symbol's recent bars in the gateway, in the store's bar schema, and the checks a new bar passes."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from heqis.data.bar_checks import clean_bars
from heqis.runtime.bars import HISTORY_COLUMNS, H

DAY_NS = 86_400 * 10**9


@dataclass(order=True)
class Bar:
    bar_time: int                                   # ns since the epoch (the trade date at midnight)
    symbol: str = field(compare=True)
    history: np.ndarray = field(compare=False)      # [n, HISTORY_COLUMNS] float32, the last row is this bar
    times: np.ndarray | None = field(default=None, compare=False)   # [n] int64 ns of the history's rows


class History:
    """The last ``length`` bars of every symbol (HISTORY_COLUMNS rows and their times).

    A new bar must be newer than the symbol's last one and pass the cleaning rules of ``heqis data``;
    what a live source cannot know is filled the way the store would see it: an unknown adjustment
    factor is the last one (no corporate action announced), an unknown turnover is estimated from
    the volume at the symbol's last turnover/volume ratio (the free float changes slowly). Drops and
    fills are counted in ``counters``, never silent."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.rows: dict[str, deque[np.ndarray]] = {}
        self.times: dict[str, deque[int]] = {}
        self.counters: Counter[str] = Counter()
        self.rejected: deque[tuple[str, int, str]] = deque(maxlen=1024)   # (symbol, bar time, reason) the
        # gateway's watchdog reports as flags (drained each poll; heqis.runtime.watchdog)

    def seed(self, symbol: str, times: np.ndarray, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.float32)[-self.length:]
        self.rows[symbol] = deque(rows, maxlen=self.length)
        self.times[symbol] = deque((int(t) for t in np.asarray(times)[-self.length:]), maxlen=self.length)

    def last_time(self, symbol: str) -> int:
        times = self.times.get(symbol)
        return times[-1] if times else -1

    def append(self, symbol: str, row: np.ndarray, bar_time: int) -> Bar | None:
        """Add one bar; None (counted by reason) when it is not newer or fails the cleaning rules."""
        if bar_time <= self.last_time(symbol):
            reason = "duplicate date" if bar_time == self.last_time(symbol) else "out of order"
            self.counters[reason] += 1
            self.rejected.append((symbol, bar_time, reason))
            return None
        row = np.array(row, dtype=np.float32)
        checked = clean_bars(np.array([bar_time]), row[[H["open_raw"]]], row[[H["high_raw"]]], row[[H["low_raw"]]],
                             row[[H["close_raw"]]], row[[H["vol"]]])
        if checked.dropped:
            self.counters[checked.dropped[0][1]] += 1
            self.rejected.append((symbol, bar_time, checked.dropped[0][1]))
            return None
        self._fill(symbol, row)
        self.rows.setdefault(symbol, deque(maxlen=self.length)).append(row)
        self.times.setdefault(symbol, deque(maxlen=self.length)).append(bar_time)
        return Bar(bar_time, symbol, np.stack(self.rows[symbol]), np.fromiter(self.times[symbol], np.int64))

    def _fill(self, symbol: str, row: np.ndarray) -> None:
        past = self.rows.get(symbol)
        last = past[-1] if past else None
        if not np.isfinite(row[H["adj_factor"]]):
            row[H["adj_factor"]] = last[H["adj_factor"]] if last is not None and np.isfinite(last[H["adj_factor"]]) \
                else 1.0
            if last is not None:
                self.counters["adj_factor assumed unchanged"] += 1
        if not np.isfinite(row[H["turnover"]]) and past:
            known = [r for r in reversed(past) if np.isfinite(r[H["turnover"]]) and r[H["vol"]] > 0]
            if known:
                ratio = known[0][H["turnover"]] / known[0][H["vol"]]
                row[H["turnover"]] = row[H["vol"]] * ratio
                self.counters["turnover estimated"] += 1

    def recent(self, symbol: str, n: int) -> tuple[list[int], np.ndarray]:
        """The last ``n`` bars of ``symbol``: times and HISTORY_COLUMNS rows."""
        rows = self.rows.get(symbol)
        if not rows:
            return [], np.zeros((0, len(HISTORY_COLUMNS)), np.float32)
        k = min(n, len(rows))
        return list(self.times[symbol])[-k:], np.stack(list(rows)[-k:])

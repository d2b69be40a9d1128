"""The gateway's watchdog: every bar is checked between the sources and the ring buffer.

Two detectors (docs/architecture.md, "Watchdog"):

* **rules**, for faults that need no model — ``ohlc`` (a non-positive price, high < low, open or
  close outside the high–low range: a swapped high/low), ``stale`` (the bar repeats the previous
  bar's open, high, low, close and volume: a frozen feed), ``limit`` (the close beyond the day's
  price limit: the stored limits when the bar carries them, else the board's ratio of the
  pre-close for an A-share code), ``zero_volume`` (a trading day with no volume), ``out_of_order``
  and ``duplicate`` (a bar time at or before the symbol's last one; a live source's cleaning refuses
  these and the bad-OHLC bars itself, and the gateway reports them here, always held: they never
  entered the history);
* **model**, a small autoencoder over the last ``QUALITY_WINDOW`` bars (heqis.features.quality,
  trained by ``heqis train --watchdog``, exported as ``watchdog.onnx``): the bar is flagged when its
  reconstruction error is above the threshold calibrated on validation.

The policy decides what a flag does: ``warn`` (default) sends the bar on and marks it (the stored
signal's ``suspect`` column), ``hold`` keeps it from the brains, counts and alerts, and keeps it out
of the history that later requests of the symbol carry; ``off`` checks nothing. Every flag is
counted by reason, the last ones go to telemetry, and all of them to the signal store's ``flags``.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Protocol

import numpy as np

from heqis.data.bar_checks import clean_bars
from heqis.data.boards import TS_CODE, classify, limit_ratio
from heqis.runtime.bars import H
from heqis.runtime.sources.history import Bar

POLICIES = ("warn", "hold", "off")
RULES = ("ohlc", "stale", "limit", "zero_volume", "out_of_order", "duplicate")
REASONS = (*RULES, "model")
LAST_FLAGS = 20
LIMIT_TOLERANCE = 0.006        # CNY: a close one tick beyond the rounded limit is still inside it
RATIO_TOLERANCE = 0.002        # without stored limits: the board ratio of the pre-close, plus rounding
CLEANING_REASONS = {"duplicate date": "duplicate", "out of order": "out_of_order"}   # History's names → ours
OHLC = [H["open_raw"], H["high_raw"], H["low_raw"], H["close_raw"], H["vol"]]
QUALITY_INPUTS = [*OHLC, H["pre_close_raw"], H["up_limit"], H["down_limit"]]   # heqis.features.quality's order


class Scorer(Protocol):
    """What the watchdog needs of a model (heqis.runtime.watchdog_model.WatchdogModel)."""

    window: int
    threshold: float
    backend: str

    def score(self, ohlcv: np.ndarray) -> float | None: ...


@dataclass(frozen=True)
class Verdict:
    reasons: tuple[str, ...]       # empty: the bar is clean
    score: float | None = None     # the model's score (None: no model, or too few bars)

    @property
    def suspect(self) -> str | None:
        return ",".join(self.reasons) or None


def quality_ohlcv(history: np.ndarray) -> np.ndarray:
    """Raw open, high, low, close, volume, pre-close and the day's limits of history rows: what the
    watchdog model was trained on (heqis.train.watchdog reads the store's unadjusted bars, as the
    gateway receives them)."""
    return np.asarray(history, dtype=np.float64)[:, QUALITY_INPUTS]


def _day(bar_time: int) -> date:
    return datetime.fromtimestamp(bar_time / 1e9, tz=timezone.utc).date()


def rule_reasons(symbol: str, history: np.ndarray, bar_time: int | None = None) -> list[str]:
    """The rules the last row of ``history`` (HISTORY_COLUMNS, time order) breaks, in ``RULES`` order."""
    row = np.asarray(history[-1], dtype=np.float64)
    prev = np.asarray(history[-2], dtype=np.float64) if len(history) > 1 else None
    out = []
    if clean_bars(np.array([0]), *row[OHLC, None]).dropped:   # the store's cleaning rules: a bad price, a
        out.append("ohlc")                                      # swapped high/low, a missing value
    if prev is not None and np.array_equal(row[OHLC], prev[OHLC]):
        out.append("stale")
    if _beyond_limit(symbol, row, prev, bar_time):
        out.append("limit")
    if row[H["vol"]] == 0:
        out.append("zero_volume")
    return out


def _beyond_limit(symbol: str, row: np.ndarray, prev: np.ndarray | None, bar_time: int | None) -> bool:
    c = row[H["close_raw"]]
    up, down = row[H["up_limit"]], row[H["down_limit"]]
    if np.isfinite(up) and np.isfinite(down) and up > 0:
        return bool(c > up + LIMIT_TOLERANCE or c < down - LIMIT_TOLERANCE)
    pre = row[H["pre_close_raw"]]
    if not np.isfinite(pre) and prev is not None:
        pre = prev[H["close_raw"]]
    if not (np.isfinite(pre) and pre > 0 and np.isfinite(c)) or not TS_CODE.match(symbol) or bar_time is None:
        return False          # no limit known (a US code, an index, the first bar): nothing to break
    kind, board = classify(symbol)
    ratio = limit_ratio(kind, board, bool(row[H["is_st"]] > 0), _day(bar_time))
    return ratio is not None and abs(c / pre - 1.0) > ratio + RATIO_TOLERANCE


class Watchdog:
    """Checks each bar, applies the policy, and keeps the counters and last flags telemetry shows."""

    def __init__(self, policy: str = "warn", model: Scorer | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"watchdog policy {policy!r} is not one of {', '.join(POLICIES)}")
        self.policy = policy
        self.model = model
        self.checked = 0
        self.flagged = 0
        self.held = 0
        self.by_reason: Counter[str] = Counter({r: 0 for r in REASONS})
        self.last: deque[dict[str, Any]] = deque(maxlen=LAST_FLAGS)
        self.held_times: dict[str, set[int]] = {}
        self.last_time: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self.policy != "off"

    def check(self, bar: Bar, history: np.ndarray | None = None) -> Verdict:
        """The verdict on ``bar`` (its reasons and score); counted, and recorded when it is flagged.
        ``history``: ``clean_history(bar)`` when the caller has it already."""
        if not self.active:
            return Verdict(())
        history = self.clean_history(bar) if history is None else history
        reasons = rule_reasons(bar.symbol, history, bar.bar_time)
        last = self.last_time.get(bar.symbol)
        if last is not None and bar.bar_time <= last:
            reasons.append("duplicate" if bar.bar_time == last else "out_of_order")
        else:
            self.last_time[bar.symbol] = bar.bar_time
        score = None
        if self.model is not None and "ohlc" not in reasons:
            score = self.model.score(quality_ohlcv(history[-(self.model.window + 1):]))
            if score is not None and not score <= self.model.threshold:    # NaN is flagged too
                reasons.append("model")
        self.checked += 1
        verdict = Verdict(tuple(reasons), score)
        if reasons:
            self._record(bar.symbol, bar.bar_time, verdict, self.policy)
        return verdict

    def refused(self, symbol: str, bar_time: int, cleaning_reason: str) -> Verdict:
        """A bar a live source's cleaning refused (it never reached the history): a held flag."""
        reason = CLEANING_REASONS.get(cleaning_reason, "ohlc")
        verdict = Verdict((reason,))
        self.checked += 1
        self._record(symbol, bar_time, verdict, "hold")
        return verdict

    def holds(self, verdict: Verdict) -> bool:
        return bool(verdict.reasons) and self.policy == "hold"

    def _record(self, symbol: str, bar_time: int, verdict: Verdict, action: str) -> None:
        self.flagged += 1
        self.by_reason.update(verdict.reasons)
        if action == "hold":
            self.held += 1
            self.held_times.setdefault(symbol, set()).add(bar_time)
        self.last.append({"symbol": symbol, "bar_time": bar_time, "reasons": list(verdict.reasons),
                          "score": None if verdict.score is None else float(verdict.score), "action": action})

    def clean_history(self, bar: Bar) -> np.ndarray:
        """``bar``'s history without the bars held earlier (a held bar is never part of a later request)."""
        held = self.held_times.get(bar.symbol)
        if not held or bar.times is None:
            return bar.history
        keep = ~np.isin(bar.times, np.fromiter(held, np.int64))
        keep[-1] = True
        return bar.history if keep.all() else bar.history[keep]

    def describe(self, last: bool = True) -> dict[str, Any]:
        """The watchdog's part of the status document (and, with ``last``, of telemetry)."""
        doc: dict[str, Any] = {
            "policy": self.policy, "model": self.model.backend if self.model is not None else None,
            "threshold": float(self.model.threshold) if self.model is not None else None,
            "checked": self.checked, "flagged": self.flagged, "held": self.held, "by_reason": dict(self.by_reason)}
        if last:
            doc["last"] = list(self.last)
        return doc


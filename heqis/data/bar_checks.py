"""The cleaning rules for daily bars, on numpy arrays: shared by ``heqis data`` and the gateway.

``heqis data`` parses its source's text into arrays and calls ``clean_bars`` over a whole history;
the gateway calls it for every bar a live source delivers (docs/architecture.md, "One code path").
A bar is dropped, with the first reason that applies, when its date is unknown, a price or the
volume is missing, a price is not positive, high < low, open or close lies outside [low, high],
the volume is negative, or an earlier bar has the same date (the first copy wins, so a bad first
copy does not push out a good second one: duplicates are decided among the bars that survive the
other rules). Bars out of date order are sorted, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_DATE = np.iinfo(np.int64).min   # what a date that could not be parsed is given (NaT's integer)
REASONS = (
    "bad date",
    "missing value",
    "non-positive price",
    "high < low",
    "open/close outside high-low",
    "negative volume",
    "duplicate date",
)


@dataclass
class CleanedBars:
    """Which input rows survive, in date order, and why the others do not."""

    keep: np.ndarray          # indices into the input, sorted by date (stable)
    dropped: list[tuple[int, str]]   # (input index, reason), in input order
    reordered: int            # rows whose position changed by the sort


def clean_bars(dates: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
               vol: np.ndarray) -> CleanedBars:
    """Apply the cleaning rules; ``dates`` are int64 (ns or days; ``NO_DATE`` for unparseable ones)."""
    d = np.asarray(dates, dtype=np.int64)
    o, h, lo, c, v = (np.asarray(a, dtype=np.float64) for a in (open_, high, low, close, vol))
    n = len(d)
    reason = np.full(n, -1, dtype=np.int64)

    def mark(mask: np.ndarray, code: int) -> None:
        reason[(reason < 0) & mask] = code

    mark(d == NO_DATE, 0)
    order = np.argsort(np.where(d == NO_DATE, np.iinfo(np.int64).max, d), kind="stable")
    valid_order = order[reason[order] < 0]
    reordered = int((valid_order != np.sort(valid_order)).sum())
    with np.errstate(invalid="ignore"):
        mark(~np.isfinite(o) | ~np.isfinite(h) | ~np.isfinite(lo) | ~np.isfinite(c) | ~np.isfinite(v), 1)
        mark((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), 2)
        mark(h < lo, 3)
        mark((np.maximum(o, c) > h) | (np.minimum(o, c) < lo), 4)
        mark(v < 0, 5)
    survivors = order[reason[order] < 0]
    if len(survivors) > 1:
        same = np.concatenate(([False], d[survivors][1:] == d[survivors][:-1]))
        reason[survivors[same]] = 6
    keep = order[reason[order] < 0]
    dropped = [(int(i), REASONS[int(reason[i])]) for i in np.flatnonzero(reason >= 0)]
    return CleanedBars(keep, dropped, reordered)

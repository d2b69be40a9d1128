"""Cleaning of daily bars, with a report: every dropped row has a reason, nothing goes silently.

Works on the Tushare ``daily`` layout (trade_date as text or date, open/high/low/close/pre_close,
vol, amount); every source produces that layout first. A ``_row`` column, when present, carries
the row number in the source file so the report can point at it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from heqis.errors import HeqisError

PRICE_COLS = ("open", "high", "low", "close")
REASONS = (
    "bad date",
    "duplicate date",
    "missing value",
    "non-positive price",
    "high < low",
    "open/close outside high-low",
    "negative volume",
)


@dataclass
class Dropped:
    """One row that did not make it into the store."""

    symbol: str
    row: int | None
    trade_date: str
    reason: str


@dataclass
class CleaningReport:
    """What cleaning did to one data set (all symbols)."""

    rows_in: int = 0
    rows_out: int = 0
    reordered: dict[str, int] = field(default_factory=dict)  # symbol → rows that were out of order
    dropped: list[Dropped] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(d.reason for d in self.dropped))

    def merge(self, other: CleaningReport) -> None:
        self.rows_in += other.rows_in
        self.rows_out += other.rows_out
        self.reordered.update(other.reordered)
        self.dropped.extend(other.dropped)

    def to_dict(self, max_rows: int = 50) -> dict:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dropped": len(self.dropped),
            "by_reason": self.counts(),
            "reordered": self.reordered,
            "examples": [d.__dict__ for d in self.dropped[:max_rows]],
        }


def _mark(df: pd.DataFrame, mask: pd.Series, reason: str, symbol: str, report: CleaningReport,
          dates: pd.Series) -> pd.DataFrame:
    if not mask.any():
        return df
    rows = df.loc[mask, "_row"] if "_row" in df else pd.Series([None] * int(mask.sum()))
    for row, day in zip(rows, dates[mask], strict=True):
        report.dropped.append(Dropped(symbol, None if row is None else int(row),
                                      "" if pd.isna(day) else str(day)[:10], reason))
    return df.loc[~mask]


def clean_daily(df: pd.DataFrame, symbol: str, origin: str) -> tuple[pd.DataFrame, CleaningReport]:
    """Sorted, de-duplicated, valid bars (``trade_date`` as datetime64[ns]) and what was dropped.

    Raises a HeqisError naming ``origin`` when no usable row is left.
    """
    report = CleaningReport(rows_in=len(df))
    if df.empty:
        return df.assign(trade_date=pd.Series(dtype="datetime64[ns]")), report
    work = df.copy()
    raw_dates = work["trade_date"].astype(str)
    work["trade_date"] = pd.to_datetime(raw_dates, format="mixed", errors="coerce")
    work = _mark(work, work["trade_date"].isna(), "bad date", symbol, report, raw_dates)

    dates = work["trade_date"]
    order = np.argsort(dates.to_numpy(), kind="stable")
    moved = int((order != np.arange(len(order))).sum())
    if moved:
        report.reordered[symbol] = moved
        work = work.iloc[order]

    needed = [c for c in (*PRICE_COLS, "vol") if c in work]
    for c in needed:
        work[c] = pd.to_numeric(work[c], errors="coerce")
    work = _mark(work, work[needed].isna().any(axis=1), "missing value", symbol, report, work["trade_date"])
    work = _mark(work, (work[list(PRICE_COLS)] <= 0).any(axis=1), "non-positive price", symbol, report,
                 work["trade_date"])
    work = _mark(work, work["high"] < work["low"], "high < low", symbol, report, work["trade_date"])
    outside = (work[["open", "close"]].max(axis=1) > work["high"]) | \
              (work[["open", "close"]].min(axis=1) < work["low"])
    work = _mark(work, outside, "open/close outside high-low", symbol, report, work["trade_date"])
    work = _mark(work, work["vol"] < 0, "negative volume", symbol, report, work["trade_date"])
    # duplicates last: a bad first copy of a date must not push out a good second one
    dup = work["trade_date"].duplicated(keep="first")
    work = _mark(work, dup, "duplicate date", symbol, report, work["trade_date"])

    report.rows_out = len(work)
    if report.rows_in and not len(work):
        first = report.dropped[0]
        where = f"row {first.row}" if first.row is not None else f"date {first.trade_date}"
        raise HeqisError(f"{origin}: no usable rows for {symbol} ({report.rows_in} dropped; "
                         f"{where}: {first.reason})", hint="check the file's columns and values")
    work["trade_date"] = work["trade_date"].astype("datetime64[ns]")
    return work.drop(columns=["_row"], errors="ignore").reset_index(drop=True), report

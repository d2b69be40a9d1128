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

from heqis.data.bar_checks import REASONS, clean_bars
from heqis.errors import HeqisError

PRICE_COLS = ("open", "high", "low", "close")
__all__ = ["REASONS", "CleaningReport", "Dropped", "clean_daily"]


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


def _parse_dates(raw: pd.Series) -> pd.Series:
    """``pd.to_datetime(format="mixed", errors="coerce")``; a column all in one of the two formats sources
    use (2024-01-31, 20240131) is parsed with that format, many times faster and to the same dates."""
    for pattern, fmt in ((r"\d{4}-\d{2}-\d{2}", "%Y-%m-%d"), (r"\d{8}", "%Y%m%d")):
        if len(raw) and bool(raw.str.fullmatch(pattern).all()):
            return pd.to_datetime(raw, format=fmt, errors="coerce")
    return pd.to_datetime(raw, format="mixed", errors="coerce")


def clean_daily(df: pd.DataFrame, symbol: str, origin: str) -> tuple[pd.DataFrame, CleaningReport]:
    """Sorted, de-duplicated, valid bars (``trade_date`` as datetime64[ns]) and what was dropped.

    Parsing happens here (text dates, numbers); the rules themselves are ``clean_bars``, the same
    function the gateway applies to live bars. Raises a HeqisError naming ``origin`` when no usable
    row is left.
    """
    report = CleaningReport(rows_in=len(df))
    if df.empty:
        return df.assign(trade_date=pd.Series(dtype="datetime64[ns]")), report
    work = df.reset_index(drop=True)
    raw_dates = work["trade_date"].astype(str)
    parsed = _parse_dates(raw_dates)
    numbers = {c: pd.to_numeric(work[c], errors="coerce").to_numpy(dtype=np.float64) if c in work
               else np.full(len(work), np.nan) for c in (*PRICE_COLS, "vol")}
    dates = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)   # NaT -> NO_DATE
    result = clean_bars(dates, numbers["open"], numbers["high"], numbers["low"], numbers["close"], numbers["vol"])
    rows = work["_row"].to_numpy() if "_row" in work else None
    for i, reason in result.dropped:
        day = "" if pd.isna(parsed.iloc[i]) else str(parsed.iloc[i])[:10]
        if reason == "bad date":
            day = raw_dates.iloc[i][:10]
        report.dropped.append(Dropped(symbol, None if rows is None else int(rows[i]), day, reason))
    if result.reordered:
        report.reordered[symbol] = result.reordered
    out = work.iloc[result.keep].copy()
    out["trade_date"] = parsed.iloc[result.keep].to_numpy(dtype="datetime64[ns]")
    for c in (*PRICE_COLS, "vol"):
        if c in out:
            out[c] = numbers[c][result.keep]
    report.rows_out = len(out)
    if report.rows_in and not len(out):
        first = report.dropped[0]
        where = f"row {first.row}" if first.row is not None else f"date {first.trade_date}"
        raise HeqisError(f"{origin}: no usable rows for {symbol} ({report.rows_in} dropped; "
                         f"{where}: {first.reason})", hint="check the file's columns and values")
    return out.drop(columns=["_row"], errors="ignore").reset_index(drop=True), report

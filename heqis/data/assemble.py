"""From Tushare tables to stored bars: join, flag ST days, forward-adjust.

Raw prices are kept (limits, lots and fees apply to them); the adjusted OHLC are recomputed from
the raw prices and the *latest* adjustment factor every time a symbol is written, so a new
``adj_factor`` (a dividend, a bonus issue) re-bases the whole history, exactly like Tushare's qfq.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from heqis.data.schema import ADJUSTED_PRICES, RAW_COLUMNS, RAW_PRICES, conform_columns, to_dates
from heqis.features.adjust import filled_factors, forward_adjust_prices


@dataclass
class RawPieces:
    """Tushare tables of one instrument over one date span (``None``: not applicable to its kind)."""

    daily: pd.DataFrame
    adj: pd.DataFrame | None = None
    limit: pd.DataFrame | None = None
    basic: pd.DataFrame | None = None
    names: pd.DataFrame | None = None


def _by_date(table: pd.DataFrame | None, column: str, source: str | None = None) -> pd.Series:
    if table is None or table.empty or (source or column) not in table:
        return pd.Series(dtype=np.float64)
    s = pd.Series(pd.to_numeric(table[source or column], errors="coerce").to_numpy(),
                  index=to_dates(table["trade_date"]).to_numpy())
    return s[~s.index.duplicated(keep="first")].sort_index()


def st_mask(dates: pd.Series, names: pd.DataFrame | None) -> np.ndarray:
    """True on the days a name with 'ST' (ST, *ST, S*ST) was in force, from ``namechange``."""
    out = np.zeros(len(dates), dtype=bool)
    if names is None or names.empty:
        return out
    d = to_dates(dates).to_numpy()
    for _, row in names.iterrows():
        if "ST" not in str(row["name"]).upper():
            continue
        start = to_dates([row["start_date"]]).iloc[0]
        end = to_dates([row["end_date"]]).iloc[0] if pd.notna(row.get("end_date")) and row["end_date"] \
            else pd.Timestamp.max
        out |= (d >= start.to_datetime64()) & (d <= np.datetime64(end))
    return out


def raw_bars(pieces: RawPieces) -> pd.DataFrame:
    """The raw columns of the store (RAW_COLUMNS) from cleaned ``daily`` plus the side tables."""
    daily = pieces.daily
    dates = to_dates(daily["trade_date"])
    out = pd.DataFrame({"trade_date": dates.to_numpy()})
    for raw, col in zip(RAW_PRICES, ("open", "high", "low", "close"), strict=True):
        out[raw] = pd.to_numeric(daily[col]).to_numpy(dtype=np.float64)
    out["pre_close_raw"] = pd.to_numeric(daily["pre_close"]).to_numpy(dtype=np.float64) \
        if "pre_close" in daily else out["close_raw"].shift(1).to_numpy()
    out["vol"] = pd.to_numeric(daily["vol"]).to_numpy(dtype=np.float64)
    out["amount"] = pd.to_numeric(daily["amount"]).to_numpy(dtype=np.float64) \
        if "amount" in daily else np.nan
    pre = out["pre_close_raw"]
    out["pct_chg"] = pd.to_numeric(daily["pct_chg"]).to_numpy(dtype=np.float64) if "pct_chg" in daily \
        else ((out["close_raw"] - pre) / pre * 100.0).to_numpy()
    idx = out["trade_date"]
    out["adj_factor"] = _by_date(pieces.adj, "adj_factor").reindex(idx).to_numpy() \
        if pieces.adj is not None else 1.0
    out["up_limit"] = _by_date(pieces.limit, "up_limit").reindex(idx).to_numpy()
    out["down_limit"] = _by_date(pieces.limit, "down_limit").reindex(idx).to_numpy()
    out["turnover"] = _by_date(pieces.basic, "turnover", "turnover_rate").reindex(idx).to_numpy()
    out["is_st"] = st_mask(idx, pieces.names)
    return out.loc[:, list(RAW_COLUMNS)]


def merge_raw(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Stored raw rows plus newly fetched ones; a date fetched again takes the new values."""
    if old is None or old.empty:
        merged = new
    else:
        merged = pd.concat([old.loc[:, list(RAW_COLUMNS)], new], ignore_index=True)
        merged = merged.drop_duplicates("trade_date", keep="last")
    return merged.sort_values("trade_date", kind="stable").reset_index(drop=True)


def forward_adjust(raw: pd.DataFrame) -> pd.DataFrame:
    """Stored bars: adjusted OHLC = raw × adj_factor / latest adj_factor (heqis.features.adjust, which the
    gateway's live sources call too)."""
    factor = filled_factors(raw["adj_factor"].to_numpy(dtype=np.float64))
    adjusted = forward_adjust_prices(np.column_stack([raw[c].to_numpy(dtype=np.float64) for c in RAW_PRICES]),
                                     factor)
    columns: dict[str, pd.Series | np.ndarray] = {c: raw[c] for c in raw.columns}
    columns["adj_factor"] = factor
    for j, adj_col in enumerate(ADJUSTED_PRICES):
        columns[adj_col] = adjusted[:, j]
    return conform_columns(columns)

"""From Tushare tables to stored bars: join, flag ST days, forward-adjust.

Raw prices are kept (limits, lots and fees apply to them); the adjusted OHLC are recomputed from
the raw prices and the *latest* adjustment factor every time a symbol is written, so a new
``adj_factor`` (a dividend, a bonus issue) re-bases the whole history, exactly like Tushare's qfq.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from heqis.data.schema import ADJUSTED_PRICES, RAW_COLUMNS, RAW_PRICES, _date_values, conform_columns, to_dates
from heqis.features.adjust import filled_factors, forward_adjust_prices


@dataclass
class RawPieces:
    """Tushare tables of one instrument over one date span (``None``: not applicable to its kind)."""

    daily: pd.DataFrame
    adj: pd.DataFrame | None = None
    limit: pd.DataFrame | None = None
    basic: pd.DataFrame | None = None
    names: pd.DataFrame | None = None


def _day_numbers(values: object) -> np.ndarray | None:
    """Dates as YYYYMMDD integers: text in Tushare's form ('20240131') read as numbers, datetime64 values
    from their calendar fields; None for anything else (the caller then parses it as dates)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        day = arr.astype("datetime64[D]")
        year, month = day.astype("datetime64[Y]"), day.astype("datetime64[M]")
        return ((year.astype(np.int64) + 1970) * 10000 + ((month - year).astype(np.int64) + 1) * 100
                + (day - month).astype(np.int64) + 1)
    try:
        text = arr.astype("U8")
    except (TypeError, ValueError):
        return None
    if not len(text) or not (np.char.str_len(text) == 8).all() or not np.char.isdigit(text).all() or \
            not np.array_equal(text, arr.astype(str)):
        return None
    return text.astype(np.int64)


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
    st = names[names["name"].astype(str).str.upper().str.contains("ST", regex=False).to_numpy()]
    if st.empty:
        return out
    d = to_dates(dates).to_numpy()
    starts = to_dates(st["start_date"]).to_numpy()
    ends = [to_dates([e]).to_numpy()[0] if pd.notna(e) and e else np.datetime64(pd.Timestamp.max)
            for e in st["end_date"]]
    for start, end in zip(starts, ends, strict=True):
        out |= (d >= start) & (d <= end)
    return out


def _numbers(daily: pd.DataFrame, column: str) -> np.ndarray:
    """``pd.to_numeric(daily[column])`` as float64, without the call when the column is float64 already."""
    s = daily[column]
    return s.to_numpy(dtype=np.float64, copy=True) if s.dtype == np.float64 \
        else pd.to_numeric(s).to_numpy(dtype=np.float64)


def _side(table: pd.DataFrame | None, column: str, idx: pd.Series, source: str | None = None) -> np.ndarray:
    """``table``'s ``source`` column on the days ``idx`` (NaN where it has no row; the first row of a day
    that appears twice). Tushare's text dates are matched as numbers, without parsing them as dates."""
    if table is None or table.empty or (source or column) not in table:
        return np.full(len(idx), np.nan)      # what reindexing an empty series gives
    keys, days = _day_numbers(table["trade_date"].to_numpy()), _day_numbers(idx.to_numpy())
    if keys is None or days is None:
        return _by_date(table, column, source).reindex(idx).to_numpy()
    values = pd.to_numeric(table[source or column], errors="coerce").to_numpy(dtype=np.float64)
    known, first = np.unique(keys, return_index=True)
    at = np.minimum(np.searchsorted(known, days), len(known) - 1)
    return np.where(known[at] == days, values[first[at]], np.nan)


def raw_bars(pieces: RawPieces) -> pd.DataFrame:
    """The raw columns of the store (RAW_COLUMNS) from cleaned ``daily`` plus the side tables."""
    daily = pieces.daily
    dates = pd.Series(_date_values(daily["trade_date"]))
    out: dict[str, np.ndarray | float] = {"trade_date": dates.to_numpy()}
    for raw, col in zip(RAW_PRICES, ("open", "high", "low", "close"), strict=True):
        out[raw] = _numbers(daily, col)
    close = out["close_raw"]
    pre = _numbers(daily, "pre_close") if "pre_close" in daily \
        else np.concatenate(([np.nan], close[:-1]))  # type: ignore[index]
    out["pre_close_raw"] = pre
    out["vol"] = _numbers(daily, "vol")
    out["amount"] = _numbers(daily, "amount") if "amount" in daily else np.full(len(dates), np.nan)
    out["pct_chg"] = _numbers(daily, "pct_chg") if "pct_chg" in daily else (close - pre) / pre * 100.0
    out["adj_factor"] = _side(pieces.adj, "adj_factor", dates) if pieces.adj is not None \
        else _numbers(daily, "adj_factor") if "adj_factor" in daily else np.ones(len(dates))   # a CSV's own
    out["up_limit"] = _side(pieces.limit, "up_limit", dates)
    out["down_limit"] = _side(pieces.limit, "down_limit", dates)
    out["turnover"] = _side(pieces.basic, "turnover", dates, "turnover_rate")
    out["is_st"] = st_mask(dates, pieces.names)
    return pd.DataFrame(out).loc[:, list(RAW_COLUMNS)]


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

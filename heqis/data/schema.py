"""The stored bar schema (docs/architecture.md, "Data store"): column names, dtypes, the check every writer passes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from heqis.features.columns import FEATURE_COLUMNS

ADJUSTED_PRICES = ("open", "high", "low", "close")
RAW_PRICES = ("open_raw", "high_raw", "low_raw", "close_raw")

# Columns that come from the source (everything needed to rebuild the adjusted prices).
RAW_COLUMNS: tuple[str, ...] = (
    "trade_date",
    *RAW_PRICES,
    "pre_close_raw",
    "vol",          # lots (100 shares), as Tushare reports it
    "amount",       # thousand CNY
    "pct_chg",      # Tushare's, percent on raw prices against its pre_close
    "adj_factor",
    "up_limit",     # raw price; NaN when unknown
    "down_limit",
    "turnover",     # percent of free float; NaN when unknown (indices, funds)
    "is_st",
)
BAR_COLUMNS: tuple[str, ...] = (RAW_COLUMNS[0], *ADJUSTED_PRICES, *RAW_COLUMNS[1:])
# ``turnover`` is both a bar column and a feature: it is stored once, in the bar columns. The other
# feature columns live in the store's feature cache (features/<ts_code>.parquet), never in bars/.
DERIVED_COLUMNS: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c not in BAR_COLUMNS)
FEATURE_CACHE_COLUMNS: tuple[str, ...] = ("trade_date", *DERIVED_COLUMNS)

KINDS = ("stock", "index", "fund")
BOARDS = ("main", "chinext", "star", "bse")
UNIVERSE_COLUMNS = ("ts_code", "name", "kind", "board", "list_date", "list_status")


def to_dates(values: object) -> pd.Series:
    """Dates in the store's dtype: datetime64[ns], midnight, naive."""
    s = pd.to_datetime(pd.Series(values), format="mixed") if not isinstance(values, pd.Series) \
        else pd.to_datetime(values, format="mixed")
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_localize(None)
    return s.dt.normalize().astype("datetime64[ns]")


def _date_values(values: pd.Series) -> np.ndarray:
    """``to_dates(values)`` as an array, without the round trip when the dates are stored-ready."""
    arr = values.to_numpy()
    if arr.dtype == np.dtype("datetime64[ns]"):
        ints = arr.view(np.int64)
        nat = ints == np.iinfo(np.int64).min
        if not nat.any() and not (ints % 86_400_000_000_000).any():
            return arr
    return to_dates(values).to_numpy()


def conform_bars(frame: pd.DataFrame, cols: tuple[str, ...] = BAR_COLUMNS) -> pd.DataFrame:
    """Order and type the columns exactly as stored; raises KeyError naming a missing column."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise KeyError(f"bars lack column(s): {', '.join(missing)}")
    return conform_columns({c: frame[c] for c in cols}, cols)


def conform_columns(columns: Mapping[str, pd.Series | np.ndarray], cols: tuple[str, ...] = BAR_COLUMNS) -> pd.DataFrame:
    """``conform_bars`` of a frame given as one array or Series per column (``cols`` must all be there).

    One new frame from one array per column: the per-column ``astype`` and ``__setitem__`` this
    replaces cost more than the rest of a symbol's import.
    """
    data: dict[str, np.ndarray] = {}
    for c in cols:
        v = columns[c]
        s = v if isinstance(v, pd.Series) else pd.Series(v)
        if c == "trade_date":
            data[c] = _date_values(s)
        elif c == "is_st":
            data[c] = s.to_numpy().copy() if s.dtype == np.bool_ else s.astype(bool).to_numpy()
        else:
            data[c] = s.to_numpy(dtype=np.float64, copy=True) if s.dtype == np.float64 \
                else s.astype(np.float64).to_numpy()
    return pd.DataFrame(data)

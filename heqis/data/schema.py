"""The stored bar schema (docs/architecture.md, "Data store"): column names, dtypes, the check every writer passes."""

from __future__ import annotations

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


def conform_bars(frame: pd.DataFrame, cols: tuple[str, ...] = BAR_COLUMNS) -> pd.DataFrame:
    """Order and type the columns exactly as stored; raises KeyError naming a missing column."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise KeyError(f"bars lack column(s): {', '.join(missing)}")
    out = frame.loc[:, list(cols)].copy()
    out["trade_date"] = to_dates(out["trade_date"]).to_numpy()
    for c in cols:
        if c == "trade_date":
            continue
        out[c] = out[c].astype(bool) if c == "is_st" else out[c].astype(np.float64)
    return out.reset_index(drop=True)

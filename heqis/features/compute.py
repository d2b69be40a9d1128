"""Feature columns from stored bars: the single function training, backtest and the brain all call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from heqis.features import indicators as ind
from heqis.features.columns import (
    EMA_PERIODS,
    FEATURE_COLUMNS,
    KDJ_PARAMS,
    MA_PERIODS,
    MACD_PARAMS,
    RSI_PERIOD,
)


def feature_arrays(high: np.ndarray, low: np.ndarray, close: np.ndarray, vol: np.ndarray,
                   turnover: np.ndarray) -> dict[str, np.ndarray]:
    """Every feature column, by name, from adjusted high/low/close, volume (lots) and turnover (%)."""
    high = np.ascontiguousarray(high, dtype=np.float64)
    low = np.ascontiguousarray(low, dtype=np.float64)
    close = np.ascontiguousarray(close, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for p in MA_PERIODS:
        out[f"ma{p}"] = ind.sma(close, p)
    for p in EMA_PERIODS:
        out[f"ema{p}"] = ind.ema(close, p)
    out["macd"], out["macd_signal"], out["macd_hist"] = ind.macd(close, *MACD_PARAMS)
    out["k"], out["d"], out["j"] = ind.kdj(high, low, close, *KDJ_PARAMS)
    out["rsi14"] = ind.rsi(close, RSI_PERIOD)
    out["ret1"] = ind.simple_return(close)
    out["turnover"] = np.asarray(turnover, dtype=np.float64)
    out["log_vol"] = np.log1p(np.asarray(vol, dtype=np.float64))
    return {name: out[name] for name in FEATURE_COLUMNS}


if TYPE_CHECKING:
    import pandas as pd


def add_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Return ``bars`` with the feature columns (DESIGN.md §4) appended or refreshed."""
    import pandas as pd  # research only: the brain uses feature_arrays
    feats = feature_arrays(bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy(),
                           bars["vol"].to_numpy(), bars["turnover"].to_numpy())
    derived = {k: v for k, v in feats.items() if k != "turnover"}  # turnover is a bar column already
    base = bars.drop(columns=[c for c in derived if c in bars.columns])
    return pd.concat([base, pd.DataFrame(derived, index=base.index)], axis=1)

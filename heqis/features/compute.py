"""The indicator columns of one symbol: ``feature_arrays`` (numpy only, the edge runs it).

``model_inputs`` (heqis.features.inputs) is the entry point research and the brain call; the
store's feature cache and ``heqis check lookahead`` use ``heqis.features.frames.add_features``,
which runs the same ``feature_arrays`` over a bars DataFrame.
"""

from __future__ import annotations

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

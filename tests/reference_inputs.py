"""The per-column numpy implementation of ``model_inputs`` that the fused kernel replaced: the reference.

Each indicator called on its own over every bar, forward adjustment in numpy, 24 columns stacked and
the last rows kept (what ``heqis.features.inputs.model_inputs`` did before it became one compiled
call). ``tests/test_indicators.py`` and ``benchmarks/brain_preprocess.py`` check the kernel against it.
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
    MODEL_INPUTS,
    RSI_PERIOD,
)


def reference_filled_factors(factor: np.ndarray) -> np.ndarray:
    f = np.asarray(factor, dtype=np.float64).copy()
    if not len(f):
        return f
    ok = np.isfinite(f) & (f > 0)
    if ok.all():
        return f
    if not ok.any():
        return np.ones_like(f)
    idx = np.where(ok, np.arange(len(f)), 0)
    np.maximum.accumulate(idx, out=idx)
    f = f[idx]
    first = int(np.argmax(ok))
    f[:first] = f[first]
    return f


def reference_forward_adjust(raw: np.ndarray, factor: np.ndarray) -> np.ndarray:
    f = reference_filled_factors(factor)
    prices = np.asarray(raw, dtype=np.float64)
    if not len(f) or f.min() == f.max():
        return prices.copy()
    return prices * (f / f[-1]).reshape(-1, *([1] * (prices.ndim - 1)))


def reference_feature_arrays(high: np.ndarray, low: np.ndarray, close: np.ndarray, vol: np.ndarray,
                             turnover: np.ndarray) -> dict[str, np.ndarray]:
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


def reference_model_inputs(bars: np.ndarray, last_n: int | None = None) -> np.ndarray:
    b = np.asarray(bars, dtype=np.float32).astype(np.float64)
    n = len(b)
    m = n if last_n is None else min(int(last_n), n)
    prices = reference_forward_adjust(b[:, :4], b[:, 6])
    feats = reference_feature_arrays(prices[:, 1], prices[:, 2], prices[:, 3], b[:, 4], b[:, 5])
    columns = {"open": prices[:, 0], "high": prices[:, 1], "low": prices[:, 2], "close": prices[:, 3], **feats}
    out = np.empty((m, len(MODEL_INPUTS)))
    for j, name in enumerate(MODEL_INPUTS):
        out[:, j] = columns[name][n - m:]
    t = MODEL_INPUTS.index("turnover")
    np.nan_to_num(out[:, t], copy=False, nan=0.0)
    return out

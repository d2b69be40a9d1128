"""The model-input columns of one symbol's bars in one compiled call (numpy + numba; the edge runs it).

``model_inputs`` (heqis.features.inputs) is the entry point research and the brain call
(docs/architecture.md, "One code path"); this module is its plan: which quantity the fused kernel
(``heqis.features.indicators.model_inputs_into``) writes to which column, with which parameters.
"""

from __future__ import annotations

import numpy as np

from heqis.features import indicators as ind
from heqis.features.columns import (
    EMA_PERIODS,
    KDJ_PARAMS,
    MA_PERIODS,
    MACD_PARAMS,
    MODEL_INPUTS,
    RSI_PERIOD,
)

# The order in which the kernel produces its quantities (its loops follow this order).
KERNEL_ORDER: tuple[str, ...] = (
    "open", "high", "low", "close",
    *(f"ma{p}" for p in MA_PERIODS),
    *(f"ema{p}" for p in EMA_PERIODS),
    "macd", "macd_signal", "macd_hist", "k", "d", "j", f"rsi{RSI_PERIOD}", "ret1", "turnover", "log_vol",
)
if sorted(KERNEL_ORDER) != sorted(MODEL_INPUTS):   # a column added to MODEL_INPUTS needs its code here
    raise ImportError(f"the model-input kernel computes {sorted(KERNEL_ORDER)}, MODEL_INPUTS is {sorted(MODEL_INPUTS)}")

_COLS = np.array([MODEL_INPUTS.index(c) for c in KERNEL_ORDER], dtype=np.int64)
_MA = np.array(MA_PERIODS, dtype=np.int64)
_EMA = np.array(EMA_PERIODS, dtype=np.int64)
_MACD = np.array(MACD_PARAMS, dtype=np.int64)
_KDJ = np.array(KDJ_PARAMS, dtype=np.int64)


def compute_inputs(bars32: np.ndarray, rows: int) -> np.ndarray:
    """[rows, F] float64 model inputs (MODEL_INPUTS order) for the last ``rows`` of C-contiguous
    float32 bars [n, 7] (``heqis.features.inputs.BAR_INPUTS`` order)."""
    out = np.empty((rows, len(MODEL_INPUTS)))
    ind.model_inputs_into(bars32, out, _COLS, _MA, _EMA, _MACD, _KDJ, RSI_PERIOD)
    return out

"""``model_inputs``: the one function from bars to model inputs (numpy only).

Training windows, backtest predictions, the export's parity windows and the live brain all call it
(docs/architecture.md, "One code path"): research once per symbol over its whole history, the
brain with ``last_n`` = the window over the bars a request carries. The indicators run over every
bar given (their recursions need the history); only the last ``last_n`` rows are assembled.

Bars come as ``[n, 6]`` in ``BAR_INPUTS`` order: forward-adjusted open, high, low, close, volume in
lots and turnover in percent (NaN where unknown: indices and funds, which count as 0).
"""

from __future__ import annotations

import numpy as np

from heqis.errors import HeqisError
from heqis.features.columns import MODEL_INPUTS
from heqis.features.compute import feature_arrays

BAR_INPUTS: tuple[str, ...] = ("open", "high", "low", "close", "vol", "turnover")


def model_inputs(bars: np.ndarray, last_n: int | None = None) -> np.ndarray:
    """[m, F] float64 model inputs (MODEL_INPUTS order, not yet scale-free) for the last ``m`` bars.

    ``m`` is ``last_n`` (or every bar); warm-up rows hold NaN where an indicator has no value yet."""
    b = np.asarray(bars, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != len(BAR_INPUTS):
        raise HeqisError(f"bars of shape {b.shape} are not [n, {len(BAR_INPUTS)}] ({', '.join(BAR_INPUTS)})")
    n = len(b)
    m = n if last_n is None else min(int(last_n), n)
    feats = feature_arrays(b[:, 1], b[:, 2], b[:, 3], b[:, 4], b[:, 5])
    columns = {"open": b[:, 0], "high": b[:, 1], "low": b[:, 2], "close": b[:, 3], **feats}
    out = np.empty((m, len(MODEL_INPUTS)))
    for j, name in enumerate(MODEL_INPUTS):
        out[:, j] = columns[name][n - m:]
    t = MODEL_INPUTS.index("turnover")
    np.nan_to_num(out[:, t], copy=False, nan=0.0)
    return out

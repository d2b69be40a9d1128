"""``model_inputs``: the one function from bars to model inputs (numpy only).

Training windows, backtest predictions, the export's parity windows and the live brain all call it
(docs/architecture.md, "One code path"): research once per symbol over its whole history, the
brain with ``last_n`` = the window over the bars a request carries. The indicators run over every
bar given (their recursions need the history); only the last ``last_n`` rows are assembled.

Bars come as ``[n, 7]`` in ``BAR_INPUTS`` order: raw (unadjusted) open, high, low, close, volume in
lots, turnover in percent (NaN where unknown: indices and funds, which count as 0) and the
adjustment factor. Two choices make research and live inputs equal, not merely close:

* the values are taken at float32 precision first — the precision of the wire — so the brain and
  research start from the very same numbers (float32 rounding of a low-volatility ETF's prices
  moves KDJ's J by ~1e-5 when only one side rounds);
* prices are forward-adjusted here, with the latest factor among the bars given: research adjusts
  a whole history, a live request its last few hundred bars, and after a dividend the two differ
  by a constant factor only, which the scale-free inputs cancel.
"""

from __future__ import annotations

import numpy as np

from heqis.errors import HeqisError
from heqis.features.adjust import forward_adjust_prices
from heqis.features.columns import MODEL_INPUTS
from heqis.features.compute import feature_arrays

BAR_INPUTS: tuple[str, ...] = ("open_raw", "high_raw", "low_raw", "close_raw", "vol", "turnover", "adj_factor")


def model_inputs(bars: np.ndarray, last_n: int | None = None) -> np.ndarray:
    """[m, F] float64 model inputs (MODEL_INPUTS order, not yet scale-free) for the last ``m`` bars.

    ``m`` is ``last_n`` (or every bar); warm-up rows hold NaN where an indicator has no value yet."""
    b = np.asarray(bars, dtype=np.float32).astype(np.float64)     # the wire's precision, on both sides
    if b.ndim != 2 or b.shape[1] != len(BAR_INPUTS):
        raise HeqisError(f"bars of shape {b.shape} are not [n, {len(BAR_INPUTS)}] ({', '.join(BAR_INPUTS)})")
    n = len(b)
    m = n if last_n is None else min(int(last_n), n)
    prices = forward_adjust_prices(b[:, :4], b[:, 6])
    feats = feature_arrays(prices[:, 1], prices[:, 2], prices[:, 3], b[:, 4], b[:, 5])
    columns = {"open": prices[:, 0], "high": prices[:, 1], "low": prices[:, 2], "close": prices[:, 3], **feats}
    out = np.empty((m, len(MODEL_INPUTS)))
    for j, name in enumerate(MODEL_INPUTS):
        out[:, j] = columns[name][n - m:]
    t = MODEL_INPUTS.index("turnover")
    np.nan_to_num(out[:, t], copy=False, nan=0.0)
    return out

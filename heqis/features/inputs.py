"""``model_inputs``: the one function from bars to model inputs (numpy only).

Training windows, backtest predictions, the export's parity windows and the live brain all call it
(docs/architecture.md, "One code path"): research once per symbol over its whole history, the
brain with ``last_n`` = the window over the bars a request carries. The indicators run over every
bar given (their recursions need the history); only the last ``last_n`` rows are written.

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
from heqis.features.compute import compute_inputs

BAR_INPUTS: tuple[str, ...] = ("open_raw", "high_raw", "low_raw", "close_raw", "vol", "turnover", "adj_factor")


def model_inputs(bars: np.ndarray, last_n: int | None = None) -> np.ndarray:
    """[m, F] float64 model inputs (MODEL_INPUTS order, not yet scale-free) for the last ``m`` bars.

    ``m`` is ``last_n`` (or every bar); warm-up rows hold NaN where an indicator has no value yet.
    One compiled call (heqis.features.compute): the recursions run over every bar, the moving
    averages over their own bars only, and only the last ``m`` rows are written — no per-column
    Python work (benchmarks/brain_preprocess.py)."""
    b = np.ascontiguousarray(bars, dtype=np.float32)     # the wire's precision, on both sides
    if not b.flags.writeable:
        # bars decoded straight from a message buffer are read-only, and numba types a read-only array
        # apart: the brain's first live request compiled a second kernel (3 s, more on a loaded box —
        # past the gateway's dead-after, so on a cold cache the brain was restarted before it ever
        # answered, again and again). A 560×7 copy costs about a microsecond.
        b = b.copy()
    if b.ndim != 2 or b.shape[1] != len(BAR_INPUTS):
        raise HeqisError(f"bars of shape {b.shape} are not [n, {len(BAR_INPUTS)}] ({', '.join(BAR_INPUTS)})")
    n = len(b)
    m = n if last_n is None else max(0, min(int(last_n), n))
    return compute_inputs(b, m)

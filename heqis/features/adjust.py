"""Forward adjustment on numpy arrays: shared by the store, ``model_inputs`` and the gateway.

Adjusted price = raw price × adj_factor / the *latest* adj_factor, exactly like Tushare's qfq: a
new factor (a dividend, a bonus issue) re-bases the whole history. Unknown factors are carried
forward (then backward); a history with none at all counts as unadjusted (factor 1).
"""

from __future__ import annotations

import numpy as np


def filled_factors(factor: np.ndarray) -> np.ndarray:
    """``factor`` with NaN carried forward, then backward; all-NaN becomes 1."""
    f = np.asarray(factor, dtype=np.float64).copy()
    if not len(f):
        return f
    ok = np.isfinite(f) & (f > 0)
    if ok.all():                      # the common case (a live request): nothing to fill
        return f
    if not ok.any():
        return np.ones_like(f)
    idx = np.where(ok, np.arange(len(f)), 0)
    np.maximum.accumulate(idx, out=idx)
    f = f[idx]
    first = int(np.argmax(ok))
    f[:first] = f[first]
    return f


def forward_adjust_prices(raw: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """[n, k] raw prices × factor / latest factor (factors filled first)."""
    f = filled_factors(factor)
    prices = np.asarray(raw, dtype=np.float64)
    if not len(f) or f.min() == f.max():    # no corporate action inside: nothing to re-base
        return prices.copy()
    return prices * (f / f[-1]).reshape(-1, *([1] * (prices.ndim - 1)))

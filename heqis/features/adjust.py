"""Forward adjustment on numpy arrays: shared by the store and ``model_inputs``.

Adjusted price = raw price × adj_factor / the *latest* adj_factor, exactly like Tushare's qfq: a
new factor (a dividend, a bonus issue) re-bases the whole history. Unknown factors are carried
forward (then backward); a history with none at all counts as unadjusted (factor 1). The rules are
the compiled ``filled_factors`` / ``rebase_ratios`` that ``model_inputs``' kernel runs too
(heqis.features.indicators): one implementation for the store and the model inputs.
"""

from __future__ import annotations

import numpy as np

from heqis.features import indicators as ind


def filled_factors(factor: np.ndarray) -> np.ndarray:
    """``factor`` with NaN (and inf, ≤ 0) carried forward, then backward; all-NaN becomes 1."""
    return ind.filled_factors(np.ascontiguousarray(factor, dtype=np.float64))


def forward_adjust_prices(raw: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """[n, k] raw prices × factor / latest factor (factors filled first)."""
    ratio = ind.rebase_ratios(filled_factors(factor))
    prices = np.asarray(raw, dtype=np.float64)
    if not len(ratio):                      # no corporate action inside: nothing to re-base
        return prices.copy()
    return prices * ratio.reshape(-1, *([1] * (prices.ndim - 1)))

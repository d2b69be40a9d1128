"""Technical indicators as pure functions on float64 numpy arrays, compiled with numba.

MA, EMA, MACD and RSI reproduce TA-Lib's algorithms step for step (same seeds, same running sums,
same order of floating-point operations), so they agree with TA-Lib to ~1e-12, and put NaN exactly
where TA-Lib does. Two TA-Lib details that matter:

* EMA is seeded with the SMA of its first ``period`` values (k = 2 / (period + 1)).
* In MACD the fast EMA is *not* the stand-alone EMA: TA-Lib seeds it with the SMA of the ``fast``
  values that end where the slow EMA's seed ends, so both start on the same bar.

KDJ follows the common A-share definition (TA-Lib has no KDJ): RSV over 9 bars, K and D smoothed
with weight 1/3 and seeded at 50, J = 3K - 2D. Inputs must be NaN-free (cleaned bars).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_TA_EPS = 1e-8  # TA-Lib's TA_IS_ZERO threshold


@njit(cache=True)
def sma(x: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average; TA-Lib's running-sum algorithm (first value at index period-1)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if period < 1 or n < period:
        return out
    total = 0.0
    for i in range(period - 1):
        total += x[i]
    trailing = 0
    for i in range(period - 1, n):
        total += x[i]
        value = total
        total -= x[trailing]
        trailing += 1
        out[i] = value / period
    return out


@njit(cache=True)
def _ema_from(x: np.ndarray, period: int, seed_start: int, first_out: int, out: np.ndarray) -> None:
    """EMA seeded with mean(x[seed_start:seed_start+period]), advanced to ``first_out`` and beyond."""
    k = 2.0 / (period + 1)
    total = 0.0
    for i in range(seed_start, seed_start + period):
        total += x[i]
    prev = total / period
    for i in range(seed_start + period, first_out + 1):
        prev = ((x[i] - prev) * k) + prev
    out[first_out] = prev
    for i in range(first_out + 1, x.shape[0]):
        prev = ((x[i] - prev) * k) + prev
        out[i] = prev


@njit(cache=True)
def ema(x: np.ndarray, period: int) -> np.ndarray:
    """Exponential moving average, seeded with an SMA like TA-Lib (first value at index period-1)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if period < 1 or n < period:
        return out
    _ema_from(x, period, 0, period - 1, out)
    return out


@njit(cache=True)
def macd(x: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9):
    """MACD line, signal line and histogram exactly as TA-Lib's MACD (first value at slow+signal-2)."""
    n = x.shape[0]
    line = np.full(n, np.nan)
    sig = np.full(n, np.nan)
    hist = np.full(n, np.nan)
    if fast > slow:
        fast, slow = slow, fast
    start = slow - 1  # first bar where both EMAs exist
    first = start + signal - 1
    if n <= first:
        return line, sig, hist
    slow_ema = np.full(n, np.nan)
    fast_ema = np.full(n, np.nan)
    _ema_from(x, slow, 0, start, slow_ema)
    _ema_from(x, fast, start - fast + 1, start, fast_ema)  # TA-Lib's aligned seed
    raw = np.full(n, np.nan)
    for i in range(start, n):
        raw[i] = fast_ema[i] - slow_ema[i]
    _ema_from(raw, signal, start, first, sig)
    for i in range(first, n):
        line[i] = raw[i]
        hist[i] = raw[i] - sig[i]
    sig[start:first] = np.nan
    return line, sig, hist


@njit(cache=True)
def rsi(x: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's RSI as TA-Lib computes it (first value at index ``period``)."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if period < 2 or n <= period:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(1, period + 1):
        d = x[i] - x[i - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    loss /= period
    gain /= period
    total = gain + loss
    out[period] = 100.0 * (gain / total) if not (-_TA_EPS < total < _TA_EPS) else 0.0
    for i in range(period + 1, n):
        d = x[i] - x[i - 1]
        loss *= period - 1
        gain *= period - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        loss /= period
        gain /= period
        total = gain + loss
        out[i] = 100.0 * (gain / total) if not (-_TA_EPS < total < _TA_EPS) else 0.0
    return out


@njit(cache=True)
def kdj(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 9, m1: int = 3, m2: int = 3):
    """A-share KDJ: RSV(n), K = ((m1-1)K' + RSV)/m1, D = ((m2-1)D' + K)/m2, both seeded 50; J = 3K-2D.

    The first value is on the first full n-bar window. A flat window (highest == lowest) has no
    position inside its range: RSV is taken as 50, the neutral value.
    """
    size = close.shape[0]
    k_out = np.full(size, np.nan)
    d_out = np.full(size, np.nan)
    j_out = np.full(size, np.nan)
    k_prev = 50.0
    d_prev = 50.0
    for i in range(n - 1, size):
        hh = high[i]
        ll = low[i]
        for t in range(i - n + 1, i):
            if high[t] > hh:
                hh = high[t]
            if low[t] < ll:
                ll = low[t]
        span = hh - ll
        rsv = (close[i] - ll) / span * 100.0 if span > 0 else 50.0
        k_prev = ((m1 - 1) * k_prev + rsv) / m1
        d_prev = ((m2 - 1) * d_prev + k_prev) / m2
        k_out[i] = k_prev
        d_out[i] = d_prev
        j_out[i] = 3.0 * k_prev - 2.0 * d_prev
    return k_out, d_out, j_out


@njit(cache=True)
def simple_return(x: np.ndarray) -> np.ndarray:
    """x[t] / x[t-1] - 1 (NaN on the first bar)."""
    out = np.full(x.shape[0], np.nan)
    for i in range(1, x.shape[0]):
        out[i] = x[i] / x[i - 1] - 1.0
    return out

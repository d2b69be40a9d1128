"""Technical indicators as pure functions on float64 numpy arrays, compiled with numba.

MA, EMA, MACD and RSI reproduce TA-Lib's algorithms (same seeds, same running sums, same
warm-up), so they agree with TA-Lib to ~1e-13 and put NaN exactly where TA-Lib does. Recurrences
are written as one multiply-add per bar (fused where the CPU can, numba ``fastmath={"contract"}``):
last-bit differences only, for 1.5-2× speed. Two TA-Lib details that matter:

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
_DBL_MAX = float(np.finfo(np.float64).max)  # what np.nan_to_num puts for +inf
KDJ_SETTLE = 160  # bars of KDJ before the first row model_inputs_into writes (its seed is forgotten by then)


@njit(cache=True)
def _warm_output(n: int, first: int, usable: bool) -> np.ndarray:
    """An output array with NaN before index ``first`` (everywhere when the input is not ``usable``)."""
    out = np.empty(n)
    out[: n if not usable else min(first, n)] = np.nan
    return out


@njit(cache=True, error_model="numpy")
def sma(x: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average; TA-Lib's running-sum algorithm (first value at index period-1)."""
    n = x.shape[0]
    out = _warm_output(n, period - 1, period >= 1 and n >= period)
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


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _ema_from(x: np.ndarray, period: int, seed_start: int, first_out: int, out: np.ndarray) -> None:
    """EMA seeded with mean(x[seed_start:seed_start+period]), advanced to ``first_out`` and beyond."""
    k = 2.0 / (period + 1)
    keep = 1.0 - k  # prev + (x - prev)*k as prev*keep + x*k: a one-FMA loop-carried chain
    total = 0.0
    for i in range(seed_start, seed_start + period):
        total += x[i]
    prev = total / period
    for i in range(seed_start + period, first_out + 1):
        prev = prev * keep + x[i] * k
    out[first_out] = prev
    for i in range(first_out + 1, x.shape[0]):
        prev = prev * keep + x[i] * k
        out[i] = prev


@njit(cache=True, error_model="numpy")
def ema(x: np.ndarray, period: int) -> np.ndarray:
    """Exponential moving average, seeded with an SMA like TA-Lib (first value at index period-1)."""
    n = x.shape[0]
    out = _warm_output(n, period - 1, period >= 1 and n >= period)
    if period < 1 or n < period:
        return out
    _ema_from(x, period, 0, period - 1, out)
    return out


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def macd(x: np.ndarray, fast: int = 12, slow: int = 26, signal: int = 9):
    """MACD line, signal line and histogram exactly as TA-Lib's MACD (first value at slow+signal-2).

    One fused pass after the seeds: the slow EMA is seeded with mean(x[0:slow]), the fast EMA with
    mean(x[slow-fast:slow]) (TA-Lib's alignment), the signal EMA with the mean of the first
    ``signal`` MACD values; all three then advance together bar by bar.
    """
    n = x.shape[0]
    if fast > slow:
        fast, slow = slow, fast
    start = slow - 1  # first bar where both EMAs exist
    first = start + signal - 1
    line = _warm_output(n, first, True)
    sig = _warm_output(n, first, True)
    hist = _warm_output(n, first, True)
    if n <= first:
        return line, sig, hist
    k_slow = 2.0 / (slow + 1)
    k_fast = 2.0 / (fast + 1)
    k_sig = 2.0 / (signal + 1)
    q_slow, q_fast, q_sig = 1.0 - k_slow, 1.0 - k_fast, 1.0 - k_sig
    total = 0.0
    for i in range(slow):
        total += x[i]
    e_slow = total / slow
    total = 0.0
    for i in range(start - fast + 1, slow):
        total += x[i]
    e_fast = total / fast
    # MACD values from `start` to `first` seed the signal line
    total = e_fast - e_slow
    for i in range(start + 1, first + 1):
        e_slow = e_slow * q_slow + x[i] * k_slow
        e_fast = e_fast * q_fast + x[i] * k_fast
        total += e_fast - e_slow
    e_sig = total / signal
    m = e_fast - e_slow
    line[first] = m
    sig[first] = e_sig
    hist[first] = m - e_sig
    for i in range(first + 1, n):
        e_slow = e_slow * q_slow + x[i] * k_slow
        e_fast = e_fast * q_fast + x[i] * k_fast
        m = e_fast - e_slow
        e_sig = e_sig * q_sig + m * k_sig
        line[i] = m
        sig[i] = e_sig
        hist[i] = m - e_sig
    return line, sig, hist


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def rsi(x: np.ndarray, period: int = 14) -> np.ndarray:
    """Wilder's RSI as TA-Lib computes it (first value at index ``period``)."""
    n = x.shape[0]
    out = _warm_output(n, period, period >= 2 and n > period)
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
    # Wilder's smoothing avg = (avg*(p-1) + x)/p, written as avg*a + x*b so that the loop-carried
    # chain is a multiply-add instead of a division (2× faster; differs from TA-Lib by ~1e-14).
    a = (period - 1) / period
    b = 1.0 / period
    for i in range(period + 1, n):
        d = x[i] - x[i - 1]
        up = d if d > 0.0 else 0.0      # branch-free gain/loss split
        down = -d if d < 0.0 else 0.0
        loss = loss * a + down * b
        gain = gain * a + up * b
        total = gain + loss
        out[i] = 100.0 * (gain / total) if not (-_TA_EPS < total < _TA_EPS) else 0.0
    return out


@njit(cache=True, error_model="numpy")
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
        for t in range(i - n + 1, i):   # max/min, not ifs: a price path mispredicts half the branches
            hh = max(hh, high[t])          # (Python's semantics: hh unless high[t] > hh, NaN included)
            ll = min(ll, low[t])
        span = hh - ll
        rsv = (close[i] - ll) / span * 100.0 if span > 0 else 50.0
        k_prev = ((m1 - 1) * k_prev + rsv) / m1
        d_prev = ((m2 - 1) * d_prev + k_prev) / m2
        k_out[i] = k_prev
        d_out[i] = d_prev
        j_out[i] = 3.0 * k_prev - 2.0 * d_prev
    return k_out, d_out, j_out


@njit(cache=True, error_model="numpy")
def simple_return(x: np.ndarray) -> np.ndarray:
    """x[t] / x[t-1] - 1 (NaN on the first bar)."""
    out = np.full(x.shape[0], np.nan)
    for i in range(1, x.shape[0]):
        out[i] = x[i] / x[i - 1] - 1.0
    return out


# ---------------------------------------------------------------------------------------------
# forward adjustment and the fused model-input kernel
#
# They live in this module, next to the indicators they call, because numba's on-disk cache is
# invalidated only by changes to the file that holds the cached function: a kernel in another file
# would keep running stale indicator code after an edit here.
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def filled_factors(factor: np.ndarray) -> np.ndarray:
    """``factor`` with unusable values (NaN, inf, ≤ 0) carried forward, then backward; all unusable → 1."""
    n = factor.shape[0]
    f = np.empty(n)
    first = -1
    for i in range(n):
        v = factor[i]
        if np.isfinite(v) and v > 0:
            f[i] = v
            if first < 0:
                first = i
        elif first >= 0:
            f[i] = f[i - 1]
    if first < 0:
        f[:] = 1.0
    else:
        f[:first] = f[first]
    return f


@njit(cache=True)
def rebase_ratios(f: np.ndarray) -> np.ndarray:
    """factor / latest factor for filled factors ``f``; an empty array when no bar needs re-basing
    (every factor equal: adjusted prices are the raw prices, bit for bit)."""
    n = f.shape[0]
    if n == 0 or f.min() == f.max():
        return np.empty(0)
    r = np.empty(n)
    last = f[n - 1]
    for i in range(n):
        r[i] = f[i] / last
    return r


@njit(cache=True, error_model="numpy")
def model_inputs_into(bars: np.ndarray, out: np.ndarray, cols: np.ndarray, ma_periods: np.ndarray,
                      ema_periods: np.ndarray, macd_params: np.ndarray, kdj_params: np.ndarray,
                      rsi_period: int) -> None:
    """Model inputs of the last ``out.shape[0]`` bars of ``bars`` [n, 7] float32, written into ``out``.

    One compiled call for everything ``heqis.features.inputs.model_inputs`` returns: forward
    adjustment, the recursive indicators over every bar (their values depend on the whole history;
    KDJ, which forgets its seed within ~100 bars, from ``KDJ_SETTLE`` bars before the first row,
    the moving averages over their own bars), and only the last rows written, straight into their
    columns. ``cols`` maps the quantities in
    ``heqis.features.compute.KERNEL_ORDER`` to columns of ``out``. The arithmetic is the indicator
    functions above, called as they are: research and the brain get the same numbers as the
    stand-alone indicators.
    """
    n = bars.shape[0]
    m = out.shape[0]
    row0 = n - m
    f = np.empty(n)
    for i in range(n):
        f[i] = np.float64(bars[i, 6])
    ratio = rebase_ratios(filled_factors(f))
    rebase = ratio.shape[0] > 0
    high = np.empty(n)
    low = np.empty(n)
    close = np.empty(n)
    for i in range(n):
        if rebase:
            high[i] = np.float64(bars[i, 1]) * ratio[i]
            low[i] = np.float64(bars[i, 2]) * ratio[i]
            close[i] = np.float64(bars[i, 3]) * ratio[i]
        else:
            high[i] = np.float64(bars[i, 1])
            low[i] = np.float64(bars[i, 2])
            close[i] = np.float64(bars[i, 3])
    for i in range(row0, n):
        o = np.float64(bars[i, 0])
        out[i - row0, cols[0]] = o * ratio[i] if rebase else o
        out[i - row0, cols[1]] = high[i]
        out[i - row0, cols[2]] = low[i]
        out[i - row0, cols[3]] = close[i]
    q = 4   # the next quantity (KERNEL_ORDER) to write
    for p in ma_periods:            # a moving average needs only its own bars: from row0 - p + 1 on
        c = cols[q]
        start = max(row0, p - 1)    # = sma's own first value when every row is wanted (row0 = 0)
        for i in range(row0, min(start, n)):
            out[i - row0, c] = np.nan
        if p >= 1 and n >= p:
            total = 0.0             # sma's running sum, started where the rows start
            for i in range(start - p + 1, start):
                total += close[i]
            trailing = start - p + 1
            for i in range(start, n):
                total += close[i]
                value = total
                total -= close[trailing]
                trailing += 1
                out[i - row0, c] = value / p
        q += 1
    for p in ema_periods:
        col = ema(close, p)
        for i in range(row0, n):
            out[i - row0, cols[q]] = col[i]
        q += 1
    line, sig, hist = macd(close, macd_params[0], macd_params[1], macd_params[2])
    # KDJ forgets its seed fastest (weight ((m-1)/m)^t: (2/3)^160 ≈ 1e-28): started KDJ_SETTLE bars
    # before the first row wanted, it gives the whole history's values to the last bit or two.
    s = max(0, row0 - KDJ_SETTLE - (kdj_params[0] - 1))
    k, d, j = kdj(high[s:], low[s:], close[s:], kdj_params[0], kdj_params[1], kdj_params[2])
    r = rsi(close, rsi_period)
    for i in range(row0, n):
        t = i - row0
        out[t, cols[q]] = line[i]
        out[t, cols[q + 1]] = sig[i]
        out[t, cols[q + 2]] = hist[i]
        out[t, cols[q + 3]] = k[i - s]
        out[t, cols[q + 4]] = d[i - s]
        out[t, cols[q + 5]] = j[i - s]
        out[t, cols[q + 6]] = r[i]
        out[t, cols[q + 7]] = close[i] / close[i - 1] - 1.0 if i > 0 else np.nan
        v = np.float64(bars[i, 5])        # turnover: unknown (NaN) counts as 0, like np.nan_to_num
        if np.isnan(v):
            v = 0.0
        elif np.isinf(v):
            v = _DBL_MAX if v > 0 else -_DBL_MAX
        out[t, cols[q + 8]] = v
        out[t, cols[q + 9]] = np.log1p(np.float64(bars[i, 4]))

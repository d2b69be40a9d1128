"""Scale-free windows of raw daily bars for the gateway's data-quality model (the "smart watchdog").

A window of ``QUALITY_WINDOW`` bars ending at bar ``end`` holds, per bar t, the log ratios of its open,
high, low and close to its pre-close, divided by a robust scale of the window's close-to-close
returns, and its log volume less the window's median log volume. The pre-close is the exchange's
(the bar's own ``pre_close_raw``, a sixth input column) where it is known, else the previous bar's
close: on an ex-rights day the exchange lowers the pre-close by the dividend or bonus shares, so the
raw price gap of a corporate action is not mistaken for bad data. A sixth column, ``limit_move``,
repeats the close's move on the days the close sits at the day's published limit price (0 on other
days, and where no limits are known): a context column the model sees even for the bar it judges,
because limit-locked days were most of the clean windows' highest scores. The scale and the median
come from the window's bars *before* the last one, so a bad last bar (price x10 or /10, volume x1000, a spike)
cannot hide itself by inflating them. Every value is clipped to ±``CLIP``; a missing, zero or negative
price or volume becomes +``CLIP`` (a bad bar must score high, never crash or produce NaN).

numpy only: the gateway imports it (heqis.runtime must stay free of pandas and torch).
"""

from __future__ import annotations

import numpy as np

QUALITY_WINDOW = 20
QUALITY_COLUMNS = ("r_open", "r_high", "r_low", "r_close", "log_vol", "limit_move")
CONTEXT_COLUMNS = ("limit_move",)   # shown to the model for the bar it judges (heqis.models.watchdog)
LIMIT_TICK = 0.006                # CNY: a close within a tick of its limit price sits at the limit
CLIP = 50.0
SCALE_FLOOR = 1e-3        # robust σ floor (log return): a flat series must not blow up
VOLUME_FLOOR = 0.05       # robust σ floor of log volume
MAD_TO_SIGMA = 1.4826


def _nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=1)`` (NaN for an all-NaN row), by one sort: numpy's own goes through
    masked arrays and cost most of a gateway bar's watchdog time on these 19-value rows."""
    s = np.sort(a, axis=1)                                # NaN sorts last
    k = np.sum(~np.isnan(a), axis=1)
    rows = np.arange(len(a))
    lo, hi = np.maximum((k - 1) // 2, 0), np.maximum(k // 2, 0)
    med = (s[rows, lo] + s[rows, hi]) / 2.0 if a.shape[1] else np.full(len(a), np.nan)
    return np.where(k > 0, med, np.nan)


def _at_limit(x: np.ndarray) -> np.ndarray:
    """[n] +1 where the close sits at the day's up limit, -1 at the down limit, else 0 (and 0 where the
    limits are unknown: a US stock, an index, a source that does not carry them)."""
    if x.shape[1] < 8:
        return np.zeros(len(x))
    close, up, down = x[:, 3], x[:, 6], x[:, 7]
    with np.errstate(invalid="ignore"):
        at_up = np.isfinite(up) & (up > 0) & (np.abs(close - up) <= LIMIT_TICK)
        at_down = np.isfinite(down) & (down > 0) & (np.abs(close - down) <= LIMIT_TICK)
    return at_up.astype(np.float64) - at_down.astype(np.float64)


def _log_ratios(ohlcv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[n, 4] log(price_t / pre-close_t) and [n] log1p(volume); NaN where a value is bad. The pre-close
    is column 5 where given and positive, else the previous row's close (row 0: none, NaN)."""
    x = np.asarray(ohlcv, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] not in (5, 6, 8):
        raise ValueError("ohlcv must be [n, 5|6|8] (open, high, low, close, volume[, pre_close[, up_limit, "
                         f"down_limit]]), got {x.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        prices = np.where(np.isfinite(x[:, :4]) & (x[:, :4] > 0), x[:, :4], np.nan)
        logp = np.log(prices)
        pre = np.full(len(x), np.nan)
        pre[1:] = logp[:-1, 3]
        if x.shape[1] >= 6:
            given = np.isfinite(x[:, 5]) & (x[:, 5] > 0)
            pre = np.where(given, np.log(np.where(given, x[:, 5], 1.0)), pre)
        ratios = logp - pre[:, None]
        ratios[0] = np.nan                     # the window's first row only supplies a previous close
        vol = x[:, 4]
        logv = np.where(np.isfinite(vol) & (vol >= 0), np.log1p(np.where(vol >= 0, vol, 0.0)), np.nan)
    return ratios, logv


def quality_windows(ohlcv: np.ndarray, ends: np.ndarray, window: int = QUALITY_WINDOW) -> np.ndarray:
    """float32 [len(ends), window, 6] windows whose last bar is row ``end`` of ``ohlcv`` ([n, 5|6|8] raw
    open, high, low, close, volume[, pre-close[, up limit, down limit]] in time order); each ``end``
    needs ``window`` ≤ end < n (one bar before the window supplies the first previous close)."""
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    ratios, logv = _log_ratios(ohlcv)
    limit = _at_limit(np.asarray(ohlcv, dtype=np.float64))
    n = len(ratios)
    if window < 2:
        raise ValueError("window must be at least 2")
    if len(ends) and (ends.min() < window or ends.max() >= n):
        raise ValueError(f"window ends must lie in [{window}, {n - 1}] for {n} bars")
    idx = ends[:, None] - window + 1 + np.arange(window)[None, :]           # [E, W]
    r = ratios[idx]                                                        # [E, W, 4]
    v = logv[idx]                                                          # [E, W]
    sigma = MAD_TO_SIGMA * _nanmedian_rows(np.abs(r[:, :-1, 3]))
    med_v = _nanmedian_rows(v[:, :-1])
    scale_v = MAD_TO_SIGMA * _nanmedian_rows(np.abs(v[:, :-1] - med_v[:, None]))
    sigma = np.where(np.isfinite(sigma), np.maximum(sigma, SCALE_FLOOR), SCALE_FLOOR)
    med_v = np.where(np.isfinite(med_v), med_v, 0.0)
    scale_v = np.where(np.isfinite(scale_v), np.maximum(scale_v, VOLUME_FLOOR), VOLUME_FLOOR)
    out = np.zeros((len(ends), window, len(QUALITY_COLUMNS)), dtype=np.float64)
    out[..., :4] = r / sigma[:, None, None]
    out[..., 4] = (v - med_v[:, None]) / scale_v[:, None]
    out = np.where(np.isnan(out), CLIP, out)
    out = np.clip(out, -CLIP, CLIP)
    out[..., 5] = np.where(limit[idx] != 0, out[..., 3], 0.0)     # the close's move, where it is a limit move
    return out.astype(np.float32)


def quality_window(ohlcv: np.ndarray, window: int = QUALITY_WINDOW) -> np.ndarray | None:
    """The [1, window, 6] window ending at the last row of ``ohlcv``, or None with fewer than window+1 rows."""
    n = len(ohlcv)
    if n < window + 1:
        return None
    return quality_windows(np.asarray(ohlcv)[-(window + 1):], np.array([window]), window)

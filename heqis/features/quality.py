"""Scale-free windows of raw daily bars for the gateway's data-quality model (the "smart watchdog").

A window of ``QUALITY_WINDOW`` bars ending at bar ``end`` holds, per bar t, the log ratios of its open,
high, low and close to the previous close, divided by a robust scale of the window's close-to-close
returns, and its log volume less the window's median log volume. The scale and the median come from
the window's bars *before* the last one, so a bad last bar (price x10 or /10, volume x1000, a spike)
cannot hide itself by inflating them. Every value is clipped to ±``CLIP``; a missing, zero or negative
price or volume becomes +``CLIP`` (a bad bar must score high, never crash or produce NaN).

numpy only: the gateway imports it (heqis.runtime must stay free of pandas and torch).
"""

from __future__ import annotations

import warnings

import numpy as np

QUALITY_WINDOW = 20
QUALITY_COLUMNS = ("r_open", "r_high", "r_low", "r_close", "log_vol")
CLIP = 50.0
SCALE_FLOOR = 1e-3        # robust σ floor (log return): a flat series must not blow up
VOLUME_FLOOR = 0.05       # robust σ floor of log volume
MAD_TO_SIGMA = 1.4826


def _log_ratios(ohlcv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[n, 4] log(price_t / close_{t-1}) (row 0 NaN) and [n] log1p(volume); NaN where a value is bad."""
    x = np.asarray(ohlcv, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 5:
        raise ValueError(f"ohlcv must be [n, 5] (open, high, low, close, volume), got {x.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        prices = np.where(np.isfinite(x[:, :4]) & (x[:, :4] > 0), x[:, :4], np.nan)
        logp = np.log(prices)
        ratios = np.full((len(x), 4), np.nan)
        ratios[1:] = logp[1:] - logp[:-1, 3:4]
        vol = x[:, 4]
        logv = np.where(np.isfinite(vol) & (vol >= 0), np.log1p(np.where(vol >= 0, vol, 0.0)), np.nan)
    return ratios, logv


def quality_windows(ohlcv: np.ndarray, ends: np.ndarray, window: int = QUALITY_WINDOW) -> np.ndarray:
    """float32 [len(ends), window, 5] windows whose last bar is row ``end`` of ``ohlcv`` ([n, 5] raw open,
    high, low, close, volume in time order); each ``end`` needs ``window`` ≤ end < n (one bar before the
    window supplies the first previous close)."""
    ends = np.asarray(ends, dtype=np.int64).reshape(-1)
    ratios, logv = _log_ratios(ohlcv)
    n = len(ratios)
    if window < 2:
        raise ValueError("window must be at least 2")
    if len(ends) and (ends.min() < window or ends.max() >= n):
        raise ValueError(f"window ends must lie in [{window}, {n - 1}] for {n} bars")
    idx = ends[:, None] - window + 1 + np.arange(window)[None, :]           # [E, W]
    r = ratios[idx]                                                        # [E, W, 4]
    v = logv[idx]                                                          # [E, W]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)                    # all-NaN history: the floor
        sigma = MAD_TO_SIGMA * np.nanmedian(np.abs(r[:, :-1, 3]), axis=1)
        med_v = np.nanmedian(v[:, :-1], axis=1)
        scale_v = MAD_TO_SIGMA * np.nanmedian(np.abs(v[:, :-1] - med_v[:, None]), axis=1)
    sigma = np.where(np.isfinite(sigma), np.maximum(sigma, SCALE_FLOOR), SCALE_FLOOR)
    med_v = np.where(np.isfinite(med_v), med_v, 0.0)
    scale_v = np.where(np.isfinite(scale_v), np.maximum(scale_v, VOLUME_FLOOR), VOLUME_FLOOR)
    out = np.empty((len(ends), window, 5), dtype=np.float64)
    out[..., :4] = r / sigma[:, None, None]
    out[..., 4] = (v - med_v[:, None]) / scale_v[:, None]
    out = np.where(np.isnan(out), CLIP, out)
    return np.clip(out, -CLIP, CLIP).astype(np.float32)


def quality_window(ohlcv: np.ndarray, window: int = QUALITY_WINDOW) -> np.ndarray | None:
    """The [1, window, 5] window ending at the last row of ``ohlcv``, or None with fewer than window+1 rows."""
    n = len(ohlcv)
    if n < window + 1:
        return None
    return quality_windows(np.asarray(ohlcv)[-(window + 1):], np.array([window]), window)

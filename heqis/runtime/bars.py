"""Bars in the gateway, and what a window request carries to the brain (numpy only).

Every source — replay, Tushare polling, Modbus — keeps each symbol's recent history in the store's
bar schema (``HISTORY_COLUMNS``: raw prices, volume, adjustment factor, limits, turnover), cleaned
by the same rules as ``heqis data`` (heqis.data.bar_checks). A request carries that history turned
into ``REQUEST_COLUMNS`` by ``request_window``: raw prices, volume, turnover and the adjustment
factor, as float32 (the wire format). The brain runs ``brain_input``: the same ``model_inputs``
(which forward-adjusts with the latest factor in the window, as the store does), ``scale_free`` and
the scaler as training (fused for one window: ``scaled_window``, bit for bit), over the window plus
enough history that every indicator has converged (EMA60's seed and Wilder's RSI fade
geometrically; 500 bars leave them < 1e-7 away from the research values, tested). Live and research cannot disagree.
"""

from __future__ import annotations

import numpy as np

from heqis.features.inputs import BAR_INPUTS, model_inputs
from heqis.features.transform import Scaler, scaled_window

HISTORY_COLUMNS: tuple[str, ...] = ("open_raw", "high_raw", "low_raw", "close_raw", "pre_close_raw", "vol", "amount",
                                    "adj_factor", "up_limit", "down_limit", "turnover", "is_st")
REQUEST_COLUMNS: tuple[str, ...] = BAR_INPUTS
WARMUP_BARS = 500
H = {c: i for i, c in enumerate(HISTORY_COLUMNS)}


def history_length(window: int) -> int:
    """Bars a request carries for a model of ``window`` bars."""
    return window + WARMUP_BARS


def history_row(open_raw: float, high_raw: float, low_raw: float, close_raw: float, vol: float,
                turnover: float = np.nan, adj_factor: float = np.nan, pre_close_raw: float = np.nan,
                amount: float = np.nan, up_limit: float = np.nan, down_limit: float = np.nan,
                is_st: float = 0.0) -> np.ndarray:
    """One bar as a HISTORY_COLUMNS row (float32)."""
    values = {"open_raw": open_raw, "high_raw": high_raw, "low_raw": low_raw, "close_raw": close_raw,
              "pre_close_raw": pre_close_raw, "vol": vol, "amount": amount, "adj_factor": adj_factor,
              "up_limit": up_limit, "down_limit": down_limit, "turnover": turnover, "is_st": is_st}
    return np.array([values[c] for c in HISTORY_COLUMNS], dtype=np.float32)


REQUEST_INDEX = [H[c] for c in REQUEST_COLUMNS]


def request_window(history: np.ndarray) -> np.ndarray:
    """[n, 7] float32 REQUEST_COLUMNS (raw prices, volume, turnover, adjustment factor) from
    [n, HISTORY_COLUMNS] rows: what a request carries to the brain."""
    return np.ascontiguousarray(np.asarray(history)[:, REQUEST_INDEX], dtype=np.float32)


def raw_ohlc(history_row_: np.ndarray) -> list[float]:
    """The raw open, high, low, close of one history row (what the console's K-line draws)."""
    return [round(float(v), 4) for v in history_row_[:4]]


def brain_input(bars: np.ndarray, scaler: Scaler) -> np.ndarray | None:
    """Scaled model input [W, F] for the last bar of a request ``bars`` [n, 7]; None when it cannot be one
    (wrong shape, too few bars, or a non-finite value in the window)."""
    if bars.ndim != 2 or bars.shape[1] != len(REQUEST_COLUMNS) or len(bars) < scaler.window:
        return None
    values = model_inputs(bars, last_n=scaler.window)
    if not np.isfinite(values).all():
        return None
    return scaled_window(values, scaler)

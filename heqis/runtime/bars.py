"""What a window request carries, and how the brain turns it into model input.

A request holds the raw bars one symbol needs — the window plus enough history that every
indicator has converged (EMA60's seed and Wilder's RSI fade geometrically; 500 bars leave them
< 1e-7 away from the research values, tested) — as float32 columns WINDOW_COLUMNS. The brain runs
the same feature functions and scaler as training: live and research cannot disagree.
"""

from __future__ import annotations

import numpy as np

from heqis.features.transform import Scaler, inputs_from_arrays, scale_free

WINDOW_COLUMNS = ("open", "high", "low", "close", "vol", "turnover")
WARMUP_BARS = 500


def history_length(window: int) -> int:
    return window + WARMUP_BARS


def model_input(bars: np.ndarray, scaler: Scaler) -> np.ndarray | None:
    """Scaled model input [W, F] for the last bar of ``bars`` [n, 6]; None when history is too short."""
    if bars.ndim != 2 or bars.shape[1] != len(WINDOW_COLUMNS) or len(bars) < scaler.window:
        return None
    b = bars.astype(np.float64)
    values = inputs_from_arrays(b[:, 0], b[:, 1], b[:, 2], b[:, 3], b[:, 4], b[:, 5])[-scaler.window:]
    if not np.isfinite(values).all():
        return None
    return scaler.transform(scale_free(values))

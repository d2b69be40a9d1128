"""From model outputs to trading actions — shared by the backtest and the live brain (numpy only).

An action is decided at a session's close: 1 = buy / stay long, -1 = sell / stay flat, 0 = keep.
Modes: ``cls`` maps argmax over [down, flat, up] to [-1, 0, 1]; ``reg`` compares the predicted
next-day return with ±threshold.
"""

from __future__ import annotations

import numpy as np

from heqis.errors import HeqisError

MODES = ("cls", "reg")
CLASS_TO_SIGNAL = np.array([-1, 0, 1], dtype=np.int64)


def to_signals(reg_return: np.ndarray, cls_logits: np.ndarray, mode: str, threshold: float) -> np.ndarray:
    if mode == "cls":
        return CLASS_TO_SIGNAL[np.argmax(cls_logits, axis=1)]
    if mode == "reg":
        return np.where(reg_return > threshold, 1, np.where(reg_return < -threshold, -1, 0)).astype(np.int64)
    raise HeqisError(f"unknown signal mode '{mode}'", hint=f"use one of: {', '.join(MODES)}")

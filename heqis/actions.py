"""From model outputs to trading actions — shared by the backtest and the live brain.

An action is decided at a session's close: 1 = buy / stay long, -1 = sell / stay flat, 0 = keep.
Modes: ``cls`` maps argmax over [down, flat, up] to [-1, 0, 1]; ``reg`` compares the predicted
next-day return with ±threshold.

The rule is written once, as a compiled kernel (``_action``): the backtest runs it over whole
segments (``to_signals``), the brain over each batch it answers, with the reply's probabilities in
the same pass (``signal_rows``: one call per batch instead of a dozen small numpy calls, which cost
the brain tens of µs per reply). It decides as numpy would: argmax takes the first maximum, and a
NaN logit wins (numpy's argmax returns the first NaN); the threshold is compared in the predictions'
own precision (a Python float beside a float32 array is cast to float32 under NumPy 2).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from heqis.errors import HeqisError

MODES = ("cls", "reg")
CLASS_TO_SIGNAL = np.array([-1, 0, 1], dtype=np.int64)     # class order [down, flat, up]


@njit(cache=True)
def _action(reg: float, logits: np.ndarray, is_cls: bool, threshold: float) -> int:
    if is_cls:
        best = 0
        for j in range(logits.shape[0]):
            if math.isnan(logits[j]):
                return j - 1
            if logits[j] > logits[best]:
                best = j
        return best - 1
    if reg > threshold:
        return 1
    if reg < -threshold:
        return -1
    return 0


@njit(cache=True)
def _actions(reg: np.ndarray, logits: np.ndarray, is_cls: bool, threshold: float) -> np.ndarray:
    out = np.empty(reg.shape[0], np.int64)
    for i in range(reg.shape[0]):
        out[i] = _action(reg[i], logits[i], is_cls, threshold)
    return out


@njit(cache=True)
def _signal_rows(reg: np.ndarray, logits: np.ndarray, is_cls: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    out = np.empty((reg.shape[0], 5), np.float32)
    for i in range(reg.shape[0]):
        row = logits[i]
        top = -np.inf
        for j in range(3):
            top = max(top, float(row[j]))
        total = 0.0
        for j in range(3):
            total += math.exp(float(row[j]) - top)
        out[i, 0] = reg[i]
        for j in range(3):
            out[i, 1 + j] = math.exp(float(row[j]) - top) / total
        out[i, 4] = _action(reg[i], row, is_cls[i], thresholds[i])
    return out


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise HeqisError(f"unknown signal mode '{mode}'", hint=f"use one of: {', '.join(MODES)}")


def to_signals(reg_return: np.ndarray, cls_logits: np.ndarray, mode: str, threshold: float) -> np.ndarray:
    """The action (int64) of every prediction under one mode and threshold."""
    _check_mode(mode)
    reg = np.asarray(reg_return)
    return _actions(reg, np.asarray(cls_logits), mode == "cls", reg.dtype.type(threshold))


def signal_rows(reg_return: np.ndarray, cls_logits: np.ndarray, modes: list[str], thresholds: list[float]) \
        -> np.ndarray:
    """[n, 5] float32 rows (reg, p_down, p_flat, p_up, action) of a batch whose predictions each have their
    own mode and threshold: the brain's reply payloads (probabilities: softmax of the logits)."""
    for mode in modes:
        _check_mode(mode)
    reg = np.asarray(reg_return)
    return _signal_rows(reg, np.asarray(cls_logits), np.array([m == "cls" for m in modes]),
                        np.array(thresholds, dtype=reg.dtype))

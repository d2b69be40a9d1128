"""The one action rule (heqis.actions): its compiled kernel decides exactly as the numpy expressions it
replaced, on ties, NaN logits and thresholds that sit on a float32 prediction; the brain's reply rows
carry the same actions and the softmax of the logits."""

from __future__ import annotations

import numpy as np
import pytest

from heqis.actions import CLASS_TO_SIGNAL, signal_rows, to_signals
from heqis.errors import HeqisError


def reference(reg: np.ndarray, cls: np.ndarray, mode: str, threshold: float) -> np.ndarray:
    """The numpy rule as the backtest and the brain applied it before the kernel."""
    if mode == "cls":
        return CLASS_TO_SIGNAL[np.argmax(cls, axis=1)]
    return np.where(reg > threshold, 1, np.where(reg < -threshold, -1, 0)).astype(np.int64)


def predictions(dtype: type, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    reg = rng.normal(0, 0.01, n).astype(dtype)
    reg[:50] = np.asarray(0.001, dtype)                          # exactly on the threshold used below
    reg[50:100] = -np.asarray(0.001, dtype)
    cls = rng.normal(0, 1, (n, 3)).astype(dtype)
    cls[100:200] = np.round(cls[100:200])                        # ties: the first maximum wins
    cls[200:220, 0] = np.nan                                     # a NaN wins where it stands
    cls[220:240, 2] = np.nan
    cls[240:260, 1:] = np.nan
    reg[260:270] = np.nan
    return reg, cls


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,threshold", [("cls", 0.0), ("reg", 0.001), ("reg", 0.0), ("reg", 0.02)])
def test_the_kernel_decides_as_numpy(dtype: type, mode: str, threshold: float) -> None:
    reg, cls = predictions(dtype)
    got = to_signals(reg, cls, mode, threshold)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, reference(reg, cls, mode, threshold))
    assert set(np.unique(got)) == {-1, 0, 1}                    # the data reach every action


def test_a_float32_prediction_on_the_threshold_is_not_above_it() -> None:
    """NumPy 2 compares a Python float with a float32 array in float32: 0.001f is not > 0.001."""
    reg = np.array([0.001, -0.001], np.float32)
    assert to_signals(reg, np.zeros((2, 3), np.float32), "reg", 0.001).tolist() == [0, 0]
    assert to_signals(reg.astype(np.float64), np.zeros((2, 3)), "reg", 0.001).tolist() == [1, -1]   # 0.001f > 0.001


def test_reply_rows_carry_the_softmax_and_each_rows_own_rule() -> None:
    reg, cls = predictions(np.float32, n=600, seed=1)
    reg, cls = reg[300:], cls[300:]                              # finite rows
    modes = ["cls" if i % 3 else "reg" for i in range(len(reg))]
    thresholds = [0.001 * (i % 4) for i in range(len(reg))]
    rows = signal_rows(reg, cls, modes, thresholds)
    assert rows.dtype == np.float32 and rows.shape == (len(reg), 5)
    np.testing.assert_array_equal(rows[:, 0], reg)
    z = np.exp(cls.astype(np.float64) - cls.astype(np.float64).max(axis=1, keepdims=True))
    np.testing.assert_allclose(rows[:, 1:4], (z / z.sum(axis=1, keepdims=True)).astype(np.float32), rtol=0, atol=1e-7)
    expected = [reference(reg[i:i + 1], cls[i:i + 1], m, t)[0]
                for i, (m, t) in enumerate(zip(modes, thresholds, strict=True))]
    np.testing.assert_array_equal(rows[:, 4], np.array(expected, np.float32))


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(HeqisError, match="unknown signal mode 'both'"):
        to_signals(np.zeros(1), np.zeros((1, 3)), "both", 0.0)
    with pytest.raises(HeqisError, match="unknown signal mode"):
        signal_rows(np.zeros(1), np.zeros((1, 3)), ["cls", "x"], [0.0, 0.0])

"""Model-input transforms (numpy, and one numba kernel that scales windows in a single pass) — the
part of the feature pipeline the live brain runs.

Scale-free inputs (docs/architecture.md, "Features"): price-like columns relative to the window's
last close, MACD lines divided by that close, 0-100 oscillators and turnover divided by 100, log
volume relative to the last bar's. Then the ``Scaler`` fitted on the training segment. Training,
backtest and the brain all call these functions after ``model_inputs``: live and research cannot
disagree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from heqis.errors import HeqisError
from heqis.features.columns import INDICATOR_PARAMS, MODEL_INPUTS, PERCENT_0_100, PRICE_DIFF, PRICE_LIKE
from heqis.fileio import read_json, write_json

CLASSES = ("down", "flat", "up")
SCALER_VERSION = 1


# ---------------------------------------------------------------------------------------------
# scale-free inputs
# ---------------------------------------------------------------------------------------------
def _runs(index: list[int]) -> tuple[slice, ...]:
    """Consecutive column indices as slices: in-place work on views instead of fancy-index copies."""
    out: list[slice] = []
    for i in index:
        if out and out[-1].stop == i:
            out[-1] = slice(out[-1].start, i + 1)
        else:
            out.append(slice(i, i + 1))
    return tuple(out)


@functools.lru_cache(maxsize=16)
def _index_sets(inputs: tuple[str, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...], int, int]:
    # cached: the brain calls scale_free once per window, and building these lists cost ~12 µs a call
    price = [i for i, c in enumerate(inputs) if c in PRICE_LIKE]
    diff = [i for i, c in enumerate(inputs) if c in PRICE_DIFF]
    pct = [i for i, c in enumerate(inputs) if c in PERCENT_0_100]
    return _runs(price), _runs(diff), _runs(pct), inputs.index("close"), inputs.index("log_vol")


def scale_free(windows: np.ndarray, inputs: tuple[str, ...] = MODEL_INPUTS) -> np.ndarray:
    """Scale-free copy of ``windows`` shaped [..., W, F] (columns in ``inputs`` order).

    The same IEEE operations in the same order as column-by-column arithmetic, done in place on
    slices of one float64 copy (bit-identical; the brain runs this once per window)."""
    x = np.array(windows, dtype=np.float64, copy=True)
    price, diff, pct, close_i, vol_i = _index_sets(tuple(inputs))
    last_close = x[..., -1:, close_i:close_i + 1].copy()  # a copy: 'close' itself is rescaled below
    last_vol = x[..., -1:, vol_i].copy()
    for sl in price:
        v = x[..., sl]
        np.divide(v, last_close, out=v)
        v -= 1.0
    for sl in diff:
        v = x[..., sl]
        np.divide(v, last_close, out=v)
    for sl in pct:
        v = x[..., sl]
        np.divide(v, 100.0, out=v)
    x[..., vol_i] -= last_vol
    return x


_KEEP, _PRICE, _DIFF, _PCT, _LOG_VOL = range(5)    # a column's scale-free rule (the kernel's ``kind`` 0..4)


@functools.lru_cache(maxsize=16)
def _column_kinds(inputs: tuple[str, ...]) -> tuple[np.ndarray, int, int]:
    kinds = np.array([_PRICE if c in PRICE_LIKE else _DIFF if c in PRICE_DIFF else _PCT if c in PERCENT_0_100
                      else _LOG_VOL if c == "log_vol" else _KEEP for c in inputs], dtype=np.int64)
    return kinds, inputs.index("close"), inputs.index("log_vol")


@njit(cache=True)
def _scaled_windows_kernel(values: np.ndarray, ends: np.ndarray, w: int, kinds: np.ndarray, close_i: int,
                           vol_i: int, x_scale: np.ndarray, x_min: np.ndarray,
                           round32: bool) -> np.ndarray:   # pragma: no cover - compiled
    f = values.shape[1]
    out = np.empty((len(ends), w, f), dtype=np.float32)
    for n in range(len(ends)):
        first = ends[n] - w + 1
        last_close = values[ends[n], close_i]
        last_vol = values[ends[n], vol_i]
        for i in range(w):
            for j in range(f):
                v = values[first + i, j]
                kind = kinds[j]
                if kind == 1:
                    v = v / last_close - 1.0
                elif kind == 2:
                    v = v / last_close
                elif kind == 3:
                    v = v / 100.0
                elif kind == 4:
                    v = v - last_vol
                if round32:
                    v = np.float64(np.float32(v))
                out[n, i, j] = np.float32(v * x_scale[j] + x_min[j])
    return out


def scaled_windows(values: np.ndarray, ends: np.ndarray, scaler: Scaler, round32: bool = False) -> np.ndarray:
    """The scaled windows of ``scaler.window`` rows ending at rows ``ends`` of one symbol's model
    inputs ``values`` [n, F], float32 [N, W, F], in one compiled pass without the [N, W, F] float64
    intermediate. ``round32=False``: ``scaler.transform(scale_free(window))`` bit for bit (the brain's
    path); ``True``: ``scaler.transform(scale_free(window).astype(float32))`` bit for bit (research:
    training and the backtest store scale-free windows as float32 before scaling). The same IEEE
    operations in the same order, no fused multiply-add (tested)."""
    kinds, close_i, vol_i = _column_kinds(tuple(scaler.inputs))
    ends = np.asarray(ends, np.int64)
    if len(ends) and (ends.min() < scaler.window - 1 or ends.max() >= len(values)):
        raise ValueError(f"window ends must lie in [{scaler.window - 1}, {len(values)})")
    return _scaled_windows_kernel(np.ascontiguousarray(values, dtype=np.float64), ends,
                                  int(scaler.window), kinds, close_i, vol_i, np.asarray(scaler.x_scale, np.float64),
                                  np.asarray(scaler.x_min, np.float64), bool(round32))


def scaled_window(window: np.ndarray, scaler: Scaler) -> np.ndarray:
    """``scaler.transform(scale_free(window))`` for one window [W, F] (W = the scaler's window) in
    one compiled pass, bit for bit — the brain's per-request path, where a dozen numpy calls on a
    small array cost more than the arithmetic."""
    return scaled_windows(window, np.array([len(window) - 1]), scaler)[0]


# ---------------------------------------------------------------------------------------------
# scaler
# ---------------------------------------------------------------------------------------------
# the training targets (heqis.features.windows.TARGETS): what y is, as scaler_params.json says it
TARGET_TEXT = {
    "close": "next-day return of the adjusted close (close T -> close T+1)",
    "open": "return of the adjusted open T+1 -> open T+2 (what a decision at T's close earns)",
}

@dataclass
class Scaler:
    """Affine scaling fitted on the training segment: ``v * scale + min`` (sklearn's scale_/min_).

    Inputs: min-max to [0, 1] per feature. Target: standardised (zero mean, unit variance), so the
    regression loss is on the same footing as the direction cross-entropy. The feature order is
    saved with the numbers, and ``transform`` refuses inputs in another order.
    """

    inputs: tuple[str, ...]
    window: int
    x_scale: np.ndarray
    x_min: np.ndarray
    y_scale: float
    y_min: float
    flat_band: float
    fitted_on: dict[str, str]
    target: str = "close"          # heqis.features.windows.TARGETS: what y is the return of

    @classmethod
    def fit(cls, train: Any, window: int, flat_band: float, fitted_on: dict[str, str],
            target: str = "close") -> Scaler:
        """Fit on the training segment's windows: ``y_reg`` [N], ``inputs``, and either ``x_chunks()``
        (a ``WindowIndex``: streamed, so the fit never holds every window at once) or ``x`` [N, W, F].

        Min and max are exact in any dtype and any chunking, so streaming fits the same numbers.
        """
        if not len(train):
            raise HeqisError("the training segment holds no windows", hint="fetch more history")
        chunks = train.x_chunks() if hasattr(train, "x_chunks") else (train.x,)
        lo = hi = None
        for chunk in chunks:
            flat = chunk.reshape(-1, chunk.shape[-1])
            c_lo, c_hi = flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)
            lo = c_lo if lo is None else np.minimum(lo, c_lo)
            hi = c_hi if hi is None else np.maximum(hi, c_hi)
        assert lo is not None and hi is not None
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        y = train.y_reg.astype(np.float64)
        ymean, ystd = float(y.mean()), float(y.std())
        ystd = ystd if ystd > 0 else 1.0
        return cls(train.inputs, window, 1.0 / span, -lo / span, 1.0 / ystd, -ymean / ystd, flat_band,
                   fitted_on, target)

    def transform(self, x: np.ndarray, inputs: tuple[str, ...] | None = None) -> np.ndarray:
        if inputs is not None and tuple(inputs) != self.inputs:
            raise HeqisError("input features are not in the scaler's order",
                             hint=f"expected {', '.join(self.inputs)}")
        return (x * self.x_scale + self.x_min).astype(np.float32)

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return (y * self.y_scale + self.y_min).astype(np.float32)

    def inverse_y(self, y: np.ndarray) -> np.ndarray:
        return (y - self.y_min) / self.y_scale

    def to_dict(self) -> dict:
        return {
            "version": SCALER_VERSION,
            "kind": "affine",
            "x": "min-max to [0, 1]: x * x_scale + x_min",
            "y": "standardised: y * y_scale + y_min; the return is (y_scaled - y_min) / y_scale",
            "features": list(self.inputs),
            "window": self.window,
            "x_scale": self.x_scale.tolist(),
            "x_min": self.x_min.tolist(),
            "y_scale": self.y_scale,
            "y_min": self.y_min,
            "target": TARGET_TEXT.get(self.target, self.target),
            "target_kind": self.target,
            "classes": list(CLASSES),
            "flat_band": self.flat_band,
            "fitted_on": self.fitted_on,
            "indicators": INDICATOR_PARAMS,
        }

    @classmethod
    def from_dict(cls, raw: dict) -> Scaler:
        try:
            return cls(tuple(raw["features"]), int(raw["window"]), np.asarray(raw["x_scale"], np.float64),
                       np.asarray(raw["x_min"], np.float64), float(raw["y_scale"]), float(raw["y_min"]),
                       float(raw["flat_band"]), dict(raw.get("fitted_on", {})), str(raw.get("target_kind", "close")))
        except (KeyError, TypeError, ValueError) as exc:
            raise HeqisError(f"scaler parameters are incomplete or malformed ({exc})") from None

    def save(self, path: Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Scaler:
        raw = read_json(path, "scaler file")
        if not isinstance(raw, dict):
            raise HeqisError(f"{path}: not a scaler file")
        return cls.from_dict(raw)



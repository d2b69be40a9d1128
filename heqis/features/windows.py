"""Sliding windows for the models, chronological segments, and the scaler fitted on train only.

A sample is the window of ``W`` bars ending on its *decision day* T (inputs known at T's close)
and the targets of T+1: the next-day return of the adjusted close and its direction in the class
order [down, flat, up]. A sample belongs to the segment that contains its *target* day, so no
training label and no scaler statistic ever comes from a day after the training segment.

Inputs come from ``model_inputs`` over the symbol's stored bars (never from the store's feature
cache), then are made scale-free inside each window before the scaler (docs/architecture.md,
"Features"), so one scaler and one model serve every symbol. The same ``model_inputs`` and
``scale_free`` run in training, backtest and the live brain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from heqis.errors import HeqisError
from heqis.features.columns import MODEL_INPUTS
from heqis.features.inputs import BAR_INPUTS, model_inputs
from heqis.features.transform import CLASSES, TARGET_TEXT, Scaler, scale_free

__all__ = ["CLASSES", "Scaler", "scale_free"]  # re-exported: the research entry point

SEGMENT_NAMES = ("train", "val", "select", "test")
DEFAULT_FRACTIONS = (0.60, 0.15, 0.10, 0.15)


# ---------------------------------------------------------------------------------------------
# model inputs from stored bars
# ---------------------------------------------------------------------------------------------
def bar_matrix(bars: pd.DataFrame) -> np.ndarray:
    """[n, 7] float64 of a symbol's stored bars in ``BAR_INPUTS`` order (what a live request carries)."""
    return bars.loc[:, list(BAR_INPUTS)].to_numpy(dtype=np.float64)


def research_inputs(bars: pd.DataFrame, inputs: tuple[str, ...] = MODEL_INPUTS) -> np.ndarray:
    """[n, F] model inputs of a symbol's whole history: ``model_inputs`` once per symbol."""
    if tuple(inputs) != MODEL_INPUTS:
        raise HeqisError("the model inputs of this heqis are fixed", hint=f"expected {', '.join(MODEL_INPUTS)}")
    return model_inputs(bar_matrix(bars))


# ---------------------------------------------------------------------------------------------
# targets and segments
# ---------------------------------------------------------------------------------------------
def direction(ret: np.ndarray, flat_band: float) -> np.ndarray:
    """Class index per return: 0 down (< -band), 1 flat, 2 up (> band)."""
    out = np.ones(ret.shape, dtype=np.int64)
    out[ret < -flat_band] = 0
    out[ret > flat_band] = 2
    return out


@dataclass(frozen=True)
class Segments:
    """Chronological segments as inclusive date ranges (recorded in every run manifest)."""

    bounds: dict[str, tuple[pd.Timestamp, pd.Timestamp]]

    def label(self, dates: np.ndarray) -> np.ndarray:
        """Segment name per date ('' outside every segment)."""
        d = pd.DatetimeIndex(dates)
        out = np.full(len(d), "", dtype=object)
        for name, (a, b) in self.bounds.items():
            out[(d >= a) & (d <= b)] = name
        return out

    def to_dict(self) -> dict[str, list[str]]:
        return {k: [a.date().isoformat(), b.date().isoformat()] for k, (a, b) in self.bounds.items()}

    @classmethod
    def from_dict(cls, raw: dict[str, list[str]]) -> Segments:
        return cls({k: (pd.Timestamp(v[0]), pd.Timestamp(v[1])) for k, v in raw.items()})


def split_segments(sessions: pd.DatetimeIndex, fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
                   names: tuple[str, ...] = SEGMENT_NAMES) -> Segments:
    """Cut the sessions into consecutive segments by the given fractions (they must sum to 1)."""
    if len(fractions) != len(names) or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
        raise HeqisError(f"segment fractions {fractions} must be {len(names)} positive numbers summing to 1")
    days = pd.DatetimeIndex(sorted(set(sessions)))
    if len(days) < 4 * len(names):
        raise HeqisError(f"only {len(days)} sessions: too few to split into {', '.join(names)}",
                         hint="fetch a longer date range")
    edges = np.round(np.cumsum((0.0, *fractions)) * len(days)).astype(int)
    return Segments({name: (days[edges[i]], days[edges[i + 1] - 1]) for i, name in enumerate(names)})


# ---------------------------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------------------------
TARGETS = TARGET_TEXT      # the training target: name → what y is (scaler_params.json "target")


def target_horizon(target: str) -> int:
    """Bars after the decision day a target needs: 1 (close T+1) or 2 (open T+2)."""
    if target not in TARGETS:
        raise HeqisError(f"unknown target '{target}'", hint=f"use one of: {', '.join(TARGETS)}")
    return 1 if target == "close" else 2


def target_returns(bars: pd.DataFrame, ends: np.ndarray, target: str = "close") -> tuple[np.ndarray, np.ndarray]:
    """(return, target day) of the decisions at rows ``ends``: ``close`` T → T+1 (the day it is
    known: T+1), or ``open`` T+1 → T+2 (what a signal decided at T's close and filled at the next
    open earns; known at T+2). Adjusted prices, float64."""
    dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
    if target_horizon(target) == 1:
        close = bars["close"].to_numpy(dtype=np.float64)
        return close[ends + 1] / close[ends] - 1.0, dates[ends + 1]
    opens = bars["open"].to_numpy(dtype=np.float64)
    return opens[ends + 2] / opens[ends + 1] - 1.0, dates[ends + 2]


def valid_ends(values: np.ndarray, window: int, with_target: bool, horizon: int = 1) -> np.ndarray:
    """Rows that end a complete window of finite inputs; ``with_target``: only rows with ``horizon``
    bars after them (``target_horizon``)."""
    n = len(values)
    ahead = horizon if with_target else 0
    if n < window + ahead:
        return np.zeros(0, np.int64)
    bad = (~np.isfinite(values).all(axis=1)).astype(np.int64)
    bad_cum = np.concatenate(([0], np.cumsum(bad)))
    ends = np.arange(window - 1, n - ahead)
    return ends[(bad_cum[ends + 1] - bad_cum[ends + 1 - window]) == 0]


@dataclass
class WindowSet:
    """Samples from every symbol: scale-free inputs (not yet scaled) and targets."""

    x: np.ndarray                 # [N, W, F] float32
    y_reg: np.ndarray             # [N] float32, the target return (TARGETS)
    y_cls: np.ndarray             # [N] int64, 0 down / 1 flat / 2 up
    symbols: np.ndarray           # [N] str
    dates: np.ndarray             # [N] datetime64[ns], decision day T (the window's last bar)
    target_dates: np.ndarray      # [N] datetime64[ns], the day the target is known (T+1; open: T+2)
    inputs: tuple[str, ...] = field(default=MODEL_INPUTS)

    def __len__(self) -> int:
        return len(self.y_reg)

    def subset(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(self.x[mask], self.y_reg[mask], self.y_cls[mask], self.symbols[mask],
                         self.dates[mask], self.target_dates[mask], self.inputs)

    def segment(self, segments: Segments, name: str) -> WindowSet:
        return self.subset(segments.label(self.target_dates) == name)


def symbol_windows(bars: pd.DataFrame, window: int, flat_band: float,
                   inputs: tuple[str, ...] = MODEL_INPUTS, target: str = "close") -> tuple[np.ndarray, ...]:
    """(x, y_reg, y_cls, dates, target_dates) of one symbol's bars, sorted by trade_date."""
    values = research_inputs(bars, inputs)
    dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
    empty = (np.zeros((0, window, len(inputs)), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
             dates[:0], dates[:0])
    ends = valid_ends(values, window, with_target=True, horizon=target_horizon(target))
    if not len(ends):
        return empty
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)  # [n-W+1, F, W]
    x = scale_free(np.swapaxes(view[ends - window + 1], 1, 2), inputs).astype(np.float32)
    y, when = target_returns(bars, ends, target)
    return x, y.astype(np.float32), direction(y, flat_band), dates[ends], when


def inference_windows(bars: pd.DataFrame, window: int,
                      inputs: tuple[str, ...] = MODEL_INPUTS) -> tuple[np.ndarray, np.ndarray]:
    """(x [N, W, F] scale-free, decision dates [N]) for every bar that ends a complete window,
    the last bar included (it has no target yet, but live and backtest signals need it)."""
    values = research_inputs(bars, inputs)
    dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
    n = len(values)
    if n < window:
        return np.zeros((0, window, len(inputs)), np.float32), dates[:0]
    ends = valid_ends(values, window, with_target=False)
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    x = scale_free(np.swapaxes(view[ends - window + 1], 1, 2), inputs).astype(np.float32)
    return x, dates[ends]


def build_windows(bars_by_symbol: dict[str, pd.DataFrame], window: int = 60, flat_band: float = 0.005,
                  inputs: tuple[str, ...] = MODEL_INPUTS) -> WindowSet:
    """Every valid window of every symbol (windows with a NaN input, e.g. in warm-up, are skipped)."""
    parts = []
    for code in sorted(bars_by_symbol):
        x, y, c, d, td = symbol_windows(bars_by_symbol[code], window, flat_band, inputs)
        parts.append((x, y, c, np.full(len(y), code, dtype=object), d, td))
    if not parts or not sum(len(p[1]) for p in parts):
        raise HeqisError(f"no complete {window}-bar windows in the data",
                         hint="fetch more history (warm-up needs ~60 bars before the first window)")
    x, y, c, s, d, td = (np.concatenate(cols) for cols in zip(*parts, strict=True))
    return WindowSet(x, y, c, s, d.astype("datetime64[ns]"), td.astype("datetime64[ns]"), inputs)


# ---------------------------------------------------------------------------------------------
# windows as index views (training: no [N, W, F] copy)
# ---------------------------------------------------------------------------------------------
@dataclass
class WindowIndex:
    """Samples as views over the symbols' model inputs: the same samples as ``build_windows``.

    ``panel`` holds every symbol's ``research_inputs`` rows once, one symbol after the other; a
    sample is the global row of its decision day T. ``gather`` cuts a batch of windows out of the
    panel and makes them scale-free on the fly, so memory grows with the bars (47 kB per
    symbol-year in float64), not with the windows (60× that). ``subset`` and ``segment`` share the
    panel. The panel is float64 by default so that every number equals ``build_windows``'s bit for
    bit; a float32 panel halves it but moves scaled inputs by up to ~1e-6 (log volume's rounding).
    """

    panel: np.ndarray             # [R, F] model inputs of every symbol, one after another
    ends: np.ndarray              # [N] int64, the panel row of each sample's decision day T
    sym: np.ndarray               # [N] int32, index into ``names``
    names: tuple[str, ...]
    y_reg: np.ndarray             # [N] float32
    y_cls: np.ndarray             # [N] int64
    dates: np.ndarray             # [N] datetime64[ns], decision day T
    target_dates: np.ndarray      # [N] datetime64[ns], the day the target is known (T+1; open: T+2)
    window: int
    inputs: tuple[str, ...] = field(default=MODEL_INPUTS)

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def symbols(self) -> np.ndarray:
        return np.asarray(self.names, dtype=object)[self.sym]

    def subset(self, keep: np.ndarray) -> WindowIndex:
        """The samples selected by a boolean mask or an index array (the panel is shared)."""
        return WindowIndex(self.panel, self.ends[keep], self.sym[keep], self.names, self.y_reg[keep],
                           self.y_cls[keep], self.dates[keep], self.target_dates[keep], self.window, self.inputs)

    def segment(self, segments: Segments, name: str) -> WindowIndex:
        """The samples whose *target* day lies in the segment (as ``WindowSet.segment``)."""
        a, b = (np.datetime64(t, "ns") for t in segments.bounds[name])
        return self.subset((self.target_dates >= a) & (self.target_dates <= b))

    def raw(self, idx: np.ndarray) -> np.ndarray:
        """[B, W, F] model inputs of the samples ``idx``, not yet scale-free."""
        rows = self.ends[np.asarray(idx)][:, None] + np.arange(1 - self.window, 1)
        return self.panel[rows]

    def gather(self, idx: np.ndarray) -> np.ndarray:
        """[B, W, F] float32 scale-free windows of the samples ``idx`` (``WindowSet.x[idx]``)."""
        return scale_free(self.raw(idx), self.inputs).astype(np.float32)

    def last_inputs(self, column: str) -> np.ndarray:
        """[N] float32 raw input ``column`` on each sample's decision day."""
        return self.panel[self.ends, self.inputs.index(column)].astype(np.float32)

    def x_chunks(self, size: int = 8192) -> Iterator[np.ndarray]:
        """Every sample's scale-free window, ``size`` samples at a time (what ``Scaler.fit`` streams)."""
        for start in range(0, len(self), size):
            yield self.gather(np.arange(start, min(start + size, len(self))))

    @property
    def x(self) -> np.ndarray:
        """Every window materialised as [N, W, F] — small sets and tests only."""
        return self.gather(np.arange(len(self)))


def index_windows(bars_by_symbol: dict[str, pd.DataFrame], window: int = 60, flat_band: float = 0.005,
                  inputs: tuple[str, ...] = MODEL_INPUTS, dtype: type = np.float64,
                  target: str = "close") -> WindowIndex:
    """The samples of ``build_windows`` (same order, same targets) as views over one panel."""
    codes = sorted(bars_by_symbol)
    total = sum(len(bars_by_symbol[c]) for c in codes)
    panel = np.empty((total, len(inputs)), dtype)          # filled in place: no list of copies
    parts = []
    offset = 0
    for k, code in enumerate(codes):
        bars = bars_by_symbol[code]
        values = research_inputs(bars, inputs)
        n = len(values)
        panel[offset:offset + n] = values
        ends = valid_ends(values, window, with_target=True, horizon=target_horizon(target))
        dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
        y, when = target_returns(bars, ends, target)
        parts.append((ends + offset, np.full(len(ends), k, np.int32), y.astype(np.float32),
                      direction(y, flat_band), dates[ends], when))
        offset += n
    if not sum(len(p[0]) for p in parts):
        raise HeqisError(f"no complete {window}-bar windows in the data",
                         hint="fetch more history (warm-up needs ~60 bars before the first window)")
    e, s, y, c, d, td = (np.concatenate(cols) for cols in zip(*parts, strict=True))
    return WindowIndex(panel, e.astype(np.int64), s, tuple(codes), y, c, d.astype("datetime64[ns]"),
                       td.astype("datetime64[ns]"), window, inputs)


def fit_scaler(windows: WindowSet | WindowIndex, segments: Segments, window: int, flat_band: float,
               target: str = "close") -> Scaler:
    """The scaler of a run: fitted on the samples whose target day lies in the train segment."""
    start, end = segments.to_dict()["train"]
    return Scaler.fit(windows.segment(segments, "train"), window, flat_band,
                      {"segment": "train", "start": start, "end": end}, target)

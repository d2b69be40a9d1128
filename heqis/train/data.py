"""Training data: windows from the store, chronological segments, and the train-only scaler.

The segments are cut from the sessions between the first and the last stored bar (docs/architecture.md, "Training")
and recorded as dates in the run manifest; every later step (backtest, export) reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from heqis.errors import HeqisError
from heqis.features.columns import MODEL_INPUTS
from heqis.features.windows import Scaler, Segments, WindowSet, build_windows, fit_scaler, split_segments


@dataclass
class Split:
    """One segment as tensors: scaled inputs, scaled regression target, class, raw return."""

    x: torch.Tensor          # [N, W, F] float32, scaled
    y: torch.Tensor          # [N, 1] float32, target in the scaler's y scale
    cls: torch.Tensor        # [N] int64
    ret: torch.Tensor        # [N] float32, the next-day return itself
    last_ret: torch.Tensor   # [N] float32, the window's last daily return (the naive baseline's guess)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class TrainingData:
    train: Split
    val: Split
    scaler: Scaler
    segments: Segments
    symbols: list[str]
    window: int
    context_index: int       # column of ret1 in the inputs (the discriminators' context)
    n_train_total: int       # train windows before any subsampling

    @property
    def n_features(self) -> int:
        return int(self.train.x.shape[-1])


def _split(ws: WindowSet, scaler: Scaler) -> Split:
    ret1 = MODEL_INPUTS.index("ret1")
    return Split(
        x=torch.from_numpy(scaler.transform(ws.x)),
        y=torch.from_numpy(scaler.transform_y(ws.y_reg)).reshape(-1, 1),
        cls=torch.from_numpy(ws.y_cls.astype(np.int64)),
        ret=torch.from_numpy(ws.y_reg.astype(np.float32)),
        last_ret=torch.from_numpy(ws.x[:, -1, ret1].astype(np.float32)),
    )


def session_range(bars_by_symbol: dict[str, pd.DataFrame], sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The sessions between the first and the last bar of any symbol."""
    first = min(b["trade_date"].iloc[0] for b in bars_by_symbol.values())
    last = max(b["trade_date"].iloc[-1] for b in bars_by_symbol.values())
    return sessions[(sessions >= first) & (sessions <= last)]


def prepare(bars_by_symbol: dict[str, pd.DataFrame], sessions: pd.DatetimeIndex, window: int, flat_band: float,
            max_train: int | None = None, seed: int = 3407, segments: Segments | None = None) -> TrainingData:
    """Windows of every symbol, split chronologically; the scaler sees the train segment only."""
    bars_by_symbol = {k: v for k, v in bars_by_symbol.items() if len(v)}
    if not bars_by_symbol:
        raise HeqisError("no bars to train on", hint="run heqis data first")
    segments = segments or split_segments(session_range(bars_by_symbol, sessions))
    ws = build_windows(bars_by_symbol, window=window, flat_band=flat_band)
    scaler = fit_scaler(ws, segments, window, flat_band)
    train = ws.segment(segments, "train")
    val = ws.segment(segments, "val")
    if not len(val):
        raise HeqisError("the validation segment holds no windows", hint="fetch a longer date range")
    n_total = len(train)
    if max_train and len(train) > max_train:
        keep = np.sort(np.random.default_rng(seed).choice(len(train), max_train, replace=False))
        train = train.subset(keep)
    return TrainingData(_split(train, scaler), _split(val, scaler), scaler, segments, sorted(bars_by_symbol),
                        window, MODEL_INPUTS.index("ret1"), n_total)

"""Training data: windows from the store, chronological segments, and the train-only scaler.

Windows are index views over one panel of model inputs (``features.windows.WindowIndex``): a batch
is cut, made scale-free and scaled when the trainer asks for it, so memory grows with the bars,
not with the windows, and the validation segment can be capped per preset (``max_val_windows``).

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
from heqis.features.windows import Scaler, Segments, WindowIndex, fit_scaler, index_windows, split_segments


@dataclass
class Split:
    """One segment: its windows as index views, and its targets as tensors.

    Inputs are cut from the shared panel, made scale-free and scaled batch by batch (``batch``),
    so a split costs its targets and two indices per sample, never an [N, W, F] copy.
    """

    windows: WindowIndex
    scaler: Scaler
    y: torch.Tensor          # [N, 1] float32, target in the scaler's y scale
    cls: torch.Tensor        # [N] int64
    ret: torch.Tensor        # [N] float32, the next-day return itself
    last_ret: torch.Tensor   # [N] float32, the window's last daily return (the naive baseline's guess)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batch(self, idx: torch.Tensor | np.ndarray) -> torch.Tensor:
        """[B, W, F] float32 scaled inputs of the samples ``idx`` (positions in this split)."""
        idx = idx.numpy() if isinstance(idx, torch.Tensor) else np.asarray(idx)
        return torch.from_numpy(self.scaler.transform(self.windows.gather(idx)))

    @property
    def x(self) -> torch.Tensor:
        """Every window of the split scaled, [N, W, F] — small splits and tests only."""
        return self.batch(np.arange(len(self)))


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
    n_val_total: int = 0     # validation windows before the preset's cap

    @property
    def n_features(self) -> int:
        return int(self.train.windows.panel.shape[-1])


def _split(ws: WindowIndex, scaler: Scaler) -> Split:
    return Split(
        windows=ws,
        scaler=scaler,
        y=torch.from_numpy(scaler.transform_y(ws.y_reg)).reshape(-1, 1),
        cls=torch.from_numpy(ws.y_cls.astype(np.int64)),
        ret=torch.from_numpy(ws.y_reg.astype(np.float32)),
        last_ret=torch.from_numpy(ws.last_inputs("ret1")),   # ret1 passes scale_free unchanged
    )


def session_range(bars_by_symbol: dict[str, pd.DataFrame], sessions: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The sessions between the first and the last bar of any symbol."""
    first = min(b["trade_date"].iloc[0] for b in bars_by_symbol.values())
    last = max(b["trade_date"].iloc[-1] for b in bars_by_symbol.values())
    return sessions[(sessions >= first) & (sessions <= last)]


def _sample(n: int, cap: int | None, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted positions of ``cap`` samples out of ``n`` (None: keep all)."""
    if not cap or n <= cap:
        return None
    return np.sort(rng.choice(n, cap, replace=False))


def prepare(bars_by_symbol: dict[str, pd.DataFrame], sessions: pd.DatetimeIndex, window: int, flat_band: float,
            max_train: int | None = None, seed: int = 3407, segments: Segments | None = None,
            max_val: int | None = None, target: str = "close") -> TrainingData:
    """Windows of every symbol, split chronologically; the scaler sees the train segment only.

    ``target``: ``close`` (close T → T+1) or ``open`` (open T+1 → T+2), ``features.windows.TARGETS``.
    ``max_train`` / ``max_val`` draw that many windows of the segment with the seed (the same
    draw for the same data and seed; validation from its own stream, so capping it leaves the
    training sample as it was).
    """
    bars_by_symbol = {k: v for k, v in bars_by_symbol.items() if len(v)}
    if not bars_by_symbol:
        raise HeqisError("no bars to train on", hint="run heqis data first")
    segments = segments or split_segments(session_range(bars_by_symbol, sessions))
    ws = index_windows(bars_by_symbol, window=window, flat_band=flat_band, target=target)
    scaler = fit_scaler(ws, segments, window, flat_band, target)     # streamed over every train window
    train = ws.segment(segments, "train")
    val = ws.segment(segments, "val")
    if not len(val):
        raise HeqisError("the validation segment holds no windows", hint="fetch a longer date range")
    n_total, n_val = len(train), len(val)
    keep = _sample(n_total, max_train, np.random.default_rng(seed))
    if keep is not None:
        train = train.subset(keep)
    keep = _sample(n_val, max_val, np.random.default_rng([seed, 1]))
    if keep is not None:
        val = val.subset(keep)
    return TrainingData(_split(train, scaler), _split(val, scaler), scaler, segments, sorted(bars_by_symbol),
                        window, MODEL_INPUTS.index("ret1"), n_total, n_val)

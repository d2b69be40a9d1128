"""``heqis train --watchdog``: the gateway's data-quality model (heqis.models.watchdog) in a run folder.

Windows (heqis.features.quality) come from the store's raw, unadjusted bars — what the gateway sees:
the train segment fits the CAE, the validation segment sets the threshold, the (1 - fpr) quantile of
its clean windows' scores. The train windows are a seeded draw of at most ``max_train_windows``
(symbol, end) pairs, cut out only once drawn, so a universe of 1,000 symbols stays in memory.

::

    RUN_DIR/watchdog.pt     checkpoint (heqis.models.checkpoint) with the CAE's state dict
    RUN_DIR/watchdog.json   window, columns, latent, channels, threshold, fpr, window counts, epochs, seed
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from heqis.data.schema import RAW_PRICES
from heqis.data.store import DataStore
from heqis.errors import HeqisError
from heqis.features.quality import QUALITY_COLUMNS, QUALITY_WINDOW, quality_windows
from heqis.features.windows import Segments, split_segments
from heqis.fileio import read_json, write_json
from heqis.models import checkpoint
from heqis.models.watchdog import build_watchdog, last_row_score

WATCHDOG_PT = "watchdog.pt"
WATCHDOG_JSON = "watchdog.json"
OHLCV = (*RAW_PRICES, "vol", "pre_close_raw", "up_limit", "down_limit")   # heqis.features.quality's order


@dataclass
class WatchdogConfig:
    window: int = QUALITY_WINDOW
    latent: int = 4
    channels: int = 16
    epochs: int = 8
    batch_size: int = 256
    lr: float = 3e-3
    fpr: float = 0.005
    max_train_windows: int = 200_000
    max_val_windows: int = 200_000
    seed: int = 3407


@dataclass
class WatchdogResult:
    run_dir: str
    threshold: float
    fpr: float
    train_windows: int
    val_windows: int
    epochs: int
    train_loss: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bars_ohlcv(frame: pd.DataFrame) -> np.ndarray:
    """[n, 8] raw open, high, low, close, volume, pre-close, up and down limit of stored bars (the
    store's unadjusted columns; heqis.features.quality measures each bar from its pre-close)."""
    return frame.loc[:, list(OHLCV)].to_numpy(dtype=np.float64)


def segment_ends(dates: np.ndarray, segments: Segments, name: str, window: int) -> np.ndarray:
    """Row indices of the bars in segment ``name`` that can end a window (window earlier bars exist)."""
    a, b = segments.bounds[name]
    d = pd.DatetimeIndex(dates)
    rows = np.flatnonzero((d >= a) & (d <= b))
    return rows[rows >= window]


def _draw(per_symbol: dict[str, np.ndarray], cap: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """At most ``cap`` (symbol, end) pairs, drawn without replacement; ends stay sorted per symbol."""
    total = sum(len(v) for v in per_symbol.values())
    if total <= cap:
        return per_symbol
    keep = np.zeros(total, dtype=bool)
    keep[rng.choice(total, size=cap, replace=False)] = True
    out, at = {}, 0
    for sym, ends in per_symbol.items():
        out[sym] = ends[keep[at:at + len(ends)]]
        at += len(ends)
    return out


def segment_windows(ohlcv: dict[str, np.ndarray], dates: dict[str, np.ndarray], segments: Segments, name: str,
                    window: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``cap`` quality windows ending in segment ``name``, over every symbol (float32 [N, window, 5])."""
    ends = {s: segment_ends(dates[s], segments, name, window) for s in ohlcv}
    ends = _draw(ends, cap, rng)
    parts = [quality_windows(ohlcv[s], e, window) for s, e in ends.items() if len(e)]
    if not parts:
        return np.zeros((0, window, len(QUALITY_COLUMNS)), dtype=np.float32)
    return np.concatenate(parts)


def scores(model: torch.nn.Module, windows: np.ndarray, batch: int = 4096) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            out.append(last_row_score(model, torch.from_numpy(windows[i:i + batch])).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _run_context(run_dir: Path, data_dir: Path | None, symbols: list[str] | None,
                 segments: Segments | None) -> tuple[DataStore, list[str], Segments]:
    """The store, symbols and segments: the run's when ``run_dir`` holds a training run, else the
    store's (every symbol, the default chronological split)."""
    manifest_path = run_dir / "manifest.json"
    if manifest_path.exists():
        from heqis.formats.run import RunFolder

        run = RunFolder.open(run_dir)
        store = DataStore(data_dir or run.data_dir)
        symbols = symbols or run.symbols
        segments = segments or Segments.from_dict({k: list(v) for k, v in run.segments.items()})
    else:
        if data_dir is None:
            raise HeqisError(f"{run_dir}: no training run here to take the data store from",
                             hint="pass the data store (--data-dir DIR)")
        store = DataStore(data_dir)
    store.require_current()
    symbols = symbols or store.symbols()
    segments = segments or split_segments(store.sessions())
    return store, list(symbols), segments


def train_watchdog(run_dir: Path, data_dir: Path | None = None, symbols: list[str] | None = None,
                   segments: Segments | None = None, config: WatchdogConfig | None = None,
                   log: Callable[[str], None] | None = None) -> WatchdogResult:
    """Fit the watchdog on the train segment, set its threshold on val, save it into ``run_dir``."""
    t0 = time.monotonic()
    cfg = config or WatchdogConfig()
    log = log or (lambda line: None)
    if not 0 < cfg.fpr < 0.5:
        raise HeqisError(f"watchdog fpr {cfg.fpr:g} must lie in (0, 0.5)", hint="e.g. 0.005")
    run_dir = Path(run_dir)
    store, symbols, segments = _run_context(run_dir, data_dir, symbols, segments)
    ohlcv, dates = {}, {}
    for s in symbols:
        bars = store.read_bars(s)
        ohlcv[s], dates[s] = bars_ohlcv(bars), bars["trade_date"].to_numpy()
    rng = np.random.default_rng(cfg.seed)
    train = segment_windows(ohlcv, dates, segments, "train", cfg.window, cfg.max_train_windows, rng)
    val = segment_windows(ohlcv, dates, segments, "val", cfg.window, cfg.max_val_windows, rng)
    del ohlcv, dates
    if len(train) < cfg.batch_size or len(val) < 100:
        raise HeqisError(f"too few windows for the watchdog ({len(train)} train, {len(val)} val)",
                         hint="use a longer date range or more symbols")

    torch.manual_seed(cfg.seed)
    config_doc = {"window": cfg.window, "columns": list(QUALITY_COLUMNS), "latent": cfg.latent,
                  "channels": cfg.channels}
    model = build_watchdog(config_doc)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.from_numpy(train)
    loss_value = float("nan")
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            batch = x[order[i:i + cfg.batch_size]]
            loss = model.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        loss_value = total / len(x)
        log(f"watchdog epoch {epoch + 1}/{cfg.epochs}: train mse {loss_value:.4f}")
    val_scores = scores(model, val)
    threshold = float(np.quantile(val_scores, 1 - cfg.fpr))
    log(f"watchdog threshold {threshold:.3f} (val quantile {1 - cfg.fpr:g} of {len(val)} windows)")

    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.save(run_dir / WATCHDOG_PT, {"kind": "watchdog", **config_doc, "state_dict": model.state_dict()})
    doc = {**config_doc, "threshold": threshold, "fpr": cfg.fpr, "val_windows": len(val),
           "train_windows": len(train), "epochs": cfg.epochs, "seed": cfg.seed, "batch_size": cfg.batch_size,
           "lr": cfg.lr, "max_train_windows": cfg.max_train_windows, "train_loss": loss_value,
           "val_score_quantiles": {str(q): float(np.quantile(val_scores, q)) for q in (0.5, 0.9, 0.99, 0.999)},
           "symbols": len(symbols), "segments": segments.to_dict(), "data_dir": str(store.root),
           "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "checkpoint": WATCHDOG_PT}
    write_json(run_dir / WATCHDOG_JSON, doc)
    return WatchdogResult(str(run_dir), threshold, cfg.fpr, len(train), len(val), cfg.epochs, loss_value,
                          round(time.monotonic() - t0, 2))


def load_watchdog(run_dir: Path) -> tuple[torch.nn.Module, dict[str, Any]] | None:
    """The run's watchdog CAE (eval mode) and its watchdog.json, or None when it has none."""
    run_dir = Path(run_dir)
    if not (run_dir / WATCHDOG_JSON).exists():
        return None
    doc = read_json(run_dir / WATCHDOG_JSON, "watchdog", hint="train it again: heqis train --watchdog -o RUN")
    state = checkpoint.load(run_dir / WATCHDOG_PT)
    model = build_watchdog(doc)
    checkpoint.load_into(model, state["state_dict"], run_dir / WATCHDOG_PT)
    return model.eval(), doc

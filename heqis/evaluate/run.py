"""``heqis evaluate RUN``: is a trained run worth anything out of sample, and how sure are we?

For every generator, their ensemble (mean forecast; class from the mean of the softmax) and the
baselines ``zero`` (a zero return), ``train_mean`` (the train segment's mean return, from the
scaler), ``last_value`` (today's return again) and ``majority`` (the train segment's most frequent
class; no return forecast): MSE and its ratio to ``zero``, Diebold–Mariano against ``zero``,
accuracy and balanced accuracy of the direction, the share of each predicted class, and the daily
cross-sectional IC / rank IC (``heqis.stats``).

Samples are the run's own: a window of finite inputs ending on day T, target the run's (close T →
close T+1, or with ``--target open`` open T+1 → open T+2), assigned to the segment of the day the
target is known, as training assigns them. Every model is
scored on the same samples — the windows complete for the longest look-back of the run — so the
rows of a table compare like with like. The default segment is ``val``; ``test`` is only scored
when asked for, so the habit of looking at it while tuning does not form.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heqis.backtest.run import FINISHED, Universe, open_run_models, tradable
from heqis.backtest.signals import Inference, needed_inputs, predict_many
from heqis.errors import HeqisError
from heqis.features.windows import direction, research_inputs, target_horizon, target_returns, valid_ends
from heqis.formats.run import RunFolder
from heqis.stats import CLASSES, daily_ic, daily_means, diebold_mariano, direction_scores

EVAL_SEGMENTS = ("val", "select", "test")
SEGMENT_CHOICES = (*EVAL_SEGMENTS, "all")
BASELINES = ("zero", "train_mean", "last_value", "majority")
ENSEMBLE = "ensemble"
CHUNK = 16            # symbols per inference call (as the backtest)


@dataclass
class EvaluationResult:
    run: str
    segments: dict[str, dict[str, Any]]     # SEG → {"days", "symbols", "samples", "models": {NAME: metrics}}
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # keep_samples: SEG → DataFrame, one row per sample (symbol, day: the target day, y, and each return
    # forecast as "reg:NAME"); not part of the JSON
    samples: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(replace(self, samples={}))


@dataclass
class _Panel:
    """Pooled samples of one segment, in symbol-then-date order."""

    y: list[np.ndarray] = field(default_factory=list)
    sym: list[str] = field(default_factory=list)       # the symbol of each appended block
    last: list[np.ndarray] = field(default_factory=list)
    day: list[np.ndarray] = field(default_factory=list)
    reg: dict[str, list[np.ndarray]] = field(default_factory=dict)
    logits: dict[str, list[np.ndarray]] = field(default_factory=dict)
    symbols: int = 0


def _segment_names(segment: str) -> tuple[str, ...]:
    if segment not in SEGMENT_CHOICES:
        raise HeqisError(f"unknown segment '{segment}'", hint=f"use one of: {', '.join(SEGMENT_CHOICES)}")
    return EVAL_SEGMENTS if segment == "all" else (segment,)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def model_metrics(reg: np.ndarray | None, cls: np.ndarray, y: np.ndarray, y_cls: np.ndarray, day: np.ndarray,
                  days: int, zero_loss_by_day: np.ndarray, constant: bool = False) -> dict[str, Any]:
    """The JSON row of one model: ``reg`` its return forecasts (None: it makes none), ``cls`` its
    predicted classes; ``constant``: the same forecast for every sample (no IC, no DM against zero
    when it *is* zero)."""
    acc, balanced, share = direction_scores(cls, y_cls)
    row: dict[str, Any] = {"n": len(y), "mse": None, "mse_ratio_zero": None, "dm_t": None, "dm_p": None,
                           "acc": acc, "balanced_acc": balanced, "class_share": share,
                           "ic_mean": None, "icir": None, "ic_t": None, "rank_ic_mean": None, "rank_icir": None,
                           "rank_ic_t": None, "ic_days": 0}
    if reg is None:
        return row
    loss = (reg - y) ** 2
    mse, zero = float(loss.mean()), float((y ** 2).mean())
    row.update(mse=mse, mse_ratio_zero=mse / zero if zero > 0 else None)
    if not (constant and not np.any(reg)):
        row["dm_t"], row["dm_p"] = diebold_mariano(daily_means(loss, day, days) - zero_loss_by_day)
    if not constant:
        ic, rank_ic = daily_ic(reg, y, day)
        row.update(ic_mean=ic.mean, icir=ic.icir, ic_t=ic.t, rank_ic_mean=rank_ic.mean, rank_icir=rank_ic.icir,
                   rank_ic_t=rank_ic.t, ic_days=ic.days)
    return row


def _score(panel: _Panel, gids: list[str], train_mean: float, majority: int, flat_band: float) -> dict[str, Any]:
    y = np.concatenate(panel.y)
    stamps = np.concatenate(panel.day)
    days_index, day = np.unique(stamps, return_inverse=True)
    days = len(days_index)
    y_cls = direction(y, flat_band)
    zero_by_day = daily_means(y ** 2, day, days)
    reg = {g: np.concatenate(panel.reg[g]) for g in gids}
    prob = {g: _softmax(np.concatenate(panel.logits[g])) for g in gids}
    models: dict[str, Any] = {}
    for g in gids:
        models[g] = model_metrics(reg[g], prob[g].argmax(axis=1), y, y_cls, day, days, zero_by_day)
    ens_reg = np.mean([reg[g] for g in gids], axis=0)
    ens_cls = np.mean([prob[g] for g in gids], axis=0).argmax(axis=1)
    models[ENSEMBLE] = model_metrics(ens_reg, ens_cls, y, y_cls, day, days, zero_by_day)
    zeros = np.zeros_like(y)
    models["zero"] = model_metrics(zeros, direction(zeros, flat_band), y, y_cls, day, days, zero_by_day, True)
    const = np.full_like(y, train_mean)
    models["train_mean"] = model_metrics(const, direction(const, flat_band), y, y_cls, day, days, zero_by_day, True)
    last = np.concatenate(panel.last)
    models["last_value"] = model_metrics(last, direction(last, flat_band), y, y_cls, day, days, zero_by_day)
    models["majority"] = model_metrics(None, np.full(len(y), majority), y, y_cls, day, days, zero_by_day, True)
    first, final = pd.Timestamp(days_index[0]), pd.Timestamp(days_index[-1])
    return {"days": days, "symbols": panel.symbols, "samples": len(y),
            "from": str(first.date()), "to": str(final.date()), "models": models}


def evaluate_run(run_dir: Path, segment: str = "val", data_dir: Path | None = None,
                 inference_backend: str = "auto",
                 progress: Callable[[str, int, int], None] | None = None,
                 keep_samples: bool = False) -> EvaluationResult:
    """Score every generator, the ensemble and the baselines of ``run_dir`` on ``segment``;
    ``keep_samples``: also return each segment's samples and forecasts (``EvaluationResult.samples``,
    what ``heqis compare`` pairs two runs' losses with)."""
    t0 = time.monotonic()
    names = _segment_names(segment)
    progress = progress or (lambda what, done, total: None)
    run = RunFolder.open(run_dir)
    store, models = open_run_models(run, data_dir)
    gids = list(models)
    scalers = {gid: scaler for gid, (_, scaler) in models.items()}
    inputs = next(iter(scalers.values())).inputs
    window = max(s.window for s in scalers.values())
    target = str(run.manifest.get("target", "close"))
    horizon = target_horizon(target)
    price = "close" if target == "close" else "open"      # last_value: the target's own return known at T
    flat_band = float(run.manifest.get("flat_band", next(iter(scalers.values())).flat_band))
    train_mean = float(scalers[gids[0]].inverse_y(np.zeros(1))[0])
    bounds = {k: (np.datetime64(pd.Timestamp(a), "ns"), np.datetime64(pd.Timestamp(b), "ns"))
              for k, (a, b) in run.segments.items()}
    missing = [n for n in ("train", *names) if n not in bounds]
    if missing:
        raise HeqisError(f"{run_dir}: the run has no '{missing[0]}' segment", hint=f"segments: {', '.join(bounds)}")
    inference = Inference(models, inference_backend)
    symbols = tradable(run.symbols, Universe.of(store))
    panels = {n: _Panel(reg={g: [] for g in gids}, logits={g: [] for g in gids}) for n in names}
    train_classes = np.zeros(len(CLASSES), dtype=np.int64)
    for first in range(0, len(symbols), CHUNK):
        chunk = symbols[first:first + CHUNK]
        progress(chunk[0], first, len(symbols))
        samples, needed = [], []
        for code in chunk:
            bars = store.read_bars(code)
            values = research_inputs(bars, inputs)
            dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
            ends = valid_ends(values, window, with_target=True, horizon=horizon)
            y, known = target_returns(bars, ends, target)
            in_train = (known >= bounds["train"][0]) & (known <= bounds["train"][1])
            train_classes += np.bincount(direction(y[in_train], flat_band), minlength=len(CLASSES))
            keep = np.zeros(len(ends), bool)
            for n in names:
                keep |= (known >= bounds[n][0]) & (known <= bounds[n][1])
            if not keep.any():
                continue
            ends = ends[keep]
            px = bars[price].to_numpy(dtype=np.float64)
            samples.append((code, ends, dates, y[keep], known[keep], px[ends] / px[ends - 1] - 1.0))
            needed.append(needed_inputs(scalers, bars, dates[ends], values))
        preds = predict_many(inference, scalers, needed) if needed else []
        for (code, ends, dates, y, known, last), pred in zip(samples, preds, strict=True):
            for n in names:
                sel = (known >= bounds[n][0]) & (known <= bounds[n][1])
                if not sel.any():
                    continue
                panel = panels[n]
                panel.symbols += 1
                panel.sym.append(code)
                panel.y.append(y[sel])
                panel.last.append(last[sel])
                panel.day.append(known[sel])
                for g in gids:
                    if not np.array_equal(pred[g].dates, dates[ends]):   # pragma: no cover - an invariant
                        raise RuntimeError(f"{g}: predictions not on the evaluated dates")
                    panel.reg[g].append(pred[g].reg_return[sel])
                    panel.logits[g].append(pred[g].cls_logits[sel])
        progress(chunk[-1], min(first + CHUNK, len(symbols)), len(symbols))
    majority = int(train_classes.argmax())
    notes = []
    if run.status not in FINISHED:
        notes.append(f"the run is {run.status}: these are its best checkpoints so far, not a finished run's "
                     f"(heqis train --resume --out {run_dir} finishes it)")
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        if not panels[n].y:
            notes.append(f"no sample has its target day in {n} ({run.segments[n][0]} … {run.segments[n][1]})")
            continue
        out[n] = _score(panels[n], gids, train_mean, majority, flat_band)
    if not out:
        raise HeqisError(f"{run_dir}: nothing to evaluate in {', '.join(names)}", hint="fetch a longer date range")
    kept = {n: _samples_frame(panels[n], gids, train_mean) for n in out} if keep_samples else {}
    return EvaluationResult(str(run_dir), out, notes, round(time.monotonic() - t0, 2), kept)


def _samples_frame(panel: _Panel, gids: list[str], train_mean: float) -> pd.DataFrame:
    """One row per sample: symbol, day (the target day), y, and every return forecast ("reg:NAME")."""
    y = np.concatenate(panel.y)
    frame = pd.DataFrame({
        "symbol": np.repeat(np.asarray(panel.sym, dtype=object), [len(b) for b in panel.y]),
        "day": np.concatenate(panel.day).astype("datetime64[ns]"), "y": y})
    reg = {g: np.concatenate(panel.reg[g]) for g in gids}
    for g in gids:
        frame[f"reg:{g}"] = reg[g]
    frame[f"reg:{ENSEMBLE}"] = np.mean([reg[g] for g in gids], axis=0)
    frame["reg:zero"] = 0.0
    frame["reg:train_mean"] = train_mean
    frame["reg:last_value"] = np.concatenate(panel.last)
    return frame

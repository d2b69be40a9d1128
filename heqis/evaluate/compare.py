"""``heqis compare``: MAA against its ablations, each generator alone and the baselines, over walk-forward folds.

For every fold (``heqis.evaluate.folds``) and variant one ordinary training run is made in
``OUT/fold-K/VARIANT/`` (``heqis evaluate`` and ``heqis backtest`` work on it) and scored on the
fold's test segment (``heqis.evaluate.run``). The variants are preset overrides (``VARIANTS``):
``maa`` is the preset as it is, ``supervised`` the same without the adversarial game
(``heqis train --no-adversarial``), ``G1`` … ``Gn`` one generator alone with the game
(``--generators G1``), and on request ``no-distill``, ``no-cross`` and, where the trainer has it,
``legacy`` (the first trainer's game).

Table rows: for a run of several generators its ``ensemble`` (mean forecast) and its ``val-best``
generator (the lowest validation loss of that fold's run, named per fold); a single-generator run
as itself; and the baselines ``zero``, ``train_mean``, ``last_value``, ``majority`` (scored on the
samples of the first variant). Each metric is the mean ± the sample standard deviation (ddof 1)
over the folds. Diebold–Mariano: per fold as ``heqis evaluate`` computes it (the daily
cross-sectional mean loss differential against the zero forecast, Newey–West), and *pooled*: the
same test on the daily differentials of all folds' test days in a row (the test blocks are disjoint
and consecutive, so this is one longer out-of-sample series). Paired tests compare the reference
(``maa``'s ensemble) with each other variant's main model on the samples both scored:
d_t = mean over symbols of e²_ref − e²_other, negative when the reference errs less; the
``maa`` vs ``supervised`` pair answers whether the adversarial game helped.

Resumable: ``OUT/plan.json`` records the settings and the fold dates; a finished run is not trained
again, an interrupted one resumes from its last epoch, and each run's test evaluation is kept next
to it (``fold-K/VARIANT.test.json`` and ``.parquet``) until the run changes.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heqis.data.store import DataStore
from heqis.errors import HeqisError, InvalidValue
from heqis.evaluate.folds import TEST_SHARE, Fold, walk_forward
from heqis.fileio import atomic_write, read_json, write_json
from heqis.formats.run import RunFolder
from heqis.train.presets import Preset, get_preset

# heqis.evaluate.run (and through it torch), heqis.train.run and heqis.stats (scipy) are imported when
# they are needed, so that a bad option or a folder of another comparison is reported at once
PLAN_FORMAT = 1
ENSEMBLE = "ensemble"                                         # heqis.evaluate.run's names
BASELINES = ("zero", "train_mean", "last_value", "majority")
METRICS = ("mse_ratio_zero", "ic_mean", "rank_ic_mean", "balanced_acc", "acc")
REFERENCE = "maa"
VAL_BEST = "val-best"
# named variants → preset overrides; G1 … Gn (one generator alone) come from the preset
VARIANTS: dict[str, dict[str, Any]] = {
    "maa": {},
    "supervised": {"adversarial": False},
    "no-distill": {"distill_every": 0},
    "no-cross": {"cross_every": 0},
    "legacy": {"game": "legacy"},
}
VARIANT_TEXT = {
    "maa": "the preset as it is (the multi-agent adversarial game)",
    "supervised": "no adversarial game: every epoch supervised (heqis train --no-adversarial)",
    "no-distill": "no best → worst distillation (--no-distill)",
    "no-cross": "no cross-finetuning (--no-cross)",
    "legacy": "the first trainer's game (preset game = legacy)",
}
# the settings a comparison keeps for all its runs: a second invocation with other ones is refused
PLAN_KEYS = ("preset", "generators", "folds", "epochs", "seed", "symbols", "target", "max_train_windows",
             "window", "flat_band", "test_share")


def available_variants(preset: Preset) -> list[str]:
    names = [v for v in VARIANTS if v != "legacy" or "game" in {f.name for f in fields(Preset)}]
    return [*names, *preset.generators]


def default_variants(preset: Preset) -> list[str]:
    """maa, supervised, and each generator of the preset alone."""
    return [REFERENCE, "supervised", *preset.generators]


def parse_variants(text: str | None, preset: Preset) -> list[str]:
    """``--variants maa,supervised,G1`` (case-insensitive) → names; None: the default list."""
    if text is None:
        return default_variants(preset)
    known = {v.lower(): v for v in available_variants(preset)}
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n.lower() not in known]
    if unknown:
        raise InvalidValue("--variants", f"unknown variant {', '.join(repr(u) for u in unknown)}",
                           hint=f"choose from {', '.join(known.values())}")
    if not names:
        raise InvalidValue("--variants", "no variant given", hint=f"e.g. {','.join(default_variants(preset))}")
    return list(dict.fromkeys(known[n.lower()] for n in names))


def variant_overrides(name: str, preset: Preset) -> dict[str, Any]:
    if name in VARIANTS:
        return dict(VARIANTS[name])
    if name in preset.generators:
        return {"generators": [name]}
    raise HeqisError(f"unknown variant '{name}'", hint=f"choose from {', '.join(available_variants(preset))}")


def variant_text(name: str, preset: Preset) -> str:
    if name in VARIANT_TEXT:
        return VARIANT_TEXT[name]
    return f"{name} ({preset.generators[name]['kind']}) alone, with the adversarial game (--generators {name})"


@dataclass
class CompareRequest:
    data_dir: Path
    out: Path
    preset: str = "tiny"
    folds: int = 3
    variants: list[str] | None = None        # None: default_variants
    epochs: int | None = None                # each run's epochs (the preset's when None); early stopping applies
    symbols: list[str] | None = None
    seed: int = 3407
    device: str = "auto"
    target: str | None = None
    max_train_windows: int | None = None
    generators: list[str] | None = None      # a subset of the preset's for every variant (None: all)
    overrides: dict[str, Any] = field(default_factory=dict)   # preset fields for every run (window, flat_band)
    inference: str = "auto"
    test_share: float = TEST_SHARE


@dataclass
class CompareResult:
    out: str
    config: dict[str, Any]
    folds: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    verdict: dict[str, Any] | None
    counts: dict[str, int]
    seconds: float
    files: list[str]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# statistics over folds
# ---------------------------------------------------------------------------------------------
def mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation (ddof 1; None below 2 values), count) of the values given."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None, 0
    arr = np.asarray(vals)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None, len(arr)


def daily_differential(frame: pd.DataFrame, a: str, b: str | None = None,
                       other: pd.DataFrame | None = None, other_col: str | None = None) -> pd.Series:
    """Per target day, the cross-sectional mean of e²_a − e²_b: ``b`` another forecast column of
    ``frame`` (None: the zero forecast), or ``other_col`` of ``other`` (another run's samples),
    paired on (symbol, day) — samples only one of them scored are left out."""
    if other is not None:
        left = frame[["symbol", "day", "y", a]].rename(columns={a: "_a"})
        right = other[["symbol", "day", "y", other_col]].rename(columns={other_col: "_b", "y": "_y2"})
        both = left.merge(right, on=["symbol", "day"], how="inner")
        if not np.allclose(both["y"].to_numpy(), both["_y2"].to_numpy(), rtol=1e-6, atol=1e-9):
            raise HeqisError("the two runs' targets differ on the same (symbol, day)",
                             hint="compare runs trained on the same data and target")
        y, fa, fb = both["y"].to_numpy(np.float64), both["_a"].to_numpy(np.float64), both["_b"].to_numpy(np.float64)
        days = both["day"].to_numpy()
    else:
        y, fa = frame["y"].to_numpy(np.float64), frame[a].to_numpy(np.float64)
        fb = frame[b].to_numpy(np.float64) if b else np.zeros_like(y)
        days = frame["day"].to_numpy()
    d = (fa - y) ** 2 - (fb - y) ** 2
    return pd.Series(d).groupby(days, sort=True).mean()


def dm_summary(daily: list[pd.Series]) -> dict[str, Any]:
    """Per-fold and pooled Diebold–Mariano of the daily differentials of each fold (in time order)."""
    from heqis.stats import diebold_mariano  # scipy: not needed to refuse a bad option

    per = [diebold_mariano(s.to_numpy()) for s in daily]
    pooled = pd.concat(daily) if daily else pd.Series(dtype=float)
    if len(pooled) and not pooled.index.is_monotonic_increasing:
        raise HeqisError("the folds' test days are not in time order")      # pragma: no cover - folds invariant
    t, p = diebold_mariano(pooled.to_numpy()) if len(pooled) else (None, None)
    return {"mean_d_folds": [float(s.mean()) if len(s) else None for s in daily],
            "dm_t_folds": [x[0] for x in per], "dm_p_folds": [x[1] for x in per],
            "days_folds": [len(s) for s in daily], "mean_d_pooled": float(pooled.mean()) if len(pooled) else None,
            "dm_t_pooled": t, "dm_p_pooled": p, "days_pooled": len(pooled)}


def aggregate_row(variant: str, model: str, per_fold: list[dict[str, Any] | None],
                  chosen: list[str] | None = None) -> dict[str, Any]:
    """One table row from the per-fold ``heqis evaluate`` metrics of a model (None: no such fold)."""
    row: dict[str, Any] = {"variant": variant, "model": model, "chosen": chosen,
                           "folds": sum(m is not None for m in per_fold)}
    for metric in METRICS:
        mean, std, _ = mean_std([m.get(metric) if m else None for m in per_fold])
        row[f"{metric}_mean"], row[f"{metric}_std"] = mean, std
        row[f"{metric}_folds"] = [m.get(metric) if m else None for m in per_fold]
    return row


# ---------------------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------------------
def _plan(req: CompareRequest, preset: Preset, store: DataStore,
          content_hash: str) -> tuple[dict[str, Any], list[Fold]]:
    have = store.symbols()
    symbols = sorted(set(req.symbols)) if req.symbols else have
    unknown = [s for s in symbols if s not in have]
    if unknown:
        raise HeqisError(f"not in the data store {store.root}: {', '.join(unknown)}", hint=f"stored: {', '.join(have)}")
    if not symbols:
        raise HeqisError(f"{store.root}: no symbols stored", hint="run heqis data first")
    firsts, lasts = [], []
    for code in symbols:
        dates = pd.read_parquet(store.bars_path(code), columns=["trade_date"])["trade_date"]
        if len(dates):
            firsts.append(dates.min())
            lasts.append(dates.max())
    sessions = store.sessions()
    sessions = sessions[(sessions >= min(firsts)) & (sessions <= max(lasts))]
    folds = walk_forward(sessions, req.folds, req.test_share)
    plan = {"format": PLAN_FORMAT, "preset": req.preset, "folds": req.folds, "epochs": req.epochs or preset.epochs,
            "seed": req.seed, "symbols": req.symbols and symbols, "target": preset.target,
            "generators": list(preset.generators),
            "max_train_windows": preset.max_train_windows, "window": preset.window, "flat_band": preset.flat_band,
            "test_share": req.test_share, "data": {"dir": str(store.root), "content_hash": content_hash},
            "fold_segments": [f.to_dict() for f in folds]}
    return plan, folds


def _check_plan(out: Path, plan: dict[str, Any]) -> bool:
    """Whether ``out`` already holds this comparison (True), is new (False), or another one (error)."""
    path = out / "plan.json"
    if not path.exists():
        if out.exists() and any(out.iterdir()):
            raise HeqisError(f"{out} is not empty and holds no comparison (no plan.json)",
                             hint="pass a new or empty --out")
        return False
    old = read_json(path, "comparison plan")
    for key in PLAN_KEYS:
        if old.get(key) != plan[key]:
            raise HeqisError(f"{out} holds a comparison with {key} = {old.get(key)!r}, not {plan[key]!r}",
                             hint="re-run it with the same options, or pass another --out")
    if old.get("data", {}).get("content_hash") != plan["data"]["content_hash"]:
        raise HeqisError(f"{out}: the data store changed since this comparison started "
                         f"({str(old.get('data', {}).get('content_hash'))[:12]} → {plan['data']['content_hash'][:12]})",
                         hint="pass another --out, or point --data-dir at the data it was made with")
    return True


def _train(req: CompareRequest, overrides: dict[str, Any], fold: Fold, run_dir: Path, tag: str,
           log: Callable[[str], None]) -> str:
    """Train (or resume) one run unless it has finished; returns trained | resumed | skipped."""
    from heqis.backtest.run import FINISHED
    from heqis.train.run import TrainRequest, run_train

    manifest = run_dir / "manifest.json"
    if manifest.exists():
        status = RunFolder.open(run_dir).status
        if status in FINISHED:
            log(f"{tag}: finished earlier ({status}), not trained again")
            return "skipped"
        how = "resumed"
        train_req = TrainRequest(data_dir=req.data_dir, epochs=req.epochs, device=req.device, out=run_dir, resume=True)
    else:
        how = "trained"
        train_req = TrainRequest(data_dir=req.data_dir, preset=req.preset, symbols=req.symbols, epochs=req.epochs,
                                 device=req.device, seed=req.seed, out=run_dir, overrides=overrides,
                                 segments=fold.segments)
    seg = fold.segments.to_dict()
    log(f"{tag}: {'resuming' if how == 'resumed' else 'training'} (train {seg['train'][0]} … {seg['train'][1]}, "
        f"test {seg['test'][0]} … {seg['test'][1]})")

    def on_epoch(report: Any, trainer: Any) -> None:
        log(f"{tag}: epoch {report.epoch}/{trainer.preset.epochs} {report.phase}")

    result = run_train(train_req, on_epoch=on_epoch)
    log(f"{tag}: {result.status} after {result.epochs_run} epochs in {result.seconds:.1f} s")
    return how


def _evaluation(run_dir: Path, cache: Path, req: CompareRequest, tag: str,
                log: Callable[[str], None]) -> tuple[dict[str, Any], pd.DataFrame, float]:
    """The run's test-segment evaluation and samples, from the cache while the run is unchanged."""
    from heqis.evaluate.run import evaluate_run

    run = RunFolder.open(run_dir)
    stamp = [run.manifest.get("updated_at"), run.status, run.manifest.get("epochs_run")]
    json_path, frame_path = cache.with_suffix(".test.json"), cache.with_suffix(".test.parquet")
    if json_path.exists() and frame_path.exists():
        kept = read_json(json_path, "cached evaluation")
        if kept.get("run") == stamp:
            return kept["evaluation"], pd.read_parquet(frame_path), float(kept.get("seconds", 0.0))
    t0 = time.monotonic()
    result = evaluate_run(run_dir, "test", req.data_dir, req.inference, keep_samples=True)
    seconds = round(time.monotonic() - t0, 2)
    if "test" not in result.samples:
        raise HeqisError(f"{run_dir}: no sample in its test segment", hint="; ".join(result.notes) or None)
    evaluation = result.to_dict()["segments"]["test"]
    frame = result.samples["test"]
    frame.to_parquet(frame_path, index=False)
    write_json(json_path, {"run": stamp, "evaluation": evaluation, "seconds": seconds})
    log(f"{tag}: test {evaluation['from']} … {evaluation['to']} scored in {seconds:.1f} s")
    return evaluation, frame, seconds


def run_compare(req: CompareRequest, log: Callable[[str], None] | None = None) -> CompareResult:
    """Train and evaluate every (fold, variant), resumably, and write OUT/compare.{md,csv,json}."""
    t0 = time.monotonic()
    log = log or (lambda line: None)
    out = Path(req.out)
    common = {k: v for k, v in {**req.overrides, "target": req.target, "max_train_windows": req.max_train_windows,
                                "generators": req.generators}.items() if v is not None}
    preset = get_preset(req.preset, **{**common, "epochs": req.epochs})
    variants = req.variants or default_variants(preset)
    for v in variants:
        if v not in available_variants(preset):
            raise InvalidValue("--variants", f"unknown variant '{v}'",
                               hint=f"choose from {', '.join(available_variants(preset))}")
    store = DataStore(req.data_dir)
    content_hash = store.require_current()["content_hash"]
    plan, folds = _plan(req, preset, store, content_hash)
    existing = _check_plan(out, plan)
    out.mkdir(parents=True, exist_ok=True)
    if not existing:
        write_json(out / "plan.json", {**plan, "created_at": datetime.now().isoformat(timespec="seconds")})
    log(f"compare: {len(folds)} folds × {len(variants)} variants ({', '.join(variants)}) in {out}"
        + (" (resuming)" if existing else ""))
    counts = {"trained": 0, "resumed": 0, "skipped": 0}
    fold_docs: list[dict[str, Any]] = []
    frames: dict[tuple[int, str], pd.DataFrame] = {}
    evals: dict[tuple[int, str], dict[str, Any]] = {}
    for fold in folds:
        doc: dict[str, Any] = {**fold.to_dict(), "variants": {}}
        for v in variants:
            tag = f"fold {fold.index}/{len(folds)} · {v}"
            run_dir = out / f"fold-{fold.index}" / v
            how = _train(req, {**common, **variant_overrides(v, preset)}, fold, run_dir, tag, log)
            counts[how] += 1
            evaluation, frame, eval_seconds = _evaluation(run_dir, out / f"fold-{fold.index}" / v, req, tag, log)
            run = RunFolder.open(run_dir)
            gens = [g for g in run.generators() if run.generator(g).get("checkpoint")]
            frames[fold.index, v], evals[fold.index, v] = frame, evaluation
            doc["variants"][v] = {
                "run_dir": str(run_dir), "how": how, "status": run.status, "epochs_run": run.manifest.get("epochs_run"),
                "generators": gens, "best_generator": run.manifest.get("best_generator"),
                "train_seconds": float(run.manifest.get("seconds", 0.0)), "eval_seconds": eval_seconds,
                "samples": evaluation["samples"], "days": evaluation["days"], "models": evaluation["models"]}
        doc["seconds"] = round(sum(x["train_seconds"] + x["eval_seconds"] for x in doc["variants"].values()), 2)
        fold_docs.append(doc)
    rows, pairs = _tables(fold_docs, variants, frames)
    verdict = _verdict(pairs)
    config = {k: plan[k] for k in PLAN_KEYS} | {"variants": variants, "data": plan["data"],
                                                "variant_text": {v: variant_text(v, preset) for v in variants},
                                                "device": req.device, "generators": list(preset.generators)}
    notes = []
    if REFERENCE in variants and preset.epochs <= preset.pretrain_epochs:
        notes.append(f"at most {preset.epochs} epochs and {preset.pretrain_epochs} supervised pretraining epochs "
                     f"in preset {preset.name}: no run reached the adversarial phase, so maa trained as "
                     "supervised did")
    if any(r["model"] not in BASELINES and r["ic_mean_mean"] is None for r in rows):
        notes.append("no IC: it needs days with at least 5 symbols (heqis.stats.MIN_IC_SYMBOLS)")
    files = ["compare.md", "compare.csv", "compare-pairs.csv", "compare.json"]
    result = CompareResult(str(out), config, fold_docs, rows, pairs, verdict, counts, round(time.monotonic() - t0, 2),
                           [str(out / f) for f in files], notes)
    atomic_write(out / "compare.md", markdown(result).encode("utf-8"))
    atomic_write(out / "compare.csv", _csv(rows, ROW_COLUMNS, len(folds)).encode("utf-8"))
    atomic_write(out / "compare-pairs.csv", _csv(pairs, PAIR_COLUMNS, len(folds)).encode("utf-8"))
    write_json(out / "compare.json", result.to_dict())
    return result


def _primary(doc: dict[str, Any]) -> str:
    """The model a variant's run is judged by: its ensemble, or its one generator."""
    return ENSEMBLE if len(doc["generators"]) > 1 else doc["generators"][0]


def _tables(folds: list[dict[str, Any]], variants: list[str],
            frames: dict[tuple[int, str], pd.DataFrame]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []

    def add(variant: str, label: str, models: list[str | None]) -> dict[str, Any]:
        per = [f["variants"][variant]["models"].get(m) if m else None for f, m in zip(folds, models, strict=True)]
        row = aggregate_row(variant, label, per, chosen=models if label == VAL_BEST else None)
        daily = [daily_differential(frames[f["fold"], variant], f"reg:{m}") for f, m in zip(folds, models, strict=True)
                 if m and f"reg:{m}" in frames[f["fold"], variant]]
        row.update(dm_summary(daily) if label not in ("zero", "majority") else dm_summary([]))
        rows.append(row)
        return row

    for v in variants:
        docs = [f["variants"][v] for f in folds]
        if len(docs[0]["generators"]) > 1:
            add(v, ENSEMBLE, [ENSEMBLE] * len(folds))
            add(v, VAL_BEST, [d["best_generator"] for d in docs])
        else:
            add(v, docs[0]["generators"][0], [docs[0]["generators"][0]] * len(folds))
    for b in BASELINES:
        add(variants[0], b, [b] * len(folds))
        rows[-1]["variant"] = "baseline"
        rows[-1]["scored_with"] = variants[0]
    pairs: list[dict[str, Any]] = []
    ref = REFERENCE if REFERENCE in variants else variants[0]

    def pair(a: str, b: str, model_a: list[str], model_b: list[str], label_a: str, label_b: str) -> None:
        daily = [daily_differential(frames[f["fold"], a], f"reg:{ma}", other=frames[f["fold"], b],
                                    other_col=f"reg:{mb}") for f, ma, mb in zip(folds, model_a, model_b, strict=True)]
        summary = dm_summary(daily)
        zero = [float((frames[f["fold"], a]["y"] ** 2).groupby(frames[f["fold"], a]["day"]).mean().mean())
                for f in folds]
        summary["better_folds"] = sum(1 for d in summary["mean_d_folds"] if d is not None and d < 0)
        summary["rel_d_pooled"] = (summary["mean_d_pooled"] / float(np.mean(zero))
                                   if summary["mean_d_pooled"] is not None and np.mean(zero) > 0 else None)
        pairs.append({"a": _pair_label(a, label_a), "b": _pair_label(b, label_b), "variant_a": a, "variant_b": b,
                      "model_a": model_a, "model_b": model_b, **summary})

    prim = {v: [_primary(f["variants"][v]) for f in folds] for v in variants}
    for v in variants:
        if v != ref:
            pair(ref, v, prim[ref], prim[v], _label(prim[ref]), _label(prim[v]))
    if ref == REFERENCE and "supervised" in variants and prim[ref][0] == ENSEMBLE and prim["supervised"][0] == ENSEMBLE:
        best = {v: [f["variants"][v]["best_generator"] for f in folds] for v in (ref, "supervised")}
        pair(ref, "supervised", best[ref], best["supervised"], VAL_BEST, VAL_BEST)
    return rows, pairs


def _pair_label(variant: str, model: str) -> str:
    return f"{variant} alone" if variant == model else f"{variant} · {model}"


def _label(models: list[str]) -> str:
    return models[0] if len(set(models)) == 1 else VAL_BEST


def _verdict(pairs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Did the adversarial game help? maa's main model against supervised's, pooled over the folds."""
    p = next((p for p in pairs if p["variant_a"] == REFERENCE and p["variant_b"] == "supervised"), None)
    if p is None or p["dm_t_pooled"] is None:
        return None
    t, pv = p["dm_t_pooled"], p["dm_p_pooled"]
    if pv < 0.05:
        text = (f"the adversarial game {'helped' if t < 0 else 'hurt'}: maa's squared errors are "
                f"{'lower' if t < 0 else 'higher'} than supervised-only's (DM t = {t:+.2f}, p = {_p(pv)})")
    else:
        k = len(p["mean_d_folds"])
        text = (f"no significant difference between maa and supervised-only (DM t = {t:+.2f}, p = {_p(pv)}; "
                f"maa's errors lower in {p['better_folds']} of {k} folds)")
    return {"pair": f"{p['a']} vs {p['b']}", "dm_t": t, "dm_p": pv, "helped": bool(t < 0 and pv < 0.05),
            "mean_d": p["mean_d_pooled"], "text": text}


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
ROW_COLUMNS = ("variant", "model", "folds", *(f"{m}_{s}" for m in METRICS for s in ("mean", "std")),
               "dm_t_pooled", "dm_p_pooled", "days_pooled", "dm_p_fold", "mse_ratio_zero_fold", "chosen")
PAIR_COLUMNS = ("a", "b", "mean_d_pooled", "rel_d_pooled", "dm_t_pooled", "dm_p_pooled", "days_pooled",
                "better_folds", "dm_p_fold", "mean_d_fold")


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...], k: int) -> str:
    """One row per table row; ``*_fold`` columns spread over one column per fold (``dm_p_fold1`` …)."""
    header: list[str] = []
    for c in columns:
        if c.endswith("_fold"):
            header.extend(f"{c}{i + 1}" for i in range(k))
        else:
            header.append(c)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        cells: list[Any] = []
        for c in columns:
            if c.endswith("_fold"):
                cells.extend(_cell(v) for v in (row.get(f"{c}s") or [None] * k))
            elif c == "chosen":
                cells.append(";".join(m or "" for m in row["chosen"]) if row.get("chosen") else "")
            else:
                cells.append(_cell(row.get(c)))
        writer.writerow(cells)
    return buf.getvalue()


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else v


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _pm(mean: float | None, std: float | None, fmt: str) -> str:
    if mean is None:
        return "—"
    return f"{mean:{fmt}} ± {std:{fmt.lstrip('+')}}" if std is not None else f"{mean:{fmt}}"


def _t(t: float | None) -> str:
    return "—" if t is None else f"{t:+.2f}"


def _md_row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(result: CompareResult) -> str:
    """compare.md: the settings, the folds with their dates and times, the model table, the pairs."""
    c = result.config
    k = len(result.folds)
    lines = [f"# heqis compare · preset {c['preset']} · {k} walk-forward folds", "",
             f"Data `{c['data']['dir']}` ({c['data']['content_hash'][:12]}), "
             f"{len(c['symbols']) if c['symbols'] else 'all'} symbols, target {c['target']}, "
             f"at most {c['epochs']} epochs a run (early stopping), seed {c['seed']}"
             + (f", at most {c['max_train_windows']} train windows" if c.get("max_train_windows") else "") + ".", ""]
    lines += ["Variants: " + "; ".join(f"`{v}` {t}" for v, t in c["variant_text"].items()) + ".", ""]
    lines += ["## Folds", "", _md_row(["fold", "train", "val", "select", "test", "test days",
                                      *(f"{v} s" for v in c["variants"]), "fold s"]),
              "|---|---|---|---|---|---:|" + "---:|" * (len(c["variants"]) + 1)]
    for f in result.folds:
        s = f["segments"]
        runs = f["variants"]
        lines.append(_md_row([f["fold"], *(f"{s[n][0]} … {s[n][1]}" for n in ("train", "val", "select", "test")),
                              next(iter(runs.values()))["days"],
                              *(f"{runs[v]['train_seconds'] + runs[v]['eval_seconds']:.0f}" for v in c["variants"]),
                              f"{f['seconds']:.0f}"]))
    n = result.counts
    lines += ["", "Seconds: training (as recorded in each run's manifest) plus the test evaluation. This invocation: "
              f"{result.seconds:.0f} s ({n['trained']} runs trained, {n['resumed']} resumed, {n['skipped']} "
              "finished before).", "",
              f"## Models on the test segments (mean ± std over {k} folds)", "",
              _md_row(["variant", "model", "MSE/zero", "DM t pooled", "DM p pooled", "DM p per fold", "IC", "rank IC",
                       "bal. acc", "acc"]),
              "|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in result.rows:
        model = r["model"] + (f" ({', '.join(m or '—' for m in r['chosen'])})" if r.get("chosen") else "")
        lines.append(_md_row([
            r["variant"], model, _pm(r["mse_ratio_zero_mean"], r["mse_ratio_zero_std"], ".4f"), _t(r["dm_t_pooled"]),
            _p(r["dm_p_pooled"]), ", ".join(_p(p) for p in r["dm_p_folds"]) if r["dm_p_folds"] else "—",
            _pm(r["ic_mean_mean"], r["ic_mean_std"], "+.4f"),
            _pm(r["rank_ic_mean_mean"], r["rank_ic_mean_std"], "+.4f"),
            _pm(r["balanced_acc_mean"], r["balanced_acc_std"], ".3f"), _pm(r["acc_mean"], r["acc_std"], ".3f")]))
    lines += ["", "MSE/zero < 1 and DM t < 0: smaller squared errors than predicting a zero return. DM: "
              "Diebold–Mariano on the daily cross-sectional mean of e²_model − e²_zero, Newey–West lag ⌊T^(1/3)⌋, "
              "two-sided; per fold on its test days, pooled on the test days of all folds in a row. val-best: the "
              "generator with the lowest validation loss in that fold's run. Baselines are scored on the samples "
              f"of `{c['variants'][0]}`. IC needs ≥ 5 symbols a day.", ""]
    if result.pairs:
        lines += ["## Paired: reference against each variant", "",
                  _md_row(["A", "B", "mean d (pooled)", "d / mean e²_zero", "DM t pooled", "DM p pooled",
                           "DM p per fold", "folds A lower"]),
                  "|---|---|---:|---:|---:|---:|---|---:|"]
        for p in result.pairs:
            lines.append(_md_row([
                p["a"], p["b"], "—" if p["mean_d_pooled"] is None else f"{p['mean_d_pooled']:+.3e}",
                "—" if p["rel_d_pooled"] is None else f"{p['rel_d_pooled']:+.2e}", _t(p["dm_t_pooled"]),
                _p(p["dm_p_pooled"]), ", ".join(_p(x) for x in p["dm_p_folds"]), f"{p['better_folds']}/{k}"]))
        lines += ["", "d_t = the day's mean over symbols of e²_A − e²_B on the samples both scored; negative: A "
                  "errs less. d / mean e²_zero is the difference in units of MSE/zero.", ""]
    if result.verdict:
        lines += [f"**Adversarial game**: {result.verdict['text']}.", ""]
    for note in result.notes:
        lines.append(f"Note: {note}.")
    return "\n".join(lines).rstrip() + "\n"

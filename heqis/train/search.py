"""``heqis train --search N``: an Optuna study over learning rate, hidden size and window.

Optuna does the searching (TPE sampler, median pruner on the per-epoch validation loss); this
module only maps a trial onto a preset and reports back. The study lives in an RDB storage —
SQLite in the run directory by default; give every worker the same PostgreSQL URL to search from
several machines at once (docs/architecture.md, "Scaling out").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from heqis.data.store import DataStore
from heqis.errors import HeqisError
from heqis.fileio import write_json
from heqis.train.data import TrainingData, prepare
from heqis.train.presets import Preset, get_preset
from heqis.train.run import TrainRequest, _select_symbols, resolve_device
from heqis.train.trainer import MultiGANTrainer

SPACE = {"lr": (1e-4, 1e-2), "hidden": (16, 32, 64), "window": (30, 45, 60)}


@dataclass
class SearchResult:
    study: str
    storage: str
    trials: int
    complete: int
    pruned: int
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    record: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact_url(url: str) -> str:
    """A storage URL safe to print: the password of ``scheme://user:password@host`` is masked."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def sized(preset: Preset, hidden: int, lr: float, window: int) -> Preset:
    """The preset with every generator's width set from ``hidden`` (attention heads kept dividing it)."""
    p = get_preset(preset.name, lr=lr, window=window, epochs=preset.epochs)
    for spec in p.generators.values():
        if spec["kind"] == "transformer":
            spec["d_model"] = hidden
            spec["heads"] = math.gcd(spec.get("heads", 2), hidden)
        else:
            spec["hidden"] = hidden
    return p


def run_search(req: TrainRequest, n_trials: int, storage: str | None,
               log: Callable[[str], None] | None = None) -> SearchResult:
    import optuna

    log = log or (lambda line: None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if req.resume:
        raise HeqisError("--search and --resume do not go together",
                         hint="re-running the same --search with the same storage continues the study")
    out = req.out
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'optuna.db').resolve()}"
    base = get_preset(req.preset, epochs=req.epochs)
    device = resolve_device(req.device)
    store = DataStore(req.data_dir or Path("heqis-data"))
    content_hash = store.require_current()["content_hash"]
    symbols = _select_symbols(store, req.symbols)
    bars = {s: store.read_bars(s) for s in symbols}
    sessions = store.sessions()
    cache: dict[int, TrainingData] = {}

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", *SPACE["lr"], log=True)
        hidden = trial.suggest_categorical("hidden", list(SPACE["hidden"]))
        window = trial.suggest_categorical("window", list(SPACE["window"]))
        preset = sized(base, hidden, lr, window)
        if window not in cache:
            cache[window] = prepare(bars, sessions, window, preset.flat_band, preset.max_train_windows, req.seed)
        trainer = MultiGANTrainer(preset, cache[window], device=device, seed=req.seed)
        trainer.train_encoders()
        best = math.inf
        for _ in range(preset.epochs):
            report = trainer.run_epoch()
            best = min(best, min(trainer.best.values()))
            trial.report(best, report.epoch)
            if trial.should_prune():
                log(f"trial {trial.number}: pruned after epoch {report.epoch} (val loss {best:.4f})")
                raise optuna.TrialPruned()
            if report.stop:
                break
        log(f"trial {trial.number}: val loss {best:.4f} (lr {lr:.2e}, hidden {hidden}, window {window})")
        return best

    study = optuna.create_study(
        study_name=f"heqis-{base.name}-{content_hash[:12]}", storage=storage, load_if_exists=True,
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=req.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    study.optimize(objective, n_trials=n_trials, gc_after_trial=True)
    states = [t.state for t in study.trials]
    complete = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
    if not complete:
        raise HeqisError("no search trial completed", hint="raise --search or --epochs")
    best = study.best_trial
    record = out / "search.json"
    result = SearchResult(study.study_name, redact_url(storage), len(study.trials), complete,
                          sum(s == optuna.trial.TrialState.PRUNED for s in states), best.number,
                          float(best.value), dict(best.params), str(record))
    payload = {**result.to_dict(), "preset": base.name, "epochs": base.epochs, "seed": req.seed,
               "data_hash": content_hash, "space": {k: list(v) for k, v in SPACE.items()},
               "trials_table": [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
                                for t in study.trials]}
    write_json(record, payload)
    return result

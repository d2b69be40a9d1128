"""``heqis train --search N``: an Optuna study over learning rate, hidden size and window.

Optuna does the searching (TPE sampler, median pruner on the per-epoch validation loss); this
module maps a trial onto a preset, runs the trials in ``--workers K`` processes, and records the
study in ``search.json`` (docs/architecture.md, "Scaling out"). Storage:

- default: an Optuna journal file in the run directory (``optuna.journal``) — safe for several
  processes on one machine, where SQLite's single writer lock is not;
- ``journal:PATH`` or a path ending in ``.journal`` / ``.log``: a journal file elsewhere;
- an RDB URL (``postgresql://user:password@host/db``, ``mysql://…``, ``sqlite:///file.db``):
  every machine that gives the same URL and data works on the same study.

N counts the trials this command adds: its K workers draw tickets from one shared counter before
asking Optuna for a trial, so they run N trials between them, never K×N and never N+K-1.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import re
import socket
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from heqis.data.store import DataStore
from heqis.errors import HeqisError, InvalidValue
from heqis.fileio import write_json
from heqis.parallel import Parallel, default_workers, parallel_map
from heqis.train.presets import Preset, get_preset
from heqis.train.provenance import SEARCH_RECORD, apply_params
from heqis.train.run import TrainRequest, _select_symbols, resolve_device

SPACE = {"lr": (1e-4, 1e-2), "hidden": (16, 32, 64), "window": (30, 45, 60)}
JOURNAL = "optuna.journal"           # the default storage, in the run directory
LEGACY_SQLITE = "optuna.db"          # what older heqis wrote there; continued when present
RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite", "mariadb", "oracle", "mssql")


@dataclass
class SearchResult:
    study: str
    storage: str                 # passwords masked
    trials: int                  # in the study (every command and machine that worked on it)
    complete: int
    pruned: int
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    record: str
    added: int = 0               # trials this command ran
    workers: int = 1
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def redact_url(url: str) -> str:
    """A storage URL safe to print: the password of ``scheme://user:password@host`` (up to the last
    ``@`` of the authority, so a password holding ``@`` is masked whole) and ``password=`` query
    values are masked."""
    url = re.sub(r"(://[^:/@]*:)[^/]*@", r"\1***@", url)
    return re.sub(r"([?&](?:password|passwd)=)[^&]*", r"\1***", url, flags=re.IGNORECASE)


def sized(preset: Preset, hidden: int, lr: float, window: int) -> Preset:
    """The preset with one trial's parameters (every generator's width from ``hidden``)."""
    return apply_params(preset, {"lr": lr, "hidden": hidden, "window": window})


# -- storage ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StorageSpec:
    """Where the study lives: ``kind`` is "journal" (a file) or "rdb" (an SQLAlchemy URL)."""

    kind: str
    target: str                  # the journal's path, or the RDB URL

    @property
    def shown(self) -> str:
        return f"journal:{self.target}" if self.kind == "journal" else redact_url(self.target)

    @property
    def local(self) -> bool:
        """Only this machine's processes work on it (the sampler seed need not tell machines apart)."""
        return self.kind == "journal" or self.target.startswith("sqlite")


def parse_storage(value: str | None, out: Path) -> StorageSpec:
    """The ``--storage`` value as a storage; None is the journal file in the run directory."""
    if value is None or not value.strip():
        if (out / LEGACY_SQLITE).exists() and not (out / JOURNAL).exists():
            return StorageSpec("rdb", f"sqlite:///{(out / LEGACY_SQLITE).resolve()}")
        return StorageSpec("journal", str((out / JOURNAL).resolve()))
    value = value.strip()
    if value.startswith("journal:"):
        path = value[len("journal:"):].removeprefix("//")
        if not path:
            raise InvalidValue("--storage", "journal: needs a file path", hint="journal:runs/search/optuna.journal")
        return StorageSpec("journal", str(Path(path).expanduser().resolve()))
    if "://" not in value:
        if value.endswith((".journal", ".log")):
            return StorageSpec("journal", str(Path(value).expanduser().resolve()))
        raise InvalidValue("--storage", f"'{redact_url(value)}' is neither a journal file nor a database URL",
                           hint="journal:PATH, a path ending in .journal, or postgresql://USER:PASSWORD@HOST/DB")
    scheme = value.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in RDB_SCHEMES:
        raise InvalidValue("--storage", f"unknown storage scheme '{scheme}://'",
                           hint="postgresql://…, mysql://…, sqlite:///FILE.db, or journal:PATH")
    return StorageSpec("rdb", value)


def open_storage(spec: StorageSpec) -> Any:
    """The Optuna storage object; a missing folder, driver or server is a one-line error."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if spec.kind == "journal":
        folder = Path(spec.target).parent
        if not folder.is_dir():
            raise HeqisError(f"--storage {spec.shown}: the folder {folder} does not exist",
                             hint="create it first, or give a journal path in an existing folder")
        return JournalStorage(JournalFileBackend(spec.target))
    try:
        return optuna.storages.RDBStorage(spec.target)
    except ModuleNotFoundError as exc:
        raise HeqisError(f"--storage {spec.shown}: the database driver '{exc.name}' is not installed",
                         hint="pip install psycopg2-binary (PostgreSQL) or pymysql (MySQL)") from None
    except Exception as exc:   # sqlalchemy's errors: unreachable server, bad URL, refused login
        first = _mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, spec.target)
        raise HeqisError(f"cannot open the Optuna storage {spec.shown}: {first[:200]}",
                         hint="check the host, port, user and password, and that the database exists") from None


def _mask(text: str, url: str) -> str:
    """``text`` with the URL's password taken out, wherever a driver echoed it."""
    m = re.search(r"://[^:/@]*:([^/]*)@", url)
    return text.replace(m.group(1), "***") if m and m.group(1) else text


# -- one worker ------------------------------------------------------------------------------------
@dataclass
class WorkerPlan:
    """Everything a worker process needs (picklable): the study, the data and how to train."""

    study: str
    storage: StorageSpec
    data_dir: str
    symbols: list[str]
    data_hash: str
    base: dict[str, Any]         # Preset.to_dict() before the trial's parameters
    seed: int
    device: str
    workers: int
    threads: int                 # torch threads per worker: this machine's cores / workers
    log_prefix: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


_PLAN: WorkerPlan | None = None
_TICKETS: Any = None             # a multiprocessing Value: trials left to start, shared by the workers


def _init_worker(plan: WorkerPlan, tickets: Any) -> None:
    global _PLAN, _TICKETS
    _PLAN, _TICKETS = plan, tickets
    if plan.workers > 1:
        import torch

        torch.set_num_threads(plan.threads)


def _take_ticket() -> bool:
    with _TICKETS.get_lock():
        if _TICKETS.value <= 0:
            return False
        _TICKETS.value -= 1
        return True


def sampler_seed(seed: int, worker: int, local: bool) -> int:
    """Worker 0 of a local study samples as a one-process search does; other workers, and other
    machines on a shared database, get their own streams (the same seed would repeat trials)."""
    if local:
        return seed + worker
    return (seed + worker + zlib.crc32(f"{socket.gethostname()}:{time.time_ns()}".encode())) % 2**31


def _sampler(seed: int, workers: int, local: bool) -> Any:
    import optuna

    # constant liar: a trial still running counts as a bad one, so parallel workers spread out
    return optuna.samplers.TPESampler(seed=seed, constant_liar=workers > 1 or not local)


def _pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)


def _worker(index: int, log: Callable[[str], None] | None = None) -> list[int]:
    """Run trials until the shared tickets run out; the trial numbers this worker ran."""
    import optuna

    from heqis.train.data import TrainingData, prepare
    from heqis.train.trainer import MultiGANTrainer

    plan = _PLAN
    assert plan is not None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if log is None:
        def log(line: str) -> None:
            print(f"worker {index}: {line}" if plan.log_prefix else line, file=sys.stderr, flush=True)
    store = DataStore(Path(plan.data_dir))
    if store.require_current()["content_hash"] != plan.data_hash:
        raise HeqisError(f"the data store {store.root} changed while the search started",
                         hint="re-run the search once the store is written")
    bars = {s: store.read_bars(s) for s in plan.symbols}          # once per worker
    sessions = store.sessions()
    base = Preset.from_dict(plan.base)
    cache: dict[int, TrainingData] = {}
    study = optuna.load_study(study_name=plan.study, storage=open_storage(plan.storage),
                              sampler=_sampler(sampler_seed(plan.seed, index, plan.storage.local), plan.workers,
                                               plan.storage.local),
                              pruner=_pruner())

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", *SPACE["lr"], log=True)
        hidden = trial.suggest_categorical("hidden", list(SPACE["hidden"]))
        window = trial.suggest_categorical("window", list(SPACE["window"]))
        preset = sized(base, hidden, lr, window)
        if window not in cache:     # the longest of the generators' windows is the searched one
            cache[window] = prepare(bars, sessions, preset.longest_window, preset.flat_band,
                                    preset.max_train_windows, plan.seed,
                                    max_val=preset.max_val_windows,   # validated as heqis train validates
                                    target=preset.target)
        trainer = MultiGANTrainer(preset, cache[window], device=plan.device, seed=plan.seed)
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

    ran: list[int] = []
    # ask/tell rather than study.optimize: the ticket is taken before the trial exists, so no worker
    # creates a trial it may not run
    while _take_ticket():
        trial = study.ask()
        ran.append(trial.number)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}:{index}")
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
        gc.collect()          # a trial's models and optimisers go before the next is built
    return ran


# -- the search ------------------------------------------------------------------------------------
def run_search(req: TrainRequest, n_trials: int, storage: str | None, workers: int = 1,
               log: Callable[[str], None] | None = None) -> SearchResult:
    """Add ``n_trials`` trials to the study (run by ``workers`` processes) and write ``search.json``."""
    import optuna

    t0 = time.monotonic()
    log = log or (lambda line: None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if req.resume:
        raise HeqisError("--search and --resume do not go together",
                         hint="re-running the same --search with the same storage continues the study")
    if workers < 1:
        raise InvalidValue("--workers", f"{workers} is not a number of processes", hint="use 1 or more")
    out = req.out
    assert out is not None
    out.mkdir(parents=True, exist_ok=True)
    spec = parse_storage(storage, out)
    overrides = {k: v for k, v in req.overrides.items() if k not in ("lr", "window", "epochs")}
    base = get_preset(req.preset, **overrides, epochs=req.epochs or req.overrides.get("epochs"))
    device = resolve_device(req.device)
    store = DataStore(req.data_dir or Path("heqis-data"))
    content_hash = store.require_current()["content_hash"]
    symbols = _select_symbols(store, req.symbols)
    if spec.kind == "rdb" and spec.target.startswith("sqlite") and workers > 1:
        log(f"note: SQLite locks out concurrent writers; with --workers {workers} prefer the default journal "
            f"file or PostgreSQL")
    # one study per data, preset and symbol subset: trials on other symbols do not compare
    study_name = f"heqis-{base.name}-{content_hash[:12]}" + (
        f"-{zlib.crc32(','.join(symbols).encode()):08x}" if req.symbols else "")
    study = optuna.create_study(study_name=study_name, storage=open_storage(spec), load_if_exists=True,
                                direction="minimize", sampler=_sampler(req.seed, workers, spec.local),
                                pruner=_pruner())
    before = len(study.trials)
    workers = min(workers, n_trials)
    plan = WorkerPlan(study_name, spec, str(store.root.resolve()), symbols, content_hash, base.to_dict(), req.seed,
                      device, workers, max(1, default_workers() // workers), log_prefix=workers > 1)
    log(f"study {study_name} · storage {spec.shown} · {n_trials} trials in {Parallel(workers).describe()}"
        + (f" · {before} trials already in it" if before else ""))
    tickets = multiprocessing.get_context("spawn").Value("i", n_trials)
    if workers == 1:
        _init_worker(plan, tickets)
        ran = _worker(0, log)
    else:
        ran = [n for _, numbers in parallel_map(_worker, range(workers), Parallel(workers),
                                                initializer=_init_worker, initargs=(plan, tickets))
               for n in numbers]

    study = optuna.load_study(study_name=study_name, storage=open_storage(spec))
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    complete = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
    if not complete:
        raise HeqisError("no search trial completed", hint="raise --search or --epochs")
    best = study.best_trial
    record = out / SEARCH_RECORD
    seconds = round(time.monotonic() - t0, 2)
    result = SearchResult(study_name, spec.shown, len(trials), complete,
                          sum(s == optuna.trial.TrialState.PRUNED for s in states), best.number,
                          float(best.value), dict(best.params), str(record), added=len(ran), workers=workers,
                          seconds=seconds)
    payload = {**result.to_dict(), "preset": base.name, "epochs": base.epochs, "seed": req.seed,
               "overrides": overrides, "data_hash": content_hash, "data_dir": str(store.root),
               "symbols": symbols, "space": {k: list(v) for k, v in SPACE.items()},
               "trials_table": [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
                                 "seconds": (t.duration.total_seconds() if t.duration else None)}
                                for t in sorted(trials, key=lambda t: t.number)]}
    write_json(record, payload)
    return result

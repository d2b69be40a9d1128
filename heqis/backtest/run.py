"""``heqis backtest``: every generator × mode of a run, chosen on ``select``, reported on ``test``.

The choice of generator and mode per symbol is made on the run's ``select`` segment and only then
measured on the later ``test`` segment, so the reported numbers are not the ones the choice was
tuned on. A candidate is chosen only when, over all the run's symbols, it beats buy-and-hold on
select significantly (``selection``: the panel gate); a symbol with no such candidate holds. Outputs
under ``--out`` (default ``RUN_DIR/backtest``, or ``./backtest`` for a signal file)::

    best_metrics.csv     one row per symbol: symbol, generator, mode, test metrics, select_* metrics
                         (generator buy_hold, mode hold: no candidate passed the gate)
    candidates.csv       every symbol × generator × mode × segment, for inspection
    trades.parquet       the chosen combinations' trades (column ``segment``)
    equity.parquet       daily equity, buy-and-hold and position of the chosen combinations
    portfolio.parquet    equal-weight portfolio of the chosen combinations vs the CSI 300, on test
    summary.json         rules, segments, portfolio and benchmark numbers, the gate's verdicts
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from heqis.backtest.engine import TRADE_COLUMNS, SymbolInputs, SymbolRun, run_symbols, symbol_inputs
from heqis.backtest.metrics import METRIC_NAMES, compute_metrics, max_drawdown
from heqis.backtest.rules import MarketRules
from heqis.backtest.selection import GATE_LEVEL, HOLD, Gate, panel_gate
from heqis.backtest.signals import (
    INFERENCE_BACKENDS,
    MODES,
    Inference,
    Predictions,
    align,
    needed_inputs,
    predict_many,
    predict_needed,
    read_signal_file,
    sorted_isin,
)
from heqis.data.store import DataStore, atomic_write_parquet
from heqis.errors import HeqisError
from heqis.features.fingerprint import require_features
from heqis.features.transform import Scaler
from heqis.fileio import atomic_write, write_json
from heqis.formats.run import RunFolder
from heqis.parallel import Parallel, default_workers, parallel_map

BENCHMARK = "000300.SH"
SCORES = ("sharpe", "total_return", "calmar", "excess_return", "balanced_acc")
BACKTEST_SEGMENTS = ("select", "test")
FINISHED = ("complete", "early_stopped")      # run statuses of a training that ended by itself
PREDICT_CHUNK = 16   # symbols whose windows go through one inference call per generator (~7,000 at 7 years)
MIN_PARALLEL_CHUNK = 8   # ~3,400 windows per call: still many full batches
SMALL_RUN = 32       # up to this many symbols one process by default: a worker (torch, ONNX Runtime, the
                     # models) takes seconds to start, more than it saves on a few symbols


@dataclass
class BacktestResult:
    out_dir: str
    source: str                       # run directory or signal file
    score: str
    rules: dict[str, Any]
    segments: dict[str, list[str]]
    rows: list[dict[str, Any]]        # best_metrics.csv
    portfolio: dict[str, float]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)   # the gate (selection.Gate.to_dict, "summary")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Universe:
    """What the engine needs to know about each symbol besides its bars."""

    kinds: dict[str, str]
    boards: dict[str, str]
    list_dates: dict[str, pd.Timestamp | None]

    @classmethod
    def of(cls, store: DataStore) -> Universe:
        uni = store.read_universe()
        return cls(dict(zip(uni["ts_code"], uni["kind"], strict=True)),
                   dict(zip(uni["ts_code"], uni["board"], strict=True)),
                   dict(zip(uni["ts_code"], uni["list_date"], strict=True)))


class SegmentRunner:
    """Runs signals of one symbol over one date range, with buy-and-hold alongside."""

    def __init__(self, store: DataStore, rules: MarketRules, universe: Universe) -> None:
        self.store = store
        self.rules = rules
        self.universe = universe
        self.sessions = store.sessions()
        self._bars: dict[str, pd.DataFrame] = {}

    def bars(self, code: str) -> pd.DataFrame:
        if code not in self._bars:
            self._bars[code] = self.store.read_bars(code)
        return self._bars[code]

    def forget(self, code: str) -> None:
        """Drop a symbol's cached bars (a run over hundreds of symbols keeps one at a time)."""
        self._bars.pop(code, None)

    def trades_in(self, code: str, segments: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
                  skipped: list[str]) -> bool:
        """Whether ``code`` has bars in every backtest segment; if not, it is added to ``skipped`` (a
        symbol listed during test or delisted before select cannot be chosen on select and reported on
        test, and must not stop the other symbols' backtest)."""
        dates = self.bars(code)["trade_date"]
        for seg in BACKTEST_SEGMENTS:
            lo, hi = max(dates.iloc[0], segments[seg][0]), min(dates.iloc[-1], segments[seg][1])
            if not ((self.sessions >= lo) & (self.sessions <= hi)).any():   # as symbol_inputs lays them
                skipped.append(code)
                self.forget(code)
                return False
        return True

    def inputs(self, code: str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> SymbolInputs:
        """The engine's arrays of ``code`` over [start, end] (HeqisError when no session is left)."""
        inp = symbol_inputs(self.bars(code), self.sessions, code, self.universe.kinds.get(code, "stock"),
                            self.universe.boards.get(code, "main"), self.universe.list_dates.get(code),
                            self.rules, start, end)
        if not len(inp.dates):
            raise HeqisError(f"{code}: no sessions between {start} and {end}")
        return inp

    def run(self, code: str, signals: pd.Series, start: pd.Timestamp | None,
            end: pd.Timestamp | None) -> tuple[SymbolRun, SymbolRun, dict[str, float]]:
        inp = self.inputs(code, start, end)
        strategy, buy_hold = run_symbols([inp, inp], [align(signals, inp.dates), buy_and_hold(inp)], self.rules)
        return strategy, buy_hold, compute_metrics(strategy, self.rules.initial_cash, self.rules.periods_per_year,
                                                   buy_hold)


def buy_and_hold(inp: SymbolInputs) -> np.ndarray:
    """Buy at the first session's close decision (filled at the next open), then keep."""
    hold = np.zeros(len(inp.dates), dtype=np.int64)
    hold[0] = 1
    return hold


def on_sessions(pred_dates: np.ndarray, values: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    """``align`` for sorted unique prediction dates in numpy: one signal per session, 0 where none."""
    if not len(pred_dates):
        return np.zeros(len(sessions), dtype=np.int64)
    pos = np.minimum(np.searchsorted(pred_dates, sessions), len(pred_dates) - 1)
    return np.where(pred_dates[pos] == sessions, values[pos], 0).astype(np.int64)


Shown = tuple[str, str, str, str, SymbolRun, SymbolRun]   # (symbol, segment, generator, mode, strategy, hold)


def result_frames(shown: list[Shown]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The equity and trades tables of the runs a backtest writes out (at least one), one frame each
    built from the runs' arrays (a frame per symbol and segment cost more than all of the run's
    simulations)."""
    days = [len(r[4].dates) for r in shown]
    counts = [len(r[4].trade_columns["pnl"]) for r in shown]

    def tags(counts: list[int]) -> dict[str, np.ndarray]:   # symbol, segment, generator, mode: one per row
        return {name: np.repeat(np.array([r[i] for r in shown], dtype=object), counts)
                for i, name in enumerate(("symbol", "segment", "generator", "mode"))}

    def cat(get: Callable[[Shown], np.ndarray]) -> np.ndarray:
        return np.concatenate([get(r) for r in shown])

    on_days, on_trades = tags(days), tags(counts)
    equity = pd.DataFrame({"symbol": on_days.pop("symbol"), "trade_date": cat(lambda r: r[4].dates), **on_days,
                           "equity": cat(lambda r: r[4].equity), "buy_hold": cat(lambda r: r[5].equity),
                           "shares": cat(lambda r: r[4].shares)})
    trades = pd.DataFrame({"symbol": on_trades.pop("symbol"),
                           **{c: cat(lambda r, c=c: r[4].trade_columns[c]) for c in TRADE_COLUMNS[1:]}, **on_trades})
    return equity, trades


def portfolio_line(equity: pd.DataFrame, store: DataStore, segment: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """Equal weight over the symbols (each normalised to 1 at the start) against the CSI 300 close."""
    seg = equity[equity["segment"] == segment]
    if seg.empty:
        return pd.DataFrame(columns=["trade_date", "portfolio", "benchmark"]), {}
    norm = seg.assign(v=seg["equity"] / seg.groupby("symbol")["equity"].transform("first"))
    line = norm.pivot_table(index="trade_date", columns="symbol", values="v").ffill().mean(axis=1)
    frame = pd.DataFrame({"trade_date": line.index, "portfolio": line.to_numpy()})
    stats = {"portfolio_return": float(line.iloc[-1] - 1.0),
             "portfolio_max_drawdown": max_drawdown(line.to_numpy())}
    if BENCHMARK in store.symbols():
        bench = store.read_bars(BENCHMARK).set_index("trade_date")["close"].reindex(line.index).ffill().bfill()
        frame["benchmark"] = (bench / bench.iloc[0]).to_numpy()
        stats["benchmark_return"] = float(frame["benchmark"].iloc[-1] - 1.0)
        stats["excess_vs_benchmark"] = stats["portfolio_return"] - stats["benchmark_return"]
    else:
        frame["benchmark"] = np.nan
    return frame, stats


def _write(out: Path, best: pd.DataFrame, candidates: pd.DataFrame | None, trades: pd.DataFrame,
           equity: pd.DataFrame, portfolio: pd.DataFrame, summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "best_metrics.csv", best.to_csv(index=False).encode())
    if candidates is not None:
        atomic_write(out / "candidates.csv", candidates.to_csv(index=False).encode())
    atomic_write_parquet(out / "trades.parquet", trades)
    atomic_write_parquet(out / "equity.parquet", equity)
    atomic_write_parquet(out / "portfolio.parquet", portfolio)
    write_json(out / "summary.json", summary)


def tradable(symbols: list[str], universe: Universe) -> list[str]:
    """Symbols that can be traded: indices are benchmarks, not positions."""
    return [s for s in symbols if universe.kinds.get(s, "stock") != "index"]


def open_run_store(run: RunFolder, data_dir: Path | None) -> DataStore:
    """The run's data store, checked to be the one it was trained on, with this code's features."""
    require_features(run.features, f"the run {run.root}",
                     hint=f"train it again with this heqis (heqis train --out {run.root}-new)")
    store = DataStore(data_dir or run.data_dir)
    if store.require_current()["content_hash"] != run.data_hash:
        raise HeqisError(f"{store.root}: not the data this run was trained on",
                         hint="point --data-dir at the run's data store")
    return store


def open_run_models(run: RunFolder, data_dir: Path | None) -> tuple[DataStore, dict[str, tuple[Any, Scaler]]]:
    """The run's data store (``open_run_store``) and every generator that has a checkpoint, with its
    own scaler."""
    from heqis.models.checkpoint import load_generator_file

    store = open_run_store(run, data_dir)
    models = {gid: (load_generator_file(run.checkpoint(gid)), Scaler.load(run.scaler_path(gid)))
              for gid in run.generators()}
    if not models:
        raise HeqisError(f"{run.root}: the run has no generator checkpoint yet", hint="let training finish an epoch")
    return store, models


def needed_dates(inputs: dict[str, SymbolInputs]) -> np.ndarray:
    """The decision dates a backtest predicts: the sessions of its segments."""
    return np.concatenate([inputs[seg].dates for seg in BACKTEST_SEGMENTS])


def target_outcomes(bars: pd.DataFrame, target: str) -> tuple[np.ndarray, np.ndarray]:
    """(decision dates, realised target return) of every bar whose target is known (``target_returns``)."""
    from heqis.features.windows import target_horizon, target_returns

    ends = np.arange(max(0, len(bars) - target_horizon(target)))
    return bars["trade_date"].to_numpy(dtype="datetime64[ns]")[ends], target_returns(bars, ends, target)[0]


def direction_skill(pred: Predictions, mode: str, flat_band: float, truth: tuple[np.ndarray, np.ndarray],
                    sessions: np.ndarray) -> float:
    """Balanced accuracy of the direction a candidate trades on (``cls``: the class head's argmax;
    ``reg``: the predicted return through the flat band) over its decisions on ``sessions``
    (``--score balanced_acc``; NaN when none has a known outcome)."""
    from heqis.features.windows import direction
    from heqis.stats import direction_scores

    dates, ret = truth
    pos = np.searchsorted(dates, pred.dates)
    known = (pos < len(dates)) & sorted_isin(pred.dates, sessions)
    known[known] = dates[pos[known]] == pred.dates[known]
    if not known.any():
        return float("nan")
    said = pred.cls_logits[known].argmax(axis=1) if mode == "cls" else direction(pred.reg_return[known], flat_band)
    return direction_scores(said, direction(ret[pos[known]], flat_band))[1]


Candidate = tuple[str, str]   # (generator, mode)


@dataclass
class SymbolOutcome:
    """One symbol's candidates and buy-and-hold, before the panel gate says which may be chosen."""

    code: str
    ranking: list[Candidate]                                  # best select score first
    rows: dict[Candidate, dict[str, Any]]                     # best_metrics.csv row of each, and of HOLD
    runs: dict[Candidate, dict[str, tuple[SymbolRun, SymbolRun]]]   # (strategy, buy-and-hold) per segment

    def choose(self, gate: Gate) -> Candidate:
        """The best candidate on select that the gate lets through, else buy-and-hold."""
        return next((c for c in self.ranking if gate.passes(*c)), HOLD)

    def select_line(self, candidate: Candidate) -> tuple[np.ndarray, np.ndarray]:
        """The candidate's (dates, equity) on select, what the gate weighs."""
        run = self.runs[candidate]["select"][0]
        return run.dates, run.equity

    def shown(self, candidate: Candidate) -> list[Shown]:
        """One candidate's runs per segment, as ``result_frames`` takes them."""
        return [(self.code, seg, *candidate, strategy, hold) for seg, (strategy, hold) in self.runs[candidate].items()]


def backtest_symbol(code: str, runner: SegmentRunner, inference: Inference, scalers: dict[str, Scaler],
                    segments: dict[str, tuple[pd.Timestamp, pd.Timestamp]], score: str,
                    preds: dict[str, Predictions] | None = None, inputs: dict[str, SymbolInputs] | None = None
                    ) -> tuple[SymbolOutcome, list[dict[str, Any]]]:
    """One symbol of ``backtest_run``: (its candidates ranked on select, candidates.csv rows).

    Only the windows whose decision date is a session of select or test are predicted (a signal
    decided at a session's close fills at the next open inside the same segment, or never); every
    generator × mode × segment and buy-and-hold once per segment go through one ``run_symbols`` call.
    """
    rules = runner.rules
    names = BACKTEST_SEGMENTS
    inputs = inputs or {seg: runner.inputs(code, *segments[seg]) for seg in names}
    if preds is None:
        preds = predict_needed(inference, scalers, runner.bars(code), needed_dates(inputs))
    cases = [(gid, mode, seg) for gid in preds for mode in MODES for seg in names]
    signals = {(gid, mode): pred.signals_array(mode, rules.regression_threshold) for gid, pred in preds.items()
               for mode in MODES}
    runs = run_symbols([inputs[seg] for *_, seg in cases] + [inputs[seg] for seg in names],
                       [on_sessions(preds[gid].dates, signals[gid, mode], inputs[seg].dates)
                        for gid, mode, seg in cases] + [buy_and_hold(inputs[seg]) for seg in names], rules)
    holds = dict(zip(names, runs[len(cases):], strict=True))
    results: dict[tuple[str, str], dict[str, tuple[SymbolRun, SymbolRun, dict[str, float]]]] = {}
    cand_rows = []
    truths = {t: target_outcomes(runner.bars(code), t) for t in {scalers[g].target for g in preds}}
    for (gid, mode, seg), strategy in zip(cases, runs, strict=False):
        metrics = compute_metrics(strategy, rules.initial_cash, rules.periods_per_year, holds[seg])
        metrics["balanced_acc"] = direction_skill(preds[gid], mode, scalers[gid].flat_band,
                                                  truths[scalers[gid].target], inputs[seg].dates)
        results.setdefault((gid, mode), {})[seg] = (strategy, holds[seg], metrics)
        cand_rows.append({"symbol": code, "generator": gid, "mode": mode, "segment": seg, **metrics})
    scored = sorted(results, key=lambda c: (-results[c]["select"][2][score], -results[c]["select"][2]["total_return"],
                                            c))   # best select score; ties: return, then name
    for seg in names:
        metrics = compute_metrics(holds[seg], rules.initial_cash, rules.periods_per_year, holds[seg])
        results[HOLD] = {**results.get(HOLD, {}), seg: (holds[seg], holds[seg], {**metrics, "balanced_acc": None})}
    outcome = SymbolOutcome(code, scored, {}, {})
    for (gid, mode), per in results.items():
        outcome.rows[gid, mode] = {"symbol": code, "generator": gid, "mode": mode,
                                   **{k: per["test"][2][k] for k in (*METRIC_NAMES, "balanced_acc")},
                                   **{f"select_{k}": per["select"][2][k] for k in (*METRIC_NAMES, "balanced_acc")}}
        outcome.runs[gid, mode] = {segment: (strategy, hold) for segment, (strategy, hold, _) in per.items()}
    return outcome, cand_rows


@dataclass(frozen=True)
class RunJob:
    """What every backtest worker needs to open the run itself (plain data: it crosses processes)."""

    run_dir: str
    data_dir: str | None
    rules: MarketRules
    score: str
    inference_backend: str
    threads: int | None           # intra-op threads per worker (None: leave torch's default)


@dataclass
class ChunkResult:
    """``backtest_chunk`` of some symbols: the rows and frames of those it could backtest."""

    outcomes: list[SymbolOutcome] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Worker:
    runner: SegmentRunner
    inference: Inference
    scalers: dict[str, Scaler]
    segments: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    score: str


_WORKER: _Worker | None = None


def init_backtest_worker(job: RunJob) -> None:
    """Pool initializer: open the run, its store and its models once in this process."""
    global _WORKER
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    run = RunFolder.open(Path(job.run_dir))
    store, models = open_run_models(run, Path(job.data_dir) if job.data_dir else None)
    _WORKER = _Worker(SegmentRunner(store, job.rules, Universe.of(store)), Inference(models, job.inference_backend),
                      {gid: scaler for gid, (_, scaler) in models.items()},
                      {k: (pd.Timestamp(a), pd.Timestamp(b)) for k, (a, b) in run.segments.items()}, job.score)


def backtest_chunk(chunk: list[str]) -> ChunkResult:
    """Backtest some symbols with one inference call per generator (runs where ``init_backtest_worker`` ran)."""
    w = _WORKER
    if w is None:  # pragma: no cover - a programming error, not a user's
        raise RuntimeError("backtest_chunk needs init_backtest_worker first")
    result = ChunkResult()
    codes = [code for code in chunk if w.runner.trades_in(code, w.segments, result.skipped)]
    if not codes:
        return result
    inputs = [{seg: w.runner.inputs(code, *w.segments[seg]) for seg in BACKTEST_SEGMENTS} for code in codes]
    needed = [needed_inputs(w.scalers, w.runner.bars(code), needed_dates(inp))
              for code, inp in zip(codes, inputs, strict=True)]
    preds = predict_many(w.inference, w.scalers, needed)
    del needed
    for i, code in enumerate(codes):
        outcome, cands = backtest_symbol(code, w.runner, w.inference, w.scalers, w.segments, w.score,
                                         preds[i], inputs[i])
        result.outcomes.append(outcome)
        result.candidates.extend(cands)
        w.runner.forget(code)
    return result


def backtest_plan(symbols: int, workers: int | None, cluster: str | None) -> tuple[Parallel, int]:
    """(how, symbols per chunk): one process for a small run unless asked (``SMALL_RUN``); otherwise
    chunks small enough that every worker gets several, so none waits idle at the end, and large
    enough to batch inference well."""
    how = Parallel.of(workers, cluster)
    if workers is None and cluster is None and symbols <= SMALL_RUN:
        how = Parallel(1)
    if how.workers <= 1 and not how.cluster:
        return how, PREDICT_CHUNK
    return how, max(MIN_PARALLEL_CHUNK, min(PREDICT_CHUNK, -(-symbols // (4 * how.workers))))


def backtest_run(run_dir: Path, data_dir: Path | None = None, rules: MarketRules | None = None,
                 score: str = "sharpe", out: Path | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 inference_backend: str = "auto", workers: int | None = None,
                 cluster: str | None = None, rule_overrides: list[str] | None = None,
                 gate: float | None = GATE_LEVEL) -> BacktestResult:
    """Backtest every generator × mode of a training run; choose on ``select``, report on ``test``.

    ``gate``: the family-wise level of the panel gate (``selection``); None chooses each symbol's
    best candidate on select whether or not it beats holding.

    ``rules`` default to the store's market (``MarketRules.for_market``), then ``rule_overrides``
    (``KEY=VALUE`` as ``--rules``). ``inference_backend``: ``auto`` | ``onnxruntime`` | ``torch``
    (``signals.Inference``). Symbols are backtested in chunks over ``heqis.parallel`` (``workers``
    processes here, or the Dask scheduler at ``cluster``, whose workers must see the run and data
    folders at the same paths); every chunk's result is independent of how the symbols were split,
    so the outputs do not depend on either."""
    if score not in SCORES:
        raise HeqisError(f"unknown score '{score}'", hint=f"use one of: {', '.join(SCORES)}")
    if inference_backend not in INFERENCE_BACKENDS:
        raise HeqisError(f"unknown inference backend '{inference_backend}'",
                         hint=f"use one of: {', '.join(INFERENCE_BACKENDS)}")
    progress = progress or (lambda what, done, total: None)
    run = RunFolder.open(run_dir)
    manifest = run.manifest
    store = open_run_store(run, data_dir)
    rules = (rules or MarketRules.for_market(store.market())).with_overrides(rule_overrides)
    if not run.generators():
        raise HeqisError(f"{run.root}: the run has no generator checkpoint yet", hint="let training finish an epoch")
    universe = Universe.of(store)
    symbols = tradable(manifest["symbols"], universe)
    how, size = backtest_plan(len(symbols), workers, cluster)
    local_pool = how.workers > 1 and not how.cluster
    threads = max(1, default_workers() // how.workers) if local_pool else None
    job = RunJob(str(run_dir.resolve()), str(store.root.resolve()), rules, score, inference_backend, threads)
    chunks = [symbols[i:i + size] for i in range(0, len(symbols), size)]
    results: dict[int, ChunkResult] = {}
    done = 0
    progress(symbols[0] if symbols else "", 0, len(symbols))
    for index, result in parallel_map(backtest_chunk, chunks, how, initializer=init_backtest_worker,
                                      initargs=(job,)):
        results[chunks.index(index)] = result
        done += len(index)
        progress(index[-1], done, len(symbols))
    ordered = [results[i] for i in range(len(chunks))]
    outcomes = [o for r in ordered for o in r.outcomes]
    skipped = [code for r in ordered for code in r.skipped]
    if not outcomes:
        if skipped:
            raise HeqisError(f"{run_dir}: no symbol of the run has sessions in both select and test",
                             hint="fetch a longer date range")
        raise HeqisError(f"{run_dir}: no tradable symbol in the run (indices are only benchmarks)")
    candidates = sorted({c for o in outcomes for c in o.ranking})
    verdict = panel_gate({c: [o.select_line(c) for o in outcomes if c in o.runs] for c in candidates},
                         [o.select_line(HOLD) for o in outcomes], gate)
    chosen = [o.choose(verdict) for o in outcomes]
    best_rows = [o.rows[c] for o, c in zip(outcomes, chosen, strict=True)]
    equity, trades = result_frames([row for o, c in zip(outcomes, chosen, strict=True) for row in o.shown(c)])
    portfolio, stats = portfolio_line(equity, store, "test")
    out = out or run_dir / "backtest"
    selection = {**verdict.to_dict(), "summary": verdict.describe()}
    summary = {"run_dir": str(run_dir), "data_dir": str(store.root), "score": score, "rules": rules.to_dict(),
               "segments": manifest["segments"], "portfolio": stats, "symbols": symbols, "selection": selection}
    _write(out, pd.DataFrame(best_rows), pd.DataFrame([row for r in ordered for row in r.candidates]),
           trades, equity, portfolio, summary)
    notes = [f"{len(skipped)} symbol{'s' if len(skipped) != 1 else ''} with no session in select or test "
             f"(listed later or delisted) left out: {', '.join(skipped[:10])}{' …' if len(skipped) > 10 else ''}"
             ] if skipped else []
    if run.status not in FINISHED:
        notes.insert(0, f"the run is {run.status}: these are its best checkpoints so far, not a finished run's "
                        f"(heqis train --resume --out {run_dir} finishes it)")
    if how.workers > 1 or how.cluster:
        notes.append(f"backtested on {how.describe()} in {len(chunks)} chunks of ≤ {size} symbols")
    return BacktestResult(str(out), str(run_dir), score, rules.to_dict(), manifest["segments"], best_rows, stats,
                          notes=notes, selection=selection)


def backtest_signals(path: Path, data_dir: Path, rules: MarketRules | None = None, out: Path | None = None,
                     start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                     rule_overrides: list[str] | None = None) -> BacktestResult:
    """Backtest the user's own signals (CSV/parquet: symbol, trade_date, signal) over the stored data.

    ``rules`` default to the store's market (``MarketRules.for_market``), then ``rule_overrides``."""
    store = DataStore(data_dir)
    store.require_current()
    rules = (rules or MarketRules.for_market(store.market())).with_overrides(rule_overrides)
    signals = read_signal_file(path, store)
    runner = SegmentRunner(store, rules, Universe.of(store))
    rows, shown = [], []
    for code, sig in signals.items():
        strategy, hold, metrics = runner.run(code, sig, start, end)
        rows.append({"symbol": code, "generator": "signals", "mode": "file", **metrics})
        shown.append((code, "all", "signals", "file", strategy, hold))
    equity, trades = result_frames(shown)
    portfolio, stats = portfolio_line(equity, store, "all")
    out = out or Path("backtest")
    summary = {"signals": str(path), "data_dir": str(store.root), "rules": rules.to_dict(), "portfolio": stats}
    _write(out, pd.DataFrame(rows), None, trades, equity, portfolio, summary)
    first, last = equity["trade_date"].min(), equity["trade_date"].max()
    return BacktestResult(str(out), str(path), "n/a", rules.to_dict(),
                          {"all": [str(first.date()), str(last.date())]}, rows, stats)

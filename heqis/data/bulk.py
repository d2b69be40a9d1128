"""``heqis data`` for sources whose symbols are independent: a CSV folder and the synthetic panel.

Each symbol is built in parallel (``heqis.parallel``: ``--workers K`` processes here, or a Dask
cluster with ``--cluster``; docs/architecture.md, "Scaling out"), the parent alone writes the
calendar, the universe, the resume journal and — last — the manifest (``heqis.data.build``). Tushare
and the bundled sample go through ``pipeline._run_api`` (``heqis.data.per_symbol``): the sample's
symbols in worker processes too, Tushare's one at a time (it is rate-limited, so more processes would
only wait for the same quota).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from heqis.data.boards import TS_CODE, classify
from heqis.data.build import Built, Context, Journal, Task, build_symbol, init_worker
from heqis.data.cleaning import CleaningReport, clean_daily
from heqis.data.request import CSV_SYMBOL, DataRequest, DataResult, Progress, _merge_calendar, _merge_universe
from heqis.data.store import MANIFEST_VERSION, DataStore
from heqis.data.watchlist import Instrument
from heqis.errors import HeqisError
from heqis.features.fingerprint import feature_fingerprint
from heqis.parallel import Parallel, parallel_map

# Below this many symbols the default is one process: starting workers (each imports pandas, pyarrow
# and the indicators) costs more than it saves. An explicit --workers is always obeyed.
SMALL_RUN = 200


def how_for(req: DataRequest, tasks: int) -> Parallel:
    """The parallelism of one run: what the user asked for; by default the cores, unless the run is small."""
    how = Parallel.of(req.workers, req.cluster)
    if req.workers is None and req.cluster is None and tasks < SMALL_RUN:
        return Parallel(1)
    return how


def _build_all(tasks: list[Task], ctx: Context, how: Parallel, journal: Journal, results: dict[str, Built],
               progress: Progress) -> None:
    """Build every task; each result is journalled as soon as it arrives (an interruption keeps it)."""
    total = len(tasks) + len(results)
    done = len(results)
    try:
        for _, built in parallel_map(build_symbol, tasks, how, initializer=init_worker, initargs=(ctx,)):
            if built.files:
                journal.record(built)
            results[built.ts_code] = built
            done += 1
            progress(built.ts_code, done, total)
    finally:
        journal.close(remove=False)


def _known_files(results: Iterable[Built]) -> dict[str, str]:
    return {rel: digest for b in results for rel, digest in b.files.items()}


def _coverage(results: Iterable[Built]) -> dict[str, tuple[date, date]]:
    return {b.ts_code: (date.fromisoformat(b.coverage[0]), date.fromisoformat(b.coverage[1]))
            for b in results if b.coverage}


def _drop_cache_unless(store: DataStore, wanted: bool) -> None:
    if not wanted:
        shutil.rmtree(store.features_dir, ignore_errors=True)   # no cache rather than a stale one


# -- synthetic ------------------------------------------------------------------------------------

def run_synthetic(req: DataRequest, store: DataStore, manifest: dict | None, progress: Progress,
                  t0: float) -> DataResult:
    """The synthetic panel into the store (``heqis.data.sources.synthetic``), resumable."""
    from heqis.data.sources.synthetic import BENCHMARK, DEFAULT_SEED, SYNTHETIC_END, SyntheticPanel

    end = req.end or SYNTHETIC_END
    if end > date(2026, 12, 31):
        raise HeqisError(f"--end {end}: the offline XSHG calendar ends 2026-12-31", hint="use an earlier --end")
    panel = SyntheticPanel(req.symbols, req.years, req.planted_ic,
                           DEFAULT_SEED if req.seed is None else req.seed, end)
    params = panel.params()
    notes: list[str] = []
    if req.start:
        notes.append(f"--start is not used by --source synthetic: it covers {panel.years} years up to {end}")
    same = False
    if manifest is not None:
        if manifest.get("synthetic_panel") != params:
            old = manifest.get("synthetic_panel") or {}
            raise HeqisError(f"{store.root} holds another synthetic panel ({old.get('symbols')} stocks, "
                             f"{old.get('years')} years, planted IC {old.get('planted_ic')}, seed {old.get('seed')})",
                             hint="use another --data-dir, or add --replace to start this store over")
        same = manifest.get("version") == MANIFEST_VERSION
    _drop_cache_unless(store, req.features)
    stale = req.features and not store.feature_cache_current(manifest)
    store.write_calendar(panel.calendar())
    instruments = panel.instruments()
    journal = Journal(store, {"source": "synthetic", **params, "store": MANIFEST_VERSION,
                              "features": feature_fingerprint()["id"] if req.features else None})
    kept = {} if same else journal.resumable()
    if kept:
        notes.append(f"resumed an interrupted run: {len(kept)} of {len(instruments)} symbols were already built")
    tasks = []
    for inst in instruments:
        if inst.ts_code in kept:
            continue
        number = None if inst.kind == "index" else panel.index_of(inst.ts_code)
        generate = not same or not store.bars_path(inst.ts_code).exists()
        tasks.append(Task(inst, panel.name(inst), number=number, generate=generate, features_stale=stale))
    ctx = Context(str(store.root), req.features, panel.sessions.to_numpy(), panel)
    results: dict[str, Built] = dict(kept)
    journal.open(kept)
    _build_all(tasks, ctx, how_for(req, len(tasks)), journal, results, progress)

    old_dates = dict(zip(store.read_universe()["ts_code"], store.read_universe()["list_date"], strict=True))
    uni = pd.DataFrame([{"ts_code": inst.ts_code, "name": panel.name(inst), "kind": inst.kind, "board": inst.board,
                         "list_date": pd.Timestamp(results[inst.ts_code].list_date or old_dates[inst.ts_code]),
                         "list_status": "L"} for inst in instruments])
    uni["list_date"] = uni["list_date"].astype("datetime64[ns]")
    store.write_universe(uni)
    ordered = [results[i.ts_code] for i in instruments]
    written = store.write_manifest("synthetic", True, _coverage(ordered), (panel.start, end),
                                   {"watchlist": f"synthetic panel ({panel.symbols} stocks + {BENCHMARK})",
                                    "synthetic_panel": params},
                                   feature_fingerprint() if req.features else None, _known_files(ordered), sync=True)
    journal.close(remove=True)
    if same and not any(t.generate for t in tasks):
        notes.append("up to date: the store already holds this synthetic panel")
    notes.append(f"planted signal: {params['planted']}")
    summaries = [b.summary for b in ordered]
    rows = sum(s.rows for s in summaries)
    return DataResult(
        data_dir=str(store.root), source="synthetic", synthetic=True, watchlist=written["watchlist"],
        start=written["start"], end=written["end"], content_hash=written["content_hash"], api_calls=0,
        retries=0, seconds=round(time.monotonic() - t0, 3), symbols=summaries,
        cleaning=CleaningReport(rows_in=rows, rows_out=rows), notes=notes)


# -- CSV ------------------------------------------------------------------------------------------

def _csv_code(path: Path, symbol: str | None, many: bool) -> str:
    code = (symbol if symbol and not many else path.stem).strip().upper()
    if not CSV_SYMBOL.match(code):
        raise HeqisError(f"{path}: '{code}' cannot name a symbol",
                         hint="use --symbol with letters, digits, '.', '_' or '-' (e.g. 600519.SH)")
    return code


def read_csv_task(job: tuple[str, str, str, str, date | None, date | None]) \
        -> tuple[str, str, pd.DataFrame, CleaningReport]:
    """Read, clean and clip one CSV file (runs in a worker): (code, path, cleaned daily rows, report)."""
    from heqis.data.sources.csv_source import read_csv_symbol

    path_s, code, volume_unit, amount_unit, start, end = job
    path = Path(path_s)
    sym = read_csv_symbol(path, code, volume_unit, amount_unit)
    daily, rep = clean_daily(sym.daily, code, str(path))
    if start:
        daily = daily[daily["trade_date"] >= pd.Timestamp(start)]
    if end:
        daily = daily[daily["trade_date"] <= pd.Timestamp(end)]
    if daily.empty:
        raise HeqisError(f"{path}: no rows inside {start or '…'}..{end or '…'}", hint="widen --start/--end")
    return code, path_s, daily, rep


def _read_all(jobs: list[tuple], how: Parallel) -> Iterator[tuple[str, str, pd.DataFrame, CleaningReport]]:
    order = {job[0]: n for n, job in enumerate(jobs)}
    out = [r for _, r in parallel_map(read_csv_task, jobs, how)]
    yield from sorted(out, key=lambda r: order[r[1]])


def _stat(path: Path) -> dict:
    st = os.stat(path)
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def run_csv(req: DataRequest, store: DataStore, manifest: dict | None, progress: Progress, t0: float) -> DataResult:
    """A CSV file or folder into the store: every file is read and checked before anything is written."""
    from heqis.data.sources.csv_source import SPLIT_JUMP, csv_files, split_jumps

    if req.csv_path is None:
        raise HeqisError("--source csv needs --path FILE (or a folder of CSV files)")
    files = csv_files(req.csv_path)
    jobs = [(str(p), _csv_code(p, req.csv_symbol, len(files) > 1), req.volume_unit, req.amount_unit,
             req.start, req.end) for p in files]
    how = how_for(req, len(jobs))
    report = CleaningReport()
    prepared = []
    notes: list[str] = []
    for code, path_s, daily, rep in _read_all(jobs, how):   # read and check every file before writing anything
        report.merge(rep)
        jumps = split_jumps(daily)
        if jumps:
            shown = ", ".join(f"{day} {ret:+.0%}" for day, ret in jumps[:4]) + (" …" if len(jumps) > 4 else "")
            notes.append(f"{code}: {len(jumps)} day{'s' if len(jumps) > 1 else ''} moved more than "
                         f"±{SPLIT_JUMP:.0%} after adjustment: {shown} — an unadjusted split? Then add an "
                         f"adj_close or adj_factor column to {Path(path_s).name}: models and backtest see a crash")
        kind, board = classify(code) if TS_CODE.match(code) else ("stock", "main")
        prepared.append((Instrument(code, kind, board), Path(path_s), daily))

    market = req.market or ("cn" if all(TS_CODE.match(inst.ts_code) for inst, _, _ in prepared) else "none")
    if manifest is not None and manifest.get("market", "cn") != market:
        raise HeqisError(f"{store.root} holds symbols of market '{manifest.get('market', 'cn')}', not '{market}'",
                         hint="use another --data-dir (one market per store), or --replace to start it over")
    coverage = store.coverage() if store.exists() else {}
    dates = pd.DatetimeIndex(np.unique(np.concatenate([d["trade_date"].to_numpy(dtype="datetime64[ns]")
                                                       for _, _, d in prepared])))
    days = pd.date_range(dates[0], dates[-1], freq="D").astype("datetime64[ns]")
    store.write_calendar(_merge_calendar(store, pd.DataFrame({"trade_date": days, "is_open": days.isin(dates)})))
    sessions = store.sessions()
    _drop_cache_unless(store, req.features)
    stale = req.features and not store.feature_cache_current(manifest)
    journal = Journal(store, {"source": "csv", "path": str(req.csv_path), "symbol": req.csv_symbol,
                              "volume_unit": req.volume_unit, "amount_unit": req.amount_unit,
                              "start": req.start, "end": req.end, "store": MANIFEST_VERSION,
                              "features": feature_fingerprint()["id"] if req.features else None})
    stats = {inst.ts_code: _stat(path) for inst, path, _ in prepared}
    kept = {code: b for code, b in journal.resumable().items() if stats.get(code) == b.origin}
    tasks = [Task(inst, path.stem, daily=daily, origin=stats[inst.ts_code])
             for inst, path, daily in prepared if inst.ts_code not in kept]
    this_run = {inst.ts_code for inst, _, _ in prepared}
    others = [c for c in store.symbols() if c not in this_run]   # stored by an earlier run: cache, hashes
    uni_old = store.read_universe().set_index("ts_code") if others else None
    for code in others:
        row = uni_old.loc[code] if uni_old is not None and code in uni_old.index else None
        kind, board = (row["kind"], row["board"]) if row is not None else ("stock", "main")
        tasks.append(Task(Instrument(code, kind, board), code, features_stale=stale))
    ctx = Context(str(store.root), req.features, sessions.to_numpy())
    results: dict[str, Built] = dict(kept)
    journal.open(kept)
    _build_all(tasks, ctx, how_for(req, len(tasks)), journal, results, progress)

    summaries = [results[inst.ts_code].summary for inst, _, _ in prepared]
    for b in results.values():
        if b.ts_code in this_run and b.coverage:
            coverage[b.ts_code] = (date.fromisoformat(b.coverage[0]), date.fromisoformat(b.coverage[1]))
    uni = pd.DataFrame([{"ts_code": inst.ts_code, "name": path.stem, "kind": inst.kind, "board": inst.board,
                         "list_date": pd.Timestamp(results[inst.ts_code].list_date), "list_status": "L"}
                        for inst, path, _ in prepared])
    uni["list_date"] = uni["list_date"].astype("datetime64[ns]")
    store.write_universe(_merge_universe(store, uni))
    cal = store.read_calendar()
    cal_cov = (cal["trade_date"].iloc[0].date(), cal["trade_date"].iloc[-1].date())
    written = store.write_manifest("csv", False, coverage, cal_cov, {"watchlist": str(req.csv_path), "market": market},
                                   feature_fingerprint() if req.features else None,
                                   _known_files(results.values()), sync=True)
    journal.close(remove=True)
    if kept:
        notes.insert(0, f"resumed an interrupted run: {len(kept)} of {len(prepared)} files were already stored")
    if market != "cn":
        notes.append(f"market {market}: backtests use no price limits, no stamp duty, 1-share lots and 252 "
                     f"sessions a year (--market cn for A-share rules)")
    return DataResult(
        data_dir=str(store.root), source="csv", synthetic=False, watchlist=str(req.csv_path),
        start=written["start"], end=written["end"], content_hash=written["content_hash"], api_calls=0,
        retries=0, seconds=round(time.monotonic() - t0, 3), symbols=summaries, cleaning=report, notes=notes)

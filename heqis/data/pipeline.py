"""``heqis data``: fetch → clean → assemble → adjust → features → store, incrementally.

The store's manifest records, per symbol, the date range already fetched (``coverage``), so a
second run asks the source only for the dates it lacks; each symbol is then rebuilt from its raw
rows, which re-bases the adjusted prices whenever a new adjustment factor has arrived.
"""

from __future__ import annotations

import shutil
import time
from datetime import date, timedelta

import pandas as pd

from heqis.config import Settings, read_token
from heqis.data.build import SymbolSummary, feature_cache, finish_bars, summarize
from heqis.data.bulk import how_for, run_csv, run_synthetic
from heqis.data.cleaning import CleaningReport
from heqis.data.fetch import Fetcher, QueryApi
from heqis.data.per_symbol import RunContext, StoreWriter, SymbolDone, SymbolJob, fetch_symbol, init_run
from heqis.data.request import DataRequest, DataResult, Progress, _merge_calendar, _merge_universe
from heqis.data.schema import BAR_COLUMNS
from heqis.data.store import MANIFEST_VERSION, DataStore
from heqis.data.watchlist import Instrument, default_watchlist_text, load_watchlist, parse_watchlist
from heqis.errors import HeqisError
from heqis.features.fingerprint import feature_fingerprint
from heqis.parallel import Parallel, parallel_map

SOURCES = ("sample", "tushare", "csv", "synthetic")
DEFAULT_TUSHARE_START = date(2018, 1, 1)
def missing_spans(covered: tuple[date, date] | None, start: date, end: date) -> list[tuple[date, date]]:
    """The parts of [start, end] outside the covered range (at most one before, one after)."""
    if start > end:
        return []
    if covered is None:
        return [(start, end)]
    c0, c1 = covered
    spans = []
    if start < c0:
        spans.append((start, min(end, c0 - timedelta(days=1))))
    if end > c1:
        spans.append((max(start, c1 + timedelta(days=1)), end))
    return spans


def extend_coverage(prev: tuple[date, date] | None, start: date, horizon: date,
                    last_bar: date | None) -> tuple[date, date] | None:
    """The covered range after fetching [start, horizon]; a stored bar extends it past the horizon.

    ``horizon`` is the last day whose data cannot change any more (yesterday for live sources), so
    a range that ends today is fetched again next time unless today's bar already arrived.
    """
    end = max(horizon, last_bar) if last_bar is not None else horizon
    if end < start:
        return prev
    if prev is None:
        return (start, end)
    return (min(start, prev[0]), max(end, prev[1]))


def _prepare_store(store: DataStore, source: str, replace: bool) -> dict | None:
    if not store.exists():
        return None
    manifest = store.manifest(current=False)   # an older store format is upgraded by this run
    if replace:
        for path in (store.bars_dir, store.features_dir, store.partial_dir):
            shutil.rmtree(path, ignore_errors=True)
        for name in ("calendar.parquet", "universe.parquet", "manifest.json"):
            (store.root / name).unlink(missing_ok=True)
        return None
    if manifest.get("source") != source:
        raise HeqisError(f"{store.root} holds '{manifest.get('source')}' data; refusing to mix in '{source}' data",
                         hint="use another --data-dir, or add --replace to start this store over")
    return manifest


def make_api(req: DataRequest, settings: Settings, instruments: list[Instrument]) -> tuple[QueryApi, bool]:
    """(the query API of the source, whether its data are synthetic)."""
    if req.source == "sample":
        from heqis.data.sources.sample import sample_api

        return sample_api(instruments), True
    from heqis.data.sources.tushare import TushareApi

    return TushareApi(read_token(settings), url=settings.tushare_url, timeout_s=settings.tushare_timeout_s,
                      calls_per_min=settings.tushare_calls_per_min, retries=settings.tushare_retries,
                      backoff_s=settings.tushare_backoff_s), False


def run_data(req: DataRequest, settings: Settings, progress: Progress | None = None,
             api: QueryApi | None = None) -> DataResult:
    """Run ``heqis data``; ``api`` replaces the source's own (tests)."""
    if req.source not in SOURCES:
        raise HeqisError(f"unknown source '{req.source}'", hint=f"use one of: {', '.join(SOURCES)}")
    t0 = time.monotonic()
    progress = progress or (lambda what, done, total: None)
    store = DataStore(req.data_dir)
    with store.lock():
        manifest = _prepare_store(store, req.source, req.replace)
        if req.source in ("csv", "synthetic"):
            run = run_csv if req.source == "csv" else run_synthetic
            return run(req, store, manifest, progress, t0)
        return _run_api(req, settings, store, manifest, progress, t0, api)


def _requested_range(req: DataRequest) -> tuple[date, date, list[str]]:
    notes: list[str] = []
    if req.source == "sample":
        from heqis.data.sources.sample import SAMPLE_END, SAMPLE_START

        start = max(req.start or SAMPLE_START, SAMPLE_START)
        end = min(req.end or SAMPLE_END, SAMPLE_END)
        if (req.start and req.start < SAMPLE_START) or (req.end and req.end > SAMPLE_END):
            notes.append(f"the sample data set covers {SAMPLE_START}..{SAMPLE_END}; range clamped")
    else:
        start = req.start or DEFAULT_TUSHARE_START
        end = req.end or date.today()
    if start > end:
        raise HeqisError(f"--start {start} is after --end {end}", hint="swap them")
    return start, end, notes


def _run_api(req: DataRequest, settings: Settings, store: DataStore, manifest: dict | None,
             progress: Progress, t0: float, api: QueryApi | None) -> DataResult:
    if req.bundled_watchlist:
        instruments, origin = parse_watchlist(default_watchlist_text(), "bundled"), "bundled"
    else:
        instruments, origin = load_watchlist(req.watchlist)
    start, end, notes = _requested_range(req)
    synthetic = req.source == "sample"
    if api is None:
        api, synthetic = make_api(req, settings, instruments)
    partial = store.partial_dir if req.source == "tushare" else None
    fetcher = Fetcher(api, partial_dir=partial)
    coverage = store.coverage() if manifest else {}
    cal_cov = tuple(date.fromisoformat(d) for d in manifest["calendar_coverage"]) \
        if manifest and manifest.get("calendar_coverage") else None

    # Never mark today or later as fetched: today's bar may not be published yet.
    horizon = min(end, date.today() - timedelta(days=1)) if req.source == "tushare" else end

    cal_spans = missing_spans(cal_cov, start, end)  # type: ignore[arg-type]
    if cal_spans:
        cal = pd.concat([fetcher.calendar(a, b) for a, b in cal_spans], ignore_index=True)
        store.write_calendar(_merge_calendar(store, cal))
        cal_cov = (min(start, cal_cov[0]), max(end, cal_cov[1])) if cal_cov else (start, end)
    sessions = store.sessions()

    uni = store.read_universe()
    lacking = [i for i in instruments if i.ts_code not in set(uni["ts_code"])]
    if lacking:
        uni = _merge_universe(store, fetcher.universe(lacking))
        store.write_universe(uni)
    names = dict(zip(uni["ts_code"], uni["name"], strict=True))

    upgrading = bool(manifest) and manifest.get("version") != MANIFEST_VERSION   # type: ignore[union-attr]
    writer = StoreWriter.for_run(store, manifest, req.features)
    ctx = RunContext(str(store.root), api, req.source, str(partial) if partial else None, start, end,
                     sessions.to_numpy(), req.features, writer.refresh_all, upgrading)
    jobs = [SymbolJob(inst, names.get(inst.ts_code, inst.ts_code),
                      tuple(missing_spans(coverage.get(inst.ts_code), start, end))) for inst in instruments]
    # the sample's symbols in worker processes; Tushare's one at a time here (its quota sets the pace)
    how = how_for(req, len(jobs)) if req.source == "sample" else Parallel(1)
    done: dict[str, SymbolDone] = {}
    progress("", 0, len(jobs))
    for job, result in parallel_map(fetch_symbol, jobs, how, initializer=init_run, initargs=(ctx,)):
        done[job.inst.ts_code] = result
        progress(job.inst.ts_code, len(done), len(jobs))
    report = CleaningReport()
    summaries = []
    for job in jobs:
        result = done[job.inst.ts_code]
        report.merge(result.report)
        writer.merge(result)
        summaries.append(result.summary)
        if job.spans:
            extended = extend_coverage(coverage.get(job.inst.ts_code), start, horizon, result.last_bar)
            if extended is not None:
                coverage[job.inst.ts_code] = extended

    writer.others({i.ts_code for i in instruments}, upgrading)
    written_manifest = store.write_manifest(req.source, synthetic, coverage, cal_cov,  # type: ignore[arg-type]
                                            {"watchlist": origin}, feature_fingerprint() if req.features else None,
                                            writer.known, sync=True)
    shutil.rmtree(store.partial_dir, ignore_errors=True)
    if not any(s.fetched for s in summaries):
        notes.append("up to date: nothing to fetch")
    if upgrading:
        notes.append(f"upgraded the store to format {MANIFEST_VERSION} (bars without feature columns, and a "
                     "feature cache)")
    if writer.refresh_all and writer.recomputed and not upgrading and manifest:
        notes.append(f"recomputed the feature cache ({feature_fingerprint()['id']}) for {writer.recomputed} symbols")
    for s in summaries:
        if s.rows == 0:
            notes.append(f"{s.ts_code}: no bars in {start}..{end} (not listed, suspended or unknown code)")
    return DataResult(
        data_dir=str(store.root), source=req.source, synthetic=synthetic, watchlist=origin,
        start=written_manifest["start"], end=written_manifest["end"],
        content_hash=written_manifest["content_hash"], api_calls=fetcher.calls + sum(d.calls for d in done.values()),
        retries=getattr(api, "retried", 0), seconds=round(time.monotonic() - t0, 3),
        symbols=summaries, cleaning=report, notes=notes)


__all__ = ["BAR_COLUMNS", "DataRequest", "DataResult", "SymbolSummary", "feature_cache", "finish_bars", "run_data",
           "summarize"]

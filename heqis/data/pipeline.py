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
from heqis.data.assemble import RawPieces, merge_raw, raw_bars, st_mask
from heqis.data.build import SymbolSummary, feature_cache, finish_bars, summarize
from heqis.data.cleaning import CleaningReport, clean_daily
from heqis.data.fetch import Fetcher, QueryApi
from heqis.data.request import DataRequest, DataResult, Progress, _merge_calendar, _merge_universe
from heqis.data.schema import BAR_COLUMNS, RAW_COLUMNS
from heqis.data.store import MANIFEST_VERSION, DataStore
from heqis.data.watchlist import Instrument, default_watchlist_text, load_watchlist, parse_watchlist
from heqis.errors import HeqisError
from heqis.features.fingerprint import feature_fingerprint

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


class CacheWriter:
    """Keeps the store's feature cache in step with its bars: written for every symbol whose bars were
    written, and for every symbol when the recorded fingerprint is not this code's (stale or absent)."""

    def __init__(self, store: DataStore, manifest: dict | None, wanted: bool) -> None:
        self.store = store
        self.wanted = wanted
        self.refresh_all = wanted and not store.feature_cache_current(manifest)
        self.recomputed = 0
        if not wanted:
            shutil.rmtree(store.features_dir, ignore_errors=True)   # no cache rather than a stale one

    def after(self, code: str, bars: pd.DataFrame | None, bars_written: bool) -> None:
        if not self.wanted or bars is None or bars.empty:
            return
        if bars_written or self.refresh_all or not self.store.features_path(code).exists():
            self.store.write_features(code, feature_cache(bars))
            self.recomputed += 1

    def others(self, store: DataStore, done: set[str], upgrade: bool) -> None:
        """The stored symbols this run did not touch (no longer in the watchlist, other CSV files)."""
        for code in sorted(set(store.symbols()) - done):
            bars = store.read_bars(code)
            if upgrade:
                bars = finish_bars(bars.loc[:, list(RAW_COLUMNS)])
                store.write_bars(code, bars)
            self.after(code, bars, upgrade)

    def fingerprint(self) -> dict | None:
        return feature_fingerprint() if self.wanted else None


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
            from heqis.data.bulk import run_csv, run_synthetic

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

    report = CleaningReport()
    summaries = []
    total = len(instruments)
    upgrading = bool(manifest) and manifest.get("version") != MANIFEST_VERSION   # type: ignore[union-attr]
    cache = CacheWriter(store, manifest, req.features)
    for n, inst in enumerate(instruments):
        progress(inst.ts_code, n, total)
        spans = missing_spans(coverage.get(inst.ts_code), start, end)
        old = store.read_bars_if_any(inst.ts_code)
        written = False
        if spans:
            merged = old.loc[:, list(RAW_COLUMNS)] if old is not None else None
            names_table = None
            for a, b in spans:
                pieces = fetcher.instrument(inst, a, b)
                daily, rep = clean_daily(pieces.daily, inst.ts_code, f"{req.source} {inst.ts_code}")
                report.merge(rep)
                if not daily.empty:
                    merged = merge_raw(merged, raw_bars(RawPieces(daily, pieces.adj, pieces.limit,
                                                                  pieces.basic, pieces.names)))
                names_table = pieces.names if pieces.names is not None else names_table
            if merged is not None and not merged.empty:
                if names_table is not None:
                    merged = merged.assign(is_st=st_mask(merged["trade_date"], names_table))
                old = finish_bars(merged)
                store.write_bars(inst.ts_code, old)
                written = True
            last_bar = old["trade_date"].iloc[-1].date() if old is not None and len(old) else None
            extended = extend_coverage(coverage.get(inst.ts_code), start, horizon, last_bar)
            if extended is not None:
                coverage[inst.ts_code] = extended
        elif old is not None and upgrading:          # an older store format: bars without the cache columns
            old = finish_bars(old.loc[:, list(RAW_COLUMNS)])
            store.write_bars(inst.ts_code, old)
            written = True
        cache.after(inst.ts_code, old, written)
        summaries.append(summarize(old, inst, names.get(inst.ts_code, inst.ts_code), sessions, bool(spans)))
        progress(inst.ts_code, n + 1, total)

    cache.others(store, {i.ts_code for i in instruments}, upgrading)
    written_manifest = store.write_manifest(req.source, synthetic, coverage, cal_cov,  # type: ignore[arg-type]
                                            {"watchlist": origin}, cache.fingerprint())
    shutil.rmtree(store.partial_dir, ignore_errors=True)
    if not any(s.fetched for s in summaries):
        notes.append("up to date: nothing to fetch")
    if upgrading:
        notes.append(f"upgraded the store to format {MANIFEST_VERSION} (bars without feature columns, and a "
                     "feature cache)")
    if cache.refresh_all and cache.recomputed and not upgrading and manifest:
        notes.append(f"recomputed the feature cache ({feature_fingerprint()['id']}) for {cache.recomputed} symbols")
    for s in summaries:
        if s.rows == 0:
            notes.append(f"{s.ts_code}: no bars in {start}..{end} (not listed, suspended or unknown code)")
    return DataResult(
        data_dir=str(store.root), source=req.source, synthetic=synthetic, watchlist=origin,
        start=written_manifest["start"], end=written_manifest["end"],
        content_hash=written_manifest["content_hash"], api_calls=fetcher.calls,
        retries=getattr(api, "retried", 0), seconds=round(time.monotonic() - t0, 3),
        symbols=summaries, cleaning=report, notes=notes)


__all__ = ["BAR_COLUMNS", "DataRequest", "DataResult", "SymbolSummary", "feature_cache", "finish_bars", "run_data",
           "summarize"]

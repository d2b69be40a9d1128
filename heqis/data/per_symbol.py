"""One symbol of a ``heqis data`` run over a Tushare-style source (Tushare, the bundled sample).

``fetch_symbol`` asks the source for the dates the store lacks, cleans and assembles them, merges
them with the stored rows, re-bases the adjusted prices and writes the bars and the feature cache;
the parent process — the only writer of the calendar, the universe and the manifest — records what
it returns. The sample holds its tables in memory, so its symbols run in worker processes
(``heqis.parallel``: ``--workers``, ``--cluster``); Tushare runs them one at a time in the parent,
since its per-minute quota, not the cores, sets the pace.

``StoreWriter`` writes a symbol's files without an fsync each; the manifest, the store's commit point,
is written after one ``os.sync()`` (``DataStore.write_manifest(sync=True)``), as the bulk writers do.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heqis.data.assemble import RawPieces, merge_raw, raw_bars, st_mask
from heqis.data.build import SymbolSummary, feature_cache, finish_bars, summarize
from heqis.data.cleaning import CleaningReport, clean_daily
from heqis.data.fetch import Fetcher
from heqis.data.schema import RAW_COLUMNS
from heqis.data.store import DataStore
from heqis.data.watchlist import Instrument


class StoreWriter:
    """Writes symbols' bars and keeps their feature cache in step: written for every symbol whose bars were
    written, and for every symbol when ``refresh_all`` (the recorded fingerprint is not this code's)."""

    def __init__(self, store: DataStore, wanted: bool, refresh_all: bool) -> None:
        self.store = store
        self.wanted = wanted
        self.refresh_all = wanted and refresh_all
        self.known: dict[str, str] = {}     # store-relative path → sha256 of what was written (for the manifest)
        self.recomputed = 0

    @classmethod
    def for_run(cls, store: DataStore, manifest: dict | None, wanted: bool) -> StoreWriter:
        """The writer of one run; a run without features removes the cache (no cache rather than a stale one)."""
        if not wanted:
            shutil.rmtree(store.features_dir, ignore_errors=True)
        return cls(store, wanted, not store.feature_cache_current(manifest))

    def bars(self, code: str, bars: pd.DataFrame) -> None:
        self.known[f"bars/{code}.parquet"] = self.store.write_bars(code, bars, durable=False)

    def after(self, code: str, bars: pd.DataFrame | None, bars_written: bool) -> None:
        if not self.wanted or bars is None or bars.empty:
            return
        if bars_written or self.refresh_all or not self.store.features_path(code).exists():
            self.known[f"features/{code}.parquet"] = self.store.write_features(code, feature_cache(bars), durable=False)
            self.recomputed += 1

    def merge(self, other: SymbolDone) -> None:
        """Take in what a worker wrote for one symbol."""
        self.known.update(other.known)
        self.recomputed += other.recomputed

    def others(self, done: set[str], upgrade: bool) -> None:
        """The stored symbols this run did not touch (no longer in the watchlist)."""
        for code in sorted(set(self.store.symbols()) - done):
            bars = self.store.read_bars(code)
            if upgrade:
                bars = finish_bars(bars.loc[:, list(RAW_COLUMNS)])
                self.bars(code, bars)
            self.after(code, bars, upgrade)


@dataclass(frozen=True)
class RunContext:
    """What every symbol of one run shares (sent to each worker once)."""

    root: str
    api: Any                          # the source's QueryApi
    source: str
    partial: str | None               # Tushare: where interrupted downloads keep their finished tables
    start: date
    end: date
    sessions: np.ndarray              # open sessions, datetime64[ns]
    features: bool
    refresh_all: bool
    upgrading: bool                   # the store is of an older format: rewrite bars that are not fetched


@dataclass(frozen=True)
class SymbolJob:
    inst: Instrument
    name: str
    spans: tuple[tuple[date, date], ...]    # the date ranges the store lacks


@dataclass
class SymbolDone:
    """What the parent records for one finished symbol."""

    ts_code: str
    summary: SymbolSummary
    report: CleaningReport
    last_bar: date | None
    calls: int
    known: dict[str, str] = field(default_factory=dict)
    recomputed: int = 0


_RUN: tuple[RunContext, Fetcher] | None = None


def init_run(ctx: RunContext) -> None:
    """Pool initializer (or the parent's own call): this process's context and fetcher."""
    global _RUN
    _RUN = (ctx, Fetcher(ctx.api, partial_dir=Path(ctx.partial) if ctx.partial else None))


def fetch_symbol(job: SymbolJob) -> SymbolDone:
    """Fetch what the store lacks of one symbol, write it, summarise it (``init_run`` ran first)."""
    if _RUN is None:  # pragma: no cover - a programming error, not a user's
        raise RuntimeError("fetch_symbol needs init_run first")
    ctx, fetcher = _RUN
    store = DataStore(Path(ctx.root))
    writer = StoreWriter(store, ctx.features, ctx.refresh_all)
    code = job.inst.ts_code
    calls = fetcher.calls
    report = CleaningReport()
    old = store.read_bars_if_any(code)
    written = False
    if job.spans:
        merged = old.loc[:, list(RAW_COLUMNS)] if old is not None else None
        names_table = None
        for a, b in job.spans:
            pieces = fetcher.instrument(job.inst, a, b)
            daily, rep = clean_daily(pieces.daily, code, f"{ctx.source} {code}")
            report.merge(rep)
            if not daily.empty:
                merged = merge_raw(merged, raw_bars(RawPieces(daily, pieces.adj, pieces.limit, pieces.basic,
                                                              pieces.names)))
            names_table = pieces.names if pieces.names is not None else names_table
        if merged is not None and not merged.empty:
            if names_table is not None:
                merged = merged.assign(is_st=st_mask(merged["trade_date"], names_table))
            old = finish_bars(merged)
            writer.bars(code, old)
            written = True
    elif old is not None and ctx.upgrading:          # an older store format: bars without the cache columns
        old = finish_bars(old.loc[:, list(RAW_COLUMNS)])
        writer.bars(code, old)
        written = True
    writer.after(code, old, written)
    last_bar = old["trade_date"].iloc[-1].date() if old is not None and len(old) else None
    return SymbolDone(code, summarize(old, job.inst, job.name, ctx.sessions, bool(job.spans)), report, last_bar,
                      fetcher.calls - calls, writer.known, writer.recomputed)

"""The per-symbol work of ``heqis data``: bars → store files → a summary, in a worker or in this process.

``heqis data`` for CSV folders and the synthetic panel spreads symbols over ``heqis.parallel``
(docs/architecture.md, "Scaling out"). A worker builds one symbol's stored bars, writes
``bars/<code>.parquet`` and its feature cache atomically, and hands back what the manifest needs
(coverage, the files' sha256, a summary). Only the parent writes the calendar, the universe, the
manifest and the resume journal, so two workers never write the same file.

The journal (``.partial/journal.jsonl``) gets one line per finished symbol, appended by the parent as
results arrive; a run that was interrupted (Ctrl-C, a crash, a symbol that raised) is resumed by
running the same command again: every symbol whose journal line matches this run and whose files
still have the recorded sha256 is kept, the others are built again, and the manifest is written once,
at the end, from exactly one record per symbol.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heqis.data.assemble import RawPieces, forward_adjust, raw_bars
from heqis.data.schema import FEATURE_CACHE_COLUMNS, RAW_COLUMNS, conform_bars
from heqis.data.store import DataStore
from heqis.data.watchlist import Instrument
from heqis.fileio import sha256_file


@dataclass
class SymbolSummary:
    """One symbol as stored, in numbers a user can check at a glance."""

    ts_code: str
    name: str
    kind: str
    board: str
    rows: int
    first: str | None
    last: str | None
    suspended_days: int
    limit_up_days: int
    limit_down_days: int
    one_price_limit_days: int
    st_days: int
    adj_events: int
    last_close: float | None
    fetched: bool


def summarize(bars: pd.DataFrame | None, inst: Instrument, name: str, sessions: pd.DatetimeIndex,
              fetched: bool) -> SymbolSummary:
    if bars is None or bars.empty:
        return SymbolSummary(inst.ts_code, name, inst.kind, inst.board, 0, None, None, 0, 0, 0, 0, 0, 0,
                             None, fetched)
    dates = bars["trade_date"].to_numpy()
    first, last = pd.Timestamp(dates[0]), pd.Timestamp(dates[-1])
    s = sessions.to_numpy() if isinstance(sessions, pd.DatetimeIndex) else np.asarray(sessions)
    open_days = int(np.searchsorted(s, last.to_datetime64(), side="right")
                    - np.searchsorted(s, first.to_datetime64(), side="left"))
    close = bars["close_raw"].to_numpy()
    up = bars["up_limit"].to_numpy()
    down = bars["down_limit"].to_numpy()
    at_up = np.isfinite(up) & (close >= up - 1e-6)
    at_down = np.isfinite(down) & (close <= down + 1e-6)
    flat = bars["high_raw"].to_numpy() == bars["low_raw"].to_numpy()
    adj = bars["adj_factor"].to_numpy()
    return SymbolSummary(
        ts_code=inst.ts_code, name=name, kind=inst.kind, board=inst.board, rows=len(bars),
        first=first.date().isoformat(), last=last.date().isoformat(),
        suspended_days=max(open_days - len(bars), 0),
        limit_up_days=int(at_up.sum()), limit_down_days=int(at_down.sum()),
        one_price_limit_days=int(((at_up | at_down) & flat).sum()),
        st_days=int(bars["is_st"].to_numpy().sum()), adj_events=int((np.diff(adj) != 0).sum()),
        last_close=float(close[-1]), fetched=fetched)


def finish_bars(raw: pd.DataFrame) -> pd.DataFrame:
    """Stored bars (BAR_COLUMNS) from merged raw rows: forward-adjusted with the latest factor."""
    return forward_adjust(raw)


def feature_cache(bars: pd.DataFrame) -> pd.DataFrame:
    """The feature-cache frame of one symbol: trade_date and the indicator columns (add_features)."""
    from heqis.features.frames import add_features

    return conform_bars(add_features(bars), FEATURE_CACHE_COLUMNS)


@dataclass(frozen=True)
class Context:
    """What every task of one run shares (sent to each worker once)."""

    root: str
    features: bool
    sessions: np.ndarray              # open sessions, datetime64[ns]
    panel: Any = None                 # the SyntheticPanel of a synthetic run


@dataclass(frozen=True)
class Task:
    """One symbol to build: from the synthetic panel (``number``), from cleaned CSV rows (``daily``), or
    already stored (neither: summarise it and bring its feature cache up to date)."""

    inst: Instrument
    name: str
    number: int | None = None
    daily: pd.DataFrame | None = None
    generate: bool = False            # build it from the context's synthetic panel
    features_stale: bool = False      # stored symbols: the cache must be recomputed
    origin: dict = field(default_factory=dict)   # what the journal checks on resume (e.g. the CSV's stat)


@dataclass
class Built:
    """What the parent records for one finished symbol."""

    ts_code: str
    summary: SymbolSummary
    coverage: tuple[str, str] | None
    list_date: str | None
    files: dict[str, str]             # store-relative path → sha256
    origin: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Built:
        cov = doc.get("coverage")
        return cls(doc["ts_code"], SymbolSummary(**doc["summary"]), tuple(cov) if cov else None,  # type: ignore[arg-type]
                   doc.get("list_date"), dict(doc["files"]), dict(doc.get("origin") or {}))


_CONTEXT: Context | None = None


def init_worker(ctx: Context) -> None:
    """Pool initializer: remember the run's shared context in this process."""
    global _CONTEXT
    _CONTEXT = ctx


def build_symbol(task: Task) -> Built:
    """Build, write and summarise one symbol (runs in a worker; ``init_worker`` ran there first)."""
    ctx = _CONTEXT
    if ctx is None:  # pragma: no cover - a programming error, not a user's
        raise RuntimeError("build_symbol needs init_worker first")
    store = DataStore(Path(ctx.root))
    code = task.inst.ts_code
    files: dict[str, str] = {}
    list_date: str | None = None
    fetched = True
    if task.generate:
        raw, listed = ctx.panel.build(task.inst, task.number)
        bars = finish_bars(raw)
        list_date = listed.date().isoformat()
    elif task.daily is not None:
        bars = finish_bars(raw_bars(RawPieces(task.daily)))
        list_date = pd.Timestamp(bars["trade_date"].iloc[0]).date().isoformat() if len(bars) else None
    else:
        bars = store.read_bars(code)
        fetched = False
    if fetched:
        files[f"bars/{code}.parquet"] = store.write_bars(code, bars, durable=False)
    if ctx.features and len(bars):
        path = store.features_path(code)
        if fetched or task.features_stale or not path.exists():
            files[f"features/{code}.parquet"] = store.write_features(code, feature_cache(bars), durable=False)
        else:
            files[f"features/{code}.parquet"] = sha256_file(path)
    if not fetched:
        files[f"bars/{code}.parquet"] = sha256_file(store.bars_path(code))
    cov = None
    if len(bars):
        d = bars["trade_date"].to_numpy()
        cov = (pd.Timestamp(d[0]).date().isoformat(), pd.Timestamp(d[-1]).date().isoformat())
    summary = summarize(bars, task.inst, task.name, ctx.sessions, fetched)   # type: ignore[arg-type]
    return Built(code, summary, cov, list_date, files, task.origin)


class Journal:
    """``.partial/journal.jsonl``: the run's key on the first line, then one finished symbol per line."""

    def __init__(self, store: DataStore, key: dict) -> None:
        self.path = store.partial_dir / "journal.jsonl"
        self.root = store.root
        self.key = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        self._fh = None

    def resumable(self) -> dict[str, Built]:
        """The finished symbols of an interrupted run of the same command whose files are intact."""
        if not self.path.exists():
            return {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            if not lines or json.loads(lines[0]).get("key") != self.key:
                return {}
        except json.JSONDecodeError:
            return {}
        out: dict[str, Built] = {}
        for line in lines[1:]:
            try:
                built = Built.from_json(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue          # the line being written when the run was killed
            if all((self.root / rel).exists() and sha256_file(self.root / rel) == digest
                   for rel, digest in built.files.items()):
                out[built.ts_code] = built
        return out

    def open(self, kept: dict[str, Built]) -> None:
        """Start the journal afresh with the records kept from an interrupted run."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", encoding="utf-8")
        self._fh.write(json.dumps({"key": self.key}) + "\n")
        for built in kept.values():
            self._fh.write(json.dumps(built.to_json()) + "\n")
        self._fh.flush()

    def record(self, built: Built) -> None:
        assert self._fh is not None
        self._fh.write(json.dumps(built.to_json()) + "\n")
        self._fh.flush()

    def close(self, remove: bool) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if remove:
            self.path.unlink(missing_ok=True)


__all__ = ["RAW_COLUMNS", "Built", "Context", "Journal", "SymbolSummary", "Task", "build_symbol",
           "feature_cache", "finish_bars", "init_worker", "summarize"]

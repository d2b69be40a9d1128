"""The parquet data store every later step reads (docs/architecture.md, "Data store").

::

    heqis-data/
      bars/<ts_code>.parquet      one row per day the symbol traded: raw and adjusted prices, volume,
                                  limits, turnover, ST (BAR_COLUMNS) — what research and live inputs use
      features/<ts_code>.parquet  the feature cache: the indicator columns, recomputable at any time
      calendar.parquet            trade_date, is_open (XSHG)
      universe.parquet            ts_code, name, kind, board, list_date, list_status
      manifest.json               format version, source, date range, coverage, sha256 per file, one
                                  content hash over the bars/calendar/universe files, and the feature
                                  cache's fingerprint (heqis.features.fingerprint)

The content hash covers the market data only, so recomputing the feature cache (a new feature
version) never changes a store's identity. Model inputs never come from the cache: research and the
brain compute them with ``model_inputs``; the cache is for people and notebooks, and it is kept
current — ``heqis data`` recomputes a stale one, train/backtest/export refuse one (``require_current``).
Writes are atomic (``heqis.fileio.atomic_write``) and the manifest is written last; a lock file
keeps two ``heqis data`` runs from writing the same store at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heqis.data.schema import BAR_COLUMNS, FEATURE_CACHE_COLUMNS, UNIVERSE_COLUMNS
from heqis.errors import HeqisError
from heqis.features.fingerprint import require_features, same_features
from heqis.fileio import atomic_write, sha256_file, write_json

MANIFEST_VERSION = 2


_SCHEMAS: dict[tuple, Any] = {}


def _arrow_table(frame: pd.DataFrame) -> Any:
    """``pa.Table.from_pandas(frame, preserve_index=False)`` for a frame of plain numpy columns.

    The schema, pandas metadata included, depends only on the column names and dtypes, so it is
    built once per layout and reused: building it is most of ``from_pandas``' cost on a small frame.
    """
    import pyarrow as pa

    dtypes = tuple(frame.dtypes)
    key = (tuple(frame.columns), dtypes)
    if not all(isinstance(d, np.dtype) for d in dtypes) or not isinstance(frame.index, pd.RangeIndex):
        return pa.Table.from_pandas(frame, preserve_index=False)
    schema = _SCHEMAS.get(key)
    if schema is None:
        schema = _SCHEMAS[key] = pa.Table.from_pandas(frame.iloc[:0], preserve_index=False).schema
    arrays = [pa.array(frame[c].to_numpy(), type=f.type, from_pandas=True)   # NaN → null, as from_pandas does
              for c, f in zip(frame.columns, schema, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def parquet_bytes(frame: pd.DataFrame, computed: bool = False) -> bytes:
    """``frame.to_parquet(index=False, engine="pyarrow", compression="zstd")``, byte for byte, without
    pandas' wrapper (which costs more than the encoding for a small frame).

    ``computed``: a frame of computed floats (the feature cache) is written without dictionary pages
    and column statistics — neither helps columns of distinct floats: half the encoding time, a
    smaller file. Market data keeps the first encoding, so its files (and the store's content hash)
    stay what earlier versions wrote.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    options = {"use_dictionary": False, "write_statistics": False} if computed else {}
    pq.write_table(_arrow_table(frame), sink, compression="zstd", **options)
    return sink.getvalue().to_pybytes()


def atomic_write_parquet(path: Path, frame: pd.DataFrame, durable: bool = True, computed: bool = False) -> str:
    """Write ``frame`` atomically (``computed``: see ``parquet_bytes``); returns the file's sha256 (what the
    manifest records).

    ``durable=False`` skips the fsyncs (the bulk writers' workers): the file still appears whole or
    not at all, and the parent makes everything durable with one ``os.sync()`` before the manifest,
    the store's commit point (``DataStore.write_manifest(sync=True)``).
    """
    payload = parquet_bytes(frame, computed)
    atomic_write(path, payload, durable=durable)
    return hashlib.sha256(payload).hexdigest()


class DataStore:
    """Read and write one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def bars_dir(self) -> Path:
        return self.root / "bars"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def bars_path(self, ts_code: str) -> Path:
        return self.bars_dir / f"{ts_code}.parquet"

    @property
    def features_dir(self) -> Path:
        return self.root / "features"

    def features_path(self, ts_code: str) -> Path:
        return self.features_dir / f"{ts_code}.parquet"

    @property
    def partial_dir(self) -> Path:
        """Per-symbol, per-range downloads of an unfinished run (resume)."""
        return self.root / ".partial"

    # -- locking -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise HeqisError(f"{self.root}: another heqis process is writing this data store",
                                 hint="wait for it to finish") from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- reading -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.manifest_path.exists()

    def manifest(self, current: bool = True) -> dict[str, Any]:
        """The manifest; with ``current`` an older store format is refused with the command that upgrades it."""
        if not self.manifest_path.exists():
            raise HeqisError(f"{self.root}: no data store here (manifest.json missing)",
                             hint="run: heqis data --source sample")
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise HeqisError(f"{self.manifest_path}: corrupt manifest ({exc})",
                             hint="re-run heqis data to rebuild it") from None
        if current and manifest.get("version") != MANIFEST_VERSION:
            raise HeqisError(f"{self.root}: data store written by an older heqis (store format "
                             f"{manifest.get('version')}, this heqis reads {MANIFEST_VERSION})",
                             hint=f"upgrade it in place: heqis data -s {manifest.get('source', 'sample')} "
                                  f"-d {self.root}")
        return manifest

    def market(self) -> str:
        """Whose trading rules the stored symbols follow: ``cn`` (A-shares; every source but csv), or
        ``us`` / ``none`` for a CSV store imported with ``--market`` (heqis.backtest.rules.MarketRules.for_market)."""
        return str(self.manifest(current=False).get("market", "cn"))

    def require_current(self) -> dict[str, Any]:
        """The manifest of a store research may use: current format, feature cache absent or current."""
        manifest = self.manifest()
        cache = manifest.get("features")
        if cache:
            require_features(cache.get("fingerprint"), f"the feature cache of {self.root}",
                             hint=f"recompute it: heqis data -s {manifest.get('source', 'sample')} -d {self.root}")
        return manifest

    def feature_cache_current(self, manifest: dict[str, Any] | None) -> bool:
        cache = (manifest or {}).get("features")      # format 1 recorded a list of column names here
        return isinstance(cache, dict) and same_features(cache.get("fingerprint"))

    def symbols(self) -> list[str]:
        return sorted(p.stem for p in self.bars_dir.glob("*.parquet"))

    def read_bars(self, ts_code: str) -> pd.DataFrame:
        path = self.bars_path(ts_code)
        if not path.exists():
            raise HeqisError(f"{path}: no bars for {ts_code}", hint="add it to the watchlist and run heqis data")
        return pd.read_parquet(path)

    def read_bars_if_any(self, ts_code: str) -> pd.DataFrame | None:
        path = self.bars_path(ts_code)
        return pd.read_parquet(path) if path.exists() else None

    def read_features(self, ts_code: str) -> pd.DataFrame:
        """The cached feature columns of ``ts_code`` (trade_date + indicators)."""
        path = self.features_path(ts_code)
        if not path.exists():
            raise HeqisError(f"{path}: no cached features for {ts_code}", hint="run heqis data (without --no-features)")
        return pd.read_parquet(path)

    def read_calendar(self) -> pd.DataFrame:
        path = self.root / "calendar.parquet"
        if not path.exists():
            raise HeqisError(f"{path}: no calendar", hint="run heqis data")
        return pd.read_parquet(path)

    def read_universe(self) -> pd.DataFrame:
        path = self.root / "universe.parquet"
        if not path.exists():
            return pd.DataFrame(columns=list(UNIVERSE_COLUMNS))
        return pd.read_parquet(path)

    def sessions(self) -> pd.DatetimeIndex:
        cal = self.read_calendar()
        return pd.DatetimeIndex(cal.loc[cal["is_open"], "trade_date"])

    # -- writing -------------------------------------------------------------------------------
    def write_bars(self, ts_code: str, bars: pd.DataFrame, durable: bool = True) -> str:
        """Write one symbol's bars; returns the file's sha256."""
        if list(bars.columns) != list(BAR_COLUMNS):
            raise ValueError(f"bars for {ts_code} do not follow the stored schema")
        return atomic_write_parquet(self.bars_path(ts_code), bars, durable)

    def write_features(self, ts_code: str, features: pd.DataFrame, durable: bool = True) -> str:
        """Write one symbol's feature cache; returns the file's sha256."""
        if list(features.columns) != list(FEATURE_CACHE_COLUMNS):
            raise ValueError(f"features for {ts_code} do not follow the cache schema")
        return atomic_write_parquet(self.features_path(ts_code), features, durable, computed=True)

    def write_calendar(self, cal: pd.DataFrame) -> None:
        atomic_write_parquet(self.root / "calendar.parquet", cal.reset_index(drop=True))

    def write_universe(self, uni: pd.DataFrame) -> None:
        atomic_write_parquet(self.root / "universe.parquet",
                             uni.loc[:, list(UNIVERSE_COLUMNS)].sort_values("ts_code").reset_index(drop=True))

    def write_manifest(self, source: str, synthetic: bool, coverage: dict[str, tuple[date, date]],
                       calendar_coverage: tuple[date, date] | None, extra: dict[str, Any],
                       features: dict[str, Any] | None, known: dict[str, str] | None = None,
                       sync: bool = False) -> dict[str, Any]:
        """The manifest, written last; ``features`` is the cache's fingerprint (None: no cache).

        ``known`` maps store-relative paths to the sha256 the writer got back from ``write_bars`` /
        ``write_features`` in this run (under the lock), so those files are not read again; ``sync``
        flushes every file written without fsync (``durable=False``) to disk before the manifest names it.
        """
        known = known or {}
        if sync:
            os.sync()
        files = self._hashes([*self.bars_dir.glob("*.parquet"), self.root / "calendar.parquet",
                              self.root / "universe.parquet"], known)
        content = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in files.items()).encode()).hexdigest()
        cache = {"fingerprint": features,
                 "files": self._hashes(list(self.features_dir.glob("*.parquet")), known)} if features else None
        firsts = [c[0] for c in coverage.values()]
        lasts = [c[1] for c in coverage.values()]
        manifest = {
            "version": MANIFEST_VERSION,
            "source": source,
            "synthetic": synthetic,
            "start": min(firsts).isoformat() if firsts else None,
            "end": max(lasts).isoformat() if lasts else None,
            "symbols": sorted(coverage),
            "coverage": {k: [v[0].isoformat(), v[1].isoformat()] for k, v in sorted(coverage.items())},
            "calendar_coverage": [d.isoformat() for d in calendar_coverage] if calendar_coverage else None,
            "files": files,
            "content_hash": content,
            "features": cache,
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **extra,
        }
        write_json(self.manifest_path, manifest)
        return manifest

    def _hashes(self, paths: list[Path], known: dict[str, str] | None = None) -> dict[str, str]:
        known = known or {}
        out = {}
        for p in sorted(paths):
            rel = p.relative_to(self.root).as_posix()
            if rel in known:
                out[rel] = known[rel]
            elif p.exists():
                out[rel] = sha256_file(p)
        return out

    def coverage(self) -> dict[str, tuple[date, date]]:
        if not self.exists():
            return {}
        return {k: (date.fromisoformat(v[0]), date.fromisoformat(v[1]))
                for k, v in self.manifest(current=False).get("coverage", {}).items()}

    def verify(self) -> list[str]:
        """Files whose sha256 differs from the manifest (empty when the store is intact)."""
        bad = []
        manifest = self.manifest()
        listed = {**manifest.get("files", {}), **((manifest.get("features") or {}).get("files") or {})}
        for rel, digest in listed.items():
            path = self.root / rel
            if not path.exists() or sha256_file(path) != digest:
                bad.append(rel)
        return bad

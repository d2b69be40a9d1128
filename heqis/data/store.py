"""The parquet data store every later step reads (DESIGN.md §3).

::

    heqis-data/
      bars/<ts_code>.parquet   one row per day the symbol traded
      calendar.parquet         trade_date, is_open (XSHG)
      universe.parquet         ts_code, name, kind, board, list_date, list_status
      manifest.json            source, date range, coverage, sha256 per file, one content hash

Writes are atomic (temporary file, then rename) and the manifest is written last, so a crash
leaves either the old or the new state of each file and a manifest that ``verify`` can check.
A lock file keeps two ``heqis data`` runs from writing the same store at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from heqis.data.schema import STORED_COLUMNS, UNIVERSE_COLUMNS
from heqis.errors import HeqisError
from heqis.fileio import atomic_write_bytes, sha256_file, umask_mode

MANIFEST_VERSION = 1


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, umask_mode())
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False, engine="pyarrow", compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            raise HeqisError(f"{self.root}: no data store here (manifest.json missing)",
                             hint="run: heqis data --source sample")
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise HeqisError(f"{self.manifest_path}: corrupt manifest ({exc})",
                             hint="re-run heqis data to rebuild it") from None

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
    def write_bars(self, ts_code: str, bars: pd.DataFrame) -> None:
        if list(bars.columns) != list(STORED_COLUMNS):
            raise ValueError(f"bars for {ts_code} do not follow the stored schema")
        atomic_write_parquet(self.bars_path(ts_code), bars)

    def write_calendar(self, cal: pd.DataFrame) -> None:
        atomic_write_parquet(self.root / "calendar.parquet", cal.reset_index(drop=True))

    def write_universe(self, uni: pd.DataFrame) -> None:
        atomic_write_parquet(self.root / "universe.parquet",
                             uni.loc[:, list(UNIVERSE_COLUMNS)].sort_values("ts_code").reset_index(drop=True))

    def write_manifest(self, source: str, synthetic: bool, coverage: dict[str, tuple[date, date]],
                       calendar_coverage: tuple[date, date] | None, extra: dict[str, Any]) -> dict[str, Any]:
        files = {}
        for path in sorted([*self.bars_dir.glob("*.parquet"), self.root / "calendar.parquet",
                            self.root / "universe.parquet"]):
            if path.exists():
                files[str(path.relative_to(self.root))] = sha256_file(path)
        content = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in files.items()).encode()).hexdigest()
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
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **extra,
        }
        atomic_write_bytes(self.manifest_path,
                           (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
        return manifest

    def coverage(self) -> dict[str, tuple[date, date]]:
        if not self.exists():
            return {}
        return {k: (date.fromisoformat(v[0]), date.fromisoformat(v[1]))
                for k, v in self.manifest().get("coverage", {}).items()}

    def verify(self) -> list[str]:
        """Files whose sha256 differs from the manifest (empty when the store is intact)."""
        bad = []
        for rel, digest in self.manifest().get("files", {}).items():
            path = self.root / rel
            if not path.exists() or sha256_file(path) != digest:
                bad.append(rel)
        return bad

"""Decisions persisted by the gateway: SQLite in WAL mode, one row per (symbol, bar time, model, artifact set).

The unique key makes every write idempotent (``INSERT OR IGNORE``): a replay, a re-sent request
or a duplicate reply can never store a signal twice, and decisions of a new export (another
artifact set id) are stored beside the old ones instead of being silently dropped as duplicates.
Writes are batched into one transaction per flush; a crash loses at most the unflushed rows, which
the restarted gateway asks for again (it resumes each symbol from its earliest bar without a
stored signal of its artifact set).

A database written before artifact sets were recorded (schema 1) is migrated in place on open:
its rows are kept, with artifact set ``"unknown"``.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2
UNKNOWN_ARTIFACTS = "unknown"
SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    symbol     TEXT    NOT NULL,
    bar_time   INTEGER NOT NULL,   -- ns since the epoch, the bar's trade date
    model      TEXT    NOT NULL,
    artifacts  TEXT    NOT NULL,   -- the artifact set's id (heqis.formats.artifacts.set_identity)
    seq        INTEGER NOT NULL,
    action     INTEGER NOT NULL,   -- 1 buy / stay long, -1 sell / stay flat, 0 keep
    reg        REAL    NOT NULL,   -- predicted next-day return
    p_down     REAL, p_flat REAL, p_up REAL,
    latency_us REAL,               -- gateway send → signal received, on the gateway's clock
    queue_us   REAL, pre_us REAL, inf_us REAL,
    brain      TEXT,
    stored_at  REAL    NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (symbol, bar_time, model, artifacts)
);
"""
COLUMNS = ("symbol", "bar_time", "model", "artifacts", "seq", "action", "reg", "p_down", "p_flat", "p_up",
           "latency_us", "queue_us", "pre_us", "inf_us", "brain")
OLD_COLUMNS = tuple(c for c in COLUMNS if c != "artifacts")


class SignalStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.migrated = self._migrate()
        self.db.execute(SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.pending: list[tuple[Any, ...]] = []
        self.inserted = 0
        self.duplicates = 0

    def _migrate(self) -> int:
        """Schema 1 (no artifacts column) → 2, keeping every row; returns how many rows were moved."""
        columns = [r[1] for r in self.db.execute("PRAGMA table_info(signals)")]
        if not columns or "artifacts" in columns:
            return 0
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ALTER TABLE signals RENAME TO signals_v1")
            self.db.execute(SCHEMA)
            old = ", ".join(c for c in OLD_COLUMNS if c in columns)
            self.db.execute(f"INSERT INTO signals ({old}, artifacts, stored_at) SELECT {old}, ?, stored_at "
                            f"FROM signals_v1", (UNKNOWN_ARTIFACTS,))
            moved = self.db.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
            self.db.execute("DROP TABLE signals_v1")
        log.info("%s: migrated %d stored signals to schema %d (artifact set recorded as %r)", self.path, moved,
                 SCHEMA_VERSION, UNKNOWN_ARTIFACTS)
        return int(moved)

    def add(self, row: dict[str, Any]) -> None:
        self.pending.append(tuple(row.get(c) for c in COLUMNS))

    def flush(self) -> int:
        if not self.pending:
            return 0
        before = self.db.total_changes
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT OR IGNORE INTO signals ({', '.join(COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(COLUMNS))})", self.pending)
        written = self.db.total_changes - before
        self.duplicates += len(self.pending) - written
        self.inserted += written
        self.pending.clear()
        return written

    def done(self, symbols: Iterable[str] | None = None, artifacts: str | None = None) -> set[tuple[str, int]]:
        """(symbol, bar_time) pairs that already have a signal (of the artifact set ``artifacts``, or of any)."""
        sql, args = "SELECT DISTINCT symbol, bar_time FROM signals", ()
        if artifacts is not None:
            sql, args = sql + " WHERE artifacts = ?", (artifacts,)
        rows = self.db.execute(sql, args).fetchall()
        wanted = set(symbols) if symbols is not None else None
        return {(s, t) for s, t in rows if wanted is None or s in wanted}

    def count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM signals").fetchone()[0])

    def rows(self, symbol: str | None = None) -> list[tuple[Any, ...]]:
        sql = "SELECT symbol, bar_time, model, action, reg FROM signals"
        args: tuple[Any, ...] = ()
        if symbol:
            sql += " WHERE symbol = ?"
            args = (symbol,)
        return self.db.execute(sql + " ORDER BY rowid", args).fetchall()

    def latest(self, limit: int = 40, symbol: str | None = None) -> list[dict[str, Any]]:
        """The ``limit`` most recent decisions (by bar time, then by when they were stored), newest first."""
        sql = (f"SELECT {', '.join(COLUMNS)} FROM signals" + (" WHERE symbol = ?" if symbol else "") +
               " ORDER BY bar_time DESC, rowid DESC LIMIT ?")
        args: tuple[Any, ...] = (symbol, int(limit)) if symbol else (int(limit),)
        return [dict(zip(COLUMNS, r, strict=True)) for r in self.db.execute(sql, args).fetchall()]

    def close(self) -> None:
        self.flush()
        self.db.close()

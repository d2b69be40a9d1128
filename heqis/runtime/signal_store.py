"""Decisions persisted by the gateway: SQLite in WAL mode, one row per (symbol, bar time, model, artifact set).

The unique key makes every write idempotent (``INSERT OR IGNORE``): a replay, a re-sent request
or a duplicate reply can never store a signal twice, and decisions of a new export (another
artifact set id) are stored beside the old ones instead of being silently dropped as duplicates.
A bar that no brain answered validly within its allowed attempts is written to ``failures`` with
the reason of its last attempt (it is retried when the gateway starts again: only ``signals`` count
as done). Writes are batched into one transaction per flush; a crash loses at most the unflushed rows, which
the restarted gateway asks for again (it resumes each symbol from its earliest bar without a
stored signal of its artifact set).

The gateway's watchdog (heqis.runtime.watchdog) writes every bar it flags to ``flags`` (its reasons,
the model's score, and what the policy did: ``warn`` sent it on, ``hold`` kept it from the brains), and
a signal answered for a flagged bar carries the reasons in ``suspect``.

A database written before artifact sets were recorded (schema 1) is migrated in place on open:
its rows are kept, with artifact set ``"unknown"``; one of schema 2 gets the ``suspect`` column (NULL).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SCHEMA_VERSION = 3
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
    suspect    TEXT,               -- the watchdog's reasons for this bar, comma-joined (NULL: not flagged)
    PRIMARY KEY (symbol, bar_time, model, artifacts)
);
"""
FLAGS = """
CREATE TABLE IF NOT EXISTS flags (
    symbol     TEXT    NOT NULL,
    bar_time   INTEGER NOT NULL,
    reasons    TEXT    NOT NULL,   -- comma-joined (heqis.runtime.watchdog.REASONS)
    score      REAL,               -- the watchdog model's score (NULL: no model, or too few bars)
    action     TEXT    NOT NULL,   -- warn (sent on, marked) or hold (not sent)
    stored_at  REAL    NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (symbol, bar_time)
);
"""
FLAG_COLUMNS = ("symbol", "bar_time", "reasons", "score", "action")
FAILURES = """
CREATE TABLE IF NOT EXISTS failures (
    symbol     TEXT    NOT NULL,
    bar_time   INTEGER NOT NULL,
    artifacts  TEXT    NOT NULL,
    model      TEXT,
    reason     TEXT    NOT NULL,   -- why the last attempt failed (brain_error: ..., deadline, bad_payload, ...)
    attempts   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    stored_at  REAL    NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (symbol, bar_time, artifacts)
);
"""
FAILURE_COLUMNS = ("symbol", "bar_time", "artifacts", "model", "reason", "attempts", "seq")
COLUMNS = ("symbol", "bar_time", "model", "artifacts", "seq", "action", "reg", "p_down", "p_flat", "p_up",
           "latency_us", "queue_us", "pre_us", "inf_us", "brain", "suspect")
OLD_COLUMNS = tuple(c for c in COLUMNS if c not in ("artifacts", "suspect"))


class SignalStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.migrated = self._migrate()
        self.db.execute(SCHEMA)
        self.db.execute(FAILURES)
        self.db.execute(FLAGS)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.pending: list[tuple[Any, ...]] = []
        self.pending_failures: list[tuple[Any, ...]] = []
        self.pending_flags: list[tuple[Any, ...]] = []
        self.failed = 0
        self.inserted = 0
        self.duplicates = 0

    def _migrate(self) -> int:
        """Schema 1 (no artifacts column) → 3, keeping every row; returns how many rows were moved.
        Schema 2 → 3 adds the ``suspect`` column (NULL for the rows stored before the watchdog)."""
        columns = [r[1] for r in self.db.execute("PRAGMA table_info(signals)")]
        if columns and "artifacts" in columns and "suspect" not in columns:
            self.db.execute("ALTER TABLE signals ADD COLUMN suspect TEXT")
            return 0
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

    def add_failure(self, row: dict[str, Any]) -> None:
        """A bar no brain answered validly in its allowed attempts (a later failure replaces the reason)."""
        self.pending_failures.append(tuple(row.get(c) for c in FAILURE_COLUMNS))

    def add_flag(self, row: dict[str, Any]) -> None:
        """A bar the watchdog flagged (a later flag of the same bar replaces it)."""
        self.pending_flags.append(tuple(row.get(c) for c in FLAG_COLUMNS))

    def flush(self) -> int:
        if not self.pending and not self.pending_failures and not self.pending_flags:
            return 0
        before = self.db.total_changes
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(f"INSERT OR IGNORE INTO signals ({', '.join(COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(COLUMNS))})", self.pending)
            written = self.db.total_changes - before
            self.db.executemany(f"INSERT OR REPLACE INTO failures ({', '.join(FAILURE_COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(FAILURE_COLUMNS))})", self.pending_failures)
            self.db.executemany(f"INSERT OR REPLACE INTO flags ({', '.join(FLAG_COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(FLAG_COLUMNS))})", self.pending_flags)
        self.duplicates += len(self.pending) - written
        self.inserted += written
        self.failed += len(self.pending_failures)
        self.pending.clear()
        self.pending_failures.clear()
        self.pending_flags.clear()
        return written

    def failures(self) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(FAILURE_COLUMNS)} FROM failures ORDER BY symbol, bar_time"
        return [dict(zip(FAILURE_COLUMNS, r, strict=True)) for r in self.db.execute(sql).fetchall()]

    def flags(self) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(FLAG_COLUMNS)} FROM flags ORDER BY symbol, bar_time"
        return [dict(zip(FLAG_COLUMNS, r, strict=True)) for r in self.db.execute(sql).fetchall()]

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

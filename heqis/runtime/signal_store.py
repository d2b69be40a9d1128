"""Decisions persisted by the gateway: SQLite in WAL mode, one row per (symbol, bar time, model).

The unique key makes every write idempotent (``INSERT OR IGNORE``): a replay, a re-sent request
or a duplicate reply can never store a signal twice. Writes are batched into one transaction per
flush; a crash loses at most the unflushed rows, which the restarted gateway asks for again
(it resumes each symbol from its earliest bar without a stored signal).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    symbol     TEXT    NOT NULL,
    bar_time   INTEGER NOT NULL,   -- ns since the epoch, the bar's trade date
    model      TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    action     INTEGER NOT NULL,   -- 1 buy / stay long, -1 sell / stay flat, 0 keep
    reg        REAL    NOT NULL,   -- predicted next-day return
    p_down     REAL, p_flat REAL, p_up REAL,
    latency_us REAL,               -- gateway send → signal received, on the gateway's clock
    queue_us   REAL, pre_us REAL, inf_us REAL,
    brain      TEXT,
    stored_at  REAL    NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (symbol, bar_time, model)
);
"""
COLUMNS = ("symbol", "bar_time", "model", "seq", "action", "reg", "p_down", "p_flat", "p_up", "latency_us",
           "queue_us", "pre_us", "inf_us", "brain")


class SignalStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self.pending: list[tuple[Any, ...]] = []
        self.inserted = 0
        self.duplicates = 0

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

    def done(self, symbols: Iterable[str] | None = None) -> set[tuple[str, int]]:
        """(symbol, bar_time) pairs that already have a signal (any model)."""
        rows = self.db.execute("SELECT DISTINCT symbol, bar_time FROM signals").fetchall()
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

    def close(self) -> None:
        self.flush()
        self.db.close()

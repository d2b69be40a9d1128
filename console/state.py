"""What the console shows, as plain data: fed by telemetry documents, read by the widgets.

Kept free of Textual so it is tested on its own and the app only draws it. ``ingest`` takes the
gateway's PUB documents (topics ``telemetry``, ``signal``, ``alert``) and keeps bounded histories;
``merge_signals`` and ``merge_bars`` take what the gateway already held when the console connected
(its SQLite signal store, its per-symbol bar history), so a console started after a replay ended,
or a second ``heqis demo`` with nothing new to replay, is not empty. Every mutation happens on the
UI thread (the workers hand their results over with ``call_from_thread``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

STALE_S = 3.0
LATENCY_WINDOW_S = 60.0          # what the latency sparkline spans (its label says so)
MAX_SIGNALS = 200
MAX_CANDLES = 240                # per symbol: more than the widest K-line draws
PROBLEM_ALERTS = frozenset({"brain_dead", "brain_silent", "reset_failed", "source_error"})
GOOD_ALERTS = frozenset({"brain_back"})

SignalKey = tuple[str, int, str]


def signal_key(doc: dict[str, Any]) -> SignalKey:
    """What makes a decision unique: the same bar of the same symbol by the same model.

    A signal reaches the console twice when it is both in the gateway's store (asked for on
    connect) and on the live PUB stream; this key is how the second copy is recognised."""
    return str(doc.get("symbol", "")), int(doc.get("bar_time") or 0), str(doc.get("model", ""))


def day(ns: int) -> str:
    """A bar time (ns since the epoch, UTC) as YYYY-MM-DD: bars are daily, their date is UTC."""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d")


@dataclass
class Candle:
    bar_time: int
    open: float
    high: float
    low: float
    close: float
    action: int | None = None    # the signal decided at this bar's close


@dataclass
class ConsoleState:
    source: str = ""
    telemetry: dict[str, Any] = field(default_factory=dict)
    latency: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=1200))  # (time s, p50 µs)
    parts: dict[str, deque[float]] = field(default_factory=lambda: {k: deque(maxlen=240) for k in
                                                                    ("queue_us", "pre_us", "inf_us")})
    signals: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_SIGNALS))
    candles: dict[str, deque[Candle]] = field(default_factory=dict)
    served: list[str] = field(default_factory=list)   # every symbol the gateway serves (its `bars` reply)
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    symbol: str | None = None
    last_update: float = 0.0
    received: int = 0
    paused: bool = False
    stored_signals: int = 0      # how many signals came from the gateway's store (not the live stream)
    version: int = 0             # bumped on every change: the app redraws only when it moved

    # -- live documents -------------------------------------------------------------------------
    def ingest(self, topic: str, doc: dict[str, Any], now: float | None = None) -> None:
        self.last_update = time.monotonic() if now is None else now
        self.received += 1
        self.version += 1
        if topic == "telemetry":
            self.telemetry = doc
            lat = doc.get("latency", {})
            if lat.get("p50_us") is not None:
                at = doc.get("time")
                self.latency.append((float(at) if isinstance(at, (int, float)) else self.last_update,
                                     float(lat["p50_us"])))
            for k, v in (lat.get("parts_p50_us") or {}).items():
                if k in self.parts:
                    self.parts[k].append(float(v))
            counters = (doc.get("nodes") or [{}])[0].get("counters", {})
            self.paused = bool(counters.get("paused", self.paused))
            seen = {(a.get("time"), a.get("text")) for a in self.alerts}
            for alert in doc.get("alerts", []):
                if (alert.get("time"), alert.get("text")) not in seen:
                    self.alerts.append(alert)
        elif topic == "signal":
            if signal_key(doc) not in {signal_key(s) for s in self.signals}:
                self.signals.appendleft(doc)
            sym = doc.get("symbol")
            if sym and doc.get("ohlc"):
                o, h, lo, c = doc["ohlc"]
                series = self.candles.setdefault(sym, deque(maxlen=MAX_CANDLES))
                if not series or series[-1].bar_time < doc["bar_time"]:
                    series.append(Candle(doc["bar_time"], o, h, lo, c, doc.get("action")))
                else:
                    self._mark(sym, doc["bar_time"], doc.get("action"))
            elif sym:
                self._mark(sym, doc.get("bar_time", 0), doc.get("action"))
            if self.symbol is None and sym:
                self.symbol = sym
        elif topic == "alert" and (not self.alerts or self.alerts[-1].get("text") != doc.get("text")):
            self.alerts.append(doc)

    # -- what the gateway already held ----------------------------------------------------------
    def merge_signals(self, rows: Iterable[dict[str, Any]]) -> int:
        """Add stored signal rows (any order) to the live ones, skipping those already here.

        The list stays newest first by bar time (live ones first among equals); returns how many
        were new. Stored rows carry no ``ohlc``: their candles come from ``merge_bars``, but their
        actions mark those candles (▲ / ▼)."""
        keys = {signal_key(s) for s in self.signals}
        new = []
        for row in rows:
            k = signal_key(row)
            if k not in keys and row.get("symbol") and row.get("bar_time"):
                keys.add(k)
                new.append(row)
        if not new:
            return 0
        merged = sorted([*self.signals, *new], key=lambda s: int(s.get("bar_time") or 0), reverse=True)
        self.signals = deque(merged[:MAX_SIGNALS], maxlen=MAX_SIGNALS)
        for row in new:
            self._mark(row["symbol"], int(row["bar_time"]), row.get("action"))
        if self.symbol is None and self.signals:
            self.symbol = self.signals[0]["symbol"]
        self.stored_signals += len(new)
        self.version += 1
        return len(new)

    def merge_bars(self, symbol: str, bars: Iterable[Iterable[float]], symbols: Iterable[str] = ()) -> int:
        """Take the gateway's recent raw bars ``[bar_time_ns, open, high, low, close]`` of ``symbol``.

        They are merged by bar time with the candles the live signals brought (a live candle of the
        same bar wins: it is the one the brain decided on), and marked with the known signals'
        actions. ``symbols`` (every symbol the gateway serves) feeds the symbol chooser."""
        served = sorted(set(self.served) | {str(s) for s in symbols})
        changed = served != self.served
        self.served = served
        by_time = {c.bar_time: c for c in self.candles.get(symbol, ())}
        actions = self.actions(symbol)
        added = 0
        for bar in bars:
            t, o, h, lo, c = bar
            t = int(t)
            if t not in by_time:
                by_time[t] = Candle(t, float(o), float(h), float(lo), float(c), actions.get(t))
                added += 1
        if added:
            self.candles[symbol] = deque(sorted(by_time.values(), key=lambda c: c.bar_time)[-MAX_CANDLES:],
                                         maxlen=MAX_CANDLES)
        if self.symbol is None and (added or symbol in self.candles):
            self.symbol = symbol
        if added or changed:
            self.version += 1
        return added

    def actions(self, symbol: str) -> dict[int, int]:
        """bar time → the (non-zero) action the known signals took on ``symbol`` at that bar."""
        out: dict[int, int] = {}
        for s in reversed(self.signals):               # oldest first: the newest decision wins
            if s.get("symbol") == symbol and s.get("action"):
                out[int(s["bar_time"])] = int(s["action"])
        return out

    def _mark(self, symbol: str, bar_time: int, action: Any) -> None:
        if not action:
            return
        for candle in reversed(self.candles.get(symbol, ())):
            if candle.bar_time == bar_time:
                candle.action = int(action)
                return
            if candle.bar_time < bar_time:
                return

    # -- reading --------------------------------------------------------------------------------
    def stale(self, now: float | None = None) -> bool:
        return not self.last_update or (time.monotonic() if now is None else now) - self.last_update > STALE_S

    def latency_window(self, seconds: float = LATENCY_WINDOW_S) -> list[float]:
        """The p50 latencies (µs) of the last ``seconds`` of telemetry, oldest first."""
        if not self.latency:
            return []
        newest = self.latency[-1][0]
        return [v for t, v in self.latency if t >= newest - seconds]

    @property
    def latency_p50(self) -> list[float]:
        return [v for _, v in self.latency]

    @property
    def source_info(self) -> dict[str, Any]:
        """The telemetry's ``source`` block (kinds, done, live, last_bar_time, counters), or {}."""
        info = self.telemetry.get("source")
        return info if isinstance(info, dict) else {}

    @property
    def finished(self) -> str | None:
        """"replay finished at YYYY-MM-DD" once the gateway's source is exhausted, else None."""
        info = self.source_info
        if not (info.get("done") or self.telemetry.get("source_done")):
            return None
        last = info.get("last_bar_time")
        word = "replay" if not info.get("kinds") or "replay" in info["kinds"] else "source"
        return f"{word} finished at {day(int(last))}" if isinstance(last, (int, float)) else f"{word} finished"

    @property
    def watchdog(self) -> dict[str, Any] | None:
        """The telemetry's ``watchdog`` block (policy, model, counts, ``last`` flags), or None when the
        gateway does not report one (an older gateway)."""
        wd = self.telemetry.get("watchdog")
        return wd if isinstance(wd, dict) else None

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.telemetry.get("nodes", []))

    @property
    def brains(self) -> list[str]:
        return [n["name"] for n in self.nodes if n.get("role") == "brain"]

    @property
    def symbols(self) -> list[str]:
        return sorted(set(self.candles) | set(self.served))

    def next_symbol(self, step: int = 1) -> str | None:
        syms = self.symbols
        if not syms:
            return None
        i = syms.index(self.symbol) if self.symbol in syms else -1
        self.symbol = syms[(i + step) % len(syms)]
        self.version += 1
        return self.symbol

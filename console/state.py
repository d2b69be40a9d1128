"""What the console shows, as plain data: fed by telemetry documents, read by the widgets.

Kept free of Textual so it is tested on its own and the app only draws it. ``ingest`` takes the
gateway's PUB documents (topics ``telemetry``, ``signal``, ``alert``) and keeps bounded histories.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

STALE_S = 3.0


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
    latency_p50: deque[float] = field(default_factory=lambda: deque(maxlen=240))
    parts: dict[str, deque[float]] = field(default_factory=lambda: {k: deque(maxlen=240) for k in
                                                                    ("queue_us", "pre_us", "inf_us")})
    signals: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    candles: dict[str, deque[Candle]] = field(default_factory=dict)
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    symbol: str | None = None
    last_update: float = 0.0
    received: int = 0
    paused: bool = False
    version: int = 0             # bumped on every change: the app redraws only when it moved

    def ingest(self, topic: str, doc: dict[str, Any], now: float | None = None) -> None:
        self.last_update = time.monotonic() if now is None else now
        self.received += 1
        self.version += 1
        if topic == "telemetry":
            self.telemetry = doc
            lat = doc.get("latency", {})
            if lat.get("p50_us") is not None:
                self.latency_p50.append(float(lat["p50_us"]))
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
            self.signals.appendleft(doc)
            sym = doc.get("symbol")
            if sym and doc.get("ohlc"):
                o, h, lo, c = doc["ohlc"]
                series = self.candles.setdefault(sym, deque(maxlen=120))
                if not series or series[-1].bar_time < doc["bar_time"]:
                    series.append(Candle(doc["bar_time"], o, h, lo, c, doc.get("action")))
                if self.symbol is None:
                    self.symbol = sym
        elif topic == "alert" and (not self.alerts or self.alerts[-1].get("text") != doc.get("text")):
            self.alerts.append(doc)

    def stale(self, now: float | None = None) -> bool:
        return not self.last_update or (time.monotonic() if now is None else now) - self.last_update > STALE_S

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return list(self.telemetry.get("nodes", []))

    @property
    def brains(self) -> list[str]:
        return [n["name"] for n in self.nodes if n.get("role") == "brain"]

    @property
    def symbols(self) -> list[str]:
        return sorted(self.candles)

    def next_symbol(self, step: int = 1) -> str | None:
        syms = self.symbols
        if not syms:
            return None
        i = syms.index(self.symbol) if self.symbol in syms else -1
        self.symbol = syms[(i + step) % len(syms)]
        self.version += 1
        return self.symbol

"""Tushare polling: new trading days of the watchlist, normalised into the store's bar schema.

``heqis data`` builds a stored bar from four Tushare tables: the day's ``daily`` row (raw prices,
pre_close, volume, amount), its ``adj_factor`` (``fund_adj`` for funds), its ``daily_basic``
turnover and its ``stk_limit`` limits. This source asks for the same tables for each new trading
day, so the window a brain receives holds what research would hold for that day: prices
forward-adjusted with the latest factor (a new factor re-bases the history, as in the store),
real turnover, the same cleaning rules (docs/architecture.md, "One code path"). A table that has
not been published yet for a day (Tushare fills ``adj_factor`` and ``daily_basic`` after
``daily``) keeps that symbol's bar waiting; after ``max_wait_polls`` polls the bar goes out with the
last factor and an estimated turnover, counted in ``counters``.

Needs the ``tushare`` client (and so pandas: ``pip install 'heqis[research]'`` or ``heqis[tushare]``);
the replay and Modbus sources do not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np

from heqis.data.boards import ADJ_API, DAILY_API, classify
from heqis.runtime.bars import H, history_row
from heqis.runtime.replay_pack import Arrays
from heqis.runtime.sources.history import Bar
from heqis.runtime.sources.polled import PolledSource

CHINA = timezone(timedelta(hours=8))   # exchange time; China has no daylight saving time
DAILY_FIELDS = "ts_code,trade_date,open,high,low,close,pre_close,vol,amount"


def exchange_today() -> date:
    return datetime.now(CHINA).date()


def ymd(d: date) -> str:
    return d.strftime("%Y%m%d")


def day_ns(text: str) -> int:
    return int(np.datetime64(f"{text[:4]}-{text[4:6]}-{text[6:8]}", "ns").astype(np.int64))


class TushareSource(PolledSource):
    """Polls Tushare every ``interval`` seconds for the trading days after each symbol's last bar."""

    kind = "tushare"

    def __init__(self, api: Any, seed: Arrays, symbols: list[str], history: int, interval: float = 60.0,
                 today: Callable[[], date] = exchange_today, max_wait_polls: int = 30,
                 catch_up_days: int = 31) -> None:
        super().__init__(symbols, history, interval, seed)
        self.api = api
        self.today = today
        self.kinds = {s: classify(s)[0] for s in symbols}
        self.max_wait_polls = max_wait_polls
        self.catch_up_days = catch_up_days
        self.waiting: dict[tuple[str, int], int] = {}       # (symbol, day) → polls it has waited
        self.side: dict[tuple[str, str], dict[str, Any]] = {}   # (api, day) → ts_code → value or row
        self.ask_again: set[tuple[str, str]] = set()            # side tables incomplete at the last poll

    def poll(self, room: int) -> list[Bar]:
        if not self.due():
            return []
        today = self.today()
        for key in self.ask_again:
            self.side.pop(key, None)
        self.ask_again.clear()
        out: list[Bar] = []
        for kind in ("stock", "index", "fund"):
            codes = [s for s in self.symbols if self.kinds[s] == kind]
            if codes:
                out += self._poll_kind(kind, codes, today)
        return out

    def _poll_kind(self, kind: str, codes: list[str], today: date) -> list[Bar]:
        lasts = [self.hist.last_time(s) for s in codes]
        known = [t for t in lasts if t >= 0]
        first = (np.datetime64(min(known), "ns").astype("datetime64[D]").astype(date) + timedelta(days=1)) \
            if known else today
        first = max(first, today - timedelta(days=self.catch_up_days))
        if first > today:
            return []
        daily = self.api.query(DAILY_API[kind], fields=DAILY_FIELDS, ts_code=",".join(codes),
                               start_date=ymd(first), end_date=ymd(today))
        by_symbol: dict[str, list[dict[str, Any]]] = {}
        for rec in daily.to_dict("records"):
            if rec.get("ts_code") in self.kinds:
                by_symbol.setdefault(rec["ts_code"], []).append(rec)
        out = []
        for sym in codes:
            for rec in sorted(by_symbol.get(sym, []), key=lambda r: str(r["trade_date"])):
                t = day_ns(str(rec["trade_date"]))
                if t <= self.hist.last_time(sym):
                    continue
                row = self._row(kind, sym, rec)
                if row is None:          # a side table is not published for that day yet: wait, in order
                    break
                bar = self.hist.append(sym, row, t)
                self.waiting.pop((sym, t), None)
                if bar is not None:
                    out.append(bar)
                    self.emitted(t)
        return out

    def _row(self, kind: str, sym: str, rec: dict[str, Any]) -> np.ndarray | None:
        day = str(rec["trade_date"])
        adj = self._side(ADJ_API[kind], day, "adj_factor").get(sym) if kind in ADJ_API else 1.0
        turnover = self._side("daily_basic", day, "turnover_rate").get(sym) if kind == "stock" else np.nan
        limits = self._side("stk_limit", day, "up_limit,down_limit", whole=True).get(sym, {}) if kind != "index" \
            else {}
        missing = adj is None or turnover is None
        if missing:
            key = (sym, day_ns(day))
            self.waiting[key] = self.waiting.get(key, 0) + 1
            self.ask_again |= {(ADJ_API.get(kind, ""), day), ("daily_basic", day)}
            if self.waiting[key] < self.max_wait_polls:
                return None
            self.hist.counters["gave up waiting for adj_factor/daily_basic"] += 1
        last = self.hist.recent(sym, 1)[1]
        is_st = float(last[0][H["is_st"]]) if len(last) else 0.0   # ST status is not polled: kept from the history
        return history_row(_num(rec.get("open")), _num(rec.get("high")), _num(rec.get("low")), _num(rec.get("close")),
                           _num(rec.get("vol")), turnover=_num(turnover), adj_factor=_num(adj),
                           pre_close_raw=_num(rec.get("pre_close")), amount=_num(rec.get("amount")),
                           up_limit=_num(limits.get("up_limit")), down_limit=_num(limits.get("down_limit")),
                           is_st=is_st)

    def _side(self, api: str, day: str, fields: str, whole: bool = False) -> dict[str, Any]:
        """ts_code → value (or the whole row) of a side table on ``day``: one call per table and day."""
        key = (api, day)
        if key not in self.side:
            frame = self.api.query(api, fields=f"ts_code,trade_date,{fields}", trade_date=day)
            names = fields.split(",")
            self.side[key] = {r["ts_code"]: (r if whole else r.get(names[0])) for r in frame.to_dict("records")
                              if r.get("ts_code") in self.kinds}
            if len(self.side) > 64:                      # keep the last few days only
                self.side.pop(next(iter(self.side)))
        return self.side[key]


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out

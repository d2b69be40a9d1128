"""Fetching an instrument's Tushare tables over a date span: paging, and resume from partial files.

Tushare answers newest-first and caps the rows of one call (``daily``: 6000), so a span is paged
backwards by date until a reply comes back shorter than the cap. Each (table, span) that completes
is saved under ``<store>/.partial/<ts_code>/`` before the next starts, so an interrupted download
picks up where it stopped; the folder goes away once the symbol is in the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

from heqis.data.assemble import RawPieces
from heqis.data.boards import ADJ_API, DAILY_API
from heqis.data.sources.tables import ROW_CAPS
from heqis.data.store import atomic_write_parquet
from heqis.data.watchlist import Instrument


class QueryApi(Protocol):
    """Anything that answers Tushare Pro queries (the real client wrapper, or a TableApi)."""

    def query(self, api_name: str, fields: str = "", **params: object) -> pd.DataFrame: ...


@runtime_checkable
class HeldTables(Protocol):
    """A source that holds each instrument's tables itself (the sample) and hands them over whole, oldest
    first, as the paged queries would return them: no queries, no paging, no partial files."""

    def pieces(self, inst: Instrument, start: date, end: date) -> tuple[RawPieces, int]:
        """(the tables of ``inst`` in [start, end], how many tables that is)."""
        ...


DAILY_FIELDS = "ts_code,trade_date,open,high,low,close,pre_close,change,pct_chg,vol,amount"


def ymd(d: date) -> str:
    return d.strftime("%Y%m%d")


class Fetcher:
    """Fetches one instrument's tables for date spans, paging and caching as it goes."""

    def __init__(self, api: QueryApi, partial_dir: Path | None = None,
                 row_caps: dict[str, int] | None = None,
                 on_call: Callable[[str], None] | None = None) -> None:
        self.api = api
        self.partial_dir = partial_dir
        self.row_caps = row_caps or ROW_CAPS
        self.on_call = on_call or (lambda api_name: None)
        self.calls = 0

    def _query(self, api_name: str, fields: str = "", **params: object) -> pd.DataFrame:
        self.calls += 1
        self.on_call(api_name)
        return self.api.query(api_name, fields=fields, **params)

    def _cached(self, code: str, name: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        if self.partial_dir is None:
            return compute()
        path = self.partial_dir / code / f"{name}.parquet"
        if path.exists():
            return pd.read_parquet(path)
        frame = compute()
        atomic_write_parquet(path, frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object}))
        return frame

    def paged(self, api_name: str, start: date, end: date, fields: str = "", **params: object) -> pd.DataFrame:
        """All rows of ``api_name`` in [start, end], paging backwards by date past the row cap."""
        cap = self.row_caps.get(api_name, 10000)
        parts: list[pd.DataFrame] = []
        last = pd.DataFrame()
        hi = end
        while hi >= start:
            part = last = self._query(api_name, fields=fields, start_date=ymd(start), end_date=ymd(hi),
                                      **params)
            if part.empty:
                break
            parts.append(part)
            if len(part) < cap:
                break
            key = "cal_date" if "cal_date" in part else "trade_date"
            oldest = pd.to_datetime(part[key].astype(str), format="%Y%m%d").min().date()
            hi = oldest - timedelta(days=1)
        if not parts:
            return last  # no rows, but the columns of the reply (a legitimately empty table)
        out = pd.concat(parts, ignore_index=True)
        key = "cal_date" if "cal_date" in out else "trade_date"
        return out.drop_duplicates().sort_values(key, kind="stable").reset_index(drop=True)

    def instrument(self, inst: Instrument, start: date, end: date) -> RawPieces:
        """Every table the store needs for ``inst`` in [start, end]."""
        if isinstance(self.api, HeldTables):
            pieces, tables = self.api.pieces(inst, start, end)
            self.calls += tables
            return pieces
        code = inst.ts_code
        span = f"{ymd(start)}_{ymd(end)}"

        def table(api_name: str, fields: str = "") -> pd.DataFrame:
            return self._cached(code, f"{api_name}_{span}",
                                lambda: self.paged(api_name, start, end, fields=fields, ts_code=code))

        daily = table(DAILY_API[inst.kind], DAILY_FIELDS)
        adj = table(ADJ_API[inst.kind], "ts_code,trade_date,adj_factor") if inst.kind in ADJ_API else None
        limit = table("stk_limit", "ts_code,trade_date,up_limit,down_limit") if inst.kind != "index" else None
        basic = table("daily_basic", "ts_code,trade_date,turnover_rate") if inst.kind == "stock" else None
        names = None
        if inst.kind == "stock":
            names = self._cached(code, f"namechange_{span}", lambda: self._query(
                "namechange", fields="ts_code,name,start_date,end_date", ts_code=code))
        return RawPieces(daily=daily, adj=adj, limit=limit, basic=basic, names=names)

    def calendar(self, start: date, end: date) -> pd.DataFrame:
        """``trade_cal`` of SSE in [start, end] as (trade_date, is_open)."""
        cal = self.paged("trade_cal", start, end, fields="exchange,cal_date,is_open", exchange="SSE")
        if cal.empty:
            return pd.DataFrame({"trade_date": pd.Series(dtype="datetime64[ns]"), "is_open": pd.Series(dtype=bool)})
        return pd.DataFrame({
            "trade_date": pd.to_datetime(cal["cal_date"].astype(str), format="%Y%m%d").astype("datetime64[ns]"),
            "is_open": cal["is_open"].astype(str).str.strip().eq("1"),
        })

    def universe(self, instruments: list[Instrument]) -> pd.DataFrame:
        """Names, boards, listing dates and status (delisted names kept: no survivorship bias)."""
        rows = []
        kinds = {i.kind for i in instruments}
        wanted = {i.ts_code for i in instruments}
        found: dict[str, dict] = {}
        if "stock" in kinds:
            for status in ("L", "D", "P"):
                df = self._query("stock_basic", fields="ts_code,name,list_date,list_status",
                                 list_status=status)
                for rec in df.to_dict("records"):
                    if rec["ts_code"] in wanted:
                        found[rec["ts_code"]] = {**rec, "list_status": rec.get("list_status") or status}
        if "index" in kinds:
            codes = ",".join(i.ts_code for i in instruments if i.kind == "index")
            for rec in self._query("index_basic", fields="ts_code,name,list_date", ts_code=codes).to_dict("records"):
                found[rec["ts_code"]] = {**rec, "list_status": "L"}
        if "fund" in kinds:
            for rec in self._query("fund_basic", fields="ts_code,name,list_date,status",
                                   market="E").to_dict("records"):
                if rec["ts_code"] in wanted:
                    status = rec.get("status") or "L"
                    found[rec["ts_code"]] = {**rec, "list_status": "D" if status == "D" else "L"}
        for inst in instruments:
            rec = found.get(inst.ts_code, {})
            list_date = pd.to_datetime(str(rec["list_date"]), format="%Y%m%d", errors="coerce") \
                if rec.get("list_date") else pd.NaT
            rows.append({"ts_code": inst.ts_code, "name": rec.get("name") or inst.ts_code,
                         "kind": inst.kind, "board": inst.board, "list_date": list_date,
                         "list_status": rec.get("list_status") or "L"})
        uni = pd.DataFrame(rows)
        uni["list_date"] = pd.to_datetime(uni["list_date"]).astype("datetime64[ns]")
        return uni

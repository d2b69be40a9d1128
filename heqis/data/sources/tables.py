"""Tushare Pro query semantics over in-memory tables.

``TableApi.query(api_name, fields, **params)`` filters, orders newest-first and caps rows like the
Tushare service does. The sample source answers from it in-process, and the tests put it behind a
local HTTP server that speaks Tushare's wire format for the real ``tushare`` client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Rows per call the service returns at most (documented caps; daily: 6000).
ROW_CAPS: dict[str, int] = {
    "daily": 6000, "index_daily": 8000, "fund_daily": 2000, "adj_factor": 6000, "fund_adj": 2000,
    "stk_limit": 5800, "daily_basic": 6000, "trade_cal": 12000, "namechange": 10000,
    "stock_basic": 10000, "index_basic": 10000, "fund_basic": 15000,
}
DATE_KEY = {"trade_cal": "cal_date", "namechange": "start_date"}


class UnknownApi(KeyError):
    """The API name is not one this table set answers."""


@dataclass
class TableApi:
    """Answers Tushare queries from ``tables`` (api name → DataFrame with Tushare's columns)."""

    tables: dict[str, pd.DataFrame]
    row_caps: dict[str, int] = field(default_factory=lambda: dict(ROW_CAPS))

    def query(self, api_name: str, fields: str = "", **params: object) -> pd.DataFrame:
        if api_name not in self.tables:
            raise UnknownApi(api_name)
        df = self.tables[api_name]
        mask = pd.Series(True, index=df.index)
        for key, value in params.items():
            if value in (None, ""):
                continue
            if key == "ts_code" and "ts_code" in df:
                mask &= df["ts_code"].isin(str(value).split(","))
            elif key == "start_date":
                mask &= df[DATE_KEY.get(api_name, "trade_date")] >= str(value)
            elif key == "end_date":
                mask &= df[DATE_KEY.get(api_name, "trade_date")] <= str(value)
            elif key in df.columns:
                mask &= df[key].astype(str) == str(value)
        out = df[mask]
        date_col = DATE_KEY.get(api_name, "trade_date")
        if date_col in out.columns:
            out = out.sort_values(date_col, ascending=False, kind="stable")  # newest first, as Tushare
        out = out.head(self.row_caps.get(api_name, 10000))
        if fields:
            wanted = [f.strip() for f in str(fields).split(",") if f.strip() in out.columns]
            out = out[wanted]
        return out.reset_index(drop=True)

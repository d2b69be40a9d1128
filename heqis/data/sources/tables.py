"""Tushare Pro query semantics over in-memory tables.

``TableApi.query(api_name, fields, **params)`` filters, orders newest-first and caps rows like the
Tushare service does. The sample source answers from it in-process, and the tests put it behind a
local HTTP server that speaks Tushare's wire format for the real ``tushare`` client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
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
    """Answers Tushare queries from ``tables`` (api name → DataFrame with Tushare's columns).

    Filters compare numpy text arrays of the columns they name, and a table's newest-first order is
    sorted once, on its first query, so a query costs a fraction of a millisecond (the sample source
    asks five per symbol)."""

    tables: dict[str, pd.DataFrame]
    row_caps: dict[str, int] = field(default_factory=lambda: dict(ROW_CAPS))
    # derived from a table, kept with the frame they were derived from (a table replaced is derived anew)
    _text: dict[tuple[str, str], tuple[pd.DataFrame, np.ndarray]] = field(default_factory=dict, repr=False)
    _order: dict[str, tuple[pd.DataFrame, np.ndarray]] = field(default_factory=dict, repr=False)

    def _column(self, api_name: str, column: str) -> np.ndarray:
        """A column as text (what Tushare's filters compare), converted on first use."""
        df = self.tables[api_name]
        key = (api_name, column)
        if key not in self._text or self._text[key][0] is not df:
            self._text[key] = (df, df[column].astype(str).to_numpy(dtype=str))
        return self._text[key][1]

    def _newest_first(self, api_name: str, date_col: str) -> np.ndarray:
        """The table's rows by date descending, ties in table order (table order without a date column)."""
        df = self.tables[api_name]
        if api_name not in self._order or self._order[api_name][0] is not df:
            rows = np.arange(len(df))
            if date_col in df.columns and len(df):
                _, rank = np.unique(self._column(api_name, date_col), return_inverse=True)
                rows = np.lexsort((rows, -rank))
            self._order[api_name] = (df, rows)
        return self._order[api_name][1]

    def query(self, api_name: str, fields: str = "", **params: object) -> pd.DataFrame:
        if api_name not in self.tables:
            raise UnknownApi(api_name)
        df = self.tables[api_name]
        date_col = DATE_KEY.get(api_name, "trade_date")
        mask = np.ones(len(df), dtype=bool)
        for key, value in params.items():
            if value in (None, ""):
                continue
            if key == "ts_code" and "ts_code" in df.columns:
                mask &= np.isin(self._column(api_name, "ts_code"), str(value).split(","))
            elif key == "start_date":
                mask &= self._column(api_name, date_col) >= str(value)
            elif key == "end_date":
                mask &= self._column(api_name, date_col) <= str(value)
            elif key in df.columns:
                mask &= self._column(api_name, key) == str(value)
        order = self._newest_first(api_name, date_col)
        rows = order[mask[order]][: self.row_caps.get(api_name, 10000)]   # newest first, as Tushare, capped
        wanted = [f.strip() for f in str(fields).split(",") if f.strip() in df.columns] if fields else list(df.columns)
        return df.iloc[rows][wanted].reset_index(drop=True)

"""The bundled sample's fast paths give what the slow, general ones give.

* its compiled rounding is Python's ``round`` (ties included: the sample's decimals hit them often);
* an instrument's tables handed over whole (``SampleApi.pieces``) assemble to the same bars as the same
  tables paged through Tushare's query semantics (``Fetcher`` over a ``TableApi`` of every instrument);
* ``SampleApi.query`` — one instrument's tables at a time — answers as a ``TableApi`` of all of them;
* the side tables joined on numeric dates equal the join on parsed dates.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from heqis.data.assemble import RawPieces, _by_date, _side, raw_bars
from heqis.data.cleaning import clean_daily
from heqis.data.fetch import Fetcher
from heqis.data.sources.sample import SampleApi, _rounded, generate_tables
from heqis.data.sources.tables import TableApi
from heqis.data.watchlist import default_watchlist_text, parse_watchlist

WATCHLIST = parse_watchlist(default_watchlist_text() + "300002.SZ\n688002.SH\n830001.BJ\n159915.SZ\n")


@pytest.mark.parametrize("digits", [2, 3, 4, 6])
def test_compiled_round_is_pythons_round(digits: int) -> None:
    rng = np.random.default_rng(digits)
    lots = np.round(rng.uniform(10, 1e6, 20000), 2)
    values = np.concatenate([
        rng.uniform(-1e4, 1e6, 20000),
        lots * 100.0 * (rng.integers(100, 10**6, 20000) / 400.0) / 1000.0,     # the sample's amounts: many ties
        np.round(rng.uniform(0, 1e3, 20000), digits) + 0.5 * 10.0 ** -digits,  # decimal ties
        np.array([2.675, 0.125, 0.375, -2.5, 1e-9, 0.0, 123456.0005]),
    ])
    expected = np.array([round(v, digits) for v in values.tolist()])
    np.testing.assert_array_equal(_rounded(values, digits), expected)


def _assembled(pieces: RawPieces, code: str) -> pd.DataFrame:
    daily, _ = clean_daily(pieces.daily, code, "test")
    return raw_bars(RawPieces(daily, pieces.adj, pieces.limit, pieces.basic, pieces.names))


@pytest.fixture(scope="module")
def paged() -> Fetcher:
    return Fetcher(TableApi(generate_tables(WATCHLIST)), row_caps={"daily": 700, "stk_limit": 500})


@pytest.mark.parametrize("span", [(date(2018, 1, 2), date(2024, 12, 31)), (date(2020, 3, 9), date(2021, 7, 14))])
def test_tables_handed_over_whole_assemble_as_the_paged_queries(paged: Fetcher, span: tuple[date, date]) -> None:
    held = SampleApi(WATCHLIST)
    for inst in WATCHLIST:
        pieces, tables = held.pieces(inst, *span)
        want = paged.instrument(inst, *span)
        pd.testing.assert_frame_equal(_assembled(pieces, inst.ts_code), _assembled(want, inst.ts_code),
                                      obj=inst.ts_code)
        assert tables == 1 + sum(p is not None for p in (want.adj, want.limit, want.basic, want.names))
    assert paged.calls > 2 * len(WATCHLIST)           # the row caps made it page


def test_one_instrument_at_a_time_answers_as_all_of_them() -> None:
    every = TableApi(generate_tables(WATCHLIST))
    lazy = SampleApi(WATCHLIST)
    asks = [("daily", "", {"ts_code": "600519.SH"}),
            ("fund_daily", "ts_code,trade_date,close", {"ts_code": "510300.SH", "start_date": "20230105"}),
            ("stk_limit", "", {"ts_code": "688981.SH", "end_date": "20200731"}),
            ("adj_factor", "", {"ts_code": "300750.SZ"}),
            ("namechange", "", {"ts_code": "600289.SH"}),
            ("daily", "", {"ts_code": "510300.SH"}),              # a fund in the stocks' table: no rows
            ("index_daily", "", {"ts_code": "000300.SH", "start_date": "20240101", "end_date": "20240131"}),
            ("daily", "", {"ts_code": "600000.SH"}),              # not in the watchlist: no rows
            ("stock_basic", "ts_code,name,list_date", {"list_status": "L"}),
            ("trade_cal", "", {"exchange": "SSE", "start_date": "20240101", "end_date": "20240110"})]
    for api, fields, params in asks:
        got, want = lazy.query(api, fields, **params), every.query(api, fields, **params)
        assert list(got.columns) == list(want.columns), (api, params)
        pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=f"{api} {params}")
    capped = TableApi(generate_tables(WATCHLIST[:2]), row_caps={"daily": 10})
    rows = capped.query("daily", "ts_code,trade_date", start_date="20240101")
    assert len(rows) == 10 and list(rows["trade_date"]) == sorted(rows["trade_date"], reverse=True)


def test_side_tables_joined_on_numeric_dates_equal_the_parsed_join() -> None:
    days = pd.Series(pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-08", "2024-01-09"]))
    table = pd.DataFrame({"trade_date": ["20240109", "20240103", "20240102", "20240103", "20240105"],
                          "x": ["1.5", "2.5", "oops", "9.9", "4"]})            # a repeated day, a gap, text
    fast = _side(table, "x", days)
    np.testing.assert_array_equal(fast, _by_date(table, "x").reindex(days).to_numpy())
    np.testing.assert_array_equal(fast, [np.nan, 2.5, np.nan, np.nan, 1.5])      # the first row of a day wins
    iso = table.assign(trade_date=pd.to_datetime(table["trade_date"]).dt.strftime("%Y-%m-%d"))
    np.testing.assert_array_equal(_side(iso, "x", days), fast)                     # other text: parsed as dates

"""Live inputs equal research inputs: the gateway's Tushare source against the Tushare-format server.

The real ``tushare`` client polls a local server that speaks Tushare's wire format (tests/tushare_server.py)
one trading day at a time through July 2024, when the sample market pays its yearly dividends (a new
``adj_factor``). For every live bar the brain's model input must equal the research input of the same
symbol and day, computed from the full store, within 1e-6.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from heqis.config import load_settings
from heqis.data.pipeline import DataRequest, run_data
from heqis.data.sources.tushare import TushareApi
from heqis.data.store import DataStore
from heqis.features.windows import Scaler, inference_windows
from heqis.runtime.bars import H, brain_input, history_length, request_window
from heqis.runtime.replay_pack import store_arrays
from heqis.runtime.sources.tushare import TushareSource
from tests.tushare_server import serve

SYMBOLS = ["600519.SH", "000001.SZ", "300750.SZ", "688981.SH", "600289.SH", "510300.SH", "000300.SH"]


@pytest.fixture
def seed_store(table_api, isolated, monkeypatch):
    """What the gateway's host had before July 2024: a store fetched over HTTP up to 2024-06-28."""
    from heqis.data.watchlist import default_watchlist_text

    watchlist = isolated / "watchlist.txt"
    watchlist.write_text(default_watchlist_text(), encoding="utf-8")
    monkeypatch.setenv("HEQIS_TUSHARE_BACKOFF_S", "0")
    monkeypatch.setenv("HEQIS_TUSHARE_CALLS_PER_MIN", "100000")
    with serve(table_api) as srv:
        monkeypatch.setenv("HEQIS_TUSHARE_TOKEN", "test-token")
        monkeypatch.setenv("HEQIS_TUSHARE_URL", srv.url)
        run_data(DataRequest(source="tushare", data_dir=isolated / "seed", watchlist=watchlist,
                             start=date(2018, 1, 1), end=date(2024, 6, 28)), load_settings())
    return DataStore(isolated / "seed")


def july_sessions(store: DataStore) -> list[date]:
    s = store.sessions()
    return [d.date() for d in s[(s >= "2024-07-01") & (s <= "2024-07-31")]]


def test_live_tushare_bars_give_the_brain_the_research_inputs(table_api, seed_store, sample_store, tiny_run):
    scaler = Scaler.load(tiny_run / "scaler_params.json")
    days = july_sessions(sample_store)
    clock = iter(days)
    current = {"day": days[0]}

    def today() -> date:
        return current["day"]

    research = {}
    for sym in SYMBOLS:
        x, dates = inference_windows(sample_store.read_bars(sym), scaler.window)
        research[sym] = (scaler.transform(x), dates)

    with serve(table_api) as srv:
        api = TushareApi("test-token", url=srv.url, calls_per_min=100000, backoff_s=0)
        source = TushareSource(api, store_arrays(seed_store.root, SYMBOLS), SYMBOLS,
                               history_length(scaler.window), interval=0.0, today=today)
        live: list = []
        for d in clock:
            current["day"] = d
            live += source.poll(room=1000)
        calls = [r.api_name for r in srv.requests]
    got = {(bar.symbol, bar.bar_time) for bar in live}
    want = {(s, int(t)) for s in SYMBOLS for t in sample_store.read_bars(s)["trade_date"].to_numpy("datetime64[ns]")
            .astype(np.int64) if pd.Timestamp(t).date() in set(days)}
    assert got == want, "every July bar arrives once, and only those"
    worst, ex_dates, naive_worst = 0.0, 0, 0.0
    for bar in live:
        x, dates = research[bar.symbol]
        j = int(np.flatnonzero(dates == np.datetime64(bar.bar_time, "ns"))[0])
        mine = brain_input(request_window(bar.history), scaler)
        worst = max(worst, float(np.max(np.abs(mine - x[j]))))
        factors = bar.history[-2:, H["adj_factor"]]
        if factors[1] != factors[0]:
            ex_dates += 1
            naive = bar.history.copy()               # what wave 1 sent: raw prices, no turnover
            naive[:, H["adj_factor"]] = 1.0
            naive[:, H["turnover"]] = np.nan
            naive_worst = max(naive_worst, float(np.max(np.abs(brain_input(request_window(naive), scaler) - x[j]))))
    assert worst < 1e-6, worst
    print(f"live vs research: max |diff| {worst:.1e} over {len(live)} bars; wave-1 inputs on ex-dates: "
          f"{naive_worst:.1e}")
    assert ex_dates >= 3, "the July dividends (new adj_factor) are inside the span"
    assert naive_worst > 1e-2, "raw prices would have given other inputs (the test can fail)"
    assert source.counters == {}, "nothing was estimated or dropped"
    # one daily call per kind and poll, one call per side table and day — never one per symbol
    assert calls.count("adj_factor") == len(days) and calls.count("daily_basic") == len(days)


def test_a_side_table_not_yet_published_holds_the_bar_then_releases_it(table_api, seed_store, sample_store):
    from heqis.data.sources.tables import TableApi

    day = july_sessions(sample_store)[0]
    tables = {k: v.copy() for k, v in table_api.tables.items()}
    late = tables["daily_basic"]["trade_date"] == day.strftime("%Y%m%d")
    held = tables["daily_basic"][late]
    tables["daily_basic"] = tables["daily_basic"][~late]
    api = TableApi(tables)
    source = TushareSource(api, store_arrays(seed_store.root, ["600519.SH"]), ["600519.SH"], 560, interval=0.0,
                           today=lambda: day, max_wait_polls=3)
    assert source.poll(10) == []                                  # daily is there, turnover is not yet
    tables["daily_basic"] = pd.concat([tables["daily_basic"], held])  # published a little later
    bars = source.poll(10)
    assert len(bars) == 1 and np.isfinite(bars[0].history[-1, H["turnover"]])
    assert source.counters == {}


def test_a_side_table_that_never_comes_is_estimated_and_counted(table_api, seed_store, sample_store):
    from heqis.data.sources.tables import TableApi

    day = july_sessions(sample_store)[0]
    tables = {k: v.copy() for k, v in table_api.tables.items()}
    tables["daily_basic"] = tables["daily_basic"][tables["daily_basic"]["trade_date"] != day.strftime("%Y%m%d")]
    source = TushareSource(TableApi(tables), store_arrays(seed_store.root, ["600519.SH"]), ["600519.SH"], 560,
                           interval=0.0, today=lambda: day, max_wait_polls=3)
    assert source.poll(10) == [] and source.poll(10) == []
    bars = source.poll(10)
    row = bars[0].history[-1]
    prev = bars[0].history[-2]
    assert row[H["turnover"]] == pytest.approx(row[H["vol"]] * prev[H["turnover"]] / prev[H["vol"]], rel=1e-5)
    assert source.counters == {"gave up waiting for adj_factor/daily_basic": 1, "turnover estimated": 1}


def test_live_bars_pass_the_cleaning_rules(seed_store):
    from heqis.runtime.bars import history_row
    from heqis.runtime.sources import History

    hist = History(10)
    times, rows = store_arrays(seed_store.root, ["600519.SH"])["600519.SH"]
    hist.seed("600519.SH", times, rows)
    t = int(times[-1]) + 86_400 * 10**9
    assert hist.append("600519.SH", history_row(10, 9, 11, 10, 100), t) is None          # high < low
    assert hist.append("600519.SH", history_row(10, 11, 9, 10, -1), t) is None           # negative volume
    assert hist.append("600519.SH", history_row(10, 11, 9, 10, 100), int(times[-1])) is None  # duplicate date
    assert hist.append("600519.SH", history_row(10, 11, 9, 12, 100), t) is None          # close outside high-low
    assert hist.counters == {"high < low": 1, "negative volume": 1, "duplicate date": 1,
                             "open/close outside high-low": 1}
    assert hist.append("600519.SH", history_row(10, 11, 9, 10.5, 100), t) is not None

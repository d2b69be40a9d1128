"""The real ``tushare`` client against a local server that speaks Tushare's wire format.

The server answers from the same synthetic tables the sample source uses, so a store fetched over
HTTP must equal the sample store exactly: a known answer for paging, ordering, units and joins.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heqis.config import load_settings
from heqis.data.fetch import Fetcher
from heqis.data.pipeline import DataRequest, run_data
from heqis.data.sources.tables import TableApi
from heqis.data.sources.tushare import TokenBucket, TushareApi
from heqis.data.store import DataStore
from heqis.data.watchlist import Instrument, default_watchlist_text
from heqis.errors import HeqisError
from tests.tushare_server import Behaviour, serve

TOKEN = "test-token"


@pytest.fixture
def watchlist(isolated: Path) -> Path:
    path = isolated / "标的参考.txt"
    path.write_text(default_watchlist_text(), encoding="utf-8")
    return path


@pytest.fixture
def tushare_env(monkeypatch: pytest.MonkeyPatch):
    """Point HEQIS at a server; no waiting between retries in tests."""

    def point(url: str, token: str = TOKEN) -> None:
        monkeypatch.setenv("HEQIS_TUSHARE_TOKEN", token)
        monkeypatch.setenv("HEQIS_TUSHARE_URL", url)
        monkeypatch.setenv("HEQIS_TUSHARE_BACKOFF_S", "0")
        monkeypatch.setenv("HEQIS_TUSHARE_CALLS_PER_MIN", "100000")

    return point


def fetch(data_dir: Path, watchlist: Path, **kw) -> object:
    req = DataRequest(source="tushare", data_dir=data_dir, watchlist=watchlist,
                      start=kw.pop("start", date(2018, 1, 1)), end=kw.pop("end", date(2024, 12, 31)), **kw)
    return run_data(req, load_settings())


def test_store_over_http_equals_sample_store(table_api, sample_store, tushare_env, watchlist, isolated):
    with serve(table_api) as srv:
        tushare_env(srv.url)
        result = fetch(isolated / "ts", watchlist)
    store = DataStore(isolated / "ts")
    assert store.symbols() == sample_store.symbols()
    for code in store.symbols():
        pd.testing.assert_frame_equal(store.read_bars(code), sample_store.read_bars(code), check_exact=True)
    pd.testing.assert_frame_equal(store.read_universe(), sample_store.read_universe())
    assert result.source == "tushare" and not result.synthetic
    assert {r.api_name for r in srv.requests} >= {"daily", "index_daily", "fund_daily", "adj_factor", "fund_adj",
                                                  "stk_limit", "daily_basic", "namechange", "trade_cal",
                                                  "stock_basic", "index_basic", "fund_basic"}
    # no per-symbol table is asked for a kind that has none (an index has no stk_limit, no adj_factor)
    assert not [r for r in srv.calls("stk_limit") if r.params.get("ts_code") == "000300.SH"]


def test_second_run_fetches_nothing(table_api, tushare_env, watchlist, isolated):
    with serve(table_api) as srv:
        tushare_env(srv.url)
        fetch(isolated / "ts", watchlist)
        first = len(srv.requests)
        result = fetch(isolated / "ts", watchlist)
    assert len(srv.requests) == first
    assert result.api_calls == 0
    assert "up to date: nothing to fetch" in result.notes


def test_incremental_run_fetches_only_new_dates_and_rebases_adjustment(table_api, sample_store, tushare_env,
                                                                       watchlist, isolated):
    with serve(table_api) as srv:
        tushare_env(srv.url)
        fetch(isolated / "ts", watchlist, end=date(2024, 6, 30))
        before = DataStore(isolated / "ts").read_bars("600519.SH")
        n = len(srv.requests)
        fetch(isolated / "ts", watchlist, end=date(2024, 12, 31))
        second = srv.requests[n:]
    daily = [r for r in second if r.api_name == "daily"]
    assert daily and all(r.params["start_date"] == "20240701" for r in daily)
    after = DataStore(isolated / "ts").read_bars("600519.SH")
    full = sample_store.read_bars("600519.SH")
    pd.testing.assert_frame_equal(after, full, check_exact=True)
    # the July 2024 dividend arrived with the second run: every older adjusted price was re-based
    old_rows = after["trade_date"] <= pd.Timestamp("2024-06-28")
    assert (after.loc[old_rows, "adj_factor"].iloc[-1] < after["adj_factor"].iloc[-1])
    ratio = (after.loc[old_rows, "close"].to_numpy() / before["close"].to_numpy())
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    assert ratio[0] < 1.0
    np.testing.assert_array_equal(after.loc[old_rows, "close_raw"], before["close_raw"])


def test_rate_limit_reply_then_success(table_api, tushare_env, watchlist, isolated):
    behaviour = Behaviour(rate_limit_next={"daily": 2}, http_500_next={"adj_factor": 1})
    with serve(table_api, behaviour) as srv:
        tushare_env(srv.url)
        result = fetch(isolated / "ts", watchlist)
    assert result.retries == 3
    assert len(srv.calls("daily", "rate")) == 2
    assert len(srv.calls("adj_factor", "http500")) == 1
    assert DataStore(isolated / "ts").read_bars("600519.SH").shape[0] == 1697


def test_invalid_token_is_one_clear_error(table_api, tushare_env, watchlist, isolated):
    with serve(table_api) as srv:
        tushare_env(srv.url, token="wrong")
        with pytest.raises(HeqisError, match="token rejected by Tushare") as info:
            fetch(isolated / "ts", watchlist)
    assert "TOKEN无效" in str(info.value)
    assert "wrong" not in str(info.value)  # the token itself is never echoed
    assert len(srv.requests) == 1  # not retried: retrying cannot fix a bad token


def test_permission_error_names_the_api(table_api, tushare_env, watchlist, isolated):
    with serve(table_api, Behaviour(forbidden={"stk_limit"})) as srv:
        tushare_env(srv.url)
        with pytest.raises(HeqisError, match="may not use 'stk_limit'"):
            fetch(isolated / "ts", watchlist)
        assert len(srv.calls("stk_limit")) == 1


def test_persistent_http_failure_gives_up_with_resume_hint(table_api, tushare_env, watchlist, isolated,
                                                           monkeypatch):
    monkeypatch.setenv("HEQIS_TUSHARE_RETRIES", "2")
    with serve(table_api, Behaviour(http_500_next={"trade_cal": 99})) as srv:
        tushare_env(srv.url)
        with pytest.raises(HeqisError, match="gave up after 2 retries") as info:
            fetch(isolated / "ts", watchlist)
    assert "resume" in (info.value.hint or "")
    assert len(srv.calls("trade_cal")) == 3


def test_interrupted_download_resumes_without_refetching(table_api, sample_store, tushare_env, watchlist,
                                                         isolated, monkeypatch):
    monkeypatch.setenv("HEQIS_TUSHARE_RETRIES", "1")
    with serve(table_api, Behaviour(fail_after=20)) as srv:
        tushare_env(srv.url)
        with pytest.raises(HeqisError, match="gave up"):
            fetch(isolated / "ts", watchlist)
        done_first = {(r.api_name, r.params.get("ts_code")) for r in srv.calls(status="ok")
                      if r.params.get("ts_code") and "," not in r.params.get("ts_code", "")}
        partial = DataStore(isolated / "ts").partial_dir
        assert any(partial.rglob("*.parquet")), "finished ranges must be kept for the resume"
        srv.behaviour.fail_after = None
        n = len(srv.requests)
        fetch(isolated / "ts", watchlist)
        again = {(r.api_name, r.params.get("ts_code")) for r in srv.requests[n:]}
    assert done_first, "the first run should have finished some tables"
    assert not (done_first & again), f"re-fetched after resume: {sorted(done_first & again)}"
    assert not partial.exists()
    store = DataStore(isolated / "ts")
    for code in sample_store.symbols():
        pd.testing.assert_frame_equal(store.read_bars(code), sample_store.read_bars(code), check_exact=True)


def test_suspended_days_have_no_row_and_units_are_tushares(table_api, sample_tables, tushare_env, watchlist,
                                                          isolated):
    with serve(table_api) as srv:
        tushare_env(srv.url)
        result = fetch(isolated / "ts", watchlist)
    bars = DataStore(isolated / "ts").read_bars("600519.SH")
    days = set(bars["trade_date"])
    # the sample suspends 600519.SH on 2019-03-18 and -19 (both XSHG sessions): no rows
    assert pd.Timestamp("2019-03-15") in days and pd.Timestamp("2019-03-20") in days
    assert pd.Timestamp("2019-03-18") not in days and pd.Timestamp("2019-03-19") not in days
    summary = {s.ts_code: s for s in result.symbols}["600519.SH"]
    assert summary.suspended_days == 2
    # units: vol in lots and amount in thousand CNY, stored as Tushare sent them
    src = sample_tables["daily"].query("ts_code == '600519.SH' and trade_date == '20200102'").iloc[0]
    row = bars[bars["trade_date"] == pd.Timestamp("2020-01-02")].iloc[0]
    assert row["vol"] == src["vol"] and row["amount"] == src["amount"]
    avg_price = (row["open_raw"] + row["high_raw"] + row["low_raw"] + row["close_raw"]) / 4
    assert row["amount"] == pytest.approx(row["vol"] * 100 * avg_price / 1000, rel=1e-6)


def test_newest_first_replies_are_paged_past_the_row_cap(table_api, tushare_env):
    """With a 250-row cap the client must page backwards by date and still get every row once."""
    table_api.row_caps = {**table_api.row_caps, "daily": 250, "adj_factor": 250}
    with serve(table_api) as srv:
        api = TushareApi(TOKEN, url=srv.url, calls_per_min=100000, backoff_s=0)
        fetcher = Fetcher(api, row_caps={"daily": 250, "adj_factor": 250})
        daily = fetcher.paged("daily", date(2018, 1, 1), date(2024, 12, 31), ts_code="600519.SH")
        first_reply = srv.calls("daily")[0]
    assert len(srv.calls("daily")) == 7  # 1697 rows / 250 per page
    assert first_reply.params["end_date"] == "20241231"
    assert len(daily) == 1697 and daily["trade_date"].is_unique
    assert list(daily["trade_date"]) == sorted(daily["trade_date"])


def test_legitimately_empty_tables_are_not_errors(table_api, tushare_env, isolated):
    """A stock not yet listed has a daily table with columns and no rows; an ETF without stk_limit rows."""
    table_api.tables["stk_limit"] = table_api.tables["stk_limit"].query("ts_code != '510300.SH'")
    wl = isolated / "wl.txt"
    wl.write_text("688981.SH\n510300.SH fund\n", encoding="utf-8")
    with serve(table_api) as srv:
        tushare_env(srv.url)
        result = fetch(isolated / "ts", wl, start=date(2019, 1, 1), end=date(2019, 12, 31))
    rows = {s.ts_code: s.rows for s in result.symbols}
    assert rows == {"688981.SH": 0, "510300.SH": 244}
    assert any("688981.SH: no bars" in n for n in result.notes)
    etf = DataStore(isolated / "ts").read_bars("510300.SH")
    assert etf["up_limit"].isna().all()


def test_client_url_override_reaches_the_private_attribute():
    api = TushareApi(TOKEN, url="http://127.0.0.1:9/x/", calls_per_min=10)
    assert api.pro._DataApi__http_url == "http://127.0.0.1:9/x"


def test_token_bucket_never_exceeds_the_rate_in_any_minute():
    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    stamps = []
    for _ in range(300):
        bucket.acquire()
        stamps.append(now[0])
    stamps_arr = np.array(stamps)
    worst = max(((stamps_arr >= t) & (stamps_arr < t + 60)).sum() for t in stamps_arr)
    assert worst <= 60
    assert stamps_arr[-1] == pytest.approx((300 - 6) / (60 * 0.9 / 60), rel=0.01)  # runs at 90% of the cap


def test_fetcher_without_partial_dir_does_not_touch_disk(table_api, isolated):
    inst = Instrument("000300.SH", "index", "main")
    pieces = Fetcher(table_api).instrument(inst, date(2024, 1, 1), date(2024, 1, 31))
    assert len(pieces.daily) == 22 and pieces.adj is None and pieces.limit is None  # Jan 2024: 22 sessions
    assert not list(isolated.iterdir())


def test_table_api_semantics(table_api: TableApi):
    df = table_api.query("daily", fields="ts_code,trade_date,close", ts_code="600519.SH,000001.SZ",
                         start_date="20240102", end_date="20240105")
    assert list(df.columns) == ["ts_code", "trade_date", "close"]
    assert list(df["trade_date"]) == sorted(df["trade_date"], reverse=True)  # newest first
    assert set(df["ts_code"]) == {"600519.SH", "000001.SZ"} and len(df) == 8

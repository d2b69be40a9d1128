"""The store: schema, forward adjustment, manifest hashes, determinism, CSV, and refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from heqis.config import load_settings
from heqis.data.assemble import forward_adjust
from heqis.data.pipeline import DataRequest, missing_spans, run_data
from heqis.data.schema import BAR_COLUMNS, FEATURE_CACHE_COLUMNS
from heqis.data.store import DataStore
from heqis.errors import HeqisError
from heqis.features.fingerprint import feature_fingerprint


def test_bars_follow_the_stored_schema(sample_store):
    for code in sample_store.symbols():
        bars = sample_store.read_bars(code)
        assert list(bars.columns) == list(BAR_COLUMNS)
        assert list(sample_store.read_features(code).columns) == list(FEATURE_CACHE_COLUMNS)
        assert bars["trade_date"].dtype == "datetime64[ns]"
        assert (bars["trade_date"] == bars["trade_date"].dt.normalize()).all()
        assert bars["trade_date"].is_monotonic_increasing and bars["trade_date"].is_unique
        assert bars["is_st"].dtype == bool
    cal = sample_store.read_calendar()
    assert list(cal.columns) == ["trade_date", "is_open"]
    assert cal.loc[cal["trade_date"].dt.year == 2024, "is_open"].sum() == 242  # XSHG sessions in 2024
    uni = sample_store.read_universe()
    assert list(uni.columns) == ["ts_code", "name", "kind", "board", "list_date", "list_status"]
    assert dict(zip(uni["ts_code"], uni["kind"], strict=True))["510300.SH"] == "fund"


def test_forward_adjustment_keeps_raw_and_preserves_returns_across_ex_dates(sample_store):
    bars = sample_store.read_bars("300750.SZ")  # has a 10-for-8 bonus issue in 2022 and yearly dividends
    last = bars.iloc[-1]
    assert last["close"] == last["close_raw"]  # forward adjustment leaves the latest prices raw
    np.testing.assert_allclose(bars["close"], bars["close_raw"] * bars["adj_factor"] / last["adj_factor"],
                               rtol=1e-12)
    ex = bars.index[bars["adj_factor"].diff() > 0]
    assert len(ex) >= 5
    i = ex[0]
    # on an ex-date the raw price drops, but the adjusted return equals the return on pre_close
    adj_ret = bars["close"][i] / bars["close"][i - 1] - 1
    raw_ret = bars["close_raw"][i] / bars["pre_close_raw"][i] - 1
    assert adj_ret == pytest.approx(raw_ret, abs=2e-4)
    bonus_day = bars.index[bars["adj_factor"].pct_change() > 0.5][0]
    assert bars["close_raw"][bonus_day] < 0.7 * bars["close_raw"][bonus_day - 1]


def test_forward_adjust_fills_missing_factors():
    raw = pd.DataFrame({
        "trade_date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]),
        "open_raw": [10.0, 10.0, 5.0], "high_raw": [10.0, 10.0, 5.0], "low_raw": [10.0, 10.0, 5.0],
        "close_raw": [10.0, 10.0, 5.0], "pre_close_raw": [10.0, 10.0, 5.0], "vol": 1.0, "amount": 1.0,
        "pct_chg": 0.0, "adj_factor": [1.0, np.nan, 2.0], "up_limit": np.nan, "down_limit": np.nan,
        "turnover": np.nan, "is_st": False})
    out = forward_adjust(raw)
    np.testing.assert_allclose(out["close"], [5.0, 5.0, 5.0])
    np.testing.assert_allclose(out["adj_factor"], [1.0, 1.0, 2.0])


def test_sample_data_respects_its_own_limits_and_flags(sample_store):
    for code in sample_store.symbols():
        b = sample_store.read_bars(code)
        known = b["up_limit"].notna()
        assert (b.loc[known, "high_raw"] <= b.loc[known, "up_limit"] + 1e-9).all(), code
        assert (b.loc[known, "low_raw"] >= b.loc[known, "down_limit"] - 1e-9).all(), code
    st = sample_store.read_bars("600289.SH")
    on = st[st["is_st"]]
    assert on["trade_date"].min() >= pd.Timestamp("2021-05-06") and on["trade_date"].max() <= pd.Timestamp("2022-06-30")
    ratio = (on["up_limit"] / on["pre_close_raw"] - 1).round(2)
    assert ratio.between(0.04, 0.06).all()  # ST: ±5% on the main board (before 2025-07-07)
    star = sample_store.read_bars("688981.SH")
    assert star["up_limit"].iloc[:5].isna().all() and star["up_limit"].iloc[5:].notna().all()
    cyb = sample_store.read_bars("300750.SZ")
    before = cyb[(cyb["trade_date"] < "2020-08-24") & (cyb.index > 0)]
    after = cyb[cyb["trade_date"] >= "2020-08-24"]
    assert (before["up_limit"] / before["pre_close_raw"] - 1).round(2).max() == 0.10
    assert (after["up_limit"] / after["pre_close_raw"] - 1).round(2).min() == 0.20
    assert cyb["up_limit"].iloc[0] == pytest.approx(cyb["pre_close_raw"].iloc[0] * 1.44, abs=0.01)
    index = sample_store.read_bars("000300.SH")
    assert index["up_limit"].isna().all() and index["turnover"].isna().all() and (index["adj_factor"] == 1).all()


def test_manifest_hashes_files_and_is_deterministic(sample_store, isolated):
    manifest = sample_store.manifest()
    assert manifest["synthetic"] is True and manifest["source"] == "sample"
    assert sample_store.verify() == []
    assert set(manifest["files"]) == {f"bars/{c}.parquet" for c in sample_store.symbols()} | {
        "calendar.parquet", "universe.parquet"}
    assert manifest["version"] == 2 and manifest["features"]["fingerprint"] == feature_fingerprint()
    assert set(manifest["features"]["files"]) == {f"features/{c}.parquet" for c in sample_store.symbols()}
    # the same request elsewhere gives the same content hash
    other = isolated / "again"
    wl = isolated / "wl.txt"
    from heqis.data.watchlist import default_watchlist_text
    wl.write_text(default_watchlist_text(), encoding="utf-8")
    result = run_data(DataRequest(source="sample", data_dir=other, watchlist=wl), load_settings())
    assert result.content_hash == manifest["content_hash"]
    # tampering is detected
    path = other / "bars" / "600519.SH.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    assert DataStore(other).verify() == ["bars/600519.SH.parquet"]


def test_refuses_to_mix_sources_without_replace(isolated):
    csv = isolated / "p.csv"
    csv.write_text("date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,100\n2024-01-03,1.5,2,1,1.8,200\n")
    run_data(DataRequest(source="csv", data_dir=isolated / "d", csv_path=csv, csv_symbol="X.SH"), load_settings())
    before = (isolated / "d" / "manifest.json").read_text()
    with pytest.raises(HeqisError, match="refusing to mix"):
        run_data(DataRequest(source="sample", data_dir=isolated / "d"), load_settings())
    assert (isolated / "d" / "manifest.json").read_text() == before  # nothing touched
    run_data(DataRequest(source="sample", data_dir=isolated / "d", replace=True), load_settings())
    assert json.loads((isolated / "d" / "manifest.json").read_text())["source"] == "sample"
    assert not (isolated / "d" / "bars" / "X.SH.parquet").exists()


def test_csv_source_units_and_bad_rows(isolated):
    csv = isolated / "AAPL.csv"
    csv.write_text(
        "Date,Open,High,Low,Close,Volume,Amount\n"
        "2024-01-03,10,11,9,10.5,120000,1260000\n"
        "2024-01-02,10,11,9,10,100000,1000000\n"      # unsorted
        "2024-01-04,10,9,11,10,100000,1000000\n"      # high < low
        "2024-01-05,10,11,9,10.8,100000,1080000\n")
    result = run_data(DataRequest(source="csv", data_dir=isolated / "d", csv_path=csv), load_settings())
    bars = DataStore(isolated / "d").read_bars("AAPL")
    assert list(bars["trade_date"].dt.day) == [2, 3, 5]
    assert bars["vol"].tolist() == [1000.0, 1200.0, 1000.0]          # shares → lots
    assert bars["amount"].tolist() == [1000.0, 1260.0, 1080.0]       # yuan → thousand
    assert (bars["adj_factor"] == 1).all() and bars["close"].equals(bars["close_raw"])
    assert result.cleaning.counts() == {"high < low": 1}
    assert result.cleaning.dropped[0].row == 4


PLAIN_CSVS = {
    "bom_crlf_quotes": "\ufeffDate,Open,High,Low,Close,Volume,Amount\r\n2024-01-02,10,11,9,10,\"1,000\",NA\r\n"
                       "2024-01-03,10.5,11,9,10.2,N/A,\r\n",
    "chinese_adj": "日期,开盘,最高,最低,收盘,成交量,adj_close\n20240102,1,1.2,0.9,1.1,300,0.55\n"
                   "20240103,,1,1,1,None,nan\n",
    "header_only": "date,open,high,low,close,volume\n",
    "trailing_space": "date,open,high,low,close,volume\n2024-01-02 ,1 ,2,0.5,1,10\n",
}
ODD_CSVS = {
    "space_after_comma": "date, open, high, low, close, volume\n2024-01-02, 1, 2, 0.5, 1, 10\n",
    "short_row": "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1,10\n2024-01-03,1,2\n",
    "repeated_name": "date,open,open,low,close,volume\n2024-01-02,1,2,0.5,1,10\n",
    "latin1": "date,open,high,low,close,volume,name\n2024-01-02,1,2,0.5,1,10,caf\xe9\n",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(PLAIN_CSVS))
def test_arrow_reads_a_plain_csv_as_pandas_does(isolated, name):
    """The fast reader gives the frame ``pd.read_csv(dtype=str, skipinitialspace=True)`` gives (BOM, CRLF,
    quotes, pandas' missing-value tokens, Chinese headers, no rows)."""
    from heqis.data.sources.csv_source import _arrow_text_frame

    path = isolated / f"{name}.csv"
    path.write_text(PLAIN_CSVS[name], encoding="utf-8", newline="")
    fast = _arrow_text_frame(path)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, pd.read_csv(path, dtype=str, skipinitialspace=True, encoding="utf-8-sig"))


@pytest.mark.parametrize("name", sorted(ODD_CSVS))
def test_anything_but_a_plain_csv_goes_to_pandas(isolated, name):
    from heqis.data.sources.csv_source import _arrow_text_frame

    path = isolated / f"{name}.csv"
    path.write_bytes(ODD_CSVS[name].encode("latin-1" if name == "latin1" else "utf-8"))
    assert _arrow_text_frame(path) is None


def test_csv_missing_columns_name_the_file(isolated):
    csv = isolated / "bad.csv"
    csv.write_text("when,price\n2024-01-02,1\n")
    with pytest.raises(HeqisError, match=r"bad.csv: row 1 \(header\) lacks column\(s\) trade_date, open"):
        run_data(DataRequest(source="csv", data_dir=isolated / "d", csv_path=csv), load_settings())
    assert not (isolated / "d" / "manifest.json").exists()


def test_missing_spans():
    from datetime import date as d
    assert missing_spans(None, d(2020, 1, 1), d(2020, 12, 31)) == [(d(2020, 1, 1), d(2020, 12, 31))]
    assert missing_spans((d(2020, 3, 1), d(2020, 6, 30)), d(2020, 1, 1), d(2020, 12, 31)) == [
        (d(2020, 1, 1), d(2020, 2, 29)), (d(2020, 7, 1), d(2020, 12, 31))]
    assert missing_spans((d(2020, 1, 1), d(2020, 12, 31)), d(2020, 2, 1), d(2020, 3, 1)) == []


def test_coverage_never_claims_days_without_data():
    from datetime import date as d

    from heqis.data.pipeline import extend_coverage
    assert extend_coverage(None, d(2024, 1, 1), d(2024, 5, 9), None) == (d(2024, 1, 1), d(2024, 5, 9))
    # today's bar already arrived: covered through today
    assert extend_coverage(None, d(2024, 1, 1), d(2024, 5, 9), d(2024, 5, 10)) == (d(2024, 1, 1), d(2024, 5, 10))
    # a run for today only, before the data exist: nothing is covered
    assert extend_coverage(None, d(2024, 5, 10), d(2024, 5, 9), None) is None
    assert extend_coverage((d(2023, 1, 1), d(2023, 12, 31)), d(2024, 5, 10), d(2024, 5, 9), None) == (
        d(2023, 1, 1), d(2023, 12, 31))
    assert extend_coverage((d(2023, 1, 1), d(2023, 12, 31)), d(2024, 1, 1), d(2024, 5, 9), None) == (
        d(2023, 1, 1), d(2024, 5, 9))


def test_no_features_then_features(isolated):
    first = run_data(DataRequest(source="sample", data_dir=isolated / "d", features=False), load_settings())
    store = DataStore(isolated / "d")
    assert store.manifest()["features"] is None and not store.features_dir.exists()
    assert list(store.read_bars("000001.SZ").columns) == list(BAR_COLUMNS)
    again = run_data(DataRequest(source="sample", data_dir=isolated / "d"), load_settings())
    assert store.read_features("000001.SZ")["ma5"].notna().sum() > 1000
    assert again.content_hash == first.content_hash      # the cache is not part of the store's identity


def test_store_lock_refuses_a_second_writer(isolated):
    store = DataStore(isolated / "d")
    with store.lock(), pytest.raises(HeqisError, match="another heqis process"), store.lock():
        pass

"""Cleaning: every kind of bad row is dropped with its reason; an all-bad file is a one-line error."""

from __future__ import annotations

import pandas as pd
import pytest

from heqis.data.cleaning import clean_daily
from heqis.errors import HeqisError

GOOD = {"open": 10.0, "high": 10.5, "low": 9.8, "close": 10.2, "vol": 1000.0, "amount": 1020.0}


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{**GOOD, **r} for r in rows])
    df.insert(0, "_row", range(2, len(df) + 2))
    return df


def test_each_kind_of_bad_row_is_dropped_with_its_reason():
    df = frame([
        {"trade_date": "2024-01-02"},
        {"trade_date": "2024-01-03", "close": float("nan")},        # missing value
        {"trade_date": "2024-01-04", "low": 0.0},                   # non-positive price
        {"trade_date": "2024-01-05", "high": 9.0, "low": 9.5},      # high < low
        {"trade_date": "2024-01-08", "open": 11.0},                 # open above high
        {"trade_date": "2024-01-09", "vol": -5.0},                  # negative volume
        {"trade_date": "not a date"},                               # bad date
        {"trade_date": "2024-01-02", "close": 10.4},                # duplicate of a kept date
        {"trade_date": "2024-01-10"},
    ])
    out, report = clean_daily(df, "TEST", "test.csv")
    assert list(out["trade_date"].dt.strftime("%Y-%m-%d")) == ["2024-01-02", "2024-01-10"]
    assert out["close"].iloc[0] == 10.2  # the first copy of a duplicated date is kept
    by_row = {d.row: d.reason for d in report.dropped}
    assert by_row == {3: "missing value", 4: "non-positive price", 5: "high < low",
                      6: "open/close outside high-low", 7: "negative volume", 8: "bad date",
                      9: "duplicate date"}
    assert report.rows_in == 9 and report.rows_out == 2
    assert report.counts()["duplicate date"] == 1


def test_unsorted_rows_are_sorted_and_reported_not_dropped():
    df = frame([{"trade_date": "2024-01-04"}, {"trade_date": "2024-01-02"}, {"trade_date": "2024-01-03"}])
    out, report = clean_daily(df, "TEST", "t.csv")
    assert list(out["trade_date"].dt.day) == [2, 3, 4]
    assert report.reordered == {"TEST": 3} and not report.dropped


def test_bad_first_copy_does_not_push_out_a_good_duplicate():
    df = frame([{"trade_date": "2024-01-02", "high": 1.0}, {"trade_date": "2024-01-02"}])
    out, report = clean_daily(df, "TEST", "t.csv")
    assert len(out) == 1 and out["high"].iloc[0] == 10.5
    assert [d.reason for d in report.dropped] == ["high < low"]


def test_a_file_that_is_all_bad_is_one_clear_error():
    df = frame([{"trade_date": "2024-01-02", "open": -1.0}, {"trade_date": "2024-01-03", "open": -2.0}])
    with pytest.raises(HeqisError) as info:
        clean_daily(df, "TEST", "prices.csv")
    msg = str(info.value)
    assert "prices.csv" in msg and "row 2" in msg and "non-positive price" in msg
    assert "\n" not in msg


def test_clean_input_passes_through_unchanged():
    df = frame([{"trade_date": "20240102"}, {"trade_date": "20240103"}])
    out, report = clean_daily(df, "TEST", "t")
    assert len(out) == 2 and not report.dropped and "_row" not in out
    assert out["trade_date"].dtype == "datetime64[ns]"

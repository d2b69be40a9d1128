"""CSV adjustment: an adj_close / adj_factor column is honoured, and unadjusted split-like days are
flagged (real AAPL 2000–2013 from bokeh_sampledata: a 2:1 split on 2000-06-21 left in its close)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bokeh_sampledata.stocks import AAPL

from heqis.config import load_settings
from heqis.data.pipeline import DataRequest, run_data
from heqis.data.store import DataStore

COLUMNS = ["trade_date", "open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    return pd.DataFrame(AAPL).rename(columns={"date": "trade_date"}).iloc[:400]


def test_an_unadjusted_split_is_flagged_with_a_hint(aapl, tmp_path):
    aapl[COLUMNS].to_csv(tmp_path / "AAPL.csv", index=False)
    result = run_data(DataRequest(source="csv", data_dir=tmp_path / "s", csv_path=tmp_path / "AAPL.csv"),
                      load_settings())
    [note] = [n for n in result.notes if n.startswith("AAPL:")]
    assert note.startswith("AAPL: 2 days moved") and "2000-06-21 -45%" in note   # the split (and a real crash)
    assert "adj_close" in note and "AAPL.csv" in note


def test_adj_close_adjusts_forward_and_clears_the_split(aapl, tmp_path):
    aapl[[*COLUMNS, "adj_close"]].rename(columns={"adj_close": "Adj Close"}).to_csv(tmp_path / "AAPL.csv", index=False)
    result = run_data(DataRequest(source="csv", data_dir=tmp_path / "s", csv_path=tmp_path / "AAPL.csv"),
                      load_settings())
    assert not any("2000-06-21" in n for n in result.notes), result.notes      # the split is adjusted away
    bars = DataStore(tmp_path / "s").read_bars("AAPL")
    np.testing.assert_allclose(bars["close_raw"], aapl["close"].to_numpy())  # raw prices kept for the backtest
    ratio = bars["close"].to_numpy() / aapl["adj_close"].to_numpy()           # forward-adjusted: the file's own
    np.testing.assert_allclose(ratio, ratio[-1], rtol=1e-9)                   # adjusted close up to one scale
    assert bars["close"].iloc[-1] == pytest.approx(bars["close_raw"].iloc[-1])


def test_an_adj_factor_column_is_taken_as_it_is(aapl, tmp_path):
    frame = aapl[COLUMNS].assign(adj_factor=np.where(aapl["trade_date"] < "2000-06-21", 1.0, 2.0))
    frame.to_csv(tmp_path / "AAPL.csv", index=False)
    result = run_data(DataRequest(source="csv", data_dir=tmp_path / "s", csv_path=tmp_path / "AAPL.csv"),
                      load_settings())
    assert not any("2000-06-21" in n for n in result.notes)
    bars = DataStore(tmp_path / "s").read_bars("AAPL")
    early = bars["trade_date"] < "2000-06-21"
    np.testing.assert_allclose(bars.loc[early, "close"], bars.loc[early, "close_raw"] / 2.0)

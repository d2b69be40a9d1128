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


def _signals(aapl, path):
    pd.DataFrame({"symbol": "AAPL", "trade_date": aapl["trade_date"].iloc[[10, 60]], "signal": [1, -1]}).to_csv(
        path, index=False)


@pytest.mark.parametrize(("market", "lot", "stamp"), [(None, 1, 0.0), ("us", 1, 0.0), ("cn", 100, 0.0005)])
def test_the_store_market_decides_the_backtest_rules(aapl, tmp_path, market, lot, stamp):
    """A US symbol is 'none' by default: no limits, no stamp duty, 1-share lots, 252 sessions a year;
    --market cn applies the A-share rules to it."""
    from heqis.backtest.run import backtest_signals

    aapl[[*COLUMNS, "adj_close"]].to_csv(tmp_path / "AAPL.csv", index=False)
    run_data(DataRequest(source="csv", data_dir=tmp_path / "s", csv_path=tmp_path / "AAPL.csv", market=market),
             load_settings())
    assert DataStore(tmp_path / "s").market() == (market or "none")
    _signals(aapl, tmp_path / "sig.csv")
    result = backtest_signals(tmp_path / "sig.csv", tmp_path / "s", out=tmp_path / "bt")
    assert result.rules["lot"] == lot and result.rules["stamp_duty_after"] == stamp
    assert result.rules["use_limits"] is (market == "cn")
    assert result.rules["periods_per_year"] == (242 if market == "cn" else 252)
    shares = round(pd.read_parquet(tmp_path / "bt" / "trades.parquet")["shares"].iloc[0])
    assert (shares % 100 == 0) is (lot == 100), shares                      # ~8,500 shares of a ~$117 stock
    again = backtest_signals(tmp_path / "sig.csv", tmp_path / "s", out=tmp_path / "bt2", rule_overrides=["lot=10"])
    assert again.rules["lot"] == 10 and again.rules["stamp_duty_after"] == stamp    # --rules on top of the market


def test_a_store_keeps_one_market_and_market_is_for_csv(aapl, tmp_path, sample_store, isolated):
    from heqis.errors import HeqisError
    from tests.test_cli import run

    aapl[COLUMNS].to_csv(tmp_path / "AAPL.csv", index=False)
    run_data(DataRequest(source="csv", data_dir=tmp_path / "s", csv_path=tmp_path / "AAPL.csv"), load_settings())
    with pytest.raises(HeqisError, match="holds symbols of market 'none', not 'cn'"):
        run_data(DataRequest(source="csv", data_dir=tmp_path / "s", csv_path=tmp_path / "AAPL.csv", market="cn"),
                 load_settings())
    assert sample_store.market() == "cn"
    proc = run("data", "--market", "us", cwd=isolated)
    message = " ".join(proc.stderr.replace("│", " ").split())         # the usage box wraps the line
    assert proc.returncode == 2 and "--market us is for --source csv" in message

"""Indicators against TA-Lib (real prices and the sample set) and KDJ against a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from bokeh_sampledata.stocks import AAPL, IBM, MSFT

from heqis.features import indicators as ind
from heqis.features.compute import feature_arrays
from heqis.features.frames import add_features

REAL = {"AAPL": AAPL, "IBM": IBM, "MSFT": MSFT}
TOL = 1e-9


def assert_matches_talib(ours: np.ndarray, ref: np.ndarray, name: str) -> None:
    """Same NaN warm-up as TA-Lib, and equal values after it (absolute and relative 1e-9)."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{name}: warm-up differs")
    ok = ~np.isnan(ref)
    assert ok.sum() > 0
    np.testing.assert_allclose(ours[ok], ref[ok], rtol=TOL, atol=TOL, err_msg=name)


def series_cases(sample_store):
    for name, data in REAL.items():
        yield name, np.asarray(data["high"], float), np.asarray(data["low"], float), np.asarray(data["close"], float)
    for code in sample_store.symbols():
        bars = sample_store.read_bars(code)
        yield code, bars["high"].to_numpy(), bars["low"].to_numpy(), bars["close"].to_numpy()


@pytest.mark.parametrize("period", [5, 10, 20, 30, 60])
def test_ma_and_ema_match_talib(period, sample_store):
    for name, _, _, close in series_cases(sample_store):
        assert_matches_talib(ind.sma(close, period), talib.SMA(close, period), f"{name} MA{period}")
        assert_matches_talib(ind.ema(close, period), talib.EMA(close, period), f"{name} EMA{period}")


def test_macd_matches_talib(sample_store):
    for name, _, _, close in series_cases(sample_store):
        ours = ind.macd(close, 12, 26, 9)
        ref = talib.MACD(close, 12, 26, 9)
        for o, r, part in zip(ours, ref, ("macd", "signal", "hist"), strict=True):
            assert_matches_talib(o, r, f"{name} {part}")


def test_macd_fast_ema_is_talibs_aligned_seed_not_the_plain_ema():
    """Guards the one non-obvious TA-Lib detail: the plain EMA12 − EMA26 differs from TA-Lib's MACD."""
    close = np.asarray(AAPL["close"], float)[:200]
    naive = talib.EMA(close, 12) - talib.EMA(close, 26)
    line, _, _ = ind.macd(close)
    assert abs(line[33] - naive[33]) > 1e-6
    np.testing.assert_allclose(line[33:], talib.MACD(close)[0][33:], rtol=TOL, atol=TOL)


def test_rsi_matches_talib(sample_store):
    for name, _, _, close in series_cases(sample_store):
        assert_matches_talib(ind.rsi(close, 14), talib.RSI(close, 14), f"{name} RSI14")


def test_rsi_flat_series_is_zero_like_talib():
    flat = np.full(40, 10.0)
    assert_matches_talib(ind.rsi(flat, 14), talib.RSI(flat, 14), "flat RSI")


def test_kdj_hand_computed():
    """RSV over 3 bars, K/D smoothed 1/3 from 50 (n=3, m1=m2=3), worked by hand."""
    high = np.array([10.0, 11.0, 12.0, 13.0, 12.0])
    low = np.array([8.0, 9.0, 10.0, 11.0, 10.0])
    close = np.array([9.0, 10.0, 11.0, 12.0, 10.0])
    k, d, j = ind.kdj(high, low, close, 3, 3, 3)
    # bar 2: HH=12, LL=8 → RSV = (11-8)/4*100 = 75; K = (2*50+75)/3 = 58.333…; D = (2*50+58.333…)/3
    # bar 3: HH=13, LL=9 → RSV = (12-9)/4*100 = 75; K = (2*58.333…+75)/3 = 63.888…
    # bar 4: HH=13, LL=10 → RSV = 0;               K = 2*63.888…/3 = 42.592…
    k2 = (100 + 75) / 3
    d2 = (100 + k2) / 3
    k3 = (2 * k2 + 75) / 3
    d3 = (2 * d2 + k3) / 3
    k4 = (2 * k3 + 0) / 3
    d4 = (2 * d3 + k4) / 3
    assert np.isnan(k[:2]).all() and np.isnan(d[:2]).all()
    np.testing.assert_allclose(k[2:], [k2, k3, k4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(d[2:], [d2, d3, d4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(j[2:], 3 * k[2:] - 2 * d[2:], rtol=0, atol=1e-12)
    assert k2 == pytest.approx(58.3333333333, abs=1e-9)
    assert k4 == pytest.approx(42.5925925926, abs=1e-9)


def test_kdj_flat_range_is_neutral():
    h = np.full(12, 5.0)
    k, _d, j = ind.kdj(h, h, h)
    np.testing.assert_allclose(k[8:], 50.0)
    np.testing.assert_allclose(j[8:], 50.0)


def test_cached_features_equal_the_model_inputs(sample_store):
    """The store's feature cache holds exactly what model_inputs computes from the bars (one code path)."""
    from heqis.features.columns import MODEL_INPUTS
    from heqis.features.windows import research_inputs

    bars = sample_store.read_bars("600519.SH")
    cache = sample_store.read_features("600519.SH")
    inputs = research_inputs(bars)
    again = add_features(bars)
    for col in ("ma20", "ema60", "macd_hist", "k", "rsi14", "ret1", "log_vol"):
        np.testing.assert_array_equal(cache[col].to_numpy(), again[col].to_numpy(), err_msg=col)
        np.testing.assert_array_equal(cache[col].to_numpy(), inputs[:, MODEL_INPUTS.index(col)], err_msg=col)


def test_feature_arrays_use_adjusted_close_returns():
    close = np.array([10.0, 11.0, 9.9])
    feats = feature_arrays(close, close, close, np.array([100.0, 0.0, 50.0]), np.array([1.0, np.nan, 2.0]))
    np.testing.assert_allclose(feats["ret1"][1:], [0.1, -0.1])
    np.testing.assert_allclose(feats["log_vol"], np.log1p([100.0, 0.0, 50.0]))
    assert np.isnan(feats["turnover"][1])


def test_inputs_shorter_than_the_warm_up_give_all_nan_like_talib():
    short = np.arange(1.0, 8.0)
    for ours, ref in ((ind.sma(short, 10), talib.SMA(short, 10)), (ind.ema(short, 10), talib.EMA(short, 10)),
                      (ind.rsi(short, 14), talib.RSI(short, 14)), (ind.macd(short)[0], talib.MACD(short)[0])):
        assert np.isnan(ours).all() and np.isnan(ref).all()

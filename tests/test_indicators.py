"""Indicators against TA-Lib (real prices and the sample set) and KDJ against a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
import talib
from bokeh_sampledata.stocks import AAPL, IBM, MSFT

from heqis.features import indicators as ind
from heqis.features.columns import MODEL_INPUTS
from heqis.features.frames import add_features
from heqis.features.inputs import model_inputs
from tests.reference_inputs import reference_model_inputs

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


def col(x: np.ndarray, name: str) -> np.ndarray:
    return x[:, MODEL_INPUTS.index(name)]


def test_model_inputs_use_adjusted_close_returns_log_volume_and_zero_for_unknown_turnover():
    close = np.array([10.0, 11.0, 9.9])
    factor = np.array([1.0, 2.0, 2.0])     # a 1:1 bonus issue before bar 1: raw 10 is 5 adjusted
    bars = np.stack([close, close, close, close * factor, [100.0, 0.0, 50.0], [1.0, np.nan, 2.0], factor], 1)
    x = model_inputs(bars)
    np.testing.assert_allclose(col(x, "close"), [5.0, 22.0, 19.8], rtol=1e-6)   # float32 in, like the wire
    np.testing.assert_allclose(col(x, "ret1")[1:], [22.0 / 5.0 - 1, -0.1], rtol=1e-6)
    np.testing.assert_allclose(col(x, "log_vol"), np.log1p([100.0, 0.0, 50.0]))
    np.testing.assert_array_equal(col(x, "turnover"), [1.0, 0.0, 2.0])
    assert np.isnan(col(x, "ret1")[0]) and np.isnan(col(x, "ma5")).all()


def bar_cases(seed: int = 7):
    """Random walks with dividends, unknown factors and turnover, inf turnover; lengths around the warm-ups."""
    rng = np.random.default_rng(seed)
    for n in (0, 1, 8, 9, 30, 61, 560, 2500):
        close = 20.0 * np.exp(np.cumsum(0.02 * rng.standard_normal(n)))
        factor = np.cumprod(np.where(rng.uniform(size=n) < 0.02, 1.1, 1.0))
        factor[rng.uniform(size=n) < 0.05] = np.nan
        turnover = rng.uniform(0.1, 5.0, n)
        turnover[rng.uniform(size=n) < 0.1] = np.nan
        if n > 3:
            turnover[3] = np.inf
        bars = np.stack([close * 0.99, close * 1.02, close * 0.97, close, rng.uniform(0, 1e6, n), turnover,
                         factor], 1)
        yield n, bars
        flat = bars.copy()
        flat[:, 6] = np.nan if n % 2 else 3.0          # no usable factor at all / no corporate action
        yield n, flat


@pytest.mark.parametrize("last_n", [None, 0, 1, 60, 100_000])
def test_model_inputs_equal_the_per_column_reference(last_n):
    """The one compiled call gives what every indicator called on its own gives (last-bit differences:
    fused multiply-adds placed differently once the indicators are inlined; the MAs restart their sums)."""
    for n, bars in bar_cases():
        ours, ref = model_inputs(bars, last_n), reference_model_inputs(bars, last_n)
        assert ours.shape == ref.shape == (n if last_n is None else min(last_n, n), len(MODEL_INPUTS))
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"n={n}: NaN warm-up differs")
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12, err_msg=f"n={n}, last_n={last_n}")


def test_the_last_rows_equal_the_same_rows_of_the_whole_history():
    for _n, bars in bar_cases(seed=11):
        whole = model_inputs(bars)
        for last_n in (1, 9, 60):
            tail = model_inputs(bars, last_n)
            np.testing.assert_allclose(tail, whole[len(whole) - len(tail):], rtol=1e-13, atol=1e-13)


def test_model_inputs_refuse_bars_of_the_wrong_shape():
    from heqis.errors import HeqisError

    with pytest.raises(HeqisError, match=r"not \[n, 7\]"):
        model_inputs(np.zeros((10, 6)))


def test_kdj_window_extremes_keep_the_nan_semantics_of_comparisons():
    """max/min keep the running value unless the new one compares greater/less, as the ifs they replaced."""
    h = np.array([5.0, np.nan, 7.0, 6.0])
    low = np.array([1.0, 2.0, np.nan, 1.5])
    c = np.array([3.0, 3.0, 3.0, 3.0])
    k_ref = []
    k_prev = 50.0
    for i in range(1, 4):                       # the loop with ifs, window 2, in plain Python
        hh, ll = h[i], low[i]
        if h[i - 1] > hh:
            hh = h[i - 1]
        if low[i - 1] < ll:
            ll = low[i - 1]
        span = hh - ll
        rsv = (c[i] - ll) / span * 100.0 if span > 0 else 50.0
        k_prev = (2 * k_prev + rsv) / 3
        k_ref.append(k_prev)
    np.testing.assert_array_equal(ind.kdj(h, low, c, 2, 3, 3)[0][1:], k_ref)


def test_inputs_shorter_than_the_warm_up_give_all_nan_like_talib():
    short = np.arange(1.0, 8.0)
    for ours, ref in ((ind.sma(short, 10), talib.SMA(short, 10)), (ind.ema(short, 10), talib.EMA(short, 10)),
                      (ind.rsi(short, 14), talib.RSI(short, 14)), (ind.macd(short)[0], talib.MACD(short)[0])):
        assert np.isnan(ours).all() and np.isnan(ref).all()


def test_forward_adjustment_of_the_store_equals_the_reference():
    from heqis.features.adjust import filled_factors, forward_adjust_prices
    from tests.reference_inputs import reference_filled_factors, reference_forward_adjust

    for _n, bars in bar_cases(seed=5):
        f = bars[:, 6].copy()
        if len(f) > 4:
            f[2], f[4] = 0.0, np.inf
        np.testing.assert_array_equal(filled_factors(f), reference_filled_factors(f))
        np.testing.assert_array_equal(forward_adjust_prices(bars[:, :4], f), reference_forward_adjust(bars[:, :4], f))

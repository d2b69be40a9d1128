"""heqis evaluate: Diebold–Mariano against a reference, IC with known answers, a planted forecast found
and pure noise not, the JSON a script reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

import heqis.evaluate.run as ev
from heqis.backtest.signals import Predictions
from heqis.stats import (
    daily_ic,
    daily_means,
    diebold_mariano,
    direction_scores,
    newey_west_lag,
    newey_west_variance,
)
from tests.test_cli import assert_one_line_error, run

METRIC_KEYS = {"n", "mse", "mse_ratio_zero", "dm_t", "dm_p", "acc", "balanced_acc", "ic_mean", "ic_t",
               "rank_ic_mean", "rank_ic_t"}


def ar1(n: int, rho: float, seed: int, mean: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    out[0] = rng.normal()
    for t in range(1, n):
        out[t] = rho * out[t - 1] + rng.normal()
    return out + mean


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diebold_mariano_equals_statsmodels_hac_t_of_the_mean(seed):
    """DM = the HAC (Bartlett, lag ⌊T^(1/3)⌋, no small-sample correction) t-statistic of a regression
    of d_t on a constant — statsmodels computes it independently."""
    import statsmodels.api as sm

    d = ar1(500, 0.4, seed, mean=0.15)
    lag = newey_west_lag(len(d))
    fit = sm.OLS(d, np.ones(len(d))).fit(cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False})
    stat, p = diebold_mariano(d)
    assert stat == pytest.approx(float(fit.tvalues[0]), rel=1e-10)
    assert p == pytest.approx(float(fit.pvalues[0]), rel=1e-8)
    assert newey_west_variance(d, 0) == pytest.approx(np.var(d), rel=1e-12)   # lag 0: the plain variance


def test_the_lag_is_an_exact_integer_cube_root():
    assert [newey_west_lag(t) for t in (1, 7, 8, 124, 125, 999, 1000, 1001)] == [1, 1, 2, 4, 5, 9, 10, 10]


def test_dm_is_undefined_when_both_forecasts_lose_the_same():
    assert diebold_mariano(np.zeros(50)) == (None, None)
    assert diebold_mariano(np.ones(2)) == (None, None)


def test_daily_ic_recovers_a_planted_correlation_and_not_noise():
    rng = np.random.default_rng(7)
    days, symbols, rho = 250, 60, 0.3
    real = rng.normal(size=(days, symbols))
    planted = rho * real + np.sqrt(1 - rho ** 2) * rng.normal(size=(days, symbols))
    noise = rng.normal(size=(days, symbols))
    day = np.repeat(np.arange(days), symbols)
    ic, rank_ic = daily_ic(planted.ravel(), real.ravel(), day)
    assert ic.days == days and abs(ic.mean - rho) < 0.02 and ic.t > 30
    reference = np.mean([spearmanr(planted[t], real[t]).statistic for t in range(days)])
    assert rank_ic.mean == pytest.approx(reference, rel=1e-12)
    ic0, rank0 = daily_ic(noise.ravel(), real.ravel(), day)
    assert abs(ic0.t) < 3 and abs(rank0.t) < 3


def test_days_with_fewer_than_five_symbols_have_no_ic():
    day = np.repeat([0, 1], [4, 6])
    x = np.arange(10.0)
    ic, _ = daily_ic(x, x * 2, day)
    assert ic.days == 1 and ic.mean == pytest.approx(1.0)


def test_direction_scores_by_hand():
    true = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 2, 1, 2, 2, 0])
    acc, balanced, share = direction_scores(pred, true)
    assert acc == pytest.approx(4 / 6)
    assert balanced == pytest.approx((1 / 2 + 1 + 2 / 3) / 3)
    assert share == pytest.approx({"down": 2 / 6, "flat": 1 / 6, "up": 3 / 6})
    acc, balanced, share = direction_scores(np.full(6, 2), true)          # a head that always says "up"
    assert balanced == pytest.approx(1 / 3) and share["up"] == 1.0


def test_daily_means():
    np.testing.assert_allclose(daily_means(np.array([1.0, 3.0, 10.0]), np.array([0, 0, 1]), 2), [2.0, 10.0])


@pytest.fixture
def planted_forecasts(monkeypatch):
    """G1 knows tomorrow's return (a planted signal), the other generators are pure noise: the
    evaluation pipeline end to end, with answers known in advance."""
    rng = np.random.default_rng(3)

    def fake_needed(scalers, bars, dates, values=None):
        return bars, np.asarray(dates, dtype="datetime64[ns]")

    def fake_predict(inference, scalers, needed):
        out = []
        for bars, dates in needed:
            all_dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
            close = bars["close"].to_numpy(dtype=np.float64)
            pos = np.searchsorted(all_dates, dates)
            nxt = close[pos + 1] / close[pos] - 1.0
            preds = {}
            for gid in scalers:
                reg = nxt if gid == "G1" else rng.normal(0, 0.02, len(dates))
                logits = np.stack([-reg, np.zeros_like(reg), reg], axis=1) * 1e3
                preds[gid] = Predictions(dates, reg, logits)
            out.append(preds)
        return out

    monkeypatch.setattr(ev, "needed_inputs", fake_needed)
    monkeypatch.setattr(ev, "predict_many", fake_predict)
    monkeypatch.setattr(ev, "Inference", lambda models, backend: None)


def test_a_planted_forecast_is_found_and_noise_is_not(tiny_run, sample_store, planted_forecasts):
    result = ev.evaluate_run(tiny_run, "all", sample_store.root)
    assert set(result.segments) == {"val", "select", "test"}
    for body in result.segments.values():
        models = body["models"]
        assert set(models) == {"G1", "G2", "G3", "G4", "ensemble", "zero", "train_mean", "last_value", "majority"}
        g1 = models["G1"]
        assert g1["mse"] == 0.0 and g1["mse_ratio_zero"] == 0.0
        assert g1["dm_t"] < -5 and g1["dm_p"] < 1e-6                  # significantly better than zero
        assert g1["ic_mean"] == pytest.approx(1.0) and g1["rank_ic_mean"] == pytest.approx(1.0)
        assert g1["acc"] > 0.8 and g1["balanced_acc"] > 0.6
        bonferroni = 0.01 / 3
        for gid in ("G2", "G3", "G4"):
            noise = models[gid]
            assert noise["mse_ratio_zero"] > 1                         # noise only adds squared error
            assert abs(noise["ic_t"]) < 4 and noise["dm_t"] > 0         # … and is not better than zero
            assert not (noise["dm_p"] < bonferroni and noise["dm_t"] < 0)
        zero = models["zero"]
        assert zero["mse_ratio_zero"] == 1.0 and zero["dm_t"] is None and zero["ic_mean"] is None
        assert models["majority"]["mse"] is None and max(models["majority"]["class_share"].values()) == 1.0
        assert len({m["n"] for m in models.values()}) == 1 == len({body["samples"]})
        assert body["days"] > 100 and body["symbols"] == 6


def test_evaluate_json_is_the_documented_shape_and_defaults_to_val(tiny_run, sample_store, isolated):
    proc = run("evaluate", str(tiny_run), "-d", str(sample_store.root), "--json", cwd=isolated)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["run"] == str(tiny_run) and list(doc["segments"]) == ["val"]     # test only when asked
    models = doc["segments"]["val"]["models"]
    for name, row in models.items():
        assert set(row) >= METRIC_KEYS, name
    last = models["last_value"]
    assert last["mse_ratio_zero"] > 1 and last["ic_mean"] is not None
    text = run("evaluate", str(tiny_run), "-d", str(sample_store.root), "--segment", "test", cwd=isolated)
    assert text.returncode == 0 and "HEQIS evaluate · test" in text.stdout and "ensemble" in text.stdout


def test_evaluate_of_no_run_is_one_line(isolated):
    assert_one_line_error(run("evaluate", str(isolated / "nope"), cwd=isolated), 1, "nope")

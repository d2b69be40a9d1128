"""Known-answer research tests: the research chain (``heqis data -s synthetic`` → ``train`` → ``evaluate``
→ ``backtest``) finds a planted signal of known strength and finds nothing in pure noise.

Two panels of 60 symbols × 4 years, the same seed — the same codes, market path and calendar — differ
only in ``--planted-ic``: 0.3 (every stock's own shock an AR(1), so ``ret1`` at T predicts the T→T+1
return at a daily rank IC of 0.3, ``heqis.data.sources.synthetic``) and 0 (independent shocks). One
GRU generator (G1) of the tiny preset is trained on each, 6 epochs on 20,000 train windows (20–30 s
on a free core; the whole module ~60–90 s); its test segment is ~145 days × 60 symbols, where an IC's
t is about IC·√days·(a little less than √symbols). 0.3 rather than a realistic 0.05: at 0.1–0.2 this
small a training learns the signal (IC) but the long-or-flat strategy does not reliably clear its
costs and the time it spends out of the market. ``--no-cross``: with a single generator the legacy
game's elite cross-finetuning has no other elite to learn from (it crashes at e6b2569).

What is asserted, and where the checks are shared:

* ``oracle_ic``: the oracle's daily IC measured from the stored bars themselves (the planted predictor
  ``ret1`` against the next day's return, on the run's test days). The model's test IC must reach half
  of it with t > 3.
* ``significant_models``: evaluate's models whose skill is significant at 1% after Bonferroni over the
  models that have a test. On noise: none. On the planted panel: the generator, the ensemble and the
  oracle predictor (``last_value``) — the same check, so the noise test could fail.
* ``excess_over_buy_hold``: the equal-weight portfolio of the strategies the backtest selected (per
  symbol, on ``select``) against the equal-weight buy-and-hold of the same symbols, on a segment: the
  excess return, and the portfolio's alpha over buy-and-hold (intercept of its daily return on the
  buy-and-hold portfolio's, Newey–West t). The alpha, not the raw excess, is what is tested: a
  long-or-flat strategy holds the market ~40% of the time, so its raw excess over buy-and-hold is
  mostly the market's move times the time out of it (-0.19 on this noise panel, +0.01 on seed 3's),
  while the alpha is what it earns beyond its exposure. Planted: the portfolio beats buy-and-hold and
  its alpha has t > 3. Noise: the test alpha of what was selected is not significantly positive
  (one-sided p ≥ 1%) — no excess is reported that the strategies do not have.
* the backtest's selection gate (``heqis.backtest.selection``): the best of each symbol's candidates on
  ``select`` shows an alpha there by luck (t 2–3.4 on a noise panel before the gate), so a candidate
  is chosen only when its portfolio over all symbols beats buy-and-hold on select at 1% after
  Bonferroni. Noise: no candidate passes and every symbol holds — nothing is selected for excess it
  does not have. Planted: G1 passes (the same check, so the noise test could fail).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from heqis.backtest.selection import alpha_over, equal_weight_line
from heqis.cli import app
from heqis.data.store import DataStore

SYMBOLS, YEARS, SEED = 60, 4, 1
PLANTED_IC = 0.3
TRAIN = ["--generators", "G1", "--no-cross", "--epochs", "6", "--max-train-windows", "20000", "--device", "cpu"]
ALPHA = 0.01


@dataclass
class Study:
    """One panel taken through the research chain (read-only for the tests)."""

    store: DataStore
    run: Path
    segments: dict[str, tuple[pd.Timestamp, pd.Timestamp]]
    evaluation: dict            # ``heqis evaluate RUN --segment test --json``
    backtest: dict              # ``heqis backtest RUN --json``

    @property
    def test_models(self) -> dict[str, dict]:
        return self.evaluation["segments"]["test"]["models"]


def _cli(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _study(base: Path, planted_ic: float) -> Study:
    import torch

    torch.set_num_threads(1)
    store = base / "store"
    _cli("data", "-s", "synthetic", "--symbols", str(SYMBOLS), "--years", str(YEARS), "--planted-ic",
         str(planted_ic), "--seed", str(SEED), "--workers", "1", "-d", str(store))
    _cli("train", "-d", str(store), "-o", str(base / "run"), *TRAIN)
    evaluation = _cli("evaluate", str(base / "run"), "--segment", "test")
    backtest = _cli("backtest", str(base / "run"), "--workers", "1")
    manifest = json.loads((base / "run" / "manifest.json").read_text())
    segments = {k: (pd.Timestamp(a), pd.Timestamp(b)) for k, (a, b) in manifest["segments"].items()}
    return Study(DataStore(store), base / "run", segments, evaluation, backtest)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Study:
    return _study(tmp_path_factory.mktemp("planted"), PLANTED_IC)


@pytest.fixture(scope="module")
def noise(tmp_path_factory) -> Study:
    return _study(tmp_path_factory.mktemp("noise"), 0.0)


# -- the checks ------------------------------------------------------------------------------------
def oracle_ic(study: Study, segment: str = "test") -> tuple[float, float, int]:
    """(mean, t, days) of the daily cross-sectional Spearman IC of the planted predictor — each stock's
    ``ret1`` at T (adjusted close T / T-1 - 1) — against its T→T+1 return, over the days T+1 of
    ``segment`` (evaluate assigns a sample to the day its target is known)."""
    uni = study.store.read_universe()
    stocks = uni.loc[uni["kind"] == "stock", "ts_code"]
    close = pd.DataFrame({c: study.store.read_bars(c).set_index("trade_date")["close"] for c in stocks}).sort_index()
    px = close.to_numpy(dtype=np.float64)
    past = px[1:-1] / px[:-2] - 1.0                         # ret1 at T, for T = 1 .. n-2
    nxt = px[2:] / px[1:-1] - 1.0                           # T -> T+1, known on day T+1
    known = close.index[2:]
    lo, hi = study.segments[segment]
    keep = np.asarray((known >= lo) & (known <= hi))
    past, nxt = past[keep], nxt[keep]
    ok = np.isfinite(past) & np.isfinite(nxt)
    a = pd.DataFrame(np.where(ok, past, np.nan)).rank(axis=1).to_numpy()
    b = pd.DataFrame(np.where(ok, nxt, np.nan)).rank(axis=1).to_numpy()
    a, b = a - np.nanmean(a, axis=1, keepdims=True), b - np.nanmean(b, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = np.nansum(a * b, axis=1) / np.sqrt(np.nansum(a * a, axis=1) * np.nansum(b * b, axis=1))
    daily = ic[(ok.sum(axis=1) >= 20) & np.isfinite(ic)]
    return float(daily.mean()), float(daily.mean() / daily.std(ddof=1) * math.sqrt(len(daily))), len(daily)


def skill_p_values(row: dict) -> dict[str, float]:
    """The p-values of one evaluate row's claims of skill: Diebold–Mariano one-sided (smaller squared
    errors than a zero forecast; a model significantly *worse* than zero claims nothing), IC and rank IC
    two-sided (a reliably negative IC on noise would be a finding too), t with days - 1 degrees of freedom."""
    out = {}
    if row["dm_t"] is not None:
        out["dm"] = float(sps.norm.cdf(row["dm_t"]))
    for key in ("ic", "rank_ic"):
        if row[f"{key}_t"] is not None and row["ic_days"] > 2:
            out[key] = float(2 * sps.t.sf(abs(row[f"{key}_t"]), row["ic_days"] - 1))
    return out


def significant_models(models: dict[str, dict], alpha: float = ALPHA) -> dict[str, dict[str, float]]:
    """Models with a p-value under ``alpha`` / (number of models with any test): Bonferroni over models."""
    tested = {name: p for name, row in models.items() if (p := skill_p_values(row))}
    cut = alpha / len(tested)
    return {name: {k: v for k, v in p.items() if v < cut} for name, p in tested.items()
            if min(p.values()) < cut}


def excess_over_buy_hold(study: Study, segment: str) -> dict[str, float]:
    """The selected strategies' equal-weight portfolio against the same symbols' equal-weight buy-and-hold
    (each symbol's equity normalised to 1 at the segment's start, as ``portfolio_line``): their total
    returns, the excess, and the daily alpha over buy-and-hold with its Newey–West t and one-sided p."""
    eq = pd.read_parquet(Path(study.backtest["out_dir"]) / "equity.parquet")
    eq = eq[eq["segment"] == segment]

    def line(col: str) -> pd.Series:
        return equal_weight_line([(g["trade_date"].to_numpy(), g[col].to_numpy()) for _, g in eq.groupby("symbol")])

    return alpha_over(line("equity"), line("buy_hold"))


def _report(name: str, study: Study) -> None:
    """The numbers behind the asserts (pytest -s shows them; thresholds want headroom)."""
    mean, t, days = oracle_ic(study)
    print(f"\n{name}: oracle test IC {mean:.4f} (t {t:.1f}, {days} days)")
    for model, row in study.test_models.items():
        if p := skill_p_values(row):
            print(f"  {model:10s} ic {row['ic_mean']} rank_ic {row['rank_ic_mean']} ic_t {row['ic_t']} "
                  f"dm_t {row['dm_t']} p {p}")
    for seg in ("select", "test"):
        print(f"  backtest {seg}: {excess_over_buy_hold(study, seg)}")
    print(f"  {study.backtest['selection']['summary']}")


# -- the tests -------------------------------------------------------------------------------------
def test_the_planted_signal_is_recovered_out_of_sample(planted):
    _report("planted", planted)
    oracle, oracle_t, days = oracle_ic(planted)
    assert days > 120 and oracle_t > 10                    # a known answer worth finding on this panel
    assert abs(oracle - PLANTED_IC) < 0.06                 # what was planted is what the data holds
    assert planted.test_models["last_value"]["rank_ic_mean"] == pytest.approx(oracle, abs=0.01)
    for model in ("G1", "ensemble"):
        row = planted.test_models[model]
        assert row["rank_ic_mean"] >= 0.5 * oracle, (model, row["rank_ic_mean"], oracle)
        assert row["ic_mean"] >= 0.5 * oracle, (model, row["ic_mean"], oracle)
        assert row["ic_t"] > 3 and row["rank_ic_t"] > 3, (model, row["ic_t"], row["rank_ic_t"])


def test_the_planted_signal_beats_buy_and_hold_in_the_backtest(planted):
    test = excess_over_buy_hold(planted, "test")
    reported = planted.backtest["portfolio"]["portfolio_return"]
    assert test["return"] == pytest.approx(reported, abs=1e-9)       # the backtest's own portfolio
    best = pd.DataFrame(planted.backtest["rows"])
    assert len(best) >= 55 and set(best["generator"]) == {"G1"}
    assert "G1/cls" in planted.backtest["selection"]["passed"] or "G1/reg" in planted.backtest["selection"]["passed"]
    assert test["excess"] > 0, test                                  # the portfolio beats buy-and-hold
    assert test["alpha_t"] > 3, test                                 # by more than its exposure explains


def test_pure_noise_finds_no_model_and_selects_no_excess(noise):
    _report("noise", noise)
    _, oracle_t, _ = oracle_ic(noise)
    assert abs(oracle_t) < sps.norm.isf(ALPHA / 2)                  # the planted predictor has nothing here
    assert significant_models(noise.test_models) == {}
    test = excess_over_buy_hold(noise, "test")
    assert test["alpha_p"] >= ALPHA, test
    gate = noise.backtest["selection"]
    assert gate["level"] == ALPHA and gate["passed"] == [], gate           # no candidate earned its place …
    assert {(r["generator"], r["mode"]) for r in noise.backtest["rows"]} == {("buy_hold", "hold")}   # … all hold
    assert min(v["alpha_p"] for v in gate["candidates"].values()) >= ALPHA / len(gate["candidates"])


def test_the_noise_checks_flag_the_planted_panel(planted):
    """The noise test's checks are not blind: on the planted panel they flag the signal."""
    flagged = significant_models(planted.test_models)
    assert {"G1", "ensemble", "last_value"} <= set(flagged), flagged
    assert all("ic" in flagged[m] and "rank_ic" in flagged[m] for m in ("G1", "ensemble", "last_value"))
    assert excess_over_buy_hold(planted, "test")["alpha_p"] < ALPHA

"""Backtests of runs and signal files: selection without look-ahead, outputs, bad input, look-ahead check."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

import heqis.backtest.run as bt_run
from heqis.backtest.lookahead import check_lookahead
from heqis.backtest.rules import MarketRules
from heqis.backtest.run import backtest_run, backtest_signals
from heqis.backtest.signals import Predictions
from heqis.errors import HeqisError
from heqis.features.frames import add_features
from tests.test_cli import assert_one_line_error, run


def oracle(bars: pd.DataFrame, good: tuple[pd.Timestamp, pd.Timestamp]) -> Predictions:
    """Predicts tomorrow perfectly inside ``good`` and exactly wrong outside it."""
    close = bars["close"].to_numpy()
    nxt = np.append(close[1:] / close[:-1] - 1, 0.0)
    dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
    inside = (dates >= np.datetime64(good[0])) & (dates <= np.datetime64(good[1]))
    pred = np.where(inside, nxt, -nxt)
    logits = np.stack([-pred, np.zeros_like(pred), pred], axis=1) * 100
    return Predictions(dates, pred, logits)


def test_a_generator_best_only_on_test_is_not_chosen(tiny_run, sample_store, monkeypatch, tmp_path):
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    seg = {k: (pd.Timestamp(a), pd.Timestamp(b)) for k, (a, b) in manifest["segments"].items()}
    fakes = {"G1": seg["select"], "G2": seg["test"]}   # G1 shines on select, G2 only on test
    loaded = {}

    def fake_load(path):
        loaded[path.stem] = True
        return path.stem          # the "model" is its generator id; predict below maps it to an oracle

    monkeypatch.setattr("heqis.models.checkpoint.load_generator_file", fake_load)
    monkeypatch.setattr(bt_run, "Inference", lambda models, backend: None)
    monkeypatch.setattr(bt_run, "needed_inputs", lambda scalers, bars, dates: bars)
    monkeypatch.setattr(bt_run, "predict_many", lambda inference, scalers, needed: [
        {gid: oracle(bars, fakes.get(gid, (pd.Timestamp(0), pd.Timestamp(0)))) for gid in scalers}
        for bars in needed])
    result = backtest_run(tiny_run, sample_store.root, MarketRules(slippage_bps=0), out=tmp_path / "bt")
    best = pd.read_csv(tmp_path / "bt" / "best_metrics.csv")
    assert set(best["generator"]) == {"G1"}, best[["symbol", "generator", "select_sharpe", "sharpe"]]
    cands = pd.read_csv(tmp_path / "bt" / "candidates.csv")
    g2_test = cands[(cands["generator"] == "G2") & (cands["segment"] == "test")]
    g1_test = cands[(cands["generator"] == "G1") & (cands["segment"] == "test")]
    assert g2_test["total_return"].mean() > 0 > g1_test["total_return"].mean()   # G2 really was better on test
    assert len(result.rows) == 6 and "000300.SH" not in set(best["symbol"])      # the index is the benchmark


def test_no_candidate_is_chosen_for_excess_it_does_not_have(tiny_run, sample_store, monkeypatch, tmp_path):
    """Random forecasts: the best of each symbol's eight candidates on select still looks better than
    holding, but over all symbols none beats buy-and-hold, so every symbol holds; --no-gate takes the
    lucky best (as the backtest did before the gate)."""
    rng = np.random.default_rng(7)

    def noise(bars):
        dates = bars["trade_date"].to_numpy(dtype="datetime64[ns]")
        pred = rng.normal(0, 0.01, len(dates))
        return Predictions(dates, pred, np.stack([-pred, np.zeros_like(pred), pred], axis=1) * 100)

    monkeypatch.setattr("heqis.models.checkpoint.load_generator_file", lambda path: path.stem)
    monkeypatch.setattr(bt_run, "Inference", lambda models, backend: None)
    monkeypatch.setattr(bt_run, "needed_inputs", lambda scalers, bars, dates: bars)
    monkeypatch.setattr(bt_run, "predict_many", lambda inference, scalers, needed: [
        {gid: noise(bars) for gid in scalers} for bars in needed])
    gated = backtest_run(tiny_run, sample_store.root, out=tmp_path / "gated")
    assert gated.selection["passed"] == [] and "every symbol holds" in gated.selection["summary"]
    assert len(gated.selection["candidates"]) == 8
    best = pd.read_csv(tmp_path / "gated" / "best_metrics.csv")
    assert set(zip(best["generator"], best["mode"], strict=True)) == {("buy_hold", "hold")}
    assert np.allclose(best["total_return"], best["buy_hold_return"]) and (best["excess_return"] == 0).all()
    equity = pd.read_parquet(tmp_path / "gated" / "equity.parquet")
    assert np.array_equal(equity["equity"], equity["buy_hold"])
    rng = np.random.default_rng(7)                                        # the same forecasts again
    free = backtest_run(tiny_run, sample_store.root, out=tmp_path / "free", gate=None)
    assert free.selection["level"] is None and all(r["generator"] in {"G1", "G2", "G3", "G4"} for r in free.rows)
    assert np.mean([r["select_sharpe"] for r in free.rows]) > np.mean([r["select_sharpe"] for r in gated.rows])


def test_the_gate_measures_alpha_over_buy_and_hold():
    from heqis.backtest.selection import alpha_over, equal_weight_line

    days = pd.bdate_range("2024-01-01", periods=250)
    hold = pd.Series(np.cumprod(1 + np.random.default_rng(1).normal(0.0005, 0.01, 250)), index=days)
    same = alpha_over(hold, hold)
    assert same["alpha_t"] == 0 and same["alpha_p"] == 0.5 and same["excess"] == 0
    half = alpha_over((1 + 0.5 * hold.pct_change().fillna(0)).cumprod(), hold)   # half in the market: no alpha
    assert half["alpha_t"] == 0 and half["beta"] == pytest.approx(0.5)
    extra = 0.001 + np.random.default_rng(2).normal(0, 0.001, 249)              # +0.1% a day on top, t ≈ 16
    edge = alpha_over(pd.Series(np.cumprod(np.r_[1, 1 + hold.pct_change().dropna() + extra]), index=days), hold)
    assert edge["alpha_t"] > 10 and edge["alpha_p"] < 1e-9
    line = equal_weight_line([(days.to_numpy(), 2 * hold.to_numpy()), (days[:100].to_numpy(), np.ones(100))])
    assert line.iloc[-1] == pytest.approx((hold.iloc[-1] / hold.iloc[0] + 1) / 2)   # normalised, carried


def test_backtest_writes_every_output(tiny_run, sample_store, tmp_path):
    result = backtest_run(tiny_run, sample_store.root, out=tmp_path / "bt")
    out = tmp_path / "bt"
    best = pd.read_csv(out / "best_metrics.csv")
    assert list(best.columns[:3]) == ["symbol", "generator", "mode"]
    assert {"total_return", "sharpe", "max_drawdown", "calmar", "win_rate", "profit_loss_ratio", "trades",
            "exposure", "worst_trade", "excess_return", "buy_blocked_limit", "select_sharpe"} <= set(best.columns)
    trades = pd.read_parquet(out / "trades.parquet")
    assert set(trades["segment"]) <= {"select", "test"}
    equity = pd.read_parquet(out / "equity.parquet")
    test_days = equity[(equity["segment"] == "test") & (equity["symbol"] == "600519.SH")]
    seg = json.loads((tiny_run / "manifest.json").read_text())["segments"]["test"]
    assert str(test_days["trade_date"].min().date()) >= seg[0] and str(test_days["trade_date"].max().date()) <= seg[1]
    portfolio = pd.read_parquet(out / "portfolio.parquet")
    assert portfolio["portfolio"].iloc[0] == pytest.approx(1.0) and portfolio["benchmark"].notna().all()
    assert "benchmark_return" in result.portfolio
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rules"]["stamp_duty_after"] == 0.0005


def write_signals(path, rows):
    pd.DataFrame(rows, columns=["symbol", "trade_date", "signal"]).to_csv(path, index=False)
    return path


def test_signal_file_backtest(sample_store, tmp_path):
    bars = sample_store.read_bars("600519.SH")
    fast, slow = bars["close"].rolling(5).mean(), bars["close"].rolling(20).mean()
    sig = np.where(fast > slow, 1, -1)
    rows = list(zip(["600519.SH"] * len(bars), bars["trade_date"].dt.strftime("%Y-%m-%d"), sig, strict=True))[20:]
    path = write_signals(tmp_path / "sig.csv", rows)
    result = backtest_signals(path, sample_store.root, out=tmp_path / "bt")
    row = result.rows[0]
    assert row["symbol"] == "600519.SH" and row["trades"] > 20
    assert (tmp_path / "bt" / "best_metrics.csv").exists()


def test_a_buy_into_a_limit_up_open_waits_on_the_sample_data(sample_store, tmp_path):
    bars = sample_store.read_bars("600519.SH")
    at_limit = np.flatnonzero(bars["open_raw"].to_numpy() >= bars["up_limit"].to_numpy() - 1e-6)
    i = int(at_limit[at_limit > 0][0])                 # the first day that opens at limit-up
    day_before = bars["trade_date"].iloc[i - 1].strftime("%Y-%m-%d")
    path = write_signals(tmp_path / "sig.csv", [("600519.SH", day_before, 1)])
    result = backtest_signals(path, sample_store.root, out=tmp_path / "bt")
    assert result.rows[0]["buy_blocked_limit"] >= 1
    trades = pd.read_parquet(tmp_path / "bt" / "trades.parquet")
    assert trades["entry_date"].iloc[0] > bars["trade_date"].iloc[i]


@pytest.mark.parametrize(("rows", "message"), [
    ([("600519.SH", "2024-01-02", 1), ("999999.SH", "2024-01-03", 1)], r"row 3: symbol 999999.SH is not in"),
    ([("600519.SH", "2010-01-04", 1)], r"row 2: 600519.SH has no data on 2010-01-04"),
    ([("600519.SH", "2024-01-02", 2)], r"row 2: signal '2' is not -1, 0 or 1"),
    ([("600519.SH", "2024-01-02", 1), ("600519.SH", "2024-01-02", -1)], r"row 3: duplicate signal"),
    ([("600519.SH", "yesterday", 1)], r"row 2: 'yesterday' is not a date"),
])
def test_bad_signal_files_get_clear_errors(sample_store, tmp_path, rows, message):
    with pytest.raises(HeqisError, match=message):
        backtest_signals(write_signals(tmp_path / "sig.csv", rows), sample_store.root, out=tmp_path / "bt")
    assert not (tmp_path / "bt").exists()


def test_lookahead_check_passes_the_shipped_features(tiny_run, sample_store):
    report = check_lookahead(tiny_run, sample_store.root, points=3, symbols=["600519.SH"])
    assert report.cuts == 3 and report.features_checked > 0 and report.signals_checked == 12
    assert report.leaks == []


def test_lookahead_check_flags_a_feature_that_peeks_one_day_ahead(tiny_run, sample_store):
    def peeking(bars: pd.DataFrame) -> pd.DataFrame:
        out = add_features(bars)
        out["ret1"] = out["close"].shift(-1) / out["close"] - 1   # tomorrow's return: a leak
        return out

    report = check_lookahead(tiny_run, sample_store.root, points=3, symbols=["600519.SH"], feature_fn=peeking)
    kinds = {(leak.kind, leak.what) for leak in report.leaks}
    assert ("feature", "ret1") in kinds
    for leak in report.leaks:
        assert leak.first_date <= leak.cut
    # the generators' inputs come from model_inputs over the bars, never from a feature function's
    # columns: the shipped signal path stays clean even next to a leaky user function
    assert not any(kind == "signal" for kind, _ in kinds)


def test_lookahead_check_flags_signals_that_peek(tiny_run, sample_store, monkeypatch):
    import heqis.backtest.lookahead as la

    honest = la.predict

    def peeking_predict(model, scaler, bars):
        shifted = bars.copy()
        for col in ("open_raw", "high_raw", "low_raw", "close_raw"):   # model inputs start from the raw prices
            shifted[col] = bars[col].shift(-1).fillna(bars[col])    # the model sees tomorrow's prices
        return honest(model, scaler, shifted)

    monkeypatch.setattr(la, "predict", peeking_predict)
    report = check_lookahead(tiny_run, sample_store.root, points=3, symbols=["600519.SH"])
    assert any(leak.kind == "signal" for leak in report.leaks)


def reference_balanced_acc(bars, pred, mode: str, band: float, sessions) -> float:
    """scikit-learn's balanced accuracy of the direction a candidate trades on, over its decisions in
    ``sessions`` whose next day is known."""
    from sklearn.metrics import balanced_accuracy_score

    nxt = bars.set_index("trade_date")["close"].pct_change().shift(-1)
    said, true = [], []
    wanted = set(pd.DatetimeIndex(sessions))
    for i, day in enumerate(pd.DatetimeIndex(pred.dates)):
        if day not in wanted or np.isnan(nxt.get(day, np.nan)):
            continue
        value = pred.reg_return[i]
        said.append(int(np.argmax(pred.cls_logits[i])) if mode == "cls" else 0 if value < -band else
                    2 if value > band else 1)
        true.append(0 if nxt[day] < -band else 2 if nxt[day] > band else 1)
    return float(balanced_accuracy_score(true, said))


def reference_candidates(run_dir, rules: MarketRules) -> pd.DataFrame:
    """The straightforward backtest: every window predicted with torch, one ``run_symbol`` per case,
    buy-and-hold alongside each (what ``backtest_run`` did before it predicted only what it simulates)."""
    from heqis.backtest.engine import run_symbol, symbol_inputs
    from heqis.backtest.metrics import compute_metrics
    from heqis.backtest.signals import MODES, align, predict
    from heqis.formats.run import RunFolder

    run = RunFolder.open(run_dir)
    store, models = bt_run.open_run_models(run, None)
    uni = bt_run.Universe.of(store)
    sessions = store.sessions()
    rows = []
    for code in bt_run.tradable(run.manifest["symbols"], uni):
        bars = store.read_bars(code)
        for gid, (model, scaler) in models.items():
            pred = predict(model, scaler, bars)
            for mode in MODES:
                signals = pred.signals(mode, rules.regression_threshold)
                for segment in ("select", "test"):
                    a, b = (pd.Timestamp(d) for d in run.segments[segment])
                    inp = symbol_inputs(bars, sessions, code, uni.kinds[code], uni.boards[code], uni.list_dates[code],
                                        rules, a, b)
                    hold = np.zeros(len(inp.dates), dtype=np.int64)
                    hold[0] = 1
                    metrics = compute_metrics(run_symbol(inp, align(signals, inp.dates), rules), rules.initial_cash,
                                              rules.periods_per_year, run_symbol(inp, hold, rules))
                    metrics["balanced_acc"] = reference_balanced_acc(bars, pred, mode, scaler.flat_band, inp.dates)
                    rows.append({"symbol": code, "generator": gid, "mode": mode, "segment": segment, **metrics})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def reference(tiny_run):
    rules = MarketRules(regression_threshold=0.0005)     # a small threshold: reg signals that trade often
    return rules, reference_candidates(tiny_run, rules)


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_fast_backtest_matches_the_straightforward_reference(tiny_run, sample_store, reference, backend, tmp_path):
    rules, expected = reference
    backtest_run(tiny_run, sample_store.root, rules, out=tmp_path / "bt", inference_backend=backend)
    got = pd.read_csv(tmp_path / "bt" / "candidates.csv")
    assert expected["trades"].sum() > 100 and (expected["mode"] == "reg").any()   # the comparison has teeth
    pd.testing.assert_frame_equal(got, pd.read_csv(io.StringIO(expected.to_csv(index=False))), rtol=1e-9, atol=1e-9)


def test_needed_windows_are_the_inference_windows_on_those_dates(tiny_run, sample_store):
    """``needed_inputs`` (one compiled pass: ``scaled_windows``, round32) gives, for every generator's
    own look-back, the float32 bits of ``scaler.transform`` of ``inference_windows`` on those dates."""
    from heqis.backtest.signals import _scaler_key, needed_inputs
    from heqis.features.transform import Scaler
    from heqis.features.windows import inference_windows
    from heqis.formats.run import RunFolder

    run = RunFolder.open(tiny_run)
    scalers = {g: Scaler.load(run.scaler_path(g)) for g in run.generators()}
    assert len({s.window for s in scalers.values()}) > 1              # per-generator look-backs
    bars = sample_store.read_bars("600519.SH")
    _, d_longest = inference_windows(bars, max(s.window for s in scalers.values()), scalers["G1"].inputs)
    pick = d_longest[::7][3:40]
    got = needed_inputs(scalers, bars, pick)
    for scaler in scalers.values():
        x_all, d_all = inference_windows(bars, scaler.window, scaler.inputs)
        on = np.isin(d_all, pick)
        want = scaler.transform(x_all[on])
        assert len(want) == len(pick) and np.array_equal(got.dates[scaler.window], pick)
        assert np.array_equal(got.scaled[_scaler_key(scaler)].view(np.uint32), want.view(np.uint32))


def test_backtest_cli(tiny_run, sample_store, isolated, tmp_path):
    proc = run("backtest", str(tiny_run), "--out", str(tmp_path / "bt"), "--rules", "slippage_bps=0", "--json",
               env={"HEQIS_DATA_DIR": str(sample_store.root)}, cwd=isolated)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["rules"]["slippage_bps"] == 0 and len(result["rows"]) == 6
    table = run("backtest", str(tiny_run), "--out", str(tmp_path / "bt2"), cwd=isolated)
    assert table.returncode == 0 and "chosen on select" in table.stdout
    assert run("backtest", cwd=isolated).returncode == 2
    assert_one_line_error(run("backtest", str(tiny_run), "--rules", "nope=1", cwd=isolated), 2, "unknown rule")
    bad = write_signals(tmp_path / "bad.csv", [("600519.SH", "2024-01-02", 5)])
    assert_one_line_error(run("backtest", "--signals", str(bad), "-d", str(sample_store.root), cwd=isolated), 1,
                          "bad.csv: row 2")
    check = run("check", "lookahead", str(tiny_run), "--points", "2", "--symbols", "600519.SH", cwd=isolated)
    assert check.returncode == 0 and "no look-ahead found" in check.stdout


def test_a_symbol_without_sessions_in_select_or_test_is_left_out_with_a_note(tiny_run, sample_store, monkeypatch,
                                                                             tmp_path):
    """A symbol delisted before select (or listed during test) cannot be chosen on select and reported
    on test; it is left out and named, and the other symbols' backtest goes on."""
    select_start = pd.Timestamp(json.loads((tiny_run / "manifest.json").read_text())["segments"]["select"][0])
    real_bars = bt_run.SegmentRunner.bars

    def bars(self, code):
        b = real_bars(self, code)
        return b[b["trade_date"] < select_start].reset_index(drop=True) if code == "600519.SH" else b

    monkeypatch.setattr(bt_run.SegmentRunner, "bars", bars)
    result = backtest_run(tiny_run, sample_store.root, out=tmp_path / "bt")
    assert "600519.SH" not in {r["symbol"] for r in result.rows}
    assert len(result.rows) == 5
    assert any("600519.SH" in note and "left out" in note for note in result.notes)


def test_the_outputs_do_not_depend_on_how_the_symbols_are_spread(tiny_run, sample_store, tmp_path, monkeypatch):
    """One process, a local pool of two and a Dask LocalCluster of two give the same files."""
    monkeypatch.setattr(bt_run, "MIN_PARALLEL_CHUNK", 1)          # 6 symbols: one chunk each, so work is split
    ways = {"one": {"workers": 1}, "pool": {"workers": 2}, "dask": {"workers": 2, "cluster": "local"}}
    results = {name: backtest_run(tiny_run, sample_store.root, out=tmp_path / name, **kw) for name, kw in ways.items()}
    assert results["pool"].notes[-1] == "backtested on 2 processes in 6 chunks of ≤ 1 symbols"
    assert results["dask"].notes[-1].startswith("backtested on dask local")
    assert not results["one"].notes
    for name in ("pool", "dask"):
        for csv in ("best_metrics.csv", "candidates.csv"):
            assert (tmp_path / name / csv).read_bytes() == (tmp_path / "one" / csv).read_bytes(), (name, csv)
        for table in ("trades.parquet", "equity.parquet", "portfolio.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / name / table),
                                          pd.read_parquet(tmp_path / "one" / table))
        assert results[name].rows == results["one"].rows


def test_workers_are_for_a_run_not_a_signal_file(isolated):
    proc = run("backtest", "--signals", "x.csv", "--workers", "2", cwd=isolated)
    assert proc.returncode == 2 and "--workers spreads a RUN_DIR's symbols" in proc.stderr


def test_signals_on_a_csv_store_from_its_first_bar(tmp_path):
    """A CSV series' first bar has no previous close: no limit can be derived for it, and the
    backtest must not stop there (it failed with "cannot convert float NaN to integer")."""
    from bokeh_sampledata.stocks import AAPL

    from heqis.config import load_settings
    from heqis.data.pipeline import DataRequest, run_data

    bars = pd.DataFrame(AAPL).rename(columns={"date": "trade_date"})[["trade_date", "open", "high", "low", "close",
                                                                       "volume"]].iloc[:300]
    bars.to_csv(tmp_path / "AAPL.csv", index=False)
    run_data(DataRequest(source="csv", data_dir=tmp_path / "store", csv_path=tmp_path / "AAPL.csv"), load_settings())
    pd.DataFrame({"symbol": "AAPL", "trade_date": bars["trade_date"].iloc[[0, 5]], "signal": [1, -1]}).to_csv(
        tmp_path / "sig.csv", index=False)
    result = backtest_signals(tmp_path / "sig.csv", tmp_path / "store", out=tmp_path / "bt")
    trades = pd.read_parquet(tmp_path / "bt" / "trades.parquet")
    assert len(trades) == 1 and trades["entry_date"].iloc[0] == pd.Timestamp(bars["trade_date"].iloc[1])
    assert result.rows[0]["buy_blocked_limit"] == 0


def test_an_interrupted_run_is_backtested_with_a_warning(tiny_run, sample_store, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "interrupted"}))
    result = backtest_run(run_dir, sample_store.root, out=tmp_path / "bt")
    assert result.notes[0].startswith("the run is interrupted") and "--resume" in result.notes[0]
    assert not any("the run is" in n for n in backtest_run(tiny_run, sample_store.root, out=tmp_path / "b2").notes)


def test_score_balanced_acc_chooses_the_best_direction_on_select(tiny_run, sample_store, tmp_path):
    result = backtest_run(tiny_run, sample_store.root, score="balanced_acc", out=tmp_path / "bt", gate=None)
    cands = pd.read_csv(tmp_path / "bt" / "candidates.csv")
    select = cands[cands["segment"] == "select"]
    for row in result.rows:
        mine = select[select["symbol"] == row["symbol"]]
        assert row["select_balanced_acc"] == pytest.approx(mine["balanced_acc"].max())
        assert 0 <= row["balanced_acc"] <= 1


def test_sorted_isin_is_np_isin_on_a_sorted_reference():
    from heqis.backtest.signals import sorted_isin

    rng = np.random.default_rng(3)
    ref = np.unique(rng.integers(0, 500, 120)).astype("datetime64[D]").astype("datetime64[ns]")
    values = rng.integers(-20, 520, 400).astype("datetime64[D]").astype("datetime64[ns]")
    assert np.array_equal(sorted_isin(values, ref), np.isin(values, ref))
    assert sorted_isin(values, ref).any() and not sorted_isin(values, ref).all()
    assert not sorted_isin(values, ref[:0]).any()


def test_equal_weight_line_is_the_pandas_definition():
    """The gate's portfolio line (numpy) equals concat → ffill → mean over the started symbols, with
    late starts, early ends, holes (suspensions) and an empty symbol."""
    from heqis.backtest.selection import equal_weight_line

    rng = np.random.default_rng(5)
    days = pd.bdate_range("2021-01-01", periods=200).to_numpy()
    lines = []
    for i in range(40):
        d = days[rng.integers(0, 80):rng.integers(120, 201)]
        if i % 5 == 0:
            d = np.delete(d, rng.integers(0, len(d), 8))
        lines.append((d, np.cumprod(1 + rng.normal(0, 0.02, len(d))) * 1e4))
    lines.append((days[:0], np.zeros(0)))
    want = pd.concat([pd.Series(e / e[0], index=pd.DatetimeIndex(d)) for d, e in lines if len(e)], axis=1,
                     sort=True).ffill().mean(axis=1)
    got = equal_weight_line(lines)
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-13, atol=0)


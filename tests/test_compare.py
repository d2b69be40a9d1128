"""``heqis compare``: walk-forward folds, the table over folds, the paired Diebold–Mariano test, the
command end to end (resumable) and its errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from heqis.errors import HeqisError
from heqis.evaluate.compare import _verdict, aggregate_row, daily_differential, dm_summary, mean_std
from heqis.evaluate.folds import walk_forward
from heqis.stats import diebold_mariano
from tests.test_cli import assert_one_line_error, run


# ---------------------------------------------------------------------------------------------
# folds
# ---------------------------------------------------------------------------------------------
def test_folds_on_a_small_calendar_have_known_dates():
    days = pd.bdate_range("2020-01-01", periods=400)   # N 400: test blocks 60, val 60, select 30
    folds = walk_forward(days, 2)
    assert [f.to_dict() for f in folds] == [
        {"fold": 1, "segments": {"train": ["2020-01-01", "2020-09-22"], "val": ["2020-09-23", "2020-12-15"],
                                 "select": ["2020-12-16", "2021-01-26"], "test": ["2021-01-27", "2021-04-20"]}},
        {"fold": 2, "segments": {"train": ["2020-01-01", "2020-12-15"], "val": ["2020-12-16", "2021-03-09"],
                                 "select": ["2021-03-10", "2021-04-20"], "test": ["2021-04-21", "2021-07-13"]}}]
    assert str(days[189].date()) == "2020-09-22" and str(days[-1].date()) == "2021-07-13"


@pytest.mark.parametrize("k", [1, 3, 5])
def test_folds_are_chronological_disjoint_and_expanding(k):
    days = pd.bdate_range("2015-01-01", periods=1500)
    folds = walk_forward(days, k)
    pos = {d: i for i, d in enumerate(days)}
    tests = []
    for fold in folds:
        b = fold.segments.bounds
        spans = [(pos[b[n][0]], pos[b[n][1]]) for n in ("train", "val", "select", "test")]
        assert spans[0][0] == 0
        for (a0, a1), (b0, _) in itertools.pairwise(spans):
            assert a0 <= a1 and b0 == a1 + 1          # consecutive, no gap, no overlap: train < val < select < test
        tests.append(spans[3])
    assert tests[-1][1] == len(days) - 1             # the last test block ends on the last session
    for (_, end), (start, _) in itertools.pairwise(tests):
        assert start == end + 1                       # test blocks consecutive and disjoint
    assert len({e - s for s, e in tests}) == 1       # of one length
    trains = [pos[f.segments.bounds["train"][1]] for f in folds]
    assert trains == sorted(trains) and len(set(trains)) == k   # the train segment grows every fold
    assert sum(e - s + 1 for s, e in tests) == int(1500 * 0.3) // k * k


def test_too_few_sessions_for_the_folds_is_one_clear_error():
    days = pd.bdate_range("2020-01-01", periods=200)
    with pytest.raises(HeqisError) as exc:
        walk_forward(days, 3)
    assert "--folds 3: 200 sessions (2020-01-01 … 2020-10-06) are too few" in exc.value.message
    assert "need 214 sessions" in exc.value.message
    walk_forward(pd.bdate_range("2020-01-01", periods=214), 3)      # and 214 are enough
    with pytest.raises(HeqisError, match="--folds 0"):
        walk_forward(days, 0)


# ---------------------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------------------
def test_the_table_is_mean_and_sample_std_over_folds():
    assert mean_std([0.9, 1.0, 1.1]) == pytest.approx((1.0, 0.1, 3))
    assert mean_std([0.5, None]) == (0.5, None, 1)
    assert mean_std([None, None]) == (None, None, 0)
    per = [{"mse_ratio_zero": 0.98, "ic_mean": 0.02, "rank_ic_mean": None, "balanced_acc": 0.34, "acc": 0.4},
           {"mse_ratio_zero": 1.00, "ic_mean": 0.04, "rank_ic_mean": None, "balanced_acc": 0.36, "acc": 0.4},
           None]
    row = aggregate_row("maa", "ensemble", per)
    assert row["folds"] == 2
    assert row["mse_ratio_zero_mean"] == pytest.approx(0.99)
    assert row["mse_ratio_zero_std"] == pytest.approx(np.std([0.98, 1.0], ddof=1))
    assert row["ic_mean_mean"] == pytest.approx(0.03) and row["ic_mean_std"] == pytest.approx(0.0141421356)
    assert row["rank_ic_mean_mean"] is None and row["acc_std"] == pytest.approx(0.0)
    assert row["mse_ratio_zero_folds"] == [0.98, 1.0, None]


def _frame(rng, days, symbols, y=None, forecast_scale=0.01):
    idx = pd.MultiIndex.from_product([symbols, days], names=["symbol", "day"]).to_frame(index=False)
    n = len(idx)
    idx["y"] = rng.normal(0, 0.02, n) if y is None else y
    idx["reg:ensemble"] = rng.normal(0, forecast_scale, n)
    return idx


def test_the_paired_dm_is_the_daily_cross_sectional_mean_of_the_squared_error_difference():
    rng = np.random.default_rng(1)
    days = pd.bdate_range("2022-01-03", periods=60)
    a = _frame(rng, days, ["A", "B", "C"])
    b = a[["symbol", "day", "y"]].copy()
    b["reg:G1"] = rng.normal(0, 0.02, len(b))
    b = b.drop(index=[0, 5]).sample(frac=1.0, random_state=0)    # b lacks two samples, rows shuffled
    d = daily_differential(a, "reg:ensemble", other=b, other_col="reg:G1")
    # by hand: the samples both scored, then per day the mean over symbols of e²_a − e²_b
    both = a.drop(index=[0, 5]).merge(b[["symbol", "day", "reg:G1"]], on=["symbol", "day"])
    both["d"] = (both["reg:ensemble"] - both["y"]) ** 2 - (both["reg:G1"] - both["y"]) ** 2
    expected = both.groupby("day")["d"].mean().sort_index()
    np.testing.assert_allclose(d.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert list(d.index) == list(expected.index)
    # against zero: e²_model − y²
    z = daily_differential(a, "reg:ensemble")
    np.testing.assert_allclose(z.to_numpy(), ((a["reg:ensemble"] - a["y"]) ** 2 - a["y"] ** 2)
                               .groupby(a["day"]).mean().to_numpy(), rtol=1e-12)
    # folds: per fold DM on its days, pooled DM on the days of all folds in a row
    first, second = d.iloc[:30], d.iloc[30:]
    s = dm_summary([first, second])
    assert s["dm_t_folds"][0] == pytest.approx(diebold_mariano(first.to_numpy())[0])
    assert (s["dm_t_pooled"], s["dm_p_pooled"]) == pytest.approx(diebold_mariano(d.to_numpy()))
    assert s["days_pooled"] == 60 and s["mean_d_pooled"] == pytest.approx(float(d.mean()))
    # a forecast that is always better is found: e²_a < e²_b every day
    good = a.copy()
    good["reg:ensemble"] = good["y"] * 0.5
    worse = daily_differential(good, "reg:ensemble", other=b, other_col="reg:G1")
    t, p = dm_summary([worse])["dm_t_pooled"], dm_summary([worse])["dm_p_pooled"]
    assert t < -5 and p < 1e-6


def test_paired_targets_must_agree():
    rng = np.random.default_rng(2)
    days = pd.bdate_range("2022-01-03", periods=10)
    a = _frame(rng, days, ["A"])
    b = a.rename(columns={"reg:ensemble": "reg:G1"})
    b["y"] = b["y"] + 0.01
    with pytest.raises(HeqisError, match="targets differ"):
        daily_differential(a, "reg:ensemble", other=b, other_col="reg:G1")


def test_the_row_names_are_heqis_evaluates():
    from heqis.evaluate import compare
    from heqis.evaluate import run as evaluate

    assert (compare.ENSEMBLE, compare.BASELINES) == (evaluate.ENSEMBLE, evaluate.BASELINES)


def test_the_verdict_reads_the_maa_against_supervised_pair():
    base = {"variant_a": "maa", "variant_b": "supervised", "a": "maa · ensemble", "b": "supervised · ensemble",
            "mean_d_folds": [-1e-6, -2e-6, 1e-6], "better_folds": 2, "mean_d_pooled": -7e-7}
    helped = _verdict([{**base, "dm_t_pooled": -2.5, "dm_p_pooled": 0.012}])
    assert helped["helped"] and "helped" in helped["text"] and "p = 0.012" in helped["text"]
    flat = _verdict([{**base, "dm_t_pooled": -0.4, "dm_p_pooled": 0.69}])
    assert not flat["helped"] and "no significant difference" in flat["text"] and "2 of 3 folds" in flat["text"]
    hurt = _verdict([{**base, "dm_t_pooled": 3.0, "dm_p_pooled": 0.003}])
    assert not hurt["helped"] and "hurt" in hurt["text"]
    assert _verdict([{**base, "variant_b": "G1", "dm_t_pooled": -3.0, "dm_p_pooled": 0.003}]) is None


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    from heqis.config import load_settings
    from heqis.data.pipeline import DataRequest, run_data

    root = tmp_path_factory.mktemp("cmp") / "store"
    run_data(DataRequest(source="synthetic", data_dir=root, symbols=5, years=3, planted_ic=0.1, seed=5, workers=1),
             load_settings())
    return root


# supervised trains G1 and G2 (no latent G4: no encoders to train), G1 alone
FAST = ("--folds", "2", "--epochs", "1", "--max-train-windows", "300", "--device", "cpu", "--generators", "G1,G2",
        "--variants", "supervised,G1")


def test_compare_end_to_end_then_resumes_without_retraining(panel, isolated):
    out = isolated / "cmp"
    first = run("compare", "-d", str(panel), "-o", str(out), *FAST, "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["counts"] == {"trained": 4, "resumed": 0, "skipped": 0}
    assert [(r["variant"], r["model"]) for r in doc["rows"]] == [
        ("supervised", "ensemble"), ("supervised", "val-best"), ("G1", "G1"), ("baseline", "zero"),
        ("baseline", "train_mean"), ("baseline", "last_value"), ("baseline", "majority")]
    for name in ("compare.md", "compare.csv", "compare-pairs.csv", "compare.json", "plan.json"):
        assert (out / name).exists(), name
    plan = json.loads((out / "plan.json").read_text())
    for fold, record in zip(doc["folds"], plan["fold_segments"], strict=True):
        assert fold["segments"] == record["segments"]
        for v in ("supervised", "G1"):
            run_doc = json.loads((out / f"fold-{fold['fold']}" / v / "manifest.json").read_text())
            assert run_doc["segments"] == fold["segments"]            # each run trained on its fold's dates
            assert fold["variants"][v]["train_seconds"] > 0
        models = fold["variants"]["supervised"]["models"]
        row = doc["rows"][0]
        i = fold["fold"] - 1
        # the per-fold DM from the kept samples is heqis evaluate's (the same daily differential)
        assert row["dm_t_folds"][i] == pytest.approx(models["ensemble"]["dm_t"], rel=1e-6)
        assert row["mse_ratio_zero_folds"][i] == models["ensemble"]["mse_ratio_zero"]
    best = doc["rows"][1]
    assert best["chosen"] == [f["variants"]["supervised"]["best_generator"] for f in doc["folds"]]
    assert [p["a"] + " | " + p["b"] for p in doc["pairs"]] == ["supervised · ensemble | G1 alone"]
    assert doc["pairs"][0]["days_pooled"] == sum(f["variants"]["G1"]["days"] for f in doc["folds"])
    md = (out / "compare.md").read_text()
    assert "## Folds" in md and "| supervised | val-best (" in md and "| baseline | last_value |" in md
    header = (out / "compare.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["variant", "model", "folds", "mse_ratio_zero_mean"] and "dm_p_fold2" in header

    # the same command again: nothing is trained; an interrupted run resumes from its last epoch
    manifest = out / "fold-2" / "G1" / "manifest.json"
    raw = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**raw, "status": "interrupted"}))
    untouched = out / "fold-1" / "supervised" / "checkpoints" / "last.pt"
    before = untouched.stat().st_mtime_ns
    again = run("compare", "-d", str(panel), "-o", str(out), *FAST)
    assert again.returncode == 0, again.stderr
    assert "0 trained, 1 resumed, 3 already finished" in again.stdout
    assert "fold 1/2 · supervised: finished earlier (complete), not trained again" in again.stderr
    assert "fold 2/2 · G1: resuming" in again.stderr
    assert untouched.stat().st_mtime_ns == before
    assert json.loads(manifest.read_text())["status"] == "complete"
    assert "supervised · ensemble" in again.stdout and "last_value" in again.stdout

    # other settings into the same folder are refused before any training
    other = run("compare", "-d", str(panel), "-o", str(out), *FAST, "--seed", "1")
    assert_one_line_error(other, 1, "holds a comparison with seed = 3407, not 1")


@pytest.mark.parametrize(("args", "code", "needles"), [
    (["--folds", "0"], 2, ["--folds"]),
    (["--folds", "40"], 1, ["--folds 40:", "sessions", "too few"]),
    (["--variants", "maa,G9"], 2, ["--variants: unknown variant 'G9'", "choose from"]),
    (["--variants", ","], 2, ["--variants: no variant given"]),
    (["--symbols", "NOPE.SH"], 1, ["not in the data store", "NOPE.SH"]),
    (["--generators", "G1,G9"], 1, ["--generators: no generator G9 in preset 'tiny'"]),
    (["--generators", "G1,G2", "--variants", "G3"], 2, ["--variants: unknown variant 'G3'", "G1, G2"]),
])
def test_bad_input_is_one_clear_error(panel, isolated, args, code, needles):
    proc = run("compare", "-d", str(panel), "-o", str(isolated / "x"), *args)
    if code == 2 and args[0] == "--folds":
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--folds" in proc.stderr
    else:
        assert_one_line_error(proc, code, *needles)
    assert not (isolated / "x" / "fold-1").exists()


def test_a_folder_that_is_not_a_comparison_is_refused(panel, isolated):
    (isolated / "busy").mkdir()
    (isolated / "busy" / "notes.txt").write_text("mine")
    proc = run("compare", "-d", str(panel), "-o", str(isolated / "busy"), *FAST)
    assert_one_line_error(proc, 1, "is not empty and holds no comparison")

"""The gateway's data-quality model (the "smart watchdog"): scale-free windows with known answers, the
false-positive rate and the recall per fault kind on a synthetic store, and the exported ONNX scorer."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from heqis.data.store import DataStore
from heqis.features.quality import CLIP, QUALITY_COLUMNS, quality_window, quality_windows
from heqis.features.windows import split_segments
from heqis.train.watchdog import WatchdogConfig, bars_ohlcv, load_watchdog, scores, segment_ends, train_watchdog

LIMIT = np.log(1.095)        # a spike stays inside the ±10% daily limit


def _series(n: int = 25) -> np.ndarray:
    close = 10.0 * np.exp(np.cumsum(np.tile([0.01, -0.01], n // 2 + 1)[:n]))
    prev = np.concatenate(([10.0], close[:-1]))
    return np.column_stack([prev * 1.001, np.maximum(prev, close) * 1.002, np.minimum(prev, close) * 0.998,
                            close, np.full(n, 1000.0)])


def test_quality_windows_known_answers():
    x = _series()
    w = quality_windows(x, np.array([20, 24]))
    assert w.shape == (2, 20, 6) and w.dtype == np.float32
    sigma = 1.4826 * 0.01                    # |r_close| is 0.01 on every bar
    r = np.log(x[1:21, :4] / x[0:20, 3:4]) / sigma
    np.testing.assert_allclose(w[0, :, :4], r, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w[0, :, 4], 0.0, atol=1e-6)            # constant volume: median 0, floored scale
    np.testing.assert_array_equal(quality_window(x[:25]), w[1:2])
    assert quality_window(x[:20]) is None and quality_window(x[:21]).shape == (1, 20, 6)
    with pytest.raises(ValueError):
        quality_windows(x, np.array([19]))


def test_the_row_median_equals_numpys_nanmedian_bit_for_bit():
    import warnings

    from heqis.features.quality import _nanmedian_rows

    rng = np.random.default_rng(0)
    for trial in range(300):
        a = rng.standard_normal((int(rng.integers(1, 6)), int(rng.integers(1, 25))))
        a[rng.random(a.shape) < 0.3] = np.nan
        if trial % 7 == 0:
            a[0] = np.nan                                                # an all-NaN row: NaN
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmedian(a, axis=1)
        assert np.array_equal(_nanmedian_rows(a), ref, equal_nan=True), a


def test_each_bar_is_measured_from_its_pre_close_and_a_limit_move_is_shown_as_context():
    x = _series()
    sigma = 1.4826 * 0.01
    pre = np.concatenate(([10.0], x[:-1, 3]))
    full = np.column_stack([x, pre, np.round(pre * 1.1, 2), np.round(pre * 0.9, 2)])     # + pre-close, limits
    np.testing.assert_allclose(quality_window(full), quality_window(x), atol=1e-6)      # same bars, same window
    ex = full.copy()
    ex[24, 5] = ex[23, 3] * 0.95                     # ex-rights: the exchange's pre-close is 5% lower
    ex[24, :4] = ex[24, 5] * x[24, :4] / x[23, 3]    # and the day moves from it as before
    np.testing.assert_allclose(quality_window(ex)[0, -1, :4], quality_window(x)[0, -1, :4], atol=1e-5)
    assert quality_window(ex[:, :5])[0, -1, 3] < -2                      # measured from the previous close
    up = full.copy()
    up[24, 3] = up[24, 1] = up[24, 6]                # the close sits at the up limit
    w = quality_window(up)[0]
    assert w[-1, 5] == pytest.approx(np.log(up[24, 3] / up[24, 5]) / sigma, rel=1e-5) == pytest.approx(w[-1, 3])
    assert (w[:-1, 5] == 0).all()
    up[24, 3] = up[24, 1] = up[24, 6] - 0.02         # two fen below it: not a limit move
    assert quality_window(up)[0, -1, 5] == 0


def test_a_bad_last_bar_is_clipped_not_nan_and_its_scale_comes_from_the_bars_before():
    x = _series()
    bad = x.copy()
    bad[24, 3] *= 10
    w = quality_window(bad)[0]
    sigma = 1.4826 * 0.01
    expected = min(CLIP, np.log(bad[24, 3] / bad[23, 3]) / sigma)
    assert expected == CLIP and w[-1, 3] == pytest.approx(expected)
    small = x.copy()
    small[24, 3] *= 1.05                                               # unclipped: exact log ratio / σ
    assert quality_window(small)[0, -1, 3] == pytest.approx(np.log(small[24, 3] / small[23, 3]) / sigma, rel=1e-5)
    for value in (np.nan, 0.0, -1.0):
        broken = x.copy()
        broken[24, 0] = value
        broken[10, 4] = value
        w = quality_window(broken)[0]
        assert np.isfinite(w).all() and w[-1, 0] == CLIP and np.abs(w).max() <= CLIP


def inject(ohlcv: np.ndarray, t: int, kind: str, sigma: float) -> np.ndarray:
    """``ohlcv[:t+1]`` with a fault at bar t. The spikes first shrink the symbol's log prices by k so that
    +8σ stays inside ±10% (the windows are scale-free: r/σ does not change with k)."""
    x = ohlcv[:t + 1].copy()
    if kind == "price x10":
        x[t, :4] *= 10
    elif kind == "price /10":
        x[t, :4] /= 10
    elif kind == "volume x1000":
        x[t, 4] *= 1000
    else:
        k = min(1.0, LIMIT / (8 * sigma))
        base = np.log(x[0, 3])
        prices = [0, 1, 2, 3, 5, 6, 7]                         # open, high, low, close, pre-close, limits
        x[:, prices] = np.exp(base + k * (np.log(x[:, prices]) - base))
        if kind == "spike +8σ (bar)":
            x[t, :4] *= np.exp(8 * k * sigma)
        else:                                                          # the close alone
            x[t, 3] = x[t - 1, 3] * np.exp(8 * k * sigma)
            x[t, 1] = max(x[t, 1], x[t, 3])
    return x


KINDS = ("price x10", "price /10", "volume x1000", "spike +8σ (bar)", "spike +8σ (close)")


@pytest.fixture
def trained(watchdog_panel):
    root, run, result = watchdog_panel
    return DataStore(root), run, result


def test_watchdog_flags_bad_bars_and_few_clean_ones(trained, capsys):
    store, run, result = trained
    doc = json.loads((run / "watchdog.json").read_text())
    assert doc["window"] == 20 and doc["columns"] == list(QUALITY_COLUMNS) and doc["fpr"] == 0.005
    assert doc["train_windows"] == result.train_windows > 10_000 and doc["val_windows"] > 1000
    model, doc = load_watchdog(run)
    segments = split_segments(store.sessions())
    rng = np.random.default_rng(7)
    clean, faulty = [], {k: [] for k in KINDS}
    for sym in store.symbols():
        bars = store.read_bars(sym)
        ohlcv, dates = bars_ohlcv(bars), bars["trade_date"].to_numpy()
        train_ends, test_ends = (segment_ends(dates, segments, s, 20) for s in ("train", "test"))
        if len(train_ends) < 60 or not len(test_ends):
            continue
        sigma = float(np.diff(np.log(ohlcv[:, 3]))[train_ends - 1].std())
        clean.append(quality_windows(ohlcv, test_ends))
        for kind in KINDS:
            for t in rng.choice(test_ends, size=min(8, len(test_ends)), replace=False):
                faulty[kind].append(quality_window(inject(ohlcv, int(t), kind, sigma)))
    threshold = doc["threshold"]
    fpr = float((scores(model, np.concatenate(clean)) > threshold).mean())
    recall = {k: float((scores(model, np.concatenate(v)) > threshold).mean()) for k, v in faulty.items()}
    with capsys.disabled():
        print(f"\n  watchdog: threshold {threshold:.2f}; clean test windows {sum(map(len, clean))}: FPR {fpr:.4f}")
        for kind, r in recall.items():
            print(f"    {kind:<20} recall {r:.3f} ({len(faulty[kind])} faults)")
    assert fpr <= 0.01
    for kind in KINDS:
        assert recall[kind] >= 0.95, (kind, recall)


def test_training_is_deterministic(trained, tmp_path):
    store, _, _ = trained
    again = train_watchdog(tmp_path / "again", data_dir=store.root,
                           config=WatchdogConfig(epochs=1, max_train_windows=2000, seed=5))
    twice = train_watchdog(tmp_path / "twice", data_dir=store.root,
                           config=WatchdogConfig(epochs=1, max_train_windows=2000, seed=5))
    assert again.train_windows == 2000 and again.threshold == twice.threshold


@pytest.fixture
def exported(watchdog_export):
    return watchdog_export


def test_export_puts_a_checked_watchdog_into_the_artifact_set(exported):
    import onnxruntime as ort

    from heqis.formats.artifacts import ArtifactSet
    from heqis.models.watchdog import WatchdogScorer
    from heqis.runtime.watchdog_model import WatchdogModel

    run, out = exported
    arts = ArtifactSet.open(out)
    wd = arts.manifest["watchdog"]
    assert wd["onnx"] == "watchdog.onnx" and wd["window"] == 20 and wd["columns"] == list(QUALITY_COLUMNS)
    assert {"watchdog.onnx", "watchdog_calibration.npy"} <= set(arts.manifest["files"])
    assert max(wd["parity"].values()) <= 1e-4
    calib = np.load(out / "watchdog_calibration.npy")
    assert calib.dtype == np.float32 and calib.shape[1:] == (20, 6) and len(calib) >= 32
    sess = ort.InferenceSession(str(out / "watchdog.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["window"] and [o.name for o in sess.get_outputs()] == ["score"]
    net, _ = load_watchdog(run)
    with torch.no_grad():
        ref = WatchdogScorer(net)(torch.from_numpy(calib)).numpy()
    model = WatchdogModel.open(arts)
    assert model is not None and model.backend == "onnxruntime" and model.window == 20
    np.testing.assert_allclose(model.score_many(calib), ref, atol=1e-4)

    from heqis.data.store import DataStore
    store = DataStore(json.loads((run / "manifest.json").read_text())["data"]["dir"])
    ohlcv = bars_ohlcv(store.read_bars(store.symbols()[0]))
    clean = ohlcv[:-5]
    bad = clean.copy()
    bad[-1, :4] *= 10
    assert model.score(clean) < model.threshold < model.score(bad)
    assert model.flags(bad) and not model.flags(clean)
    assert model.score(clean[:20]) is None


def test_an_artifact_set_without_a_watchdog_has_none_and_an_altered_one_is_refused(artifacts, exported):
    from heqis.errors import HeqisError
    from heqis.formats.artifacts import ArtifactSet
    from heqis.runtime.watchdog_model import WatchdogModel

    assert WatchdogModel.open(ArtifactSet.open(artifacts)) is None
    _, out = exported
    arts = ArtifactSet.open(out)
    path = out / "watchdog.onnx"
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(HeqisError, match="sha256"):
            WatchdogModel.open(arts)
    finally:
        path.write_bytes(original)


def test_a_watchdog_trained_on_other_columns_is_refused_with_the_commands_to_fix_it(exported, tmp_path):
    from heqis.errors import HeqisError
    from heqis.formats.artifacts import ArtifactSet
    from heqis.runtime.watchdog_model import WatchdogModel

    old = tmp_path / "old"
    shutil.copytree(exported[1], old)
    doc = json.loads((old / "manifest.json").read_text())
    doc["watchdog"]["columns"] = list(QUALITY_COLUMNS[:5])          # an export from before limit_move
    (old / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(HeqisError, match="trained on other columns") as err:
        WatchdogModel.open(ArtifactSet.open(old))
    assert "heqis train --watchdog -o RUN" in str(err.value) and "heqis export RUN" in str(err.value)


@pytest.mark.parametrize("args", [["--watchdog-fpr", "0.01"], ["--watchdog", "--search", "2"],
                                  ["--max-train-windows", "500", "--resume", "-o", "runs/x"]])
def test_watchdog_and_window_cap_usage_errors_exit_2(args):
    from heqis.cli import app

    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2, result.output

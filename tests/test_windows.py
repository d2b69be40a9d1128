"""Window dataset: targets, scale-free inputs, segments, and a scaler that never sees the future."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from heqis.features.columns import MODEL_INPUTS
from heqis.features.frames import add_features
from heqis.features.windows import (
    Scaler,
    build_windows,
    direction,
    fit_scaler,
    scale_free,
    split_segments,
    symbol_windows,
)


@pytest.fixture(scope="module")
def bars(sample_store):
    return {code: sample_store.read_bars(code) for code in sample_store.symbols()}


def test_targets_are_next_day_return_and_direction(bars):
    b = bars["600519.SH"]
    x, y, c, dates, target_dates = symbol_windows(b, 60, 0.005)
    i = 100
    t = int(np.flatnonzero(b["trade_date"].to_numpy() == dates[i])[0])
    assert target_dates[i] == b["trade_date"].to_numpy()[t + 1]
    expected = b["close"].iloc[t + 1] / b["close"].iloc[t] - 1
    assert y[i] == pytest.approx(expected, rel=1e-6)
    assert c[i] == direction(np.array([expected]), 0.005)[0]
    # the window's last row is day T itself: its close is the reference, so it scales to 0
    assert x[i, -1, MODEL_INPUTS.index("close")] == 0.0


def test_direction_classes_follow_down_flat_up():
    np.testing.assert_array_equal(direction(np.array([-0.02, -0.004, 0.0, 0.005, 0.0051]), 0.005), [0, 1, 1, 1, 2])


def test_scale_free_inputs_are_equal_for_a_price_multiple(bars):
    """Inputs do not depend on the price level: 10× every price gives the same window."""
    b = bars["000001.SZ"].iloc[:300].copy()
    scaled = b.copy()
    for col in ("open_raw", "high_raw", "low_raw", "close_raw"):      # model inputs start from raw prices
        scaled[col] = b[col] * 10
    a = symbol_windows(b, 60, 0.005)[0]
    z = symbol_windows(scaled, 60, 0.005)[0]
    assert not np.array_equal(b["close_raw"], scaled["close_raw"])
    np.testing.assert_allclose(a, z, atol=1e-5)
    shifted = b.copy()                                                # while a real move is seen
    shifted["close_raw"] = b["close_raw"] * np.linspace(1.0, 1.3, len(b))
    assert np.abs(symbol_windows(shifted, 60, 0.005)[0] - a).max() > 1e-2


def test_warm_up_windows_are_skipped(bars):
    b = bars["688981.SH"]
    _, _, _, dates, _ = symbol_windows(b, 60, 0.005)
    first_valid = add_features(b).dropna(subset=["ma60", "ema60", "macd_signal"]).index[0]
    assert dates[0] == b["trade_date"].iloc[first_valid + 59]


def test_segments_are_chronological_and_cover_the_sessions(sample_store):
    sessions = sample_store.sessions()
    seg = split_segments(sessions)
    spans = list(seg.bounds.values())
    assert list(seg.bounds) == ["train", "val", "select", "test"]
    assert spans[0][0] == sessions[0] and spans[-1][1] == sessions[-1]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end < start
    counts = [((sessions >= a) & (sessions <= b)).sum() for a, b in spans]
    assert np.allclose(np.array(counts) / len(sessions), [0.6, 0.15, 0.1, 0.15], atol=0.002)


def test_scaler_fitted_on_train_only_ignores_future_data(bars, sample_store):
    """Change every value after the training segment: the fitted scaler must not change."""
    seg = split_segments(sample_store.sessions())
    train_end = seg.bounds["train"][1]
    base = fit_scaler(build_windows(bars), seg, 60, 0.005)

    tampered = {}
    for code, b in bars.items():
        t = b.copy()
        future = t["trade_date"] > train_end
        for col in ("open_raw", "high_raw", "low_raw", "close_raw", "open", "high", "low", "close"):
            t.loc[future, col] = t.loc[future, col] * 3.7
        t.loc[future, "vol"] = t.loc[future, "vol"] * 50
        tampered[code] = add_features(t)
    changed = fit_scaler(build_windows(tampered), seg, 60, 0.005)
    np.testing.assert_array_equal(base.x_scale, changed.x_scale)
    np.testing.assert_array_equal(base.x_min, changed.x_min)
    assert (base.y_scale, base.y_min) == (changed.y_scale, changed.y_min)
    # and the tampering did reach the later windows (the test would be empty otherwise)
    assert not np.array_equal(build_windows(bars).x[-1], build_windows(tampered).x[-1])


def test_train_samples_have_targets_inside_train(bars, sample_store):
    seg = split_segments(sample_store.sessions())
    ws = build_windows(bars)
    train = ws.segment(seg, "train")
    assert pd.Timestamp(train.target_dates.max()) <= seg.bounds["train"][1]
    assert len(train) + sum(len(ws.segment(seg, s)) for s in ("val", "select", "test")) == len(ws)


def test_scaler_round_trip_and_feature_order(bars, sample_store, tmp_path):
    seg = split_segments(sample_store.sessions())
    ws = build_windows(bars)
    scaler = fit_scaler(ws, seg, 60, 0.005)
    train_x = scaler.transform(ws.segment(seg, "train").x)
    assert train_x.min() == pytest.approx(0.0, abs=1e-6) and train_x.max() == pytest.approx(1.0, abs=1e-6)
    path = tmp_path / "scaler_params.json"
    scaler.save(path)
    again = Scaler.load(path)
    assert again.inputs == MODEL_INPUTS and again.window == 60
    np.testing.assert_array_equal(again.transform(ws.x[:5]), scaler.transform(ws.x[:5]))
    y = ws.y_reg[:10]
    np.testing.assert_allclose(again.inverse_y(again.transform_y(y)), y, atol=1e-6)
    with pytest.raises(Exception, match="order"):
        scaler.transform(ws.x[:1], inputs=tuple(reversed(MODEL_INPUTS)))


def test_scale_free_single_window_equals_batch(bars):
    b = bars["300750.SZ"]
    x = symbol_windows(b, 60, 0.005)[0]
    from heqis.features.windows import research_inputs
    raw = research_inputs(b)[-61:-1]
    np.testing.assert_allclose(scale_free(raw).astype(np.float32), x[-1], rtol=1e-6, atol=1e-7)


def test_index_views_equal_the_materialised_windows(bars, sample_store):
    """The training path (views over one panel, cut per batch) sees exactly the numbers of build_windows."""
    from heqis.features.windows import index_windows

    seg = split_segments(sample_store.sessions())
    old, new = build_windows(bars), index_windows(bars)
    assert len(new) == len(old) > 10_000
    for name in ("y_reg", "y_cls", "dates", "target_dates", "symbols"):
        np.testing.assert_array_equal(getattr(new, name), getattr(old, name), err_msg=name)
    pick = np.random.default_rng(0).choice(len(old), 512, replace=False)
    np.testing.assert_allclose(new.gather(pick), old.x[pick], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate(list(new.x_chunks(997))), old.x)  # chunks cover every window once
    for name in ("train", "val", "select", "test"):
        np.testing.assert_array_equal(new.segment(seg, name).y_reg, old.segment(seg, name).y_reg, err_msg=name)
    # the scaler streamed over the train windows in chunks fits the numbers of the materialised fit
    streamed, materialised = fit_scaler(new, seg, 60, 0.005), fit_scaler(old, seg, 60, 0.005)
    np.testing.assert_allclose(streamed.x_scale, materialised.x_scale, rtol=1e-7)
    np.testing.assert_allclose(streamed.x_min, materialised.x_min, rtol=1e-7, atol=1e-9)
    assert (streamed.y_scale, streamed.y_min) == (materialised.y_scale, materialised.y_min)


def test_read_only_bars_use_the_same_compiled_kernel():
    """Bars decoded from a message are read-only; they must not make numba compile a second kernel
    (on a cold cache that took longer than the gateway waits, and the brain was restarted forever)."""
    import heqis.features.indicators as ind
    from heqis.features.inputs import model_inputs
    from heqis.runtime.protocol import Decoder, encode

    bars = np.ones((200, 7), np.float32)
    expected = model_inputs(bars, last_n=60)
    before = list(ind.model_inputs_into.signatures)
    msg = Decoder("test")(encode("window", 1, "600519.SH", 0, bars, {}))
    assert not msg.data.flags.writeable
    np.testing.assert_array_equal(model_inputs(msg.data, last_n=60), expected)
    assert list(ind.model_inputs_into.signatures) == before


def test_the_brains_fused_window_transform_is_bit_for_bit_the_numpy_one(bars):
    """``scaled_window`` (one compiled pass, the brain's per-request path) gives the float32 bits of
    ``scaler.transform(scale_free(window))`` on real windows of every symbol and on extreme scales."""
    from heqis.features.transform import scaled_window
    from heqis.features.windows import research_inputs

    rng = np.random.default_rng(7)
    n_f = len(MODEL_INPUTS)
    scaler = Scaler(MODEL_INPUTS, 20, rng.uniform(0.1, 40, n_f), rng.uniform(-3, 3, n_f), 1.0, 0.0, 0.005, {})
    windows = [w for b in bars.values() for w in np.lib.stride_tricks.sliding_window_view(
        research_inputs(b), 20, axis=0)[100::37].swapaxes(1, 2)]
    windows += [rng.normal(50, 20, (20, n_f)) * scale for scale in (1e-6, 1e-3, 1e3, 1e6)]
    assert len(windows) > 200
    for w in windows:
        got, want = scaled_window(w, scaler), scaler.transform(scale_free(w))
        assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), want.view(np.uint32))

"""The watchdog's detectors, one table each (rules, model, both) per fault kind, on bad ticks injected
into clean replays as the gateway receives them (heqis.runtime.replay_pack.store_arrays rows, float32):
a synthetic A-share panel of 50 symbols and the real offline series (AAPL, GOOG, IBM, MSFT 2000–2013,
bokeh_sampledata). The model is calibrated at the default 0.5% false positives on validation.

Fault kinds at bar t (the bars before t are clean): price x10 and /10 (open, high, low, close), a
frozen feed (bar t repeats bar t-1), volume x1000, a one-bar spike of +8σ that stays inside the day's
price limit — the whole bar, or the close alone (high raised to it) — and a swapped high/low. σ is
the symbol's standard deviation of close-to-close log returns on train. For the spikes the symbol's
log prices are first shrunk by k toward its first close so that 8σ·k is half the day's limit, the
limits keeping their ratio to the pre-close (the model's windows are scale-free: r/σ does not change
with k; the rules see a move inside the limit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from heqis.config import load_settings
from heqis.data.pipeline import DataRequest, run_data
from heqis.data.store import DataStore
from heqis.features.quality import QUALITY_WINDOW, quality_windows
from heqis.features.windows import split_segments
from heqis.runtime.bars import H
from heqis.runtime.replay_pack import store_arrays
from heqis.runtime.watchdog import quality_ohlcv, rule_reasons
from heqis.train.watchdog import WatchdogConfig, load_watchdog, scores, train_watchdog

KINDS = ("price x10", "price /10", "frozen feed", "volume x1000", "spike +8σ (bar)", "spike +8σ (close)",
         "swapped high/low")
PRICES = [H["open_raw"], H["high_raw"], H["low_raw"], H["close_raw"]]
SHRUNK = [*PRICES, H["pre_close_raw"]]
LIMITS = [H["up_limit"], H["down_limit"]]
US_LIMIT = 0.10            # no daily limit on US stocks: the spikes there stay inside ±10%
FPR = 0.005            # the default calibration on val; the issue bounds test-segment false positives at 1%


def inject(rows: np.ndarray, t: int, kind: str, sigma: float) -> np.ndarray:
    """``rows[:t+1]`` (HISTORY_COLUMNS) with a fault at row t."""
    x = rows[:t + 1].astype(np.float64)
    last = x[t]
    if kind == "price x10":
        last[PRICES] *= 10
    elif kind == "price /10":
        last[PRICES] /= 10
    elif kind == "frozen feed":
        x[t] = x[t - 1]
    elif kind == "volume x1000":
        last[H["vol"]] *= 1000
    elif kind == "swapped high/low":
        last[H["high_raw"]], last[H["low_raw"]] = last[H["low_raw"]], last[H["high_raw"]]
    else:
        up, pre = last[H["up_limit"]], last[H["pre_close_raw"]]
        ratio = up / pre - 1 if np.isfinite(up) and pre > 0 else US_LIMIT
        k = min(1.0, np.log1p(ratio) / (16 * sigma))
        base = np.log(x[0, H["close_raw"]])
        ratios = x[:, LIMITS] / x[:, [H["pre_close_raw"]]]       # the limits keep their ratio to the pre-close
        x[:, SHRUNK] = np.exp(base + k * (np.log(x[:, SHRUNK]) - base))
        x[:, LIMITS] = np.round(ratios * x[:, [H["pre_close_raw"]]], 2)   # NaN (US stocks) stays NaN
        if kind == "spike +8σ (bar)":
            last[PRICES] *= np.exp(8 * k * sigma)
        else:
            last[H["close_raw"]] = x[t - 1, H["close_raw"]] * np.exp(8 * k * sigma)
            last[H["high_raw"]] = max(last[H["high_raw"]], last[H["close_raw"]])
    return x.astype(np.float32)


def detector_table(arrays, segments, model, threshold: float, per_symbol: int, seed: int = 7):
    """{kind: {"rules", "model", "both": recall, "n": count}} and the clean test bars' false-positive rates."""
    rng = np.random.default_rng(seed)
    hits = {k: {"rules": [], "model": [], "both": []} for k in KINDS}
    clean_rules, clean_windows = [], []
    test_a, test_b = (np.datetime64(d, "ns").astype(np.int64) for d in segments.bounds["test"])
    train_a, train_b = (np.datetime64(d, "ns").astype(np.int64) for d in segments.bounds["train"])
    for sym, (times, rows) in arrays.items():
        ends = np.flatnonzero((times >= test_a) & (times <= test_b))
        ends = ends[ends > QUALITY_WINDOW]
        train = np.flatnonzero((times >= train_a) & (times <= train_b))
        if len(train) < 60 or not len(ends):
            continue
        close = rows[:, H["close_raw"]].astype(np.float64)
        sigma = float(np.diff(np.log(close))[train[1:] - 1].std())
        for t in ends:
            clean_rules.append(bool(rule_reasons(sym, rows[:t + 1], int(times[t]))))
        clean_windows.append(quality_windows(quality_ohlcv(rows), ends))
        for kind in KINDS:
            for t in rng.choice(ends, size=min(per_symbol, len(ends)), replace=False):
                x = inject(rows, int(t), kind, sigma)
                by_rule = bool(rule_reasons(sym, x, int(times[t])))
                window = quality_windows(quality_ohlcv(x[-(QUALITY_WINDOW + 1):]), np.array([QUALITY_WINDOW]))
                by_model = bool(scores(model, window)[0] > threshold)
                hits[kind]["rules"].append(by_rule)
                hits[kind]["model"].append(by_model)
                hits[kind]["both"].append(by_rule or by_model)
    clean_scores = scores(model, np.concatenate(clean_windows))
    fpr = {"rules": float(np.mean(clean_rules)), "model": float(np.mean(clean_scores > threshold)),
           "n": len(clean_scores)}
    table = {k: {d: float(np.mean(v)) for d, v in row.items()} | {"n": len(row["rules"])} for k, row in hits.items()}
    return table, fpr


def show(title: str, table, fpr) -> None:
    print(f"\n  {title}: clean test bars {fpr['n']}: FPR rules {fpr['rules']:.4f}, model {fpr['model']:.4f}")
    print(f"    {'fault':<20} {'rules':>6} {'model':>6} {'both':>6}   n")
    for kind, row in table.items():
        print(f"    {kind:<20} {row['rules']:6.3f} {row['model']:6.3f} {row['both']:6.3f}   {row['n']}")


def check_rules(table) -> None:
    """The rules catch what they are built for, on any series."""
    assert table["frozen feed"]["rules"] == 1.0                 # stale
    assert table["swapped high/low"]["rules"] == 1.0            # ohlc
    for kind in KINDS:
        assert table[kind]["both"] >= max(table[kind]["rules"], table[kind]["model"])


@pytest.fixture(scope="module")
def synthetic(watchdog_panel):
    root, run, _ = watchdog_panel
    model, doc = load_watchdog(run)
    arrays = store_arrays(root)
    return arrays, split_segments(DataStore(root).sessions()), model, doc


def test_detectors_on_a_synthetic_panel_of_50_symbols(synthetic, capsys):
    arrays, segments, model, doc = synthetic
    assert len(arrays) == 50 and doc["fpr"] == FPR
    table, fpr = detector_table(arrays, segments, model, doc["threshold"], per_symbol=8)
    with capsys.disabled():
        show(f"SYNTHETIC 50 symbols x 3 years, model at {FPR:.1%} val FPR", table, fpr)
    check_rules(table)
    for kind in ("price x10", "price /10"):                     # beyond the stored daily limit
        assert table[kind]["rules"] == 1.0
    for kind in ("volume x1000", "spike +8σ (bar)", "spike +8σ (close)"):
        assert table[kind]["rules"] <= 0.02, (kind, table[kind])   # inside the limit: no rule can see them
        assert table[kind]["model"] >= 0.95, (kind, table[kind])   # the bar for the model alone
    for kind in ("price x10", "price /10"):
        assert table[kind]["model"] >= 0.95
    assert fpr["model"] <= 0.01 and fpr["rules"] <= 0.002


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from bokeh_sampledata import stocks

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("wd-real")
    csv = base / "csv"
    csv.mkdir()
    for sym in ("AAPL", "GOOG", "IBM", "MSFT"):
        frame = pd.DataFrame(getattr(stocks, sym)).rename(columns={"date": "trade_date"})
        frame[["trade_date", "open", "high", "low", "close", "volume"]].to_csv(csv / f"{sym}.csv", index=False)
    root = base / "store"
    run_data(DataRequest(source="csv", data_dir=root, csv_path=csv, market="us"), load_settings())
    train_watchdog(base / "wd", data_dir=root, config=WatchdogConfig(epochs=8, fpr=FPR))
    model, doc = load_watchdog(base / "wd")
    arrays = store_arrays(root)
    return arrays, split_segments(DataStore(root).sessions()), model, doc


def test_detectors_on_real_us_stocks(real, capsys):
    """Real bars have real anomalies (unadjusted splits in the raw close, earnings gaps), and a US stock
    has no daily limit: price x10 is the model's to catch there, not the limit rule's."""
    arrays, segments, model, doc = real
    table, fpr = detector_table(arrays, segments, model, doc["threshold"], per_symbol=100)
    with capsys.disabled():
        show(f"REAL AAPL/GOOG/IBM/MSFT 2000-2013, model at {FPR:.1%} val FPR", table, fpr)
    check_rules(table)
    for kind in ("price x10", "price /10", "volume x1000"):
        assert table[kind]["model"] >= 0.95, (kind, table[kind])
    assert fpr["rules"] <= 0.002 and fpr["model"] <= 0.02

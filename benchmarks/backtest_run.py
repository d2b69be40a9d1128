"""``heqis backtest RUN`` per symbol: the fast path against the old one, tiny and default models.

The old path is reimplemented here (it is no longer reachable from heqis): every window of every
symbol predicted with torch, one ``SegmentRunner.run`` per generator × mode × segment with
buy-and-hold re-simulated in each. The fast path is ``backtest_run`` itself (only select/test
decision dates predicted, ONNX Runtime by default, every simulation through ``run_symbols``), and
``backtest_run(inference_backend="torch")`` for the torch share. Before anything is reported, each
path's candidates (every symbol × generator × mode × segment metric) are checked equal to the old
path's within 1e-9. Timings: best of ``--rounds``, the paths interleaved in each round; printed as
seconds per symbol, ratios old / fast, and the extrapolation to 300 symbols.

A run per preset is trained when ``--runs-dir`` has none (1 epoch on the data; the timing does not
depend on training). Data: ``heqis data --source synthetic --symbols N --years 7 -d DIR`` (default
``--data``), or the bundled sample set.

    python benchmarks/backtest_run.py --data /tmp/bt-syn --runs-dir /tmp/bt-runs [--presets tiny,default]
        [--rounds 3] [--symbols 20] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import heqis.backtest.run as bt_run
from heqis.backtest.rules import MarketRules
from heqis.backtest.signals import MODES, predict
from heqis.formats.run import RunFolder


def ensure_run(preset: str, data: Path, runs_dir: Path, symbols: int) -> Path:
    out = runs_dir / preset
    if (out / "manifest.json").exists():
        return out
    from heqis.data.store import DataStore
    from heqis.train.run import TrainRequest, run_train

    codes = DataStore(data).symbols()[:symbols]
    run_train(TrainRequest(data_dir=data, preset=preset, symbols=codes, epochs=1, device="cpu", out=out,
                           overrides={"pretrain_epochs": 1, "encoder_epochs": 1, "max_train_windows": 2000}))
    return out


def old_path(run_dir: Path, rules: MarketRules) -> pd.DataFrame:
    """The backtest loop as it was: predict every window, 16 runs per symbol, each with buy-and-hold."""
    run = RunFolder.open(run_dir)
    store, models = bt_run.open_run_models(run, None)
    segments = {k: (pd.Timestamp(a), pd.Timestamp(b)) for k, (a, b) in run.segments.items()}
    universe = bt_run.Universe.of(store)
    runner = bt_run.SegmentRunner(store, rules, universe)
    rows = []
    for code in bt_run.tradable(run.manifest["symbols"], universe):
        preds = {gid: predict(m, scaler, runner.bars(code)) for gid, (m, scaler) in models.items()}
        for gid, pred in preds.items():
            for mode in MODES:
                signals = pred.signals(mode, rules.regression_threshold)
                for segment in ("select", "test"):
                    _, _, metrics = runner.run(code, signals, *segments[segment])
                    rows.append({"symbol": code, "generator": gid, "mode": mode, "segment": segment, **metrics})
    return pd.DataFrame(rows)


def fast_path(run_dir: Path, rules: MarketRules, backend: str, out: Path) -> pd.DataFrame:
    bt_run.backtest_run(run_dir, rules=rules, out=out, inference_backend=backend)
    return pd.read_csv(out / "candidates.csv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="data store (heqis data ... -d DIR)")
    ap.add_argument("--runs-dir", type=Path, required=True, help="where the runs per preset are (or are trained)")
    ap.add_argument("--presets", default="tiny,default")
    ap.add_argument("--symbols", type=int, default=20, help="symbols a trained run covers")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rules = MarketRules()
    report = {}
    for preset in args.presets.split(","):
        run_dir = ensure_run(preset, args.data, args.runs_dir, args.symbols)
        n = len(bt_run.tradable(RunFolder.open(run_dir).manifest["symbols"],
                                bt_run.Universe.of(bt_run.open_run_models(RunFolder.open(run_dir), None)[0])))
        best = {"old": np.inf, "fast_auto": np.inf, "fast_torch": np.inf}
        with tempfile.TemporaryDirectory() as tmp:
            old_path(run_dir, rules)                                     # warm numba caches / imports
            for _ in range(args.rounds):
                results = {}
                for name in best:
                    t0 = time.perf_counter()
                    results[name] = (old_path(run_dir, rules) if name == "old" else
                                     fast_path(run_dir, rules, name.split("_")[1], Path(tmp) / name))
                    best[name] = min(best[name], time.perf_counter() - t0)
                old = pd.read_csv(io.StringIO(results["old"].to_csv(index=False)))   # as the CSV reads back
                for name in ("fast_auto", "fast_torch"):   # the old path has no balanced_acc column
                    pd.testing.assert_frame_equal(results[name][old.columns], old, rtol=1e-9, atol=1e-9)
        per = {k: v / n for k, v in best.items()}
        report[preset] = {"symbols": n, "seconds_per_symbol": per,
                          "old_over_fast_auto": best["old"] / best["fast_auto"],
                          "old_over_fast_torch": best["old"] / best["fast_torch"],
                          "fast_auto_300_symbols_s": per["fast_auto"] * 300}
        if not args.json:
            print(f"{preset}: {n} symbols, s/symbol old {per['old']:.3f} · fast (auto) {per['fast_auto']:.3f} · "
                  f"fast (torch) {per['fast_torch']:.3f} · old/fast {report[preset]['old_over_fast_auto']:.1f}× "
                  f"(torch {report[preset]['old_over_fast_torch']:.1f}×) · 300 symbols ≈ "
                  f"{per['fast_auto'] * 300:.0f} s · candidates equal", flush=True)
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""The brain's preprocessing per window: ``brain_input`` against the same work assembled over every bar.

What the brain does for each request (heqis.runtime.bars.brain_input): ``model_inputs`` over the
560 bars a request carries with ``last_n`` = the window (indicators over every bar, only the last 60
rows assembled), then scale-free and the scaler. The baseline is the same computation assembling
all 560 rows and keeping the last 60 afterwards (what wave 1 did). Both outputs are checked equal;
each side is timed best-of-N, the two interleaved, on real request windows of the sample data.

    python benchmarks/brain_preprocess.py [--data heqis-demo/data] [--artifacts heqis-demo/deploy_output]
                                          [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from heqis.features.inputs import model_inputs
from heqis.features.transform import Scaler, scale_free
from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.bars import brain_input, history_length, request_window
from heqis.runtime.replay_pack import store_arrays


def assembled_over_every_bar(bars: np.ndarray, scaler: Scaler) -> np.ndarray:
    values = model_inputs(bars)[-scaler.window:]
    return scaler.transform(scale_free(values))


def per_window_us(fn, windows: list[np.ndarray], scaler: Scaler) -> float:
    t0 = time.perf_counter()
    for w in windows:
        fn(w, scaler)
    return (time.perf_counter() - t0) / len(windows) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("heqis-demo/data"))
    ap.add_argument("--artifacts", type=Path, default=Path("heqis-demo/deploy_output"))
    ap.add_argument("--symbol", default="600519.SH")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    artifacts = ArtifactSet.open(args.artifacts)
    scaler = Scaler.load(artifacts.path(artifacts.generators[0], "scaler"))
    _, rows = store_arrays(args.data, [args.symbol])[args.symbol]
    h = history_length(scaler.window)
    windows = [request_window(rows[i + 1 - h:i + 1]) for i in range(h - 1, len(rows))]
    for w in windows[:: max(1, len(windows) // 50)]:
        a, b = brain_input(w, scaler), assembled_over_every_bar(w, scaler)
        assert a is not None and np.array_equal(a, b), "the two paths must give the same input"
    ours, base = [], []
    for _ in range(args.rounds):                       # interleaved: both see the same machine load
        ours.append(per_window_us(brain_input, windows, scaler))
        base.append(per_window_us(assembled_over_every_bar, windows, scaler))
    result = {"windows": len(windows), "bars_per_request": h, "brain_input_us": min(ours),
              "assembled_over_every_bar_us": min(base), "ratio": min(base) / min(ours)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"brain preprocessing, {h} bars per request, {len(windows)} windows, best of {args.rounds}: "
              f"brain_input {result['brain_input_us']:.0f} µs/window · every bar assembled "
              f"{result['assembled_over_every_bar_us']:.0f} µs/window · ratio {result['ratio']:.2f}×")


if __name__ == "__main__":
    main()

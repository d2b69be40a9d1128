"""The brain's preprocessing per window against the tiny models' inference, at batch 1.

What the brain does for each request (heqis.runtime.bars.brain_input): ``model_inputs`` over the
bars a request carries with ``last_n`` = the window (one compiled call), then scale-free and the
scaler (``scaled_window``: fused for one window, another compiled call). Measured against, in the
same run and interleaved round by round:

* the reference: the per-column numpy implementation it replaced (tests/reference_inputs.py: every
  indicator called on its own over every bar, 24 columns stacked, the last rows kept), then the same
  scale-free and scaler; its outputs are checked equal to ``brain_input``'s before any timing;
* inference: each generator's ONNX model at batch 1 on ONNX Runtime with 1 thread (what
  ``heqis brain --threads 1`` runs), on the very inputs ``brain_input`` produced.

Best of N rounds per side. Goal: preprocessing ≤ inference.

    python benchmarks/brain_preprocess.py [--data heqis-demo/data] [--artifacts heqis-demo/deploy_output]
                                          [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # tests.reference_inputs, from a checkout

from heqis.backends import get_predictor
from heqis.features.inputs import model_inputs
from heqis.features.transform import Scaler, scale_free, scaled_window
from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.bars import brain_input, history_length, request_window
from heqis.runtime.replay_pack import store_arrays
from tests.reference_inputs import reference_model_inputs

TOLERANCE = 1e-6   # scaled float32 inputs: brain_input vs the reference implementation


def reference_brain_input(bars: np.ndarray, scaler: Scaler) -> np.ndarray:
    return scaler.transform(scale_free(reference_model_inputs(bars, last_n=scaler.window)))


def per_call_us(fn, items: list) -> float:
    t0 = time.perf_counter()
    for x in items:
        fn(x)
    return (time.perf_counter() - t0) / len(items) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("heqis-demo/data"))
    ap.add_argument("--artifacts", type=Path, default=Path("heqis-demo/deploy_output"))
    ap.add_argument("--symbol", default="600519.SH")
    ap.add_argument("--windows", type=int, default=400, help="request windows per round (the symbol's last ones)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    artifacts = ArtifactSet.open(args.artifacts)
    _, rows = store_arrays(args.data, [args.symbol])[args.symbol]
    gens = artifacts.generators
    scalers = {g: Scaler.load(artifacts.path(g, "scaler")) for g in gens}
    predictors = {g: get_predictor("onnxruntime", args.artifacts, g, threads=1, providers=["CPUExecutionProvider"])
                  for g in gens}
    scaler = scalers[gens[0]]
    h = history_length(scaler.window)
    ends = range(max(h - 1, len(rows) - args.windows), len(rows))
    windows = [request_window(rows[i + 1 - h:i + 1]) for i in ends]

    worst = 0.0                                                     # outputs first, then timings
    for w in windows:
        a, b = brain_input(w, scaler), reference_brain_input(w, scaler)
        assert a is not None and a.shape == b.shape, "brain_input gave no input for a valid window"
        worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b))))
    assert worst <= TOLERANCE, f"brain_input differs from the reference by {worst:.2e} (> {TOLERANCE})"
    inputs = {g: [brain_input(w, scalers[g])[None] for w in windows] for g in gens}
    raw = [model_inputs(w, last_n=scaler.window) for w in windows]

    ours, ref, mi, sf = [], [], [], []
    inf: dict[str, list[float]] = {g: [] for g in gens}
    for _ in range(args.rounds):              # interleaved: every side sees the same machine load
        ours.append(per_call_us(lambda w: brain_input(w, scaler), windows))
        ref.append(per_call_us(lambda w: reference_brain_input(w, scaler), windows))
        mi.append(per_call_us(lambda w: model_inputs(w, last_n=scaler.window), windows))
        sf.append(per_call_us(lambda v: scaled_window(v, scaler), raw))
        for g in gens:
            inf[g].append(per_call_us(predictors[g].predict, inputs[g]))
    inference = {g: min(v) for g, v in inf.items()}
    result = {"windows": len(windows), "bars_per_request": h, "rounds": args.rounds,
              "brain_input_us": min(ours), "reference_us": min(ref), "model_inputs_us": min(mi),
              "scaled_window_us": min(sf),
              "speedup_vs_reference": min(ref) / min(ours), "inference_us": inference,
              "fastest_inference_us": min(inference.values()),
              "preprocess_over_fastest_inference": min(ours) / min(inference.values()),
              "model_inputs_over_fastest_inference": min(mi) / min(inference.values()),
              "max_abs_diff_vs_reference": worst, "goal": "preprocess <= inference"}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"brain preprocessing, {h} bars per request, {len(windows)} windows, best of {args.rounds} "
          f"(outputs equal to the reference within {worst:.1e})")
    print(f"  brain_input        {result['brain_input_us']:7.1f} µs/window  (model_inputs alone "
          f"{result['model_inputs_us']:.1f} µs, scaled_window alone {result['scaled_window_us']:.1f} µs)")
    print(f"  reference (numpy)  {result['reference_us']:7.1f} µs/window  → "
          f"{result['speedup_vs_reference']:.1f}× faster")
    for g, us in inference.items():
        print(f"  inference {g} (ORT, 1 thread, batch 1) {us:7.1f} µs")
    verdict = "meets" if result["preprocess_over_fastest_inference"] <= 1.0 else "MISSES"
    print(f"  preprocess / fastest inference: {result['preprocess_over_fastest_inference']:.2f} "
          f"({verdict} the goal ≤ 1); model_inputs alone / fastest inference: "
          f"{result['model_inputs_over_fastest_inference']:.2f}")


if __name__ == "__main__":
    main()

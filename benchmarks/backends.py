"""ONNX Runtime vs eager PyTorch (and TorchScript) at batch 1, per generator and preset size.

Random weights of the preset's sizes (the timing does not depend on training), exported exactly as
``heqis export`` does. Before anything is timed, the three engines' outputs (both heads) on the same
windows are checked to agree within the export's parity tolerance (1e-4, heqis.export.onnx_export);
the RKNN simulator is not part of this comparison (it lives in its own venv: ``heqis convert --to
rknn`` checks its parity). Then rounds of ``calls`` calls per engine, the engines interleaved inside
each round; the best round's median ms per call is printed, with the ratio eager torch / ONNX
Runtime (goal ≥ 3×), on the CPU threads given (the boards have few cores).

    python benchmarks/backends.py [--presets tiny,default,paper] [--calls 200] [--rounds 5] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from heqis.export.onnx_export import PARITY_TOL, export_onnx, onnx_session
from heqis.features.columns import MODEL_INPUTS
from heqis.models.encoders import build_encoders
from heqis.models.exportable import ExportModule
from heqis.models.generators import build_generator
from heqis.train.presets import get_preset


def median_ms(fn, x, calls: int) -> float:
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def max_diff(a, b) -> float:
    """Max |a - b| over both heads (tensors or arrays)."""
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in
               zip(a, b, strict=True))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,default,paper")
    ap.add_argument("--calls", type=int, default=200, help="calls per engine per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_f = len(MODEL_INPUTS)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets.split(","):
            p = get_preset(name.strip())
            torch.manual_seed(0)
            enc = build_encoders(n_f, p.window, p.cae, p.t3vae)
            x = torch.randn(1, p.window, n_f)
            for gid, spec in p.generators.items():
                module = ExportModule(build_generator(spec["kind"], n_f, p.window, spec, enc), 50.0, 0.0).eval()
                path = Path(tmp) / f"{name}_{gid}.onnx"
                export_onnx(module, path, p.window, n_f)
                session = onnx_session(path, threads=args.threads)
                checks = torch.randn(8, p.window, n_f)
                with torch.inference_mode(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # tracer warnings about shape arithmetic
                    traced = torch.jit.trace(module, x, check_trace=False)
                    engines = {"eager": (module, x), "torchscript": (traced, x),
                               "onnxruntime": (lambda a, s=session: s.run(None, {"input": a}), x.numpy())}
                    diff = 0.0
                    for i in range(len(checks)):      # batch 1, as timed, on 8 windows
                        xi = checks[i:i + 1]
                        want = [t.numpy() for t in module(xi)]
                        diff = max(diff, max_diff(traced(xi), want),
                                   max_diff(session.run(None, {"input": xi.numpy()}), want))
                    if diff > PARITY_TOL:
                        raise SystemExit(f"{name} {gid}: the engines disagree by {diff:.2e} (> {PARITY_TOL})")
                    for fn, arg in engines.values():  # warm-up
                        for _ in range(20):
                            fn(arg)
                    best = {e: np.inf for e in engines}
                    for _ in range(args.rounds):      # interleaved rounds, best round per engine
                        for e, (fn, arg) in engines.items():
                            best[e] = min(best[e], median_ms(fn, arg, args.calls))
                rows.append({"preset": name, "generator": gid, "kind": spec["kind"], "eager_ms": best["eager"],
                             "torchscript_ms": best["torchscript"], "onnxruntime_ms": best["onnxruntime"],
                             "eager_over_ort": best["eager"] / best["onnxruntime"], "max_abs_diff": diff})
    if args.json:
        print(json.dumps({"threads": args.threads, "calls": args.calls, "rounds": args.rounds,
                          "parity_tol": PARITY_TOL, "rows": rows}, indent=2))
        return 0
    print(f"batch 1, best of {args.rounds} interleaved rounds of {args.calls} calls (median), {args.threads} CPU "
          f"threads; torch {torch.__version__}; outputs agree within {PARITY_TOL:g} (max |diff| shown)")
    print(f"{'preset':<8}{'gen':<4}{'kind':<12}{'eager ms':>10}{'script ms':>11}{'ORT ms':>9}{'eager/ORT':>11}"
          f"{'max diff':>10}")
    for r in rows:
        print(f"{r['preset']:<8}{r['generator']:<4}{r['kind']:<12}{r['eager_ms']:>10.3f}{r['torchscript_ms']:>11.3f}"
              f"{r['onnxruntime_ms']:>9.3f}{r['eager_over_ort']:>10.1f}×{r['max_abs_diff']:>10.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ONNX Runtime vs eager PyTorch (and TorchScript) at batch 1, per generator and preset size.

Random weights of the preset's sizes (the timing does not depend on training), exported exactly as
``heqis export`` does; each engine runs the same windows. Prints median ms per call and the ratio
eager torch / ONNX Runtime (goal ≥ 3×), on the CPU threads given (the boards have few cores).

    python benchmarks/backends.py [--presets tiny,default,paper] [--calls 200] [--threads 2] [--json]
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

from heqis.export.onnx_export import export_onnx, onnx_session
from heqis.features.columns import MODEL_INPUTS
from heqis.models.encoders import build_encoders
from heqis.models.exportable import ExportModule
from heqis.models.generators import build_generator
from heqis.train.presets import get_preset


def median_ms(fn, x, calls: int) -> float:
    for _ in range(20):
        fn(x)
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,default,paper")
    ap.add_argument("--calls", type=int, default=200)
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
                xn = x.numpy()
                with torch.inference_mode(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # tracer warnings about shape arithmetic
                    eager = median_ms(module, x, args.calls)
                    traced = torch.jit.trace(module, x, check_trace=False)
                    script = median_ms(traced, x, args.calls)
                ort_ms = median_ms(lambda a, s=session: s.run(None, {"input": a}), xn, args.calls)
                rows.append({"preset": name, "generator": gid, "kind": spec["kind"], "eager_ms": eager,
                             "torchscript_ms": script, "onnxruntime_ms": ort_ms, "eager_over_ort": eager / ort_ms})
    if args.json:
        print(json.dumps({"threads": args.threads, "rows": rows}, indent=2))
        return 0
    print(f"batch 1, median of {args.calls} calls, {args.threads} CPU threads; torch {torch.__version__}")
    print(f"{'preset':<8}{'gen':<4}{'kind':<12}{'eager ms':>10}{'script ms':>11}{'ORT ms':>9}{'eager/ORT':>11}")
    for r in rows:
        print(f"{r['preset']:<8}{r['generator']:<4}{r['kind']:<12}{r['eager_ms']:>10.3f}{r['torchscript_ms']:>11.3f}"
              f"{r['onnxruntime_ms']:>9.3f}{r['eager_over_ort']:>10.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())

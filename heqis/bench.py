"""``heqis bench backends``: batch-1 latency and batch-64 throughput of every available backend.

Same artifact set, same generator, same real windows (the artifact set's calibration windows) for
every backend; unavailable backends are listed with the reason, not silently skipped. Each backend's
outputs on the same 64 windows are compared with ONNX Runtime's before it is timed
(``agrees_with_onnxruntime``: within the export's parity tolerance, or 1e-2 at reduced precision).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heqis.backends import BACKENDS, INSTALL_HINTS, get_predictor
from heqis.errors import HeqisError
from heqis.formats.artifacts import ArtifactSet


@dataclass
class BackendTiming:
    backend: str
    generator: str
    variant: str
    p50_ms: float
    p99_ms: float
    max_ms: float
    throughput_per_s: float
    max_abs_diff_vs_onnxruntime: float
    agrees_with_onnxruntime: bool


def _tolerance(backend: str, variant: str) -> float:
    """The export's parity tolerance (1e-4, heqis.export.onnx_export) for float32 engines; 1e-2 for the
    reduced-precision ones (fp16 on CUDA, TensorRT engines, RKNN's NPU)."""
    return 1e-4 if backend in ("onnxruntime", "torch") and "fp16" not in variant else 1e-2


@dataclass
class BenchResult:
    artifact_dir: str
    calls: int
    rows: list[BackendTiming]
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _variants(backend: str) -> list[tuple[str, dict[str, Any]]]:
    if backend == "torch":
        import torch

        out: list[tuple[str, dict[str, Any]]] = [("cpu", {"device": "cpu"})]
        if torch.cuda.is_available():
            out += [("cuda", {"device": "cuda"}), ("cuda-fp16", {"device": "cuda", "half": True})]
        return out
    if backend == "tensorrt":
        return [("engine", {}), ("engine+graph", {"cuda_graph": True})]
    return [("default", {})]


def time_predictor(predictor: Any, windows: np.ndarray, calls: int, warmup: int = 20) -> tuple[np.ndarray, float]:
    one = windows[:1]
    for _ in range(warmup):
        predictor.predict(one)
    lat = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        predictor.predict(one)
        lat[i] = time.perf_counter() - t0
    batch = windows[:64]
    rounds = max(3, calls // 20)
    predictor.predict(batch)
    t0 = time.perf_counter()
    for _ in range(rounds):
        predictor.predict(batch)
    return lat * 1e3, rounds * len(batch) / (time.perf_counter() - t0)


def bench_backends(artifact_dir: Path, generators: list[str] | None = None, backends: list[str] | None = None,
                   calls: int = 200) -> BenchResult:
    artifacts = ArtifactSet.open(Path(artifact_dir))
    gens = generators or artifacts.generators
    rows: list[BackendTiming] = []
    unavailable: dict[str, str] = {}
    for gid in gens:
        windows = np.load(artifacts.path(gid, "calibration")).astype(np.float32)
        if len(windows) < 64:
            windows = np.concatenate([windows] * (64 // len(windows) + 1))
        reference = get_predictor("onnxruntime", artifact_dir, gid).predict(windows[:64])
        for backend in backends or BACKENDS:
            for variant, options in _variants(backend):
                try:
                    predictor = get_predictor(backend, artifact_dir, gid, **options)
                except HeqisError as exc:
                    unavailable[backend] = f"{exc.message} — {exc.hint or INSTALL_HINTS[backend]}"
                    break
                got = predictor.predict(windows[:64])       # outputs first, then the timing
                diff = max(float(np.max(np.abs(a - b))) for a, b in zip(got, reference, strict=True))
                lat, throughput = time_predictor(predictor, windows, calls)
                rows.append(BackendTiming(backend, gid, variant, float(np.percentile(lat, 50)),
                                          float(np.percentile(lat, 99)), float(lat.max()), throughput, diff,
                                          diff <= _tolerance(backend, variant)))
    return BenchResult(str(artifact_dir), calls, rows, unavailable)

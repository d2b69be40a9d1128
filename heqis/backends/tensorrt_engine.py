"""TensorRT engines for the Jetson brain (TensorRT 10, as JetPack 6 ships it): build, calibrate, name.

The TensorRT backend (``tensorrt_backend``) runs what this module builds; ``heqis convert --to
tensorrt`` (heqis.export.tensorrt_convert) drives it.

An engine is tied to the GPU and the TensorRT version that built it, so it is built on the device
that runs it (``heqis convert --to tensorrt`` on the Jetson, or through ``heqis up``) and cached
under a name made of (ONNX sha256, TensorRT version, GPU name). Where TensorRT does not import,
``--dry-run`` prints the exact ``trtexec`` command instead. The pure-Python parts — optimisation
profile, calibration batches from the real windows shipped with the artifacts, the command line,
the cache key — are unit-tested everywhere; the build itself only where ``tensorrt`` imports.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heqis.errors import HeqisError

PRECISIONS = ("fp32", "fp16", "int8")
MAX_BATCH = 64


@dataclass(frozen=True)
class Profile:
    """The optimisation profile of the dynamic batch axis: min, opt and max shapes of ``input``."""

    window: int
    n_features: int
    opt_batch: int = 1
    max_batch: int = MAX_BATCH

    def shapes(self) -> dict[str, tuple[int, int, int]]:
        return {"min": (1, self.window, self.n_features), "opt": (self.opt_batch, self.window, self.n_features),
                "max": (self.max_batch, self.window, self.n_features)}

    def trtexec_shapes(self) -> list[str]:
        s = self.shapes()
        return [f"--{k}Shapes=input:" + "x".join(map(str, s[k])) for k in ("min", "opt", "max")]


def engine_name(onnx_sha256: str, trt_version: str, gpu_name: str, precision: str) -> str:
    """Cache file name of an engine: it is only valid for this model, TensorRT version and GPU."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name).strip("-").lower() or "gpu"
    tag = hashlib.sha256(f"{onnx_sha256}|{trt_version}|{gpu_name}|{precision}".encode()).hexdigest()[:16]
    return f"{precision}-trt{trt_version}-{gpu}-{tag}.engine"


def calibration_batches(calibration: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """Contiguous float32 batches of the shipped calibration windows (a short last batch is dropped:
    the calibrator's buffers have a fixed size)."""
    x = np.ascontiguousarray(calibration, dtype=np.float32)
    if x.ndim != 3 or len(x) < batch:
        raise HeqisError(f"calibration set of shape {x.shape} cannot fill a batch of {batch}",
                         hint="re-export with more calibration windows")
    for start in range(0, len(x) - batch + 1, batch):
        yield x[start:start + batch]


def trtexec_command(onnx: Path, engine: Path, precision: str, profile: Profile,
                    calibration_cache: Path | None = None, workspace_mib: int = 1024) -> list[str]:
    """The ``trtexec`` invocation that builds the same engine as ``build_engine``."""
    if precision not in PRECISIONS:
        raise HeqisError(f"unknown precision '{precision}'", hint=f"use one of: {', '.join(PRECISIONS)}")
    cmd = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}", *profile.trtexec_shapes(),
           f"--memPoolSize=workspace:{workspace_mib}M", "--skipInference"]
    if precision == "fp16":
        cmd.append("--fp16")
    if precision == "int8":
        cmd += ["--int8", "--fp16"]   # fp16 fallback for layers INT8 cannot take
        if calibration_cache is not None:
            cmd.append(f"--calib={calibration_cache}")
    return cmd


def format_command(cmd: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def build_engine(onnx: Path, engine: Path, precision: str, profile: Profile,
                 calibration: np.ndarray | None = None) -> Path:  # pragma: no cover - needs TensorRT + a GPU
    """Build a serialized engine with the TensorRT 10 Python API."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise HeqisError(f"{onnx}: TensorRT cannot parse the model ({errors})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    opt = builder.create_optimization_profile()
    shapes = profile.shapes()
    opt.set_shape("input", shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        if calibration is None:
            raise HeqisError("INT8 needs the calibration windows (calibration.npy of the artifact set)")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_calibration_profile(opt)
        config.int8_calibrator = make_calibrator(calibration, batch=min(32, len(calibration)),
                                                 cache=engine.with_suffix(".calib"))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise HeqisError(f"{onnx}: TensorRT failed to build an engine (see the log above)")
    engine.write_bytes(bytes(serialized))
    return engine


def cuda_check(result: Any) -> Any:  # pragma: no cover - needs cuda-python
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise HeqisError(f"CUDA call failed: {err}")
    return rest[0] if len(rest) == 1 else rest


def make_calibrator(calibration: np.ndarray, batch: int, cache: Path) -> Any:  # pragma: no cover - needs TRT
    """An IInt8EntropyCalibrator2 over the shipped calibration windows."""
    import tensorrt as trt
    from cuda.bindings import runtime as cudart

    batches = list(calibration_batches(calibration, batch))

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.device = cuda_check(cudart.cudaMalloc(batches[0].nbytes))

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.index >= len(batches):
                return None
            host = batches[self.index]
            cuda_check(cudart.cudaMemcpy(self.device, host.ctypes.data, host.nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            self.index += 1
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, data: bytes) -> None:
            cache.write_bytes(bytes(data))

    return EntropyCalibrator()

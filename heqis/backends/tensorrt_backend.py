"""TensorRT engines on the Jetson: TensorRT 10 Python API, device buffers through cuda-python.

Thin on purpose: TensorRT cannot be installed on the development machines, so this code only runs
where ``tensorrt`` imports (the Orin); its pure-Python helpers are tested everywhere. Inference:
the input shape is set per call (dynamic batch), buffers are allocated for the profile's maximum
batch once, and an optional CUDA graph replays the launch for the batch size it was captured at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heqis.backends.base import Predictor
from heqis.backends.tensorrt_engine import MAX_BATCH, cuda_check
from heqis.errors import HeqisError


class TensorRTPredictor(Predictor):  # pragma: no cover - needs TensorRT + a GPU
    name = "tensorrt"

    def __init__(self, engine: str | None = None, cuda_graph: bool = False) -> None:
        super().__init__()
        import tensorrt  # noqa: F401  (fail early with the install hint)
        from cuda.bindings import runtime  # noqa: F401

        self.engine_path = Path(engine) if engine else None
        self.cuda_graph = cuda_graph
        self.graphs: dict[int, Any] = {}

    def load(self, artifact_dir: Path, generator: str) -> None:
        import tensorrt as trt
        from cuda.bindings import runtime as cudart

        self._open(artifact_dir, generator, "onnx")
        path = self.engine_path or self._cached_engine(Path(artifact_dir), generator)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise HeqisError(f"{path}: not an engine for this GPU / TensorRT version", hint="rebuild it here")
        self.context = self.engine.create_execution_context()
        self.stream = cuda_check(cudart.cudaStreamCreate())
        sizes = {"input": (MAX_BATCH, self.window, self.n_features), "output_reg": (MAX_BATCH, 1),
                 "output_cls": (MAX_BATCH, 3)}
        self.host = {n: np.empty(s, dtype=np.float32) for n, s in sizes.items()}
        self.device = {n: cuda_check(cudart.cudaMalloc(a.nbytes)) for n, a in self.host.items()}
        for n, ptr in self.device.items():
            self.context.set_tensor_address(n, int(ptr))

    def _cached_engine(self, artifact_dir: Path, generator: str) -> Path:
        found = sorted((artifact_dir / "engines").glob(f"{generator}-*.engine"))
        if not found:
            raise HeqisError(f"{artifact_dir}: no TensorRT engine for {generator}",
                             hint=f"build one here: heqis convert --to tensorrt --artifacts {artifact_dir}")
        return found[-1]

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from cuda.bindings import runtime as cudart

        x = self.check(windows)
        b = len(x)
        if b > MAX_BATCH:
            raise HeqisError(f"tensorrt: batch {b} exceeds the engine profile's {MAX_BATCH}")
        self.context.set_input_shape("input", x.shape)
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_check(cudart.cudaMemcpyAsync(self.device["input"], x.ctypes.data, x.nbytes, h2d, self.stream))
        if self.cuda_graph:
            graph = self.graphs.get(b)
            if graph is None:
                self.context.execute_async_v3(self.stream)  # warm-up launch before capture
                cuda_check(cudart.cudaStreamBeginCapture(self.stream,
                                                     cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
                self.context.execute_async_v3(self.stream)
                graph = cuda_check(cudart.cudaGraphInstantiate(cuda_check(cudart.cudaStreamEndCapture(self.stream)), 0))
                self.graphs[b] = graph
            cuda_check(cudart.cudaGraphLaunch(graph, self.stream))
        else:
            self.context.execute_async_v3(self.stream)
        for name in ("output_reg", "output_cls"):
            out = self.host[name]
            cuda_check(cudart.cudaMemcpyAsync(out.ctypes.data, self.device[name], out[:b].nbytes, d2h, self.stream))
        cuda_check(cudart.cudaStreamSynchronize(self.stream))
        return self.host["output_reg"][:b].copy(), self.host["output_cls"][:b].copy()

"""ONNX Runtime: the default backend (CPU; CUDA / TensorRT execution providers when installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heqis.backends.base import Predictor


class OnnxRuntimePredictor(Predictor):
    name = "onnxruntime"

    def __init__(self, threads: int | None = None, providers: list[str] | None = None) -> None:
        super().__init__()
        self.threads = threads
        self.providers = providers
        self.session: Any = None

    def load(self, artifact_dir: Path, generator: str) -> None:
        import onnxruntime as ort

        path = self._open(artifact_dir, generator, "onnx")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
        available = ort.get_available_providers()
        wanted = self.providers or [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reg, cls = self.session.run(["output_reg", "output_cls"], {"input": self.check(windows)})
        return reg, cls

    def info(self) -> dict[str, Any]:
        return {**super().info(), "providers": self.session.get_providers() if self.session else []}

"""Eager PyTorch from the generator's state dict (CPU or CUDA; optional fp16 on CUDA).

The only backend that needs torch, and it imports it lazily, when a predictor is made: an edge
install without torch can import ``heqis.backends`` and use the other backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heqis.backends.base import Predictor
from heqis.errors import HeqisError


class TorchPredictor(Predictor):
    name = "torch"

    def __init__(self, device: str = "cpu", half: bool = False, threads: int | None = None) -> None:
        super().__init__()
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise HeqisError("torch backend: CUDA requested but torch sees no GPU", hint="use device cpu")
        self.device = torch.device(device)
        self.half = half and self.device.type == "cuda"
        if threads:
            torch.set_num_threads(threads)
        self.module: Any = None

    def load(self, artifact_dir: Path, generator: str) -> None:
        from heqis.features.transform import Scaler
        from heqis.models.checkpoint import load_generator_file
        from heqis.models.exportable import ExportModule

        path = self._open(artifact_dir, generator, "torch")
        scaler = Scaler.load(self.artifacts.path(generator, "scaler"))
        module = ExportModule(load_generator_file(path), scaler.y_scale, scaler.y_min).eval().to(self.device)
        self.module = module.half() if self.half else module

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(self.check(windows)).to(self.device)
            if self.half:
                x = x.half()
            reg, cls = self.module(x)
            return reg.float().cpu().numpy(), cls.float().cpu().numpy()

    def info(self) -> dict[str, Any]:
        import torch

        return {**super().info(), "device": str(self.device), "half": self.half, "torch": torch.__version__}

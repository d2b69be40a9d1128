"""Eager PyTorch from the generator's state dict (CPU or CUDA; optional fp16 and CUDA graphs on CUDA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from heqis.backends.base import Predictor
from heqis.errors import HeqisError


class TorchPredictor(Predictor):
    name = "torch"

    def __init__(self, device: str = "cpu", half: bool = False, threads: int | None = None) -> None:
        super().__init__()
        if device == "cuda" and not torch.cuda.is_available():
            raise HeqisError("torch backend: CUDA requested but torch sees no GPU", hint="use device cpu")
        self.device = torch.device(device)
        self.half = half and self.device.type == "cuda"
        if threads:
            torch.set_num_threads(threads)
        self.module: Any = None

    def load(self, artifact_dir: Path, generator: str) -> None:
        from heqis.export.onnx_export import ExportModule
        from heqis.features.transform import Scaler
        from heqis.train.run import load_generator_file

        path = self._open(artifact_dir, generator, "torch")
        scaler = Scaler.load(Path(artifact_dir) / "scaler_params.json")
        module = ExportModule(load_generator_file(path), scaler.y_scale, scaler.y_min).eval().to(self.device)
        self.module = module.half() if self.half else module

    @torch.inference_mode()
    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(self.check(windows)).to(self.device)
        if self.half:
            x = x.half()
        reg, cls = self.module(x)
        return reg.float().cpu().numpy(), cls.float().cpu().numpy()

    def info(self) -> dict[str, Any]:
        return {**super().info(), "device": str(self.device), "half": self.half, "torch": torch.__version__}

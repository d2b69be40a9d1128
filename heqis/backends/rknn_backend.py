"""RKNN on the RK3568 board through rknn-toolkit-lite2 (aarch64 only; RKNN runs batch 1).

On x86 the full rknn-toolkit2 (with its simulator) lives in its own venv — it pins old numpy,
onnx and torch — and ``heqis convert --to rknn`` drives it in a subprocess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heqis.backends.base import Predictor
from heqis.errors import HeqisError


class RKNNLitePredictor(Predictor):  # pragma: no cover - needs the board's NPU runtime
    name = "rknn"

    def __init__(self, core_mask: int | None = None) -> None:
        super().__init__()
        from rknnlite.api import RKNNLite  # noqa: F401  (fail early with the install hint)

        self.core_mask = core_mask
        self.rknn: Any = None

    def load(self, artifact_dir: Path, generator: str) -> None:
        from rknnlite.api import RKNNLite

        self._open(artifact_dir, generator, "onnx")
        path = Path(artifact_dir) / "rknn" / f"model_{generator}.rknn"
        if not path.exists():
            raise HeqisError(f"{path}: no RKNN model", hint="heqis convert --to rknn on the research machine")
        self.rknn = RKNNLite()
        if self.rknn.load_rknn(str(path)) != 0 or self.rknn.init_runtime() != 0:
            raise HeqisError(f"{path}: the NPU runtime refused the model")

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self.check(windows)
        regs, clss = [], []
        for i in range(len(x)):       # RKNN models are built for batch 1
            reg, cls = self.rknn.inference(inputs=[x[i:i + 1]])
            regs.append(reg)
            clss.append(cls)
        return np.concatenate(regs).reshape(-1, 1), np.concatenate(clss).reshape(-1, 3)

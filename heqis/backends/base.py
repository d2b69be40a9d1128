"""The Predictor contract every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from heqis.errors import HeqisError
from heqis.formats.artifacts import ArtifactSet


class Predictor(ABC):
    """load(artifact_dir, generator) → predict(windows) → (reg [B,1], cls [B,3]); info() describes it."""

    name = "base"

    def __init__(self) -> None:
        self.manifest: dict[str, Any] = {}
        self.generator = ""
        self.window = 0
        self.n_features = 0

    def _open(self, artifact_dir: Path, generator: str, key: str) -> Path:
        """Verify the artifact set (sha256 of the files this backend reads) and return one file."""
        artifacts = ArtifactSet.open(artifact_dir, verify=False)
        artifacts.verify([artifacts.file_name(generator, key), artifacts.file_name(generator, "scaler")])
        self.artifacts, self.manifest, self.generator = artifacts, artifacts.manifest, generator
        self.window, self.n_features = artifacts.window(generator), artifacts.n_features
        return artifacts.path(generator, key)

    def check(self, windows: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window, self.n_features):
            raise HeqisError(f"{self.name}: windows of shape {tuple(x.shape)} do not fit the model",
                             hint=f"expected [B, {self.window}, {self.n_features}]")
        return x

    @abstractmethod
    def load(self, artifact_dir: Path, generator: str) -> None: ...

    @abstractmethod
    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def info(self) -> dict[str, Any]:
        return {"backend": self.name, "generator": self.generator, "window": self.window,
                "n_features": self.n_features}

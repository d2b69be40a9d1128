"""The gateway's data-quality model at run time: watchdog.onnx of an artifact set, scored in ONNX Runtime.

``WatchdogModel.open(ArtifactSet)`` is None when the set has no watchdog (an older export, or a run
trained without ``--watchdog``). A window (heqis.features.quality) scoring above ``threshold`` is a bar
the model thinks is bad data; what to do with it (warn, hold) is the gateway's watchdog policy.
numpy and onnxruntime only: this runs on the boards.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heqis.errors import HeqisError
from heqis.features.quality import QUALITY_COLUMNS, quality_window
from heqis.formats.artifacts import ArtifactSet, artifact_path


class WatchdogModel:
    backend = "onnxruntime"

    def __init__(self, session: Any, window: int, threshold: float, info: dict[str, Any],
                 names: tuple[str, str] = ("window", "score")) -> None:
        self.session = session
        self.window = int(window)
        self.threshold = float(threshold)
        self.info = info
        self.names = names

    @classmethod
    def open(cls, artifacts: ArtifactSet) -> WatchdogModel | None:
        info = artifacts.manifest.get("watchdog")
        if not info:
            return None
        if not isinstance(info, dict) or not info.get("onnx") or "threshold" not in info:
            raise HeqisError(f"{artifacts.root}: manifest.json has an unusable watchdog entry",
                             hint="re-run heqis export")
        if tuple(info.get("columns") or QUALITY_COLUMNS) != QUALITY_COLUMNS:
            raise HeqisError(f"{artifacts.root}: the watchdog was trained on other columns "
                             f"({', '.join(info.get('columns') or [])})", hint="retrain and re-export it")
        artifacts.verify([info["onnx"]])
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(artifact_path(artifacts.root, info["onnx"])), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
        io = info.get("io") or {}
        return cls(session, int(info.get("window", 20)), float(info["threshold"]), dict(info),
                   (io.get("input", "window"), io.get("output", "score")))

    def score_many(self, windows: np.ndarray) -> np.ndarray:
        """[B] scores of [B, window, 5] quality windows."""
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window, len(QUALITY_COLUMNS)):
            raise ValueError(f"watchdog windows must be [B, {self.window}, {len(QUALITY_COLUMNS)}], got {x.shape}")
        if not len(x):
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.session.run([self.names[1]], {self.names[0]: x})[0], dtype=np.float32).reshape(-1)

    def score(self, ohlcv: np.ndarray) -> float | None:
        """The score of the last row of ``ohlcv`` ([n, 5] raw open, high, low, close, volume); None with
        fewer than window + 1 rows."""
        w = quality_window(np.asarray(ohlcv, dtype=np.float64), self.window)
        return None if w is None else float(self.score_many(w)[0])

    def flags(self, ohlcv: np.ndarray) -> bool | None:
        """Whether the last row scores above the threshold (None with too few rows)."""
        s = self.score(ohlcv)
        return None if s is None else s > self.threshold

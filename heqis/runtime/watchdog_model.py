"""The gateway's data-quality model at run time: watchdog.onnx of an artifact set, or its RKNN model on the NPU.

``WatchdogModel.open(ArtifactSet)`` is None when the set has no watchdog (an older export, or a run
trained without ``--watchdog``). A window (heqis.features.quality) scoring above ``threshold`` is a bar
the model thinks is bad data; what to do with it (warn, hold) is the gateway's watchdog policy.

Two backends, one interface (``backend``, "onnxruntime" or "rknnlite", says which): on an RK3568
board with rknn-toolkit-lite2 installed and ``rknn/watchdog.rknn`` beside the set (``heqis convert --to
rknn``, which checked its flags against ONNX Runtime in the simulator), the NPU scores, one window at a
time (RKNN models are built for batch 1), and the gateway's CPU cores stay with its sockets and rules;
anywhere else ONNX Runtime on one thread, as before. The .rknn file is not in the artifact set's
manifest, so it is checked against its own record (rknn/manifest.json): its sha256, and the sha256 of
the watchdog.onnx it was converted from, which must be this set's — a model converted from another
export is refused, not used.
numpy and onnxruntime (or rknnlite) only: this runs on the boards.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from heqis.errors import HeqisError
from heqis.features.quality import QUALITY_COLUMNS, quality_window
from heqis.fileio import read_json, sha256_file
from heqis.formats.artifacts import ArtifactSet, artifact_path

RKNN_MODEL = Path("rknn") / "watchdog.rknn"      # in the artifact folder; its record: rknn/manifest.json


class WatchdogModel:
    backend = "onnxruntime"

    def __init__(self, session: Any, window: int, threshold: float, info: dict[str, Any],
                 names: tuple[str, str] = ("window", "score"), backend: str = "onnxruntime") -> None:
        self.session = session
        self.window = int(window)
        self.threshold = float(threshold)
        self.info = info
        self.names = names
        # "onnxruntime" | "rknnlite": the gateway reports it in status and telemetry, the console shows it
        self.backend = backend

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
                             f"({', '.join(info.get('columns') or [])}; this version reads "
                             f"{', '.join(QUALITY_COLUMNS)})",
                             hint="retrain it (heqis train --watchdog -o RUN) and re-export (heqis export RUN)")
        artifacts.verify([info["onnx"]])
        io = info.get("io") or {}
        names = (io.get("input", "window"), io.get("output", "score"))
        window = int(info.get("window", 20))
        rknn = rknn_model(artifacts, info) if rknnlite_available() else None
        if rknn is not None:  # pragma: no cover - needs the board's NPU runtime
            return cls(RknnLiteSession(rknn), window, float(info["threshold"]), dict(info), names, "rknnlite")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(artifact_path(artifacts.root, info["onnx"])), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
        return cls(session, window, float(info["threshold"]), dict(info), names)

    def score_many(self, windows: np.ndarray) -> np.ndarray:
        """[B] scores of [B, window, len(QUALITY_COLUMNS)] quality windows."""
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window, len(QUALITY_COLUMNS)):
            raise ValueError(f"watchdog windows must be [B, {self.window}, {len(QUALITY_COLUMNS)}], got {x.shape}")
        if not len(x):
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.session.run([self.names[1]], {self.names[0]: x})[0], dtype=np.float32).reshape(-1)

    def score(self, ohlcv: np.ndarray) -> float | None:
        """The score of the last row of ``ohlcv`` (raw bars as heqis.features.quality reads them); None with
        fewer than window + 1 rows."""
        w = quality_window(np.asarray(ohlcv, dtype=np.float64), self.window)
        return None if w is None else float(self.score_many(w)[0])

    def flags(self, ohlcv: np.ndarray) -> bool | None:
        """Whether the last row scores above the threshold (None with too few rows)."""
        s = self.score(ohlcv)
        return None if s is None else s > self.threshold


def rknnlite_available() -> bool:
    """Whether rknn-toolkit-lite2 (the boards' NPU runtime, aarch64 only) can be imported here."""
    try:
        return importlib.util.find_spec("rknnlite") is not None
    except (ImportError, ValueError):
        return False


def rknn_model(artifacts: ArtifactSet, info: dict[str, Any]) -> Path | None:
    """``rknn/watchdog.rknn`` of the set when it is there, else None; refused (HeqisError) when it does not
    match its record in rknn/manifest.json or was converted from another watchdog.onnx than this set's.

    Refused rather than skipped: a board meant to score on the NPU that quietly fell back to the CPU
    would look healthy while doing the wrong thing; delete the file to run ONNX Runtime there."""
    path = Path(artifacts.root) / RKNN_MODEL
    if not path.is_file():
        return None
    hint = "run heqis convert --to rknn on this artifact set again (or delete the file to use ONNX Runtime)"
    record = path.with_name("manifest.json")
    doc = read_json(record, "RKNN record", hint=hint) if record.is_file() else None
    entry = doc.get("watchdog") if isinstance(doc, dict) else None
    if not isinstance(entry, dict) or not entry.get("sha256"):
        raise HeqisError(f"{path}: no record of it in {record}", hint=hint)
    if sha256_file(path) != entry["sha256"]:
        raise HeqisError(f"{path}: sha256 does not match {record} (file altered or truncated)", hint=hint)
    if entry.get("onnx_sha256") != artifacts.manifest["files"].get(info["onnx"]):
        raise HeqisError(f"{path}: converted from another {info['onnx']} than this artifact set's", hint=hint)
    return path


class RknnLiteSession:  # pragma: no cover - needs the board's NPU runtime
    """ONNX Runtime's ``run`` over an RKNNLite model of batch 1: each window on its own, scores stacked."""

    def __init__(self, path: Path) -> None:
        from rknnlite.api import RKNNLite

        self.rknn = RKNNLite()
        if self.rknn.load_rknn(str(path)) != 0 or self.rknn.init_runtime() != 0:
            raise HeqisError(f"{path}: the NPU runtime refused the watchdog model",
                             hint="check rknn-toolkit-lite2 and the board's librknnrt version")

    def run(self, output_names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        (x,) = feed.values()
        scores = [np.asarray(self.rknn.inference(inputs=[x[i:i + 1]])[0], dtype=np.float32).reshape(-1)
                  for i in range(len(x))]
        return [np.concatenate(scores)]

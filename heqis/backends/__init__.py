"""One ``Predictor`` interface over the inference engines: torch, onnxruntime, tensorrt, rknn.

The preprocessing (features + scaler) lives outside the backends and is shared with training;
a predictor takes scaled windows ``[B, W, F]`` float32 and returns ``(reg [B, 1], cls [B, 3])``:
the next-day return and the logits of [down, flat, up]. Asking for a backend whose library is
missing gives one line saying which package to install on which machine.
"""

from __future__ import annotations

from pathlib import Path

from heqis.backends.base import Predictor
from heqis.errors import HeqisError

BACKENDS = ("onnxruntime", "torch", "tensorrt", "rknn")

INSTALL_HINTS = {
    "onnxruntime": "pip install onnxruntime (any machine; onnxruntime-gpu for CUDA)",
    "torch": "pip install torch (research machine; JetPack's torch wheel on a Jetson)",
    "tensorrt": "TensorRT ships with JetPack 6 on the Jetson Orin (python3-libnvinfer); also pip install "
                "cuda-python there",
    "rknn": "pip install rknn-toolkit-lite2 on the RK3568 board (aarch64 only); on x86 use "
            "`make rknn-env` and `heqis convert --to rknn` for the simulator",
}


def get_predictor(backend: str, artifact_dir: Path, generator: str, **options: object) -> Predictor:
    """A loaded predictor for one generator of an artifact set."""
    if backend not in BACKENDS:
        raise HeqisError(f"unknown backend '{backend}'", hint=f"use one of: {', '.join(BACKENDS)}")
    try:
        if backend == "onnxruntime":
            from heqis.backends.ort_backend import OnnxRuntimePredictor as cls
        elif backend == "torch":
            from heqis.backends.torch_backend import TorchPredictor as cls  # type: ignore[assignment]
        elif backend == "tensorrt":
            from heqis.backends.tensorrt_backend import TensorRTPredictor as cls  # type: ignore[assignment]
        else:
            from heqis.backends.rknn_backend import RKNNLitePredictor as cls  # type: ignore[assignment]
        predictor = cls(**options)  # type: ignore[arg-type]
        predictor.load(Path(artifact_dir), generator)
    except ImportError as exc:
        raise HeqisError(f"backend '{backend}' is not available here ({exc.name or exc})",
                         hint=INSTALL_HINTS[backend]) from None
    return predictor


__all__ = ["BACKENDS", "INSTALL_HINTS", "Predictor", "get_predictor"]

"""``heqis convert --to tensorrt``: build (on a Jetson) or print (anywhere) the engine for each model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heqis.backends.tensorrt_engine import Profile, build_engine, engine_name, format_command, trtexec_command
from heqis.errors import HeqisError
from heqis.fileio import sha256_file
from heqis.formats.artifacts import ArtifactSet


def tensorrt_identity() -> tuple[str, str] | None:
    """(TensorRT version, GPU name) where both are available, else None."""
    try:
        import tensorrt as trt
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():  # pragma: no cover - GPU machines only
        return None
    return trt.__version__, torch.cuda.get_device_name(0)  # pragma: no cover


def convert_tensorrt(artifact_dir: Path, generators: list[str], precision: str, dry_run: bool) -> dict[str, Any]:
    artifacts = ArtifactSet.open(artifact_dir)
    identity = tensorrt_identity()
    if identity is None and not dry_run:
        raise HeqisError("TensorRT is not available on this machine (engines are built on the GPU that runs them)",
                         hint="run this on the Jetson (JetPack 6), let `heqis up` do it, or add --dry-run")
    version, gpu = identity or ("", "")
    lines, engines = [], {}
    for gid in generators:
        onnx = artifacts.path(gid, "onnx")
        profile = Profile(artifacts.window(gid), artifacts.n_features)
        # built here, an engine is named by its cache key; the dry run cannot know the GPU and TensorRT
        name = f"{gid}-{precision}.engine" if identity is None else \
            f"{gid}-{engine_name(sha256_file(onnx), version, gpu, precision)}"
        engine = Path(artifact_dir) / "engines" / name
        cmd = trtexec_command(onnx, engine, precision, profile,
                              engine.with_suffix(".calib") if precision == "int8" else None)
        if dry_run:
            lines.append(f"# {gid}\n{format_command(cmd)}")
            if precision == "int8":
                lines.append("#   without an existing calibration cache trtexec would calibrate with random data: "
                             "build INT8 with `heqis convert` on the Jetson (it calibrates on calibration.npy)")
            continue
        engine.parent.mkdir(exist_ok=True)  # pragma: no cover - GPU machines only
        calib = np.load(artifacts.path(gid, "calibration")) if precision == "int8" else None  # pragma: no cover
        build_engine(onnx, engine, precision, profile, calib)  # pragma: no cover
        engines[gid] = str(engine)  # pragma: no cover
        lines.append(f"{gid}: built {engine}")  # pragma: no cover
    return {"to": "tensorrt", "precision": precision, "dry_run": dry_run, "engines": engines, "lines": lines}

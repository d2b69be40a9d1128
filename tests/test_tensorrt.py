"""TensorRT: the pure-Python parts everywhere; engine building only where tensorrt imports.

TensorRT cannot be installed on our machines (its wheels fetch their payload from a host we cannot
reach) nor on the lent GPU machine, so the engine tests below skip with that reason here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heqis.backends.tensorrt_engine import Profile, calibration_batches, engine_name, trtexec_command
from heqis.errors import HeqisError
from heqis.export.tensorrt_convert import convert_tensorrt
from heqis.formats.artifacts import ArtifactSet


def test_profile_covers_batch_1_to_64():
    p = Profile(window=60, n_features=24)
    assert p.shapes() == {"min": (1, 60, 24), "opt": (1, 60, 24), "max": (64, 60, 24)}
    assert p.trtexec_shapes() == ["--minShapes=input:1x60x24", "--optShapes=input:1x60x24",
                                  "--maxShapes=input:64x60x24"]


def test_trtexec_command_per_precision():
    p = Profile(60, 24)
    fp16 = trtexec_command(Path("m.onnx"), Path("m.engine"), "fp16", p)
    assert fp16[:3] == ["trtexec", "--onnx=m.onnx", "--saveEngine=m.engine"] and "--fp16" in fp16
    assert "--int8" not in fp16
    int8 = trtexec_command(Path("m.onnx"), Path("m.engine"), "int8", p, Path("m.calib"))
    assert {"--int8", "--fp16", "--calib=m.calib"} <= set(int8)
    with pytest.raises(HeqisError, match="unknown precision"):
        trtexec_command(Path("m.onnx"), Path("m.engine"), "int4", p)


def test_engine_cache_key_changes_with_model_tensorrt_and_gpu():
    base = engine_name("a" * 64, "10.3.0", "Orin (nvgpu)", "fp16")
    assert base.startswith("fp16-trt10.3.0-orin-nvgpu-") and base.endswith(".engine")
    assert len({base, engine_name("b" * 64, "10.3.0", "Orin (nvgpu)", "fp16"),
                engine_name("a" * 64, "10.4.0", "Orin (nvgpu)", "fp16"),
                engine_name("a" * 64, "10.3.0", "NVIDIA H100", "fp16")}) == 4


def test_calibration_batches_come_from_the_shipped_real_windows(artifacts):
    calib = np.load(ArtifactSet.open(artifacts).path("G3", "calibration"))     # G3 looks back 60 bars
    batches = list(calibration_batches(calib, 32))
    assert len(batches) == len(calib) // 32
    assert all(b.shape == (32, 60, 24) and b.dtype == np.float32 and b.flags["C_CONTIGUOUS"] for b in batches)
    np.testing.assert_array_equal(batches[1], calib[32:64])
    with pytest.raises(HeqisError, match="cannot fill a batch"):
        list(calibration_batches(calib[:3], 32))


def test_convert_without_tensorrt_explains_or_prints_the_command(artifacts):
    with pytest.raises(HeqisError, match="TensorRT is not available on this machine"):
        convert_tensorrt(artifacts, ["G1"], "fp16", dry_run=False)
    out = convert_tensorrt(artifacts, ["G1", "G3"], "int8", dry_run=True)
    commands = [line for line in out["lines"] if line.startswith("# G")]
    assert len(commands) == 2 and "trtexec --onnx=" in out["lines"][0] and "--int8" in out["lines"][0]
    assert "model_G1.onnx" in out["lines"][0] and "engines/G1-int8.engine" in out["lines"][0]


def test_engine_build_and_parity(artifacts):  # pragma: no cover - needs TensorRT and a GPU
    pytest.importorskip("tensorrt", reason="TensorRT cannot be installed on our machines; runs on the Jetson")
    from heqis.backends import get_predictor

    convert_tensorrt(artifacts, ["G1"], "fp16", dry_run=False)
    windows = np.load(ArtifactSet.open(artifacts).path("G1", "calibration"))[:8]
    got = get_predictor("tensorrt", artifacts, "G1").predict(windows)
    ref = get_predictor("onnxruntime", artifacts, "G1").predict(windows)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(got, ref, strict=True)) < 1e-2

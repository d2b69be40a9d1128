"""RKNN conversion in the rknn-toolkit2 venv and parity in its x86 simulator (GRU and Transformer).

Tolerances: unquantized, the outputs signals are made of — the predicted return and the class
probabilities — must match ONNX Runtime within 1e-3 (measured ~1e-5 and ~3e-4). Raw logits are
reported, and bounded by 5e-3: the simulator's float path is fp16 (ε ≈ 1e-3), and the
Transformer's logits land ~1.3e-3 away after LayerNorm and softmax attention, the GRU's ~2e-4.
INT8 (w8a8, a calibration set of 32 real windows) is bounded by 2e-3 on the predicted return (a
tenth of a typical 2% daily move; measured ~6e-4) and 0.5 on the logits (measured ~0.2: 8-bit
activations through 60 recurrent steps).
`make test` builds the venv first and sets HEQIS_REQUIRE_RKNN=1, so CI never skips this.
"""

from __future__ import annotations

import os
import shutil

import pytest

from heqis.errors import HeqisError
from heqis.export.rknn_convert import convert_rknn, rknn_python


@pytest.fixture(scope="module")
def rknn_artifacts(artifacts, tmp_path_factory):
    try:
        rknn_python()
    except HeqisError:
        if os.environ.get("HEQIS_REQUIRE_RKNN") == "1":
            raise
        pytest.skip("no rknn-toolkit2 venv: run `make rknn-env` (make test does)")
    copy = tmp_path_factory.mktemp("rknn") / "deploy_output"
    shutil.copytree(artifacts, copy)
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("gid", ["G1", "G3"])
def test_rknn_float_and_int8_parity_in_the_simulator(rknn_artifacts, gid):
    floating = convert_rknn(rknn_artifacts, gid, "rk3568", quantize=False)
    assert floating.reg_max_abs_diff <= 1e-3 and floating.prob_max_abs_diff <= 1e-3, floating
    assert floating.cls_max_abs_diff <= 5e-3, floating
    assert floating.direction_agreement == 1.0
    quantized = convert_rknn(rknn_artifacts, gid, "rk3568", quantize=True)
    assert quantized.reg_max_abs_diff <= 2e-3, quantized
    assert quantized.cls_max_abs_diff <= 0.5, quantized
    assert (rknn_artifacts / "rknn" / f"model_{gid}.rknn").stat().st_size > 0


def test_unknown_target_is_refused(artifacts):
    with pytest.raises(HeqisError, match="unknown RKNN target"):
        convert_rknn(artifacts, "G1", target="rk9999")

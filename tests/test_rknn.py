"""RKNN conversion in the rknn-toolkit2 venv and parity in its x86 simulator (GRU and Transformer).

Tolerances: unquantized, the outputs signals are made of — the predicted return and the class
probabilities — must match ONNX Runtime within 1e-3 (measured ~1e-5 and ~3e-4). Raw logits are
reported, and bounded by 5e-3: the simulator's float path is fp16 (ε ≈ 1e-3), and the
Transformer's logits land ~1.3e-3 away after LayerNorm and softmax attention, the GRU's ~2e-4.
INT8 (w8a8, a calibration set of 32 real windows) is bounded by 2e-3 on the predicted return (a
tenth of a typical 2% daily move; measured ~6e-4) and 0.5 on the logits (measured ~0.2: 8-bit
activations through 60 recurrent steps).

The gateway's watchdog is checked on what the gateway acts on: its flag (score > the set's threshold)
on held-out clean windows and on faulty copies of them (heqis.export.rknn_convert.watchdog_faults;
+4σ spikes land on both sides of the threshold). Unquantized every flag must match and the score be
within 1% of max(score, threshold) (fp16: measured ~2e-3); INT8 (the score tail kept float16) must
agree on ≥ 98% of the flags (measured ~99.9%). A watchdog that fails its check leaves the model in place.
`make test` builds the venv first and sets HEQIS_REQUIRE_RKNN=1, so CI never skips this.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from heqis.errors import HeqisError
from heqis.export import rknn_convert
from heqis.export.rknn_convert import convert_rknn, convert_watchdog_rknn, rknn_python
from heqis.fileio import sha256_file, write_json
from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.watchdog_model import WatchdogModel, rknn_model


def needs_rknn() -> None:
    try:
        rknn_python()
    except HeqisError:
        if os.environ.get("HEQIS_REQUIRE_RKNN") == "1":
            raise
        pytest.skip("no rknn-toolkit2 venv: run `make rknn-env` (make test does)")


@pytest.fixture(scope="module")
def rknn_artifacts(artifacts, tmp_path_factory):
    needs_rknn()
    copy = tmp_path_factory.mktemp("rknn") / "deploy_output"
    shutil.copytree(artifacts, copy)
    return copy


@pytest.fixture
def watchdog_set(watchdog_export, tmp_path):
    """A writable copy of the artifact set with a watchdog (conftest's is shared, read-only)."""
    copy = tmp_path / "deploy_output"
    shutil.copytree(watchdog_export[1], copy)
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


def _line(label: str, w: rknn_convert.RknnWatchdogResult) -> str:
    return (f"  watchdog {label}: max |score diff| {w.max_abs_diff:.3g} ({w.max_rel_diff:.1e} of max(score, "
            f"threshold {w.threshold:.2f})); flag agreement {w.flag_agreement:.2%} (clean {w.clean_windows}: "
            f"{w.clean_flag_agreement:.2%}, faulty {w.faulty_windows}: {w.faulty_flag_agreement:.2%}; ONNX Runtime "
            f"flags {w.flagged['clean']} clean, {w.flagged['faulty']} faulty; borderline {w.borderline}); "
            f"worker {w.seconds:.1f} s, conversion {w.wall_seconds:.1f} s")


@pytest.mark.slow
def test_rknn_watchdog_keeps_its_flags_float_and_int8_in_the_simulator(watchdog_set, capsys, monkeypatch):
    from typer.testing import CliRunner

    from heqis.cli import app

    needs_rknn()
    result = CliRunner().invoke(app, ["convert", "--to", "rknn", "-a", str(watchdog_set), "-g", "G1", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [r["generator"] for r in doc["results"]] == ["G1"]
    floating = rknn_convert.RknnWatchdogResult(**doc["watchdog"])
    assert not floating.quantized and floating.flag_agreement == 1.0 and floating.flag_mismatches == 0, floating
    assert set(floating.agreement_by_kind.values()) == {1.0}
    assert floating.max_rel_diff <= rknn_convert.WATCHDOG_SCORE_RTOL, floating
    # both sides of the threshold are exercised: clean windows mostly pass, faulty ones mostly flagged
    assert floating.flagged["clean"] < floating.clean_windows / 10
    assert floating.faulty_windows / 2 < floating.flagged["faulty"] < floating.faulty_windows
    path = watchdog_set / "rknn" / "watchdog.rknn"
    record = json.loads((watchdog_set / "rknn" / "manifest.json").read_text())
    assert set(record) == {"G1", "watchdog"} and record["watchdog"]["sha256"] == sha256_file(path)
    arts = ArtifactSet.open(watchdog_set)
    assert rknn_model(arts, arts.manifest["watchdog"]) == path        # what the board would load
    assert WatchdogModel.open(arts).backend == "onnxruntime"          # no rknnlite here: ONNX Runtime

    quantized = convert_watchdog_rknn(watchdog_set, "rk3568", quantize=True)
    assert quantized.float_layers and quantized.float_layers[-1] == "score", quantized
    assert quantized.flag_agreement >= 0.98, quantized
    assert min(quantized.clean_flag_agreement, quantized.faulty_flag_agreement) >= 0.98, quantized
    with capsys.disabled():
        print(f"\n{_line('float', floating)}\n{_line('INT8', quantized)}")

    before, record = path.read_bytes(), (watchdog_set / "rknn" / "manifest.json").read_bytes()
    monkeypatch.setattr(rknn_convert, "WATCHDOG_SCORE_RTOL", 1e-9)   # no float model can pass this
    with pytest.raises(HeqisError, match="left as it was"):
        convert_watchdog_rknn(watchdog_set, "rk3568", quantize=False)
    assert path.read_bytes() == before and (watchdog_set / "rknn" / "manifest.json").read_bytes() == record
    assert sorted(p.name for p in path.parent.iterdir()) == ["convert.log", "manifest.json", "model_G1.rknn",
                                                             "watchdog.rknn"]


def test_the_board_uses_a_watchdog_rknn_only_with_its_record(watchdog_set):
    """What WatchdogModel checks before RKNNLite loads rknn/watchdog.rknn (no toolkit needed)."""
    arts = ArtifactSet.open(watchdog_set)
    info = arts.manifest["watchdog"]
    assert rknn_model(arts, info) is None                             # none converted: ONNX Runtime
    path = watchdog_set / "rknn" / "watchdog.rknn"
    path.parent.mkdir()
    path.write_bytes(b"an rknn model")
    with pytest.raises(HeqisError, match="no record"):
        rknn_model(arts, info)
    entry = {"sha256": sha256_file(path), "onnx_sha256": arts.manifest["files"][info["onnx"]]}
    write_json(path.with_name("manifest.json"), {"watchdog": entry})
    assert rknn_model(arts, info) == path
    write_json(path.with_name("manifest.json"), {"watchdog": {**entry, "onnx_sha256": "0" * 64}})
    with pytest.raises(HeqisError, match="converted from another"):
        rknn_model(arts, info)
    write_json(path.with_name("manifest.json"), {"watchdog": entry})
    path.write_bytes(b"an rknn modeL")
    with pytest.raises(HeqisError, match="sha256"):
        rknn_model(arts, info)


def test_watchdog_conversion_needs_a_watchdog(artifacts):
    with pytest.raises(HeqisError, match="no watchdog"):
        convert_watchdog_rknn(artifacts)

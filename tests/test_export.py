"""Export and backends: ONNX = torch within 1e-4 at batch 1 and 32, integrity, routing, clear refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from heqis.backends import get_predictor
from heqis.errors import HeqisError
from heqis.export import onnx_export
from heqis.features.columns import MODEL_INPUTS
from heqis.features.fingerprint import feature_fingerprint
from heqis.features.windows import Scaler
from heqis.formats import ArtifactSet, RunFolder


def verify(folder):
    return ArtifactSet.open(folder).manifest

KINDS = {"G1": "gru", "G2": "bilstm", "G3": "transformer", "G4": "latent"}


@pytest.mark.parametrize("gid", list(KINDS))
def test_onnx_runtime_equals_torch_at_batch_1_and_32(artifacts, gid):
    manifest = verify(artifacts)
    assert manifest["generators"][gid]["kind"] == KINDS[gid]
    windows = np.load(artifacts / manifest["generators"][gid]["calibration"])[:32]   # its own window's
    ort = get_predictor("onnxruntime", artifacts, gid)
    pt = get_predictor("torch", artifacts, gid)
    for batch in (windows[:1], windows[:32]):
        for a, b in zip(ort.predict(batch), pt.predict(batch), strict=True):
            assert a.shape == b.shape and a.shape[0] == len(batch)
            assert float(np.max(np.abs(a - b))) <= 1e-4
    reg, cls = ort.predict(windows)
    assert reg.shape == (32, 1) and cls.shape == (32, 3) and reg.dtype == np.float32
    assert float(np.abs(reg).max()) < 0.5   # next-day returns, not the standardised target


def test_onnx_graph_has_the_documented_interface(artifacts):
    model = onnx.load(str(artifacts / "model_G1.onnx"))
    assert model.opset_import[0].version == 17
    inp = model.graph.input[0]
    assert inp.name == "input"
    dims = inp.type.tensor_type.shape.dim
    window = verify(artifacts)["generators"]["G1"]["window"]      # G1's own look-back (20 in the maa game)
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [window, len(MODEL_INPUTS)]
    assert [o.name for o in model.graph.output] == ["output_reg", "output_cls"]


def test_scaler_and_routing_travel_with_the_models(artifacts, tiny_run):
    shipped = Scaler.load(artifacts / verify(artifacts)["generators"]["G1"]["scaler"])
    trained = Scaler.load(RunFolder.open(tiny_run).scaler_path("G1"))
    assert shipped.inputs == trained.inputs == MODEL_INPUTS
    np.testing.assert_array_equal(shipped.x_scale, trained.x_scale)
    routing = json.loads((artifacts / "routing.json").read_text())
    run_manifest = RunFolder.open(tiny_run).manifest
    assert routing["source"] == "validation"
    assert routing["default"]["generator"] == run_manifest["best_generator"]
    assert set(routing["symbols"]) == set(run_manifest["symbols"])
    manifest = verify(artifacts)
    assert manifest["opset"] == 17 and manifest["data_hash"] == run_manifest["data"]["content_hash"]
    assert set(manifest["files"]) >= {"model_G1.onnx", "routing.json", "scaler_params.json",
                                      *(g["calibration"] for g in manifest["generators"].values())}
    assert manifest["features"] == run_manifest["features"] == feature_fingerprint()
    assert len(manifest["set_id"]) == 16 and manifest["version"] == 2
    for gid, g in manifest["generators"].items():       # each generator ships its own window's scaler
        assert g["window"] == run_manifest["generators"][gid]["window"]
        assert g["scaler"] == run_manifest["generators"][gid]["scaler"] and g["scaler"] in manifest["files"]


def test_routing_follows_the_backtest_when_there_is_one(tiny_run, sample_store, tmp_path):
    from heqis.backtest.run import backtest_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    backtest_run(run, sample_store.root, gate=None)                  # a model chosen for every symbol
    result = onnx_export.export_run(run, ["G1", "G2", "G3", "G4"], out=tmp_path / "out")
    best = {r["symbol"]: (r["generator"], r["mode"]) for r in
            __import__("pandas").read_csv(run / "backtest" / "best_metrics.csv").to_dict("records")}
    routes = result.routing["symbols"]
    assert result.routing["source"].startswith("backtest")
    assert all((routes[s]["generator"], routes[s]["mode"]) == best[s] for s in best)
    held = next(iter(best))                                       # a symbol the gate left holding
    path = run / "backtest" / "best_metrics.csv"
    frame = __import__("pandas").read_csv(path)
    frame.loc[frame["symbol"] == held, ["generator", "mode"]] = ["buy_hold", "hold"]
    frame.to_csv(path, index=False)
    routes = onnx_export.export_run(run, ["G1", "G2", "G3", "G4"], out=tmp_path / "out2").routing["symbols"]
    assert routes[held] == {**result.routing["default"], "backtest": "buy_hold"}


def test_tampered_or_missing_artifacts_are_refused(artifacts, tmp_path):
    copy = tmp_path / "a"
    shutil.copytree(artifacts, copy)
    data = bytearray((copy / "model_G1.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model_G1.onnx").write_bytes(bytes(data))
    with pytest.raises(HeqisError, match=r"model_G1\.onnx: sha256 does not match"):
        get_predictor("onnxruntime", copy, "G1")
    (copy / "scaler_params.json").unlink()
    with pytest.raises(HeqisError, match="artifact missing"):
        get_predictor("onnxruntime", copy, "G3")          # G3 reads scaler_params.json (the longest window)
    with pytest.raises(HeqisError, match="G9 is not in the artifact set"):
        get_predictor("onnxruntime", artifacts, "G9")


@pytest.mark.parametrize(("backend", "hint"), [("tensorrt", "JetPack"), ("rknn", "rknn-toolkit-lite2")])
def test_missing_backend_library_says_what_to_install_where(artifacts, backend, hint):
    pytest.importorskip("numpy")
    try:
        get_predictor(backend, artifacts, "G1")
    except HeqisError as exc:
        assert "not available here" in exc.message and hint in (exc.hint or "")
    else:  # pragma: no cover - only on a Jetson / the board
        pytest.skip(f"{backend} is installed here")


def test_a_failed_parity_check_writes_nothing(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_export, "PARITY_TOL", 0.0)
    with pytest.raises(HeqisError, match="differs from torch"):
        onnx_export.export_run(tiny_run, ["G1"], out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_wrong_window_shape_is_a_clear_error(artifacts):
    with pytest.raises(HeqisError, match=r"do not fit the model"):
        get_predictor("onnxruntime", artifacts, "G1").predict(np.zeros((1, 30, 24), np.float32))


def test_export_convert_and_bench_cli(tiny_run, artifacts, isolated, tmp_path):
    from tests.test_cli import assert_one_line_error, run

    proc = run("export", str(tiny_run), "-g", "G1", "-g", "G3", "--out", str(tmp_path / "dep"), "--json", cwd=isolated)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result["generators"]) == {"G1", "G3"}
    assert all(g["max_abs_diff"]["batch32"] <= 1e-4 for g in result["generators"].values())
    dry = run("convert", "--to", "tensorrt", "-a", str(tmp_path / "dep"), "--dry-run", cwd=isolated)
    assert dry.returncode == 0 and "trtexec --onnx=" in dry.stdout and "--fp16" in dry.stdout
    assert_one_line_error(run("convert", "--to", "tensorrt", "-a", str(tmp_path / "dep"), cwd=isolated), 1,
                          "TensorRT is not available on this machine")
    assert run("convert", "--to", "coreml", cwd=isolated).returncode == 2
    bench = run("bench", "backends", "-a", str(artifacts), "-g", "G1", "--calls", "20", "--json", cwd=isolated)
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)
    backends = {r["backend"] for r in report["rows"]}
    assert {"onnxruntime", "torch"} <= backends and "tensorrt" in report["unavailable"]
    assert all(r["p50_ms"] > 0 and r["max_abs_diff_vs_onnxruntime"] <= 1e-4 for r in report["rows"])
    assert_one_line_error(run("bench", "backends", "-a", str(tmp_path / "nothing"), cwd=isolated), 1,
                          "no artifact set here")

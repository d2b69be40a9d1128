"""RKNN models for the RK3568 NPU, converted in the rknn-toolkit2 venv and checked in its simulator.

``make rknn-env`` builds ``.venv-rknn`` (rknn-toolkit2 and its pinned dependencies); this module
runs ``rknn_worker.py`` there in a subprocess, per generator: ONNX (batch fixed at 1, RKNN's only
batch) → .rknn, optionally INT8-quantized on real windows from the artifact set's calibration set,
then the simulator runs it on other real windows and the outputs are compared with ONNX Runtime.
The toolkit's own log (its "Unkown op target" lines are noise) goes to ``rknn/convert.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heqis.errors import HeqisError
from heqis.fileio import read_json, sha256_file, write_json
from heqis.formats.artifacts import ArtifactSet

TARGETS = ("rk3566", "rk3568", "rk3588", "rk3562", "rk3576")
FLOAT_TOL = 1e-3        # unquantized: return and class probabilities must match ONNX Runtime this closely
WORKER = Path(__file__).with_name("rknn_worker.py")


@dataclass
class RknnResult:
    generator: str
    target: str
    quantized: bool
    path: str
    max_abs_diff: float          # max of the return and class-probability differences (what signals use)
    reg_max_abs_diff: float
    prob_max_abs_diff: float
    cls_max_abs_diff: float      # raw logits, reported (the NPU's float path is fp16: ~1e-3 on logits)
    direction_agreement: float   # share of windows whose argmax class matches ONNX Runtime
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rknn_python() -> Path:
    """The rknn venv's interpreter: $HEQIS_RKNN_PYTHON, ./.venv-rknn, or the one beside the heqis source."""
    candidates = [os.environ.get("HEQIS_RKNN_PYTHON"), ".venv-rknn/bin/python",
                  str(Path(__file__).resolve().parents[2] / ".venv-rknn" / "bin" / "python")]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    raise HeqisError("the rknn-toolkit2 environment is missing",
                     hint="run `make rknn-env` in the heqis checkout (or set HEQIS_RKNN_PYTHON)")


def convert_rknn(artifact_dir: Path, generator: str, target: str = "rk3568", quantize: bool = False,
                 dataset_size: int = 32, check_size: int = 16, timeout_s: int = 900) -> RknnResult:
    from heqis.export.onnx_export import onnx_session

    if target not in TARGETS:
        raise HeqisError(f"unknown RKNN target '{target}'", hint=f"use one of: {', '.join(TARGETS)}")
    artifact_dir = Path(artifact_dir)
    artifacts = ArtifactSet.open(artifact_dir)
    onnx_path = artifacts.path(generator, "onnx")
    calib = np.load(artifacts.path(generator, "calibration")).astype(np.float32)
    if len(calib) < dataset_size + check_size:
        dataset_size = max(1, len(calib) - check_size)
    python = rknn_python()
    out_dir = artifact_dir / "rknn"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"model_{generator}.rknn"
    check = calib[-check_size:]
    with tempfile.TemporaryDirectory(prefix="heqis-rknn-") as tmp:
        t = Path(tmp)
        lines = []
        for i, window in enumerate(calib[:dataset_size]):   # one .npy per sample, as rknn's dataset wants
            p = t / f"sample_{i:04d}.npy"
            np.save(p, window[None])
            lines.append(str(p))
        (t / "dataset.txt").write_text("\n".join(lines) + "\n")
        np.save(t / "windows.npy", check)
        job = {"onnx": str(onnx_path), "out": str(out), "target": target, "quantize": quantize,
               "dataset": str(t / "dataset.txt"),
               "input_shape": [1, artifacts.window(generator), artifacts.n_features],
               "windows": str(t / "windows.npy"), "reg_out": str(t / "reg.npy"), "cls_out": str(t / "cls.npy"),
               "result": str(t / "result.json")}
        (t / "job.json").write_text(json.dumps(job))
        log = out_dir / "convert.log"
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"\n=== {generator} target={target} quantize={quantize}\n")
            fh.flush()
            try:
                subprocess.run([str(python), str(WORKER), str(t / "job.json")], stdout=fh, stderr=subprocess.STDOUT,
                               timeout=timeout_s, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            except subprocess.TimeoutExpired:
                raise HeqisError(f"RKNN conversion of {generator} took over {timeout_s} s", hint=f"see {log}") from None
        result_path = t / "result.json"
        if not result_path.exists():
            raise HeqisError(f"RKNN conversion of {generator} crashed", hint=f"see {log}")
        result = json.loads(result_path.read_text())
        if not result["ok"]:
            failed = next((k for k, v in result["steps"].items() if v != 0), "?")
            raise HeqisError(f"RKNN conversion of {generator} failed at {failed}", hint=f"see {log}")
        reg_sim, cls_sim = np.load(t / "reg.npy"), np.load(t / "cls.npy")
    reg_ref, cls_ref = onnx_session(onnx_path).run(["output_reg", "output_cls"], {"input": check})
    cls_sim = cls_sim.reshape(cls_ref.shape)
    reg_diff = float(np.max(np.abs(reg_sim.reshape(reg_ref.shape) - reg_ref)))
    cls_diff = float(np.max(np.abs(cls_sim - cls_ref)))
    prob_diff = float(np.max(np.abs(softmax(cls_sim) - softmax(cls_ref))))
    agree = float(np.mean(np.argmax(cls_sim, 1) == np.argmax(cls_ref, 1)))
    res = RknnResult(generator, target, quantize, str(out), max(reg_diff, prob_diff), reg_diff, prob_diff, cls_diff,
                     agree, result["seconds"])
    record = out_dir / "manifest.json"
    entries = read_json(record, "RKNN record") if record.exists() else {}
    entries[generator] = {**res.to_dict(), "sha256": sha256_file(out), "onnx_sha256": sha256_file(onnx_path)}
    write_json(record, entries)
    if not quantize and res.max_abs_diff > FLOAT_TOL:
        raise HeqisError(f"{generator}: RKNN simulator differs from ONNX Runtime by {res.max_abs_diff:.2e} "
                         f"(> {FLOAT_TOL:g} unquantized)", hint=f"see {log}")
    return res


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)

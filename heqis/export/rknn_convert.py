"""RKNN models for the RK3568 NPU, converted in the rknn-toolkit2 venv and checked in its simulator.

``make rknn-env`` builds ``.venv-rknn`` (rknn-toolkit2 and its pinned dependencies); this module
runs ``rknn_worker.py`` there in a subprocess, per generator: ONNX (batch fixed at 1, RKNN's only
batch) → .rknn, optionally INT8-quantized on real windows from the artifact set's calibration set,
then the simulator runs it on other real windows and the outputs are compared with ONNX Runtime.
The gateway's watchdog (``convert_watchdog_rknn``) goes the same way, checked on what the gateway
acts on: its flags at the artifact set's threshold, on clean windows and on faulty ones.
The toolkit's own log (its "Unkown op target" lines are noise) goes to ``rknn/convert.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heqis.errors import HeqisError
from heqis.fileio import atomic_write, read_json, sha256_file, write_json
from heqis.formats.artifacts import ArtifactSet, artifact_path

TARGETS = ("rk3566", "rk3568", "rk3588", "rk3562", "rk3576")
FLOAT_TOL = 1e-3        # unquantized: return and class probabilities must match ONNX Runtime this closely
WORKER = Path(__file__).with_name("rknn_worker.py")
LOG, MANIFEST = "convert.log", "manifest.json"          # in artifact_dir/rknn


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

    check_target(target)
    artifact_dir = Path(artifact_dir)
    artifacts = ArtifactSet.open(artifact_dir)
    onnx_path = artifacts.path(generator, "onnx")
    calib = np.load(artifacts.path(generator, "calibration")).astype(np.float32)
    if len(calib) < dataset_size + check_size:
        dataset_size = max(1, len(calib) - check_size)
    out_dir = artifact_dir / "rknn"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"model_{generator}.rknn"
    check = calib[-check_size:]
    (reg_sim, cls_sim), result = run_worker(
        out_dir, generator, onnx_path, out, target, quantize, calib[:dataset_size], check,
        "input", [1, artifacts.window(generator), artifacts.n_features], ["output_reg", "output_cls"], timeout_s)
    log = out_dir / LOG
    reg_ref, cls_ref = onnx_session(onnx_path).run(["output_reg", "output_cls"], {"input": check})
    cls_sim = cls_sim.reshape(cls_ref.shape)
    reg_diff = float(np.max(np.abs(reg_sim.reshape(reg_ref.shape) - reg_ref)))
    cls_diff = float(np.max(np.abs(cls_sim - cls_ref)))
    prob_diff = float(np.max(np.abs(softmax(cls_sim) - softmax(cls_ref))))
    agree = float(np.mean(np.argmax(cls_sim, 1) == np.argmax(cls_ref, 1)))
    res = RknnResult(generator, target, quantize, str(out), max(reg_diff, prob_diff), reg_diff, prob_diff, cls_diff,
                     agree, result["seconds"])
    record(out_dir, generator, {**res.to_dict(), "sha256": sha256_file(out), "onnx_sha256": sha256_file(onnx_path)})
    if not quantize and res.max_abs_diff > FLOAT_TOL:
        raise HeqisError(f"{generator}: RKNN simulator differs from ONNX Runtime by {res.max_abs_diff:.2e} "
                         f"(> {FLOAT_TOL:g} unquantized)", hint=f"see {log}")
    return res


# -- the gateway's watchdog ----------------------------------------------------------------------
WATCHDOG_RKNN = "watchdog.rknn"          # in artifact_dir/rknn; its record is manifest.json["watchdog"]
# Unquantized, the simulator computes in fp16 (ε ≈ 1e-3, relative): a score is a squared error of values up
# to CLIP (0..2500), so its error grows with it and an absolute bound would be either meaningless for faults
# or unmeetable for them. The difference is taken relative to max(|score|, threshold): where a flag is
# decided (near the threshold) that is the threshold, so 1e-2 bounds a flag-relevant error to 1% of it.
WATCHDOG_SCORE_RTOL = 1e-2
WATCHDOG_INT8_AGREEMENT = 0.98           # INT8: the least share of windows flagged as ONNX Runtime flags them
PRICE_COLUMNS, VOLUME_COLUMN = ("r_open", "r_high", "r_low", "r_close"), "log_vol"
FAULT_KINDS = ("spike +4σ (bar)", "spike +8σ (bar)", "spike +8σ (close)", "price x10", "volume x1000")


@dataclass
class RknnWatchdogResult:
    target: str
    quantized: bool
    path: str
    threshold: float
    clean_windows: int              # held-out clean calibration windows (not in the INT8 dataset)
    faulty_windows: int             # copies of them with a bad last bar, len(FAULT_KINDS) per window
    max_abs_diff: float             # max |score(simulator) - score(ONNX Runtime)|
    max_rel_diff: float             # max |diff| / max(|score|, threshold)
    score_rtol: float               # the unquantized bound on max_rel_diff
    flag_agreement: float           # share of all windows flagged (score > threshold) alike on both sides
    clean_flag_agreement: float
    faulty_flag_agreement: float
    agreement_by_kind: dict[str, float]
    flagged: dict[str, int]         # windows ONNX Runtime flags: clean (false alarms) and faulty (caught)
    borderline: int                 # windows whose reference score lies within score_rtol of the threshold
    flag_mismatches: int            # windows flagged differently, borderline ones not counted
    float_layers: list[str]         # INT8: the layers kept float16 (the score tail, see score_tail)
    seconds: float                  # the worker: build, export and the simulator's runs
    wall_seconds: float             # the whole conversion, the toolkit's start-up included

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def watchdog_faults(clean: np.ndarray, columns: list[str]) -> dict[str, np.ndarray]:
    """Copies of ``clean`` quality windows whose last bar is bad, one set per kind in FAULT_KINDS.

    No raw bars travel with the artifact set, so the faults are made in the window, as the raw faults
    show there: heqis.features.quality measures each bar's prices as log ratios to its pre-close over
    a σ taken from the bars *before* the last, and its volume against their median and scale, so a
    fault in the last raw bar only moves the last row. A spike of the bar by e^{kσ} is +k on its four
    price columns, a close-only spike +k on r_close (r_high follows it when higher), price x10 is
    log(10)/σ ≥ 23 for any σ ≤ 10% (+CLIP here, clipped as the features are), volume x1000 is
    log(1000)/scale (+CLIP here: the extreme, above what x1000 gives when the volume scale is wide).
    Other columns (the limit context) are kept. +4σ lands on both sides of a typical threshold, so
    flag agreement is tested where it is hard, not only far from it."""
    from heqis.features.quality import CLIP

    try:
        price = [columns.index(c) for c in PRICE_COLUMNS]
        volume = columns.index(VOLUME_COLUMN)
        high, close = columns.index("r_high"), columns.index("r_close")
    except ValueError:
        raise HeqisError(f"the watchdog's columns ({', '.join(columns)}) lack {', '.join(PRICE_COLUMNS)} or "
                         f"{VOLUME_COLUMN}: cannot make the faulty windows it is checked on",
                         hint="teach heqis.export.rknn_convert.watchdog_faults the new columns") from None
    out = {}
    for kind in FAULT_KINDS:
        w = np.array(clean, dtype=np.float32, copy=True)
        last = w[:, -1, :]
        if kind.startswith("spike") and kind.endswith("(bar)"):
            last[:, price] += float(kind.split("+")[1].split("σ")[0])
        elif kind == "spike +8σ (close)":
            last[:, close] += 8.0
            last[:, high] = np.maximum(last[:, high], last[:, close])
        elif kind == "price x10":
            last[:, price] += CLIP
        else:
            last[:, volume] += CLIP
        out[kind] = np.clip(w, -CLIP, CLIP)
    return out


def convert_watchdog_rknn(artifact_dir: Path, target: str = "rk3568", quantize: bool = False,
                          dataset_size: int = 64, check_size: int = 128, timeout_s: int = 900) -> RknnWatchdogResult:
    """The artifact set's watchdog.onnx as rknn/watchdog.rknn (batch 1, the NPU's only batch), checked in
    the simulator against ONNX Runtime on held-out clean calibration windows and on faulty copies of
    them (``watchdog_faults``): the gateway acts on flags (score > the set's threshold), so what must
    carry over is the flag of every window, and the score near the threshold.

    The first ``dataset_size`` windows of watchdog_calibration.npy (real clean windows) calibrate INT8,
    with faulty copies of them: calibrated on clean windows alone the input and the score saturate at
    clean values (±23, ~8: under the threshold, so the INT8 model flagged nothing, 1% agreement on
    faults). The score tail stays float16 (``score_tail``). The last ``check_size`` windows are held
    out for the check, their faults made from them, so no checked window was seen in calibration.

    Unquantized, every flag must match (windows within the score tolerance of the threshold excepted:
    the fp16 path may put those either side; counted as ``borderline``) and the score be within
    WATCHDOG_SCORE_RTOL; INT8 needs a flag agreement of WATCHDOG_INT8_AGREEMENT on the clean and on the
    faulty windows. The gateway on the board uses watchdog.rknn whenever it is there
    (heqis.runtime.watchdog_model), so a model that fails its check never replaces the one in place: it
    is built beside it, renamed over it only once it passed, and only then recorded in
    rknn/manifest.json (sha256 of it and of the ONNX it came from, which the board checks)."""
    from heqis.export.onnx_export import onnx_session

    check_target(target)
    artifact_dir = Path(artifact_dir)
    artifacts = ArtifactSet.open(artifact_dir)
    info = artifacts.manifest.get("watchdog")
    if not isinstance(info, dict) or not info.get("onnx") or "threshold" not in info:
        raise HeqisError(f"{artifact_dir}: the artifact set has no watchdog",
                         hint="train one (heqis train --watchdog -o RUN) and re-export the run")
    onnx_path = artifact_path(artifact_dir, info["onnx"])
    calib_path = artifact_path(artifact_dir, info.get("calibration") or "watchdog_calibration.npy")
    calib = np.load(calib_path).astype(np.float32)
    threshold = float(info["threshold"])
    io = info.get("io") or {}
    session = onnx_session(onnx_path)
    input_name, output_name = io.get("input", "window"), io.get("output", "score")
    shape = session.get_inputs()[0].shape              # [batch, W, F]: the model says what it reads
    if calib.ndim != 3 or [int(d) for d in shape[1:]] != list(calib.shape[1:]):
        raise HeqisError(f"{calib_path}: windows {list(calib.shape)} do not fit watchdog.onnx's input {shape}",
                         hint="re-run heqis export")
    check_size = min(check_size, len(calib) // 2)
    dataset_size = max(1, min(dataset_size, len(calib) - check_size))
    clean = calib[-check_size:]
    columns = list(info.get("columns") or [])
    faults = watchdog_faults(clean, columns)
    windows = np.concatenate([clean, *faults.values()])
    out_dir = artifact_dir / "rknn"
    out_dir.mkdir(exist_ok=True)
    out, partial = out_dir / WATCHDOG_RKNN, out_dir / f".{WATCHDOG_RKNN}.partial"
    started = time.monotonic()
    try:
        dataset = calib[:dataset_size]
        if quantize:        # the activation ranges must span the faults the model is there to score
            dataset = np.concatenate([dataset, *watchdog_faults(dataset, columns).values()])
        (sim,), result = run_worker(out_dir, "watchdog", onnx_path, partial, target, quantize, dataset, windows,
                                    input_name, [1, *map(int, calib.shape[1:])], [output_name], timeout_s,
                                    float_from=score_tail(onnx_path, input_name) if quantize else None)
        wall = round(time.monotonic() - started, 2)
        ref = np.asarray(session.run([output_name], {input_name: windows})[0], dtype=np.float32).reshape(-1)
        sim = sim.reshape(-1)
        res = watchdog_parity(ref, sim, threshold, check_size, target, quantize, str(out), result["seconds"], wall,
                              result.get("float_layers"))
        failure = watchdog_failure(res)
        if failure:
            raise HeqisError(f"watchdog: {failure}; {out} was left as it was",
                             hint=f"see {out_dir / LOG}" + ("" if not quantize else
                                                            "; the unquantized model (without --quantize) "
                                                            "keeps the flags"))
        atomic_write(out, partial.read_bytes())     # the one atomic write (heqis.fileio); a few hundred KB
    finally:
        partial.unlink(missing_ok=True)
    record(out_dir, "watchdog", {**res.to_dict(), "sha256": sha256_file(out), "onnx_sha256": sha256_file(onnx_path)})
    return res


def score_tail(onnx_path: Path, input_name: str) -> str:
    """The ONNX tensor where the watchdog's score tail starts: the output of the last node that reads the
    input window, the residual reconstruction − window (heqis.models.watchdog.last_row_score), from which
    on the graph only squares and averages it into the score.

    That tail is why an all-INT8 watchdog cannot work: the score spans 0..2500 (faults reach ±CLIP), 256
    levels over that range are ~10 apart, wider than the threshold itself, so every clean window scores
    0 and the ones near the threshold land either side at random (measured: 85% agreement on +4σ
    spikes). The residual, its square and mean are kept float16 (a few hundred operations; the
    convolutions, where the work is, stay INT8)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    readers = [n for n in graph.node if input_name in n.input]
    if not readers or not readers[-1].output:
        raise HeqisError(f"{onnx_path}: no node reads the input '{input_name}'", hint="re-run heqis export")
    return str(readers[-1].output[0])


def watchdog_parity(ref: np.ndarray, sim: np.ndarray, threshold: float, clean: int, target: str, quantize: bool,
                    path: str, seconds: float, wall: float, float_layers: list[str] | None = None,
                    ) -> RknnWatchdogResult:
    """The simulator's scores ``sim`` against ONNX Runtime's ``ref`` (the first ``clean`` windows clean, the
    rest len(FAULT_KINDS) equal blocks of faults in that order)."""
    diff = np.abs(sim - ref)
    rel = diff / np.maximum(np.abs(ref), threshold)
    same = (sim > threshold) == (ref > threshold)
    per = (len(ref) - clean) // len(FAULT_KINDS)
    by_kind = {k: float(same[clean + i * per: clean + (i + 1) * per].mean()) for i, k in enumerate(FAULT_KINDS)}
    borderline = np.abs(ref - threshold) <= WATCHDOG_SCORE_RTOL * np.maximum(np.abs(ref), threshold)
    return RknnWatchdogResult(
        target, quantize, path, threshold, clean, len(ref) - clean, float(diff.max()), float(rel.max()),
        WATCHDOG_SCORE_RTOL, float(same.mean()), float(same[:clean].mean()), float(same[clean:].mean()), by_kind,
        {"clean": int((ref[:clean] > threshold).sum()), "faulty": int((ref[clean:] > threshold).sum())},
        int(borderline.sum()), int((~same & ~borderline).sum()), list(float_layers or []), float(seconds),
        float(wall))


def watchdog_failure(res: RknnWatchdogResult) -> str | None:
    """Why ``res`` must not replace the model in place, or None."""
    if res.quantized:
        worst = min(res.clean_flag_agreement, res.faulty_flag_agreement)
        if worst < WATCHDOG_INT8_AGREEMENT:
            return (f"INT8 flag agreement with ONNX Runtime {worst:.1%} (clean {res.clean_flag_agreement:.1%}, "
                    f"faulty {res.faulty_flag_agreement:.1%}) is under {WATCHDOG_INT8_AGREEMENT:.0%}")
        return None
    if res.flag_mismatches:
        return (f"the RKNN simulator flags {res.flag_mismatches} of {res.clean_windows + res.faulty_windows} "
                f"windows otherwise than ONNX Runtime (unquantized, none may differ)")
    if res.max_rel_diff > res.score_rtol:
        return (f"the RKNN simulator's scores differ from ONNX Runtime by {res.max_rel_diff:.2e} relative "
                f"(> {res.score_rtol:g} unquantized; max |diff| {res.max_abs_diff:.3g})")
    return None


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise HeqisError(f"unknown RKNN target '{target}'", hint=f"use one of: {', '.join(TARGETS)}")


def record(out_dir: Path, key: str, entry: dict[str, Any]) -> None:
    """Set ``key`` of rknn/manifest.json (one entry per converted model; the others are kept)."""
    path = out_dir / MANIFEST
    entries = read_json(path, "RKNN record") if path.exists() else {}
    entries[key] = entry
    write_json(path, entries)


def run_worker(out_dir: Path, label: str, onnx_path: Path, out: Path, target: str, quantize: bool,
               dataset: np.ndarray, check: np.ndarray, input_name: str, input_shape: list[int],
               output_names: list[str], timeout_s: int, float_from: str | None = None,
               ) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Convert ``onnx_path`` to ``out`` in the rknn venv (INT8 on ``dataset`` when ``quantize``) and run the
    simulator on ``check`` one window at a time: its [N, k] outputs in ``output_names`` order (the ONNX
    graph's) and the worker's result (steps, seconds). The toolkit's log is appended to rknn/convert.log."""
    python = rknn_python()
    with tempfile.TemporaryDirectory(prefix="heqis-rknn-") as tmp:
        t = Path(tmp)
        lines = []
        for i, window in enumerate(dataset):   # one .npy per sample, as rknn's dataset wants
            p = t / f"sample_{i:04d}.npy"
            np.save(p, window[None])
            lines.append(str(p))
        (t / "dataset.txt").write_text("\n".join(lines) + "\n")
        np.save(t / "windows.npy", np.ascontiguousarray(check, dtype=np.float32))
        outputs = [{"name": name, "path": str(t / f"out_{i}.npy")} for i, name in enumerate(output_names)]
        job = {"onnx": str(onnx_path), "out": str(out), "target": target, "quantize": quantize,
               "dataset": str(t / "dataset.txt"), "input": input_name, "input_shape": input_shape,
               "outputs": outputs, "windows": str(t / "windows.npy"), "result": str(t / "result.json"),
               **({"float_from": float_from, "workdir": str(t)} if float_from else {})}
        (t / "job.json").write_text(json.dumps(job))
        log = out_dir / LOG
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"\n=== {label} target={target} quantize={quantize}\n")
            fh.flush()
            try:
                subprocess.run([str(python), str(WORKER), str(t / "job.json")], stdout=fh, stderr=subprocess.STDOUT,
                               timeout=timeout_s, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            except subprocess.TimeoutExpired:
                raise HeqisError(f"RKNN conversion of {label} took over {timeout_s} s", hint=f"see {log}") from None
        result_path = t / "result.json"
        if not result_path.exists():
            raise HeqisError(f"RKNN conversion of {label} crashed", hint=f"see {log}")
        result = json.loads(result_path.read_text())
        if not result["ok"]:
            failed = next((k for k, v in result["steps"].items() if v != 0), None)
            where = (f"at {failed}" if failed else "in the simulator") + \
                (f" ({result['error']})" if result.get("error") else "")
            raise HeqisError(f"RKNN conversion of {label} failed {where}", hint=f"see {log}")
        return [np.load(o["path"]) for o in outputs], result


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)

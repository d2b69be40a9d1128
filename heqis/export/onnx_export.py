"""``heqis export``: a training run → the artifact set (heqis.formats.artifacts), checked against torch.

ONNX via the TorchScript exporter (``dynamo=False``), opset 17, dynamic batch axis: the dynamo
exporter fixes the batch to the example's size and emits GRU attributes RKNN rejects. The exported
graph includes the inverse target scaling, so ``output_reg`` is the next-day return itself. After
export every model runs in ONNX Runtime on real windows at batch 1 and batch 32, and the export
fails when any output differs from torch by more than 1e-4. The set is built in a temporary folder
and renamed into place, so a failed export never leaves a half-written ``deploy_output``.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from heqis.backtest.selection import HOLD
from heqis.errors import HeqisError
from heqis.features.windows import Scaler, Segments, WindowIndex, index_windows
from heqis.fileio import fsync_dir, read_json, sha256_file, write_json
from heqis.formats.artifacts import CALIBRATION, ROUTING, write_artifact_manifest
from heqis.formats.run import RunFolder

OPSET = 17
PARITY_TOL = 1e-4
INPUT, OUTPUTS = "input", ("output_reg", "output_cls")


@dataclass
class ExportResult:
    out_dir: str
    run_dir: str
    generators: dict[str, dict[str, Any]]
    routing: dict[str, Any]
    files: dict[str, str]
    set_id: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(module: nn.Module, path: Path, window: int, n_features: int) -> None:
    module.eval()
    example = torch.zeros(2, window, n_features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python-level shape arithmetic
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=list(OUTPUTS), do_constant_folding=True,
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUTS[0]: {0: "batch"}, OUTPUTS[1]: {0: "batch"}})


def onnx_session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def parity(module: nn.Module, session: Any, windows: np.ndarray) -> dict[str, float]:
    """Max |ONNX Runtime - torch| over both outputs, at batch 1 (first 8 windows) and batch 32."""
    out = {}
    with torch.no_grad():
        for label, batches in (("batch1", [windows[i:i + 1] for i in range(min(8, len(windows)))]),
                               ("batch32", [windows[:32]])):
            worst = 0.0
            for batch in batches:
                ref = [t.numpy() for t in module(torch.from_numpy(batch))]
                got = session.run(list(OUTPUTS), {INPUT: batch})
                worst = max(worst, *(float(np.max(np.abs(r - g))) for r, g in zip(ref, got, strict=True)))
            out[label] = worst
    return out


def real_windows(windows: WindowIndex, scaler: Scaler, segments: Segments, segment: str, count: int,
                 seed: int = 0) -> np.ndarray:
    """``count`` scaled windows of ``segment`` drawn from the run's windows (deterministic); only
    the picked windows are cut out of the views, so export's memory does not grow with the universe."""
    ws = windows.segment(segments, segment)
    if not len(ws):
        raise HeqisError(f"no {segment} windows to check the export on")
    pick = np.sort(np.random.default_rng(seed).choice(len(ws), size=min(count, len(ws)), replace=False))
    return scaler.transform(ws.gather(pick))


def routing_for(run_dir: Path, manifest: dict[str, Any], generators: list[str],
                default_threshold: float) -> dict[str, Any]:
    """symbol → generator, mode, threshold: the backtest's choice when there is one, else the val best.
    A symbol the backtest left holding (no generator × mode passed its gate) gets the val best too, with
    ``"backtest": "buy_hold"`` so that nobody mistakes its signals for a selected strategy's."""
    best_csv = run_dir / "backtest" / "best_metrics.csv"
    fallback = manifest.get("best_generator") or generators[0]
    if fallback not in generators:
        fallback = generators[0]
    routes: dict[str, dict[str, Any]] = {}
    source = "validation"
    if best_csv.exists():
        threshold = default_threshold
        summary = run_dir / "backtest" / "summary.json"
        if summary.exists():
            threshold = read_json(summary, "backtest summary")["rules"].get("regression_threshold", default_threshold)
        for row in pd.read_csv(best_csv).to_dict("records"):
            if row["generator"] in generators:
                routes[row["symbol"]] = {"generator": row["generator"], "mode": row["mode"], "threshold": threshold}
            elif (row["generator"], row["mode"]) == HOLD:   # no model beat holding: the validation best, flagged
                routes[row["symbol"]] = {"generator": fallback, "mode": "cls", "threshold": default_threshold,
                                         "backtest": "buy_hold"}
        source = "backtest (chosen on select)"
    for symbol in manifest["symbols"]:
        routes.setdefault(symbol, {"generator": fallback, "mode": "cls", "threshold": default_threshold})
    return {"source": source, "default": {"generator": fallback, "mode": "cls", "threshold": default_threshold},
            "symbols": routes}


WATCHDOG_ONNX, WATCHDOG_CALIBRATION = "watchdog.onnx", "watchdog_calibration.npy"
WATCHDOG_IO = ("window", "score")


def export_watchdog(run_dir: Path, staging: Path, bars: dict[str, pd.DataFrame], segments: Segments,
                    calibration: int = 256) -> dict[str, Any] | None:
    """The run's watchdog (heqis.train.watchdog) as watchdog.onnx (input "window" [B, W, 6], output "score"
    [B]) plus clean validation windows for INT8 calibration, checked against torch; None without one."""
    from heqis.models.watchdog import WatchdogScorer
    from heqis.train.watchdog import bars_ohlcv, load_watchdog, segment_windows

    found = load_watchdog(run_dir)
    if found is None:
        return None
    net, doc = found
    window = int(doc["window"])
    ohlcv = {s: bars_ohlcv(b) for s, b in bars.items()}
    dates = {s: b["trade_date"].to_numpy() for s, b in bars.items()}
    val = segment_windows(ohlcv, dates, segments, "val", window, calibration, np.random.default_rng(1))
    if len(val) < 32:
        raise HeqisError(f"{run_dir}: only {len(val)} validation windows to check the watchdog export on")
    scorer = WatchdogScorer(net).eval()
    path = staging / WATCHDOG_ONNX
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(scorer, (torch.from_numpy(val[:2]),), str(path), dynamo=False, opset_version=OPSET,
                          input_names=[WATCHDOG_IO[0]], output_names=[WATCHDOG_IO[1]], do_constant_folding=True,
                          dynamic_axes={WATCHDOG_IO[0]: {0: "batch"}, WATCHDOG_IO[1]: {0: "batch"}})
    session = onnx_session(path)
    diffs = {}
    with torch.no_grad():
        for label, batches in (("batch1", [val[i:i + 1] for i in range(8)]), ("batch32", [val[:32]])):
            worst = 0.0
            for batch in batches:
                ref = scorer(torch.from_numpy(batch)).numpy()
                got = session.run([WATCHDOG_IO[1]], {WATCHDOG_IO[0]: batch})[0]
                worst = max(worst, float(np.max(np.abs(ref - got))))
            diffs[label] = worst
    if max(diffs.values()) > PARITY_TOL:
        raise HeqisError(f"watchdog: ONNX Runtime differs from torch by {max(diffs.values()):.2e} (> {PARITY_TOL:g})",
                         hint="report this run's watchdog.json; nothing was written")
    np.save(staging / WATCHDOG_CALIBRATION, val.astype(np.float32))
    return {"onnx": WATCHDOG_ONNX, "calibration": WATCHDOG_CALIBRATION, "window": window,
            "columns": list(doc["columns"]), "threshold": float(doc["threshold"]), "fpr": float(doc["fpr"]),
            "io": {"input": WATCHDOG_IO[0], "output": WATCHDOG_IO[1]}, "parity": diffs}


def export_run(run_dir: Path, generators: list[str] | None = None, out: Path = Path("deploy_output"),
               data_dir: Path | None = None, calibration: int = 256) -> ExportResult:
    """Export a run's generators into the artifact set ``out`` (heqis.formats.artifacts), checked
    against torch; built in a temporary folder and renamed into place."""
    from heqis.backtest.run import open_run_models
    from heqis.models.exportable import ExportModule
    from heqis.train.provenance import versions

    run_dir = Path(run_dir)
    run = RunFolder.open(run_dir)
    manifest = run.manifest
    available = run.generators()
    wanted = generators or available
    missing = [g for g in wanted if g not in available]
    if missing:
        raise HeqisError(f"{run_dir}: no checkpoint for {', '.join(missing)}",
                         hint=f"available: {', '.join(available)}")
    store, models = open_run_models(run, data_dir)
    segments = Segments.from_dict({k: list(v) for k, v in run.segments.items()})
    symbols = run.symbols
    # one scaler file (and one calibration set) per distinct scaler of the run: generators that share a
    # window share them; names stay the run's, so the default set has scaler_params.json + calibration.npy
    scaler_files = {gid: run.scaler_path(gid).name for gid in wanted}
    distinct = sorted(set(scaler_files.values()))
    calib_names = {name: CALIBRATION if len(distinct) == 1 else f"calibration_{Path(name).stem}.npy"
                   for name in distinct}

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the artifact set is an ordinary folder
    try:
        checks: dict[str, np.ndarray] = {}
        bars = {s: store.read_bars(s) for s in symbols}       # read once, windowed once per distinct scaler
        for name in distinct:
            gid = next(g for g in wanted if scaler_files[g] == name)
            scaler = models[gid][1]
            windows = index_windows(bars, scaler.window, scaler.flat_band, scaler.inputs, target=scaler.target)
            checks[name] = real_windows(windows, scaler, segments, "val", 64)
            calib = real_windows(windows, scaler, segments, "train", calibration, seed=1)
            np.save(staging / calib_names[name], calib.astype(np.float32))
            shutil.copyfile(run.scaler_path(gid), staging / name)
        gens: dict[str, dict[str, Any]] = {}
        for gid in wanted:
            model, scaler = models[gid]
            module = ExportModule(model, scaler.y_scale, scaler.y_min).eval()
            onnx_path = staging / f"model_{gid}.onnx"
            export_onnx(module, onnx_path, scaler.window, len(scaler.inputs))
            diffs = parity(module, onnx_session(onnx_path), checks[scaler_files[gid]])
            worst = max(diffs.values())
            if worst > PARITY_TOL:
                raise HeqisError(f"{gid}: ONNX Runtime differs from torch by {worst:.2e} (> {PARITY_TOL:g})",
                                 hint="report this model with its run manifest; nothing was written")
            shutil.copyfile(run.checkpoint(gid), staging / f"torch_{gid}.pt")
            gens[gid] = {"kind": manifest["generators"][gid]["kind"], "onnx": onnx_path.name,
                         "torch": f"torch_{gid}.pt", "window": scaler.window, "scaler": scaler_files[gid],
                         "calibration": calib_names[scaler_files[gid]], "max_abs_diff": diffs}
        watchdog = export_watchdog(run_dir, staging, bars, segments)
        routing = routing_for(run_dir, manifest, list(gens), 0.001)
        write_json(staging / ROUTING, routing)
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.is_file()}
        first = models[wanted[0]][1]
        written = write_artifact_manifest(staging, {
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_run": str(run_dir.resolve()), "run_status": manifest["status"],
            "data_hash": run.data_hash, "synthetic_data": manifest["data"].get("synthetic"),
            "features": run.features, "opset": OPSET, "exporter": "torch.onnx (TorchScript, dynamo=False)",
            "window": first.window, "n_features": len(first.inputs), "inputs": list(first.inputs),
            "io": {"input": INPUT, "outputs": OUTPUTS}, "generators": gens,
            "calibration_windows": calibration, "files": files, "versions": versions(),
            **({"watchdog": watchdog} if watchdog else {}),
        })
        fsync_dir(staging)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(str(out), str(run_dir), gens, routing, files, set_id=written["set_id"])

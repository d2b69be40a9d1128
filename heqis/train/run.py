"""``heqis train``: one training run in a run directory, resumable and crash-safe.

The run folder's layout and its reader are ``heqis.formats.run`` (the edge can read it too).
``last.pt`` is rewritten after every epoch, so Ctrl-C or a crash loses at most the running epoch.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from heqis.data.store import DataStore
from heqis.errors import HeqisError
from heqis.features.columns import MODEL_INPUTS
from heqis.features.fingerprint import feature_fingerprint, require_features
from heqis.features.windows import Segments
from heqis.fileio import atomic_write
from heqis.formats.run import SCALER, RunFolder, write_run_manifest
from heqis.models import checkpoint
from heqis.train.data import prepare
from heqis.train.presets import Preset, get_preset
from heqis.train.provenance import apply_params, check_data_hash, git_commit, versions
from heqis.train.trainer import EpochReport, MultiGANTrainer

METRIC_FIELDS = ("epoch", "phase", "generator", "kind", "train_loss", "train_mse", "train_ce", "adv_loss",
                 "d_loss", "val_loss", "val_mse_scaled", "val_ce", "val_mse", "val_acc", "weights", "event",
                 "improved", "adv_grad_share", "d_acc_real", "d_acc_fake")
# adv_grad_share: the adversarial share of the generator's gradient norm (mean over the first
# trainer.SHARE_BATCHES batches of an adversarial epoch); d_acc_real / d_acc_fake: its discriminator's
# held-out accuracy on val (real called real, its forecasts called fake) — is the game doing anything?


@dataclass
class TrainRequest:
    data_dir: Path | None = None        # None: ./heqis-data, or the run's own store with resume
    preset: str = "tiny"
    symbols: list[str] | None = None
    epochs: int | None = None
    device: str = "auto"
    seed: int = 3407
    out: Path | None = None
    resume: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)   # preset fields (tests, experiments)
    params: dict[str, Any] = field(default_factory=dict)      # lr / hidden / window (--params, --from-search)
    params_from: dict[str, Any] | None = None                 # where they came from, for the manifest
    segments: Segments | None = None                          # explicit segment dates (walk-forward folds)


@dataclass
class TrainResult:
    run_dir: str
    status: str
    preset: str
    device: str
    epochs_run: int
    best_generator: str
    generators: dict[str, dict[str, Any]]
    baselines: dict[str, float]
    events: list[dict[str, Any]]
    segments: dict[str, list[str]]
    samples: dict[str, int]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise HeqisError("--device cuda: no CUDA device is visible to torch",
                         hint="use --device cpu (or auto), or install a CUDA build of torch on a GPU machine")
    if name not in ("cpu", "cuda"):
        raise HeqisError(f"unknown device '{name}'", hint="use auto, cpu or cuda")
    return name


def default_run_dir(preset: str, runs_dir: Path = Path("runs")) -> Path:
    return Path(runs_dir) / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{preset}"


def scaler_name(window: int, longest: int) -> str:
    """The scaler file of a generator: the run's own for the longest window, scaler_w<N>.json else."""
    return SCALER if window == longest else f"scaler_w{window}.json"


def scaler_files(preset: Preset) -> dict[str, int]:
    """Scaler file name → window, one per distinct look-back of the preset's generators."""
    longest = preset.longest_window
    return {scaler_name(w, longest): w for w in sorted(set(preset.windows().values()))}


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(path, buf.getvalue().encode())


def _select_symbols(store: DataStore, wanted: list[str] | None) -> list[str]:
    have = store.symbols()
    if not wanted:
        return have
    unknown = [s for s in wanted if s not in have]
    if unknown:
        raise HeqisError(f"not in the data store {store.root}: {', '.join(unknown)}",
                         hint=f"stored: {', '.join(have)}")
    return sorted(set(wanted))


def run_train(req: TrainRequest, on_epoch: Callable[[EpochReport, MultiGANTrainer], None] | None = None,
              log: Callable[[str], None] | None = None) -> TrainResult:
    """Train (or resume) a run; returns its summary. Ctrl-C leaves a resumable run and re-raises."""
    t0 = time.monotonic()
    log = log or (lambda line: None)
    on_epoch = on_epoch or (lambda report, trainer: None)
    out = Path(req.out) if req.out else default_run_dir(req.preset)
    notes: list[str] = []
    if req.resume:
        run = RunFolder.open(out)
        require_features(run.features, f"the run {out}", hint="start a new run: heqis train --out NEW_DIR")
        run_manifest = run.manifest
    store = DataStore(req.data_dir or (run.data_dir if req.resume else Path("heqis-data")))
    data_manifest = store.require_current()

    if req.resume:
        if run_manifest["data"]["content_hash"] != data_manifest["content_hash"]:
            raise HeqisError(f"{out}: the data store changed since this run started "
                             f"({run_manifest['data']['content_hash'][:12]} → {data_manifest['content_hash'][:12]})",
                             hint="start a new run, or point --data-dir at the data it was trained on")
        preset = Preset.from_dict(run_manifest["preset"])
        if req.epochs:
            preset.epochs = req.epochs
        seed = int(run_manifest["seed"])
        symbols = run_manifest["symbols"]
        segments: Segments | None = Segments.from_dict(run_manifest["segments"])
    else:
        if (out / "manifest.json").exists():
            raise HeqisError(f"{out} already holds a training run",
                             hint="pass --resume to continue it, or another --out")
        preset = get_preset(req.preset, **{**req.overrides, "epochs": req.epochs or req.overrides.get("epochs")})
        check_data_hash(req.params_from, data_manifest["content_hash"], store.root)
        preset = apply_params(preset, req.params)
        seed = req.seed
        symbols = _select_symbols(store, req.symbols)
        segments = req.segments
    device = resolve_device(req.device)

    bars = {s: store.read_bars(s) for s in symbols}
    data = prepare(bars, store.sessions(), preset.longest_window, preset.flat_band, preset.max_train_windows, seed,
                   segments=segments, max_val=preset.max_val_windows, target=preset.target)
    out.mkdir(parents=True, exist_ok=True)
    for name, window in scaler_files(preset).items():
        # one fit (train segment, longest windows); a shorter generator's file differs only in its window,
        # since the scale-free inputs of a window's last w bars are those of the w-bar window itself
        replace(data.scaler, window=window).save(out / name)
    trainer = MultiGANTrainer(preset, data, device=device, seed=seed, encoder_log=log)
    baselines = trainer.baselines()

    manifest: dict[str, Any] = {
        "status": "running",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": preset.to_dict(), "seed": seed, "device": device,
        "data": {"dir": str(store.root), "source": data_manifest.get("source"),
                 "synthetic": data_manifest.get("synthetic"), "content_hash": data_manifest["content_hash"]},
        "symbols": data.symbols, "window": preset.longest_window, "game": preset.game,
        "features": feature_fingerprint(),
        "inputs": list(MODEL_INPUTS),
        "flat_band": preset.flat_band, "target": preset.target, "segments": data.segments.to_dict(),
        "samples": {"train": data.n_train_total, "train_used": len(data.train), "val": data.n_val_total,
                    "val_used": len(data.val)},
        "baselines": baselines, "versions": versions(), "git_commit": git_commit(),
        "params_from": req.params_from if not req.resume else run_manifest.get("params_from"),
    }
    if req.resume:
        manifest["created_at"] = run_manifest.get("created_at", manifest["created_at"])
        manifest["seconds_before"] = float(run_manifest.get("seconds", 0.0))
    history: list[dict[str, Any]] = []
    last_path = out / "checkpoints" / "last.pt"
    if req.resume and last_path.exists():
        state = checkpoint.load(last_path)
        try:
            trainer.load_state_dict(state["trainer"])
        except (KeyError, RuntimeError) as exc:
            raise HeqisError(f"{last_path}: checkpoint does not fit this run ({str(exc).splitlines()[0][:160]})",
                             hint="start a new run") from None
        history = list(state["history"])
        log(f"resuming {out} after epoch {trainer.epoch}")
    elif req.resume:
        notes.append("no checkpoint yet: started from the beginning")

    saved: dict[str, Any] = {}     # the manifest as of the last checkpoint: what an interruption leaves

    def save_state(status: str) -> None:
        checkpoint.save(last_path, {"trainer": trainer.state_dict(), "history": history})
        _write_metrics(out / "metrics.csv", history)
        saved.clear()
        saved.update(_summarise(manifest, trainer, status, time.monotonic() - t0))
        write_run_manifest(out, saved)

    status = "running"
    try:
        if not trainer.encoders_trained:
            history.extend(trainer.train_encoders())
            save_state(status)
        stopped_early = False
        while trainer.epoch < preset.epochs:
            report = trainer.run_epoch()
            history.extend(report.rows)
            for gid in report.improved:
                _save_generator(out, gid, trainer, preset, data.n_features)
            save_state(status)
            on_epoch(report, trainer)
            if report.stop:
                stopped_early = True
                notes.append(f"early stop after epoch {report.epoch}: no better validation loss for "
                             f"{preset.patience} epochs")
                break
        status = "early_stopped" if stopped_early else "complete"
    except KeyboardInterrupt:
        # the epoch under way is lost with the interruption: the manifest says what last.pt holds
        # (counting the unfinished epoch made --resume and the console disagree by one)
        state = dict(saved) if saved else _summarise(manifest, trainer, "interrupted", time.monotonic() - t0)
        if not saved:
            state["epochs_run"] = 0
        write_run_manifest(out, {**state, "status": "interrupted", "seconds": round(
            time.monotonic() - t0 + manifest.get("seconds_before", 0.0), 2)})
        raise
    final = _summarise(manifest, trainer, status, time.monotonic() - t0)
    write_run_manifest(out, final)
    return TrainResult(
        run_dir=str(out), status=status, preset=preset.name, device=device, epochs_run=trainer.epoch,
        best_generator=final["best_generator"], generators=final["generators"], baselines=baselines,
        events=trainer.events, segments=data.segments.to_dict(), samples=manifest["samples"],
        seconds=round(time.monotonic() - t0, 2), notes=notes)


def _save_generator(out: Path, gid: str, trainer: MultiGANTrainer, preset: Preset, n_features: int) -> None:
    checkpoint.save(out / "checkpoints" / f"{gid}.pt", {
        "generator": gid, "spec": preset.generators[gid], "n_features": n_features, "window": trainer.windows[gid],
        "cae": preset.cae, "t3vae": preset.t3vae, "epoch": trainer.best_epoch[gid],
        "val_loss": trainer.best[gid], "state_dict": trainer.best_states[gid]})


def _summarise(manifest: dict[str, Any], trainer: MultiGANTrainer, status: str, seconds: float) -> dict[str, Any]:
    gens = {}
    for gid, g in trainer.generators.items():
        val = trainer.last_val.get(gid, {})
        best = trainer.best_metrics.get(gid, {})
        gens[gid] = {
            "kind": trainer.preset.generators[gid]["kind"],
            "params": sum(p.numel() for p in g.parameters() if p.requires_grad),
            "checkpoint": f"checkpoints/{gid}.pt" if gid in trainer.best_states else None,
            "window": trainer.windows[gid], "scaler": scaler_name(trainer.windows[gid], trainer.data.window),
            "best_epoch": trainer.best_epoch[gid],
            "best_val_loss": trainer.best[gid] if trainer.best[gid] != float("inf") else None,
            "val_mse": best.get("val_mse"), "val_acc": best.get("val_acc"),   # at the best epoch
            "last_val_mse": val.get("val_mse"), "last_val_acc": val.get("val_acc"),
        }
    ranked = sorted((g for g in gens if gens[g]["best_val_loss"] is not None),
                    key=lambda g: gens[g]["best_val_loss"])
    return {**manifest, "status": status, "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "epochs_run": trainer.epoch, "generators": gens, "best_generator": ranked[0] if ranked else None,
            "weights": trainer.weights.tolist(), "events": trainer.events,
            "seconds": round(seconds + manifest.get("seconds_before", 0.0), 2)}

"""The gateway's data watchdog per bar: the model's cost per window, the rules', and its share of the gateway's time.

Measured on the code the gateway runs for every bar (heqis.runtime.gateway.Gateway._admit):

* **model, per window** (ONNX Runtime, 1 thread, batch 1, as ``WatchdogModel.open`` makes the session):
  the whole ``WatchdogModel.score`` call ``Watchdog.check`` makes, and its two halves timed apart in
  one pass: *window building* — ``quality_window(quality_ohlcv(history[-(W+1):]))``, the scale-free
  [1, W, C] window of the bar's raw bars — and *scoring* — ``WatchdogModel.score_many`` on that window.
  Target: ≤ 0.3 ms on 2 cores. Why it matters: the watchdog runs inline, on the gateway's one loop
  thread, before the ring buffer, for every bar — its cost is added to every bar's latency and bounds
  the bars per second one gateway admits.
* **rules, per bar**: ``Watchdog.check`` without a model (what a set without ``watchdog.onnx`` runs);
  and ``Watchdog.check`` with the model (rules + model, what ``heqis gateway`` runs by default).
* **the gateway's per-bar path**, in process: a real ``Gateway`` (no brains; its PUB and control sockets
  bound on free loopback ports, its SQLite store in a temporary folder) polls a fresh replay of the
  same bars each round through its own ``_poll_sources`` (replay source → aligner), runs ``_admit`` on
  each (clean history → watchdog → request window → ring buffer; a flagged bar's row for the flags
  table) and then does per request what ``_dispatch`` does short of the socket: ring pop and
  ``encode`` of the window frames; the flags are flushed to SQLite once per round. Not included: the
  socket send, replies, heartbeats, telemetry. Three sides, interleaved round by round on the same
  bars: policy ``off`` (the baseline), ``warn`` with rules only, ``warn`` with the model.
  The share is the watchdog's part of the per-bar time: (warn+model − off) / (warn+model), and,
  from the components, ``Watchdog.check`` with the model / (warn+model).

Before anything is timed the outputs are checked: ``score`` equals ``score_many`` of the built window
for every bar, the watchdog's score is the model's, the rules' reasons are the same with and without
the model, and the gateway sends the same requests (seq, symbol, bar time, payload bytes) with the
watchdog off and on (``warn`` only marks them). Best of ``--rounds`` rounds per side, every side in
every round (they see the same machine load).

Without ``--artifacts`` a small artifact set with a watchdog is built once and cached (a synthetic
store, a 1-epoch tiny run, a short watchdog training, ``export_run``: about 10 s on 2 cores); the
timings do not depend on how well it is trained, only on the model's sizes, which are the defaults.

    python benchmarks/watchdog.py [--artifacts DIR --data-dir DIR] [--bars 2000] [--rounds 7] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from heqis import __version__
from heqis.errors import HeqisError
from heqis.features.quality import QUALITY_COLUMNS
from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.watchdog_bench import measure, render
from heqis.runtime.watchdog_model import WatchdogModel

# the cached set: enough bars for a full 560-bar history and thousands of replayed bars after it
BUILD = {"symbols": 10, "years": 6, "seed": 7, "train_epochs": 1, "watchdog_epochs": 4,
         "watchdog_windows": 20_000}
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "heqis-bench-watchdog"


# -- the artifact set -----------------------------------------------------------------------------
def _usable(artifacts: Path) -> bool:
    try:
        return WatchdogModel.open(ArtifactSet.open(artifacts)) is not None
    except Exception:  # an old or half-written cache is rebuilt, never trusted
        return False


def cached_artifacts(cache: Path) -> tuple[Path, Path, bool]:
    """(artifact set, data store, built now) of the cached synthetic set, built when missing or unusable.
    Keyed by the heqis version, the model's input columns and BUILD, so a new export format, other
    inputs or other sizes build a new one (a set the model loader refuses is rebuilt too); built
    in a staging folder and renamed into place, so a concurrent or interrupted run never sees half a set."""
    key = hashlib.sha256(json.dumps([__version__, QUALITY_COLUMNS, BUILD], sort_keys=True).encode()).hexdigest()[:12]
    root = cache / f"set-{key}"
    if _usable(root / "deploy_output"):
        return root / "deploy_output", root / "data", False
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=cache))
    print(f"building a small artifact set with a watchdog (SYNTHETIC data) in {root} …", file=sys.stderr, flush=True)
    try:
        with contextlib.redirect_stdout(sys.stderr):    # keep stdout for the result (--json)
            _build(staging)
        shutil.rmtree(root, ignore_errors=True)
        try:
            staging.rename(root)
        except OSError:                                 # another run put one there first: use it
            if not _usable(root / "deploy_output"):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / "deploy_output", root / "data", True


def _build(root: Path) -> None:
    """What a user runs (heqis data --source synthetic, heqis train, heqis train --watchdog, heqis export),
    through the same library calls, as small as the export's checks allow."""
    from heqis.config import load_settings
    from heqis.data.pipeline import run_data
    from heqis.data.request import DataRequest
    from heqis.export.onnx_export import export_run
    from heqis.train.run import TrainRequest, run_train
    from heqis.train.watchdog import WatchdogConfig, train_watchdog

    run_data(DataRequest(source="synthetic", data_dir=root / "data", symbols=BUILD["symbols"], years=BUILD["years"],
                         seed=BUILD["seed"], workers=1), load_settings())
    run_train(TrainRequest(data_dir=root / "data", preset="tiny", epochs=BUILD["train_epochs"], device="cpu",
                           out=root / "run", overrides={"pretrain_epochs": 1, "encoder_epochs": 1,
                                                        "max_train_windows": 300, "max_val_windows": 200}))
    train_watchdog(root / "run", config=WatchdogConfig(epochs=BUILD["watchdog_epochs"],
                                                       max_train_windows=BUILD["watchdog_windows"]))
    export_run(root / "run", out=root / "deploy_output")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, help="an artifact set with watchdog.onnx (default: the cached "
                    "synthetic one)")
    ap.add_argument("--data-dir", type=Path, help="the data store to replay (needed with --artifacts)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the synthetic set is cached")
    ap.add_argument("--bars", type=int, default=2000, help="replayed bars per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if (args.artifacts is None) != (args.data_dir is None):
        ap.error("--artifacts and --data-dir go together")
    built = False
    if args.artifacts is None:
        args.artifacts, args.data_dir, built = cached_artifacts(args.cache)
    try:
        result = {**measure(args.artifacts, args.data_dir, args.bars, args.rounds), "artifacts_built": built}
    except HeqisError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

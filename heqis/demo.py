"""``heqis demo``: the whole chain on the bundled synthetic data.

data (sample source) → train (tiny preset, and the gateway's data watchdog) → backtest (chosen on
select, reported on test) → export (ONNX, checked against torch) into ``heqis-demo/deploy_output`` →
a local fleet (gateway + brain processes, ``heqis up --local``) replaying the sample data's second
half of 2024 → the console. A run from an earlier demo on the same data is reused, so a second
``make demo`` is quick; anything else in the demo folder is rebuilt, a fleet left by an earlier demo
is stopped first, and the replay runs again even where signals are stored (they are not stored twice).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heqis.config import Settings
from heqis.data.pipeline import DataRequest, DataResult, run_data


@dataclass
class DemoResult:
    data: DataResult
    train: dict[str, Any]
    backtest: dict[str, Any]
    export: dict[str, Any]
    reused_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data.to_dict(), "train": self.train, "backtest": self.backtest,
                "export": self.export, "reused_run": self.reused_run}


def _reusable(run_dir: Path, content_hash: str) -> dict[str, Any] | None:
    from heqis.features.fingerprint import same_features
    from heqis.formats.run import RUN_VERSION

    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    ok = manifest.get("status") in ("complete", "early_stopped") and manifest.get("version") == RUN_VERSION and \
        manifest.get("data", {}).get("content_hash") == content_hash and same_features(manifest.get("features"))
    return manifest if ok else None


REPLAY_FROM = "2024-07-01"
Stage = Callable[[str], contextlib.AbstractContextManager[Callable[[str, int, int], None]]]


FIRST_SIGNAL_S = 120.0     # the longest the demo waits for the fleet's first signal before watching


def start_fleet(root: Path, base_port: int, brains: int = 2, rate: float = 40.0,
                start: str = REPLAY_FROM) -> dict[str, Any]:
    """The local fleet on the demo's artifacts (stopping one an earlier demo left here), replaying from
    ``start`` even where signals are stored. Ports: the local layout from ``base_port``."""
    from heqis.runtime.local_fleet import STATE_FILE, LocalFleetRequest, down_local, port_layout, up_local

    if STATE_FILE.exists():
        down_local(STATE_FILE)
    layout = port_layout(brains, base_port)
    return up_local(LocalFleetRequest(artifacts=root / "deploy_output", data_dir=root / "data", brains=brains,
                                      ports=layout, rate=rate, start=start, replay_from=start))


def watch_fleet(control_address: str, gateway_pid: int, seconds: float,
                first_signal_s: float = FIRST_SIGNAL_S) -> Iterator[dict[str, Any]]:
    """One telemetry snapshot of the demo's gateway per second for ``seconds``, counted from the first stored
    signal (brains load their models first: on a loaded machine that takes longer than the watch itself, and
    a watch of zeros shows nothing). Waits at most ``first_signal_s`` for it; ends early when the gateway stops."""
    from heqis.runtime.local_fleet import control

    deadline = time.monotonic() + first_signal_s
    started = False
    left = max(1, int(seconds))
    while left > 0:
        time.sleep(1.0)
        snapshot = control(control_address, {"cmd": "telemetry"}, 2.0)
        if snapshot is None or snapshot["nodes"][0].get("pid") != gateway_pid:
            return
        started = started or snapshot["nodes"][0]["counters"].get("signals", 0) > 0 or time.monotonic() > deadline
        if started:
            left -= 1
            yield snapshot


def _no_stage(label: str) -> contextlib.AbstractContextManager[Callable[[str, int, int], None]]:
    return contextlib.nullcontext(lambda what, done, total: None)


def run_demo(root: Path, settings: Settings, stage: Stage = _no_stage, on_epoch: Callable[..., None] | None = None,
             log: Callable[[str], None] | None = None) -> DemoResult:
    """Data → train → backtest → export in ``root``; ``stage(label)`` wraps each step (progress output)."""
    from heqis.backtest.run import backtest_run
    from heqis.export.onnx_export import export_run
    from heqis.train.run import TrainRequest, run_train
    from heqis.train.watchdog import WATCHDOG_JSON, train_watchdog

    with stage("demo 1/4: data (sample)") as progress:
        data = run_data(DataRequest(source="sample", data_dir=root / "data", bundled_watchlist=True), settings,
                        progress=progress)
    run_dir = root / "run"
    previous = _reusable(run_dir, data.content_hash)
    with stage("demo 2/4: train (tiny preset)") as progress:
        progress("", 0, 0)
        if previous is not None:
            summary = {k: previous[k] for k in ("status", "epochs_run", "best_generator", "generators", "baselines",
                                                "events", "segments", "samples", "device")}
            summary.update(run_dir=str(run_dir), preset=previous["preset"]["name"],
                           seconds=previous.get("seconds", 0.0), notes=["reused the run of an earlier demo"])
            train = summary
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
            train = run_train(TrainRequest(data_dir=root / "data", preset="tiny", out=run_dir), on_epoch=on_epoch,
                              log=log).to_dict()
        if not (run_dir / WATCHDOG_JSON).exists():     # the gateway's data watchdog rides along (a few seconds)
            train["watchdog"] = train_watchdog(run_dir, data_dir=root / "data", log=log).to_dict()
    with stage("demo 3/4: backtest") as progress:
        bt = backtest_run(run_dir, root / "data", progress=progress)
    with stage("demo 4/4: export") as progress:
        progress("", 0, 0)
        exported = export_run(run_dir, out=root / "deploy_output", data_dir=root / "data")
    return DemoResult(data, train, bt.to_dict(), exported.to_dict(), previous is not None)

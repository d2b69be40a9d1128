"""``heqis demo``: the whole chain on the bundled synthetic data, as far as it has landed.

Steps today: data (sample source) → train (tiny preset) → backtest (chosen on select, reported on
test) → export (ONNX, checked against torch) into ``heqis-demo/deploy_output`` → a local fleet
(gateway + brain processes, ``heqis up --local``) replaying the sample data. A run from an earlier
demo on the same data is reused, so a second ``make demo`` is quick; anything else in the demo
folder is rebuilt, and a fleet left by an earlier demo is stopped first.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
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
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    ok = manifest.get("status") in ("complete", "early_stopped") and \
        manifest.get("data", {}).get("content_hash") == content_hash
    return manifest if ok else None


def start_fleet(root: Path, brains: int = 2, rate: float = 40.0, start: str = "2024-07-01",
                base_port: int | None = None) -> dict[str, Any]:
    """The local fleet on the demo's artifacts (stopping one an earlier demo left running).

    Default ports as DESIGN.md §8 (brains 5555…, telemetry 5560, control 5561, WebSocket 8765); with
    ``base_port`` every port is taken from base_port … base_port + 2·brains + 2 instead."""
    from heqis.runtime.local_fleet import STATE_FILE, LocalFleetRequest, down_local, up_local

    if STATE_FILE.exists():
        down_local(STATE_FILE)
    ports = {} if base_port is None else {
        "base_port": base_port, "telemetry_port": base_port + 2 * brains, "control_port": base_port + 2 * brains + 1,
        "ws_port": base_port + 2 * brains + 2}
    return up_local(LocalFleetRequest(artifacts=root / "deploy_output", data_dir=root / "data", brains=brains,
                                      rate=rate, start=start, **ports))


def run_demo(root: Path, settings: Settings, progress: Callable[[str, int, int], None] | None = None,
             on_epoch: Callable[..., None] | None = None, log: Callable[[str], None] | None = None) -> DemoResult:
    from heqis.backtest.run import backtest_run
    from heqis.export.onnx_export import export_run
    from heqis.train.run import TrainRequest, run_train

    data = run_data(DataRequest(source="sample", data_dir=root / "data", bundled_watchlist=True), settings,
                    progress=progress)
    run_dir = root / "run"
    previous = _reusable(run_dir, data.content_hash)
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
    bt = backtest_run(run_dir, root / "data")
    exported = export_run(run_dir, out=root / "deploy_output", data_dir=root / "data")
    return DemoResult(data, train, bt.to_dict(), exported.to_dict(), previous is not None)

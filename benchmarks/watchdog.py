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
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from heqis import __version__
from heqis.features.quality import QUALITY_COLUMNS, quality_window
from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.bars import history_length
from heqis.runtime.gateway import Gateway, GatewayConfig
from heqis.runtime.ports import free_port_block
from heqis.runtime.protocol import encode
from heqis.runtime.replay_pack import store_arrays
from heqis.runtime.sources import Aligner, Bar, ReplaySource
from heqis.runtime.watchdog import Watchdog, quality_ohlcv
from heqis.runtime.watchdog_model import WatchdogModel

TARGET_MS = 0.3
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


# -- the bars -------------------------------------------------------------------------------------
class Replay:
    """The same bars every round: a fresh ReplaySource over the same arrays (a source is consumed by
    polling). Every replayed bar carries a full request history, as in a live gateway: the replay starts
    on the day that leaves the most bars after it among the symbols with a full history by then (a
    symbol listed later is left out rather than replayed with a short history)."""

    def __init__(self, data_dir: Path, window: int, bars: int) -> None:
        self.history = history_length(window)
        self.window = window
        arrays = store_arrays(data_dir)
        full = {s: int(a[0][self.history - 1]) for s, a in arrays.items() if len(a[0]) > self.history}
        if not full:
            raise SystemExit(f"{data_dir}: no symbol has more than {self.history} bars to replay after a full history")

        def after(start: int) -> int:
            return sum(int((arrays[s][0] >= start).sum()) for s, t in full.items() if t <= start)

        first = max(sorted(set(full.values())), key=after)
        self.arrays = {s: arrays[s] for s, t in full.items() if t <= first}
        self.start = np.datetime64(first, "ns").astype("datetime64[D]").astype(date)
        self.limit = bars

    def source(self) -> Aligner:
        """What ``heqis gateway`` builds for a replay (heqis.runtime.assembly.build_sources), at rate 0."""
        return Aligner([ReplaySource(self.arrays, self.history, self.start, limit=self.limit,
                                     min_bars=2 * self.window + 10)])

    def bars(self) -> list[Bar]:
        out = self.source().poll(self.limit)
        if len(out) < self.limit:
            raise SystemExit(f"only {len(out)} bars to replay from {self.start} (asked for {self.limit})")
        return out


# -- timing ---------------------------------------------------------------------------------------
def per_call_ms(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    t0 = time.perf_counter()
    for x in items:
        fn(x)
    return (time.perf_counter() - t0) / len(items) * 1e3


def split_ms(model: WatchdogModel, bars: list[Bar]) -> tuple[float, float]:
    """ms per window of the two halves of ``WatchdogModel.score``, timed apart in the same pass (so they
    add up to one call): building the window from the bar's history, and ONNX Runtime scoring it."""
    w = model.window
    build = score = 0.0
    for b in bars:
        t0 = time.perf_counter()
        x = quality_window(quality_ohlcv(b.history[-(w + 1):]), w)
        t1 = time.perf_counter()
        model.score_many(x)
        t2 = time.perf_counter()
        build += t1 - t0
        score += t2 - t1
    return build / len(bars) * 1e3, score / len(bars) * 1e3


def check_ms(watchdog: Watchdog, bars: list[Bar]) -> float:
    """ms per bar of ``Watchdog.check`` as ``_admit`` calls it; a fresh watchdog per round, or the second
    round's bars would all be duplicates of the first's."""
    return per_call_ms(lambda b: watchdog.check(b, b.history), bars)


def gateway_ms(gw: Gateway, replay: Replay, watchdog: Watchdog, sink: list | None = None) -> float:
    """ms per bar of the gateway's per-bar path over one fresh replay (see the module docstring);
    ``sink`` collects what would be sent, for the output check (None while timed)."""
    gw.watchdog = watchdog
    gw.source = replay.source()
    n = 0
    t0 = time.perf_counter()
    while True:
        bars = gw._poll_sources()
        if not bars:
            break
        for bar in bars:
            gw._admit(bar)
        while gw.ring:                                   # _dispatch's per-request work, short of the socket
            req = gw.ring.pop()
            frames = encode("window", req.seq, req.bar.symbol, req.bar.bar_time, req.payload,
                            sent_ns=time.monotonic_ns())
            if sink is not None:
                sink.append((req.bar.symbol, req.bar.bar_time, frames[1], req.suspect))
        n += len(bars)
    gw.store.flush()
    seconds = time.perf_counter() - t0
    if n != replay.limit or gw.counters["dropped"]:
        raise SystemExit(f"the gateway admitted {n} of {replay.limit} bars ({gw.counters['dropped']} dropped)")
    return seconds / n * 1e3


def check_outputs(model: WatchdogModel, bars: list[Bar], gw: Gateway, replay: Replay) -> dict[str, Any]:
    """Every compared pair agrees before anything is timed; what the watchdog flagged on these bars."""
    w = model.window
    built = np.concatenate([quality_window(quality_ohlcv(b.history[-(w + 1):]), w) for b in bars])
    scored = np.array([model.score_many(built[i:i + 1])[0] for i in range(len(bars))])
    whole = np.array([model.score(quality_ohlcv(b.history[-(w + 1):])) for b in bars], dtype=np.float32)
    if not np.array_equal(scored, whole):
        raise SystemExit("WatchdogModel.score differs from score_many of the built window")
    rules, full = Watchdog("warn"), Watchdog("warn", model)
    flagged = 0
    for b, s in zip(bars, whole, strict=True):
        r, f = rules.check(b, b.history), full.check(b, b.history)
        if tuple(x for x in f.reasons if x != "model") != r.reasons:
            raise SystemExit(f"{b.symbol} {b.bar_time}: the rules say {r.reasons} alone, {f.reasons} with the model")
        if "ohlc" not in r.reasons and f.score != float(s):
            raise SystemExit(f"{b.symbol} {b.bar_time}: the watchdog's score {f.score} is not the model's {s}")
        flagged += bool(f.reasons)
    off, on = [], []
    gateway_ms(gw, replay, Watchdog("off"), off)
    gateway_ms(gw, replay, Watchdog("warn", model), on)
    if len(off) != len(on) or any(a[:3] != b[:3] for a, b in zip(off, on, strict=True)):
        raise SystemExit("the gateway sent other requests with the watchdog on than off")
    return {"flagged": flagged, "flagged_by_reason": {k: v for k, v in full.by_reason.items() if v},
            "suspect_requests": sum(1 for x in on if x[3]), "requests_compared": len(on)}


def measure(artifacts: Path, data_dir: Path, n_bars: int, rounds: int) -> dict[str, Any]:
    import onnxruntime as ort

    aset = ArtifactSet.open(artifacts)
    model = WatchdogModel.open(aset)
    if model is None:
        raise SystemExit(f"{artifacts} has no watchdog.onnx: heqis train --watchdog -o RUN, then heqis export RUN")
    replay = Replay(data_dir, aset.max_window, n_bars)
    bars = replay.bars()
    w = model.window
    with tempfile.TemporaryDirectory(prefix="heqis-bench-watchdog-") as tmp:
        base = free_port_block(2)
        gw = Gateway(GatewayConfig([], db=Path(tmp) / "signals.sqlite", telemetry_port=base, control_port=base + 1,
                                   ws_port=0, artifacts_id=aset.set_id, routing=aset.routing()), replay.source())
        try:
            checks = check_outputs(model, bars, gw, replay)    # also the warm-up of every path
            sides: dict[str, Callable[[], float]] = {
                "gateway_off": lambda: gateway_ms(gw, replay, Watchdog("off")),
                "gateway_rules": lambda: gateway_ms(gw, replay, Watchdog("warn")),
                "gateway_model": lambda: gateway_ms(gw, replay, Watchdog("warn", model)),
                "model": lambda: per_call_ms(lambda b: model.score(quality_ohlcv(b.history[-(w + 1):])), bars),
                "rules": lambda: check_ms(Watchdog("warn"), bars),
                "check": lambda: check_ms(Watchdog("warn", model), bars),
            }
            best = {k: np.inf for k in sides}
            split = (np.inf, np.inf)
            for _ in range(rounds):       # interleaved: every side in every round, the best round counts
                for k, fn in sides.items():
                    best[k] = min(best[k], fn())
                split = min(split, split_ms(model, bars), key=sum)
        finally:
            gw.close()
    gw_model, gw_off, gw_rules = best["gateway_model"], best["gateway_off"], best["gateway_rules"]
    return {"artifacts": str(artifacts), "data_dir": str(data_dir), "set_id": aset.set_id, "bars": n_bars,
            "symbols": len(replay.arrays), "bars_per_request": replay.history, "window": w, "rounds": rounds,
            "threads": 1, "batch": 1, "onnxruntime": ort.__version__, "cpus": os.cpu_count(),
            "model_build_ms": split[0], "model_score_ms": split[1], "model_ms": best["model"],
            "rules_ms": best["rules"], "check_ms": best["check"],
            "gateway_off_ms": gw_off, "gateway_rules_ms": gw_rules, "gateway_model_ms": gw_model,
            "watchdog_on_path_ms": gw_model - gw_off, "share_on_path": (gw_model - gw_off) / gw_model,
            "rules_share_on_path": (gw_rules - gw_off) / gw_rules, "share_components": best["check"] / gw_model,
            "target_ms": TARGET_MS, "target_met": best["model"] <= TARGET_MS, **checks}


def render(r: dict[str, Any]) -> str:
    verdict = "met" if r["target_met"] else "MISSED"
    return "\n".join([
        f"gateway watchdog, {r['bars']} replayed bars of {r['symbols']} symbols ({r['bars_per_request']} bars per "
        f"request, model window {r['window']}), best of {r['rounds']} interleaved rounds; ONNX Runtime "
        f"{r['onnxruntime']}, 1 thread, batch 1, {r['cpus']} CPUs",
        f"  outputs checked: score = score_many(window) on every bar, same rules with and without the model, "
        f"same {r['requests_compared']} requests off and on ({r['flagged']} bars flagged, {r['suspect_requests']} "
        f"requests marked suspect)",
        f"  model per window   {r['model_ms']:.3f} ms  (window building {r['model_build_ms']:.3f} ms + "
        f"ONNX Runtime scoring {r['model_score_ms']:.3f} ms) → target ≤ {r['target_ms']} ms {verdict}",
        f"  rules per bar      {r['rules_ms']:.3f} ms  (Watchdog.check, no model); rules + model "
        f"{r['check_ms']:.3f} ms",
        f"  gateway per bar    off {r['gateway_off_ms']:.3f} ms · warn, rules only {r['gateway_rules_ms']:.3f} ms · "
        f"warn + model {r['gateway_model_ms']:.3f} ms  (poll → _admit → ring → encode; no socket send)",
        f"  watchdog's share of the gateway's per-bar time: {r['share_on_path']:.0%} on the path "
        f"({r['watchdog_on_path_ms']:.3f} ms of {r['gateway_model_ms']:.3f} ms), {r['share_components']:.0%} from "
        f"the components; rules alone {r['rules_share_on_path']:.0%}",
    ])


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
    result = {**measure(args.artifacts, args.data_dir, args.bars, args.rounds), "artifacts_built": built}
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``heqis bench watchdog``: the gateway's data watchdog per bar, on the code the gateway runs.

The model's cost per window (ONNX Runtime, 1 thread, batch 1, as ``WatchdogModel.open`` makes the
session) split into window building and scoring, the rules' cost per bar (``Watchdog.check`` without a
model), and the watchdog's share of the gateway's per-bar path: a real ``Gateway`` (no brains; its
sockets on free loopback ports, its SQLite store in a temporary folder) polls a fresh replay of the
same bars each round through its own ``_poll_sources`` and ``_admit``, then does per request what
``_dispatch`` does short of the socket (ring pop, ``encode``). Sides: policy ``off`` (the baseline),
``warn`` with rules only, ``warn`` with the model, interleaved round by round, best round kept. Before
anything is timed the outputs are checked equal (scores, rules with and without the model, the
requests sent with the watchdog off and on). ``benchmarks/watchdog.py`` runs the same measurement on a
cached synthetic artifact set it builds itself. Target: ≤ ``TARGET_MS`` per window — the watchdog runs
inline on the gateway's one loop thread, so its cost is added to every bar's latency.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from heqis.errors import HeqisError
from heqis.features.quality import quality_window
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
            raise HeqisError(f"{data_dir}: no symbol has more than {self.history} bars to replay after a full history")

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
            raise HeqisError(f"only {len(out)} bars to replay from {self.start} (asked for {self.limit})")
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
        raise HeqisError(f"the gateway admitted {n} of {replay.limit} bars ({gw.counters['dropped']} dropped)")
    return seconds / n * 1e3


def check_outputs(model: WatchdogModel, bars: list[Bar], gw: Gateway, replay: Replay) -> dict[str, Any]:
    """Every compared pair agrees before anything is timed; what the watchdog flagged on these bars."""
    w = model.window
    built = np.concatenate([quality_window(quality_ohlcv(b.history[-(w + 1):]), w) for b in bars])
    scored = np.array([model.score_many(built[i:i + 1])[0] for i in range(len(bars))])
    whole = np.array([model.score(quality_ohlcv(b.history[-(w + 1):])) for b in bars], dtype=np.float32)
    if not np.array_equal(scored, whole):
        raise HeqisError("WatchdogModel.score differs from score_many of the built window")
    rules, full = Watchdog("warn"), Watchdog("warn", model)
    flagged = 0
    for b, s in zip(bars, whole, strict=True):
        r, f = rules.check(b, b.history), full.check(b, b.history)
        if tuple(x for x in f.reasons if x != "model") != r.reasons:
            raise HeqisError(f"{b.symbol} {b.bar_time}: the rules say {r.reasons} alone, {f.reasons} with the model")
        if "ohlc" not in r.reasons and f.score != float(s):
            raise HeqisError(f"{b.symbol} {b.bar_time}: the watchdog's score {f.score} is not the model's {s}")
        flagged += bool(f.reasons)
    off, on = [], []
    gateway_ms(gw, replay, Watchdog("off"), off)
    gateway_ms(gw, replay, Watchdog("warn", model), on)
    if len(off) != len(on) or any(a[:3] != b[:3] for a, b in zip(off, on, strict=True)):
        raise HeqisError("the gateway sent other requests with the watchdog on than off")
    return {"flagged": flagged, "flagged_by_reason": {k: v for k, v in full.by_reason.items() if v},
            "suspect_requests": sum(1 for x in on if x[3]), "requests_compared": len(on)}


def measure(artifacts: Path, data_dir: Path, n_bars: int, rounds: int) -> dict[str, Any]:
    import onnxruntime as ort

    aset = ArtifactSet.open(artifacts)
    model = WatchdogModel.open(aset)
    if model is None:
        raise HeqisError(f"{artifacts} has no watchdog.onnx",
                         hint="heqis train --watchdog -o RUN, then heqis export RUN")
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

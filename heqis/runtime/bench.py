"""``heqis bench runtime``: the gateway and real brain processes on loopback, against raw pyzmq.

1. Latency: the real ``Gateway`` replays stored bars at a fixed rate to one brain; latency is
   measured on the gateway's clock (send → signal received), as in production.
2. Baseline: a raw pyzmq PUSH/PULL ping-pong of the same payload size, interleaved with 1: the
   measurement runs in rounds — a replay segment, then a ping-pong batch — against the same brain
   process, so both see the same machine load; the percentiles pool every round's samples.
3. Throughput: the same replay as fast as the brains take it (back-pressure, zero loss by
   construction — checked: every bar has its stored signal), for 1, 2, 4 … brains.

The overhead ratio is the end-to-end p50 over (ping-pong p50 + the brain's own preprocess and
inference p50): what the runtime adds on top of the network and the model.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from heqis.errors import HeqisError
from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.bars import REQUEST_COLUMNS, history_length
from heqis.runtime.gateway import BrainTarget, Gateway, GatewayConfig
from heqis.runtime.ports import free_port_block
from heqis.runtime.protocol import decode, encode
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import Aligner, ReplaySource


def pingpong_samples(payload_bytes: int, calls: int = 2000) -> tuple[int, np.ndarray]:
    """Round trips (µs) of [header, payload] through a PULL→PUSH echo thread (the brain's socket
    pattern), and the bytes each carries."""
    base = free_port_block(2)
    ctx = zmq.Context.instance()
    stop = threading.Event()

    def echo() -> None:
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        pull.bind(f"tcp://127.0.0.1:{base}")
        push.bind(f"tcp://127.0.0.1:{base + 1}")
        while not stop.is_set():
            if pull.poll(50):
                push.send_multipart(pull.recv_multipart())
        pull.close(0)
        push.close(0)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    push.connect(f"tcp://127.0.0.1:{base}")
    pull.connect(f"tcp://127.0.0.1:{base + 1}")
    frames = encode("window", 1, "X", 0, np.zeros(payload_bytes // 4, np.float32))
    for _ in range(100):
        push.send_multipart(frames)
        pull.recv_multipart()
    lat = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter_ns()
        push.send_multipart(frames)
        decode(pull.recv_multipart())
        lat[i] = (time.perf_counter_ns() - t0) / 1e3
    stop.set()
    thread.join(2)
    push.close(0)
    pull.close(0)
    return sum(len(f) for f in frames), lat


def pingpong(payload_bytes: int, calls: int = 2000) -> dict[str, float]:
    """p50/p99 of ``pingpong_samples``."""
    size, lat = pingpong_samples(payload_bytes, calls)
    return {"bytes": size, "p50_us": float(np.percentile(lat, 50)), "p99_us": float(np.percentile(lat, 99))}


class Brains:
    """N brain processes on consecutive port pairs; closed on exit."""

    def __init__(self, artifacts: Path, count: int, base: int) -> None:
        self.procs = [subprocess.Popen([sys.executable, "-m", "heqis", "brain", "--port", str(base + 2 * i),
                                        "--artifacts", str(artifacts), "--name", f"brain-{i + 1}", "--threads", "1"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for i in range(count)]
        self.targets = [BrainTarget(f"brain-{i + 1}", "127.0.0.1", base + 2 * i) for i in range(count)]

    def __enter__(self) -> Brains:
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def _replay(fleet: Brains, arrays: dict, window: int, rate: float, limit: int | None,
            warmup_s: float = 60.0) -> tuple[Gateway, float, int]:
    """One gateway replaying ``limit`` windows (all when None) at ``rate`` (0: as fast as taken) to
    the running ``fleet``; returns it, the seconds the replay took and the signals stored (negative
    when some bar has no signal)."""
    base = free_port_block(2)
    with tempfile.TemporaryDirectory() as tmp:
        src = ReplaySource(arrays, history_length(window), rate=rate, limit=limit, min_bars=2 * window + 10)
        cfg = GatewayConfig(fleet.targets, Path(tmp) / "bench.sqlite", telemetry_port=base, control_port=base + 1,
                            ws_port=0, exit_when_done=True, ring=8192, max_in_flight=64)
        gw = Gateway(cfg, Aligner([src]))
        if not gw.wait_ready(warmup_s):      # the clock starts once every brain answers
            gw.close()
            raise HeqisError("the benchmark's brains did not start", hint="try: heqis brain --artifacts ...")
        src.t0 = time.monotonic()
        t0 = time.monotonic()
        gw.run()
        elapsed = time.monotonic() - t0
        stored = SignalStore(cfg.db).count()
    return gw, elapsed, stored if stored == src.total else -stored


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def bench_runtime(artifacts: Path, data_dir: Path, rate: float = 1000.0, seconds: float = 5.0,
                  brain_counts: list[int] | None = None, rounds: int = 5) -> dict[str, Any]:
    from heqis.runtime.replay_pack import store_arrays

    window = ArtifactSet.open(artifacts).max_window
    payload = history_length(window) * len(REQUEST_COLUMNS) * 4
    arrays = store_arrays(data_dir)
    rounds = max(1, rounds)
    per_round = max(1, int(rate * seconds / rounds))
    e2e: list[float] = []
    parts: dict[str, list[float]] = {}
    pp: list[float] = []
    sent = received = 0
    stored_ok = True
    elapsed = 0.0
    by_round = []
    size = 0
    with Brains(artifacts, 1, free_port_block(2)) as fleet:
        for _ in range(rounds):               # interleaved: a replay segment, then the baseline
            gw, el, stored = _replay(fleet, arrays, window, rate, per_round)
            values = list(gw.latency.values)
            e2e += values
            for k, d in gw.latency.parts.items():
                parts.setdefault(k, []).extend(d)
            sent += gw.counters["sent"]
            received += gw.counters["signals"]
            stored_ok = stored_ok and stored > 0
            elapsed += el
            size, lat = pingpong_samples(payload, max(200, per_round))
            pp += lat.tolist()
            by_round.append({"p50_us": _pct(values, 50), "pingpong_p50_us": _pct(pp[-len(lat):], 50)})
    parts_p50 = {k: round(float(np.median(v)), 1) for k, v in parts.items() if v}
    latency = {"rate": rate, "seconds": round(elapsed, 2), "sent": sent, "received": received,
               "stored": received if stored_ok else -received, "p50_us": _pct(e2e, 50), "p99_us": _pct(e2e, 99),
               "max_us": round(max(e2e), 1) if e2e else None, "parts_p50_us": parts_p50}
    pingpong_stats = {"bytes": size, "p50_us": float(np.percentile(pp, 50)), "p99_us": float(np.percentile(pp, 99))}
    brain_us = parts_p50.get("pre_us", 0.0) + parts_p50.get("inf_us", 0.0)
    rows = []
    for n in brain_counts or [1]:
        with Brains(artifacts, n, free_port_block(2 * n)) as fleet:
            gw_n, el, st = _replay(fleet, arrays, window, 0.0, None)
        rows.append({"brains": n, "windows": gw_n.counters["signals"], "seconds": round(el, 2),
                     "windows_per_s": gw_n.counters["signals"] / el, "zero_loss": st > 0,
                     "dropped": gw_n.ring.dropped})
    return {"latency": latency, "pingpong": pingpong_stats, "brain_p50_us": brain_us,
            "overhead_ratio": (latency["p50_us"] or 0.0) / (pingpong_stats["p50_us"] + brain_us),
            "goal": "overhead_ratio <= 1.5", "rounds": rounds, "interleaved": True, "by_round": by_round,
            "throughput": rows, "payload_bytes": payload}

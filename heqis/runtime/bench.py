"""``heqis bench runtime``: the gateway and real brain processes on loopback, against raw pyzmq.

1. Latency: the real ``Gateway`` replays stored bars at a fixed rate to one brain; latency is
   measured on the gateway's clock (send → signal received), as in production.
2. Throughput: the same replay as fast as the brains take it (back-pressure, zero loss by
   construction — checked: every bar has its stored signal), for 1, 2, 4 … brains.
3. Baseline: a raw pyzmq PUSH/PULL ping-pong of the same payload size, in the same run.

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


def pingpong(payload_bytes: int, calls: int = 2000) -> dict[str, float]:
    """Round trips of [header, payload] through a PULL→PUSH echo thread (the brain's socket pattern)."""
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
    return {"bytes": sum(len(f) for f in frames), "p50_us": float(np.percentile(lat, 50)),
            "p99_us": float(np.percentile(lat, 99))}


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


def _replay(artifacts: Path, data_dir: Path, brains: int, rate: float, limit: int | None,
            warmup_s: float = 60.0) -> tuple[Gateway, float, int]:
    from heqis.runtime.replay_pack import store_arrays

    window = ArtifactSet.open(artifacts).max_window
    arrays = store_arrays(data_dir)
    base = free_port_block(2 * brains + 4)
    with tempfile.TemporaryDirectory() as tmp, Brains(artifacts, brains, base + 4) as fleet:
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


def bench_runtime(artifacts: Path, data_dir: Path, rate: float = 1000.0, seconds: float = 5.0,
                  brain_counts: list[int] | None = None) -> dict[str, Any]:
    window = ArtifactSet.open(artifacts).max_window
    payload = history_length(window) * len(REQUEST_COLUMNS) * 4
    gw, elapsed, stored = _replay(artifacts, data_dir, 1, rate, int(rate * seconds))
    lat = gw.latency.snapshot()
    parts = lat["parts_p50_us"]
    latency = {"rate": rate, "seconds": round(elapsed, 2), "sent": gw.counters["sent"],
               "received": gw.counters["signals"], "stored": stored, "p50_us": lat["p50_us"], "p99_us": lat["p99_us"],
               "max_us": lat["max_us"], "parts_p50_us": parts}
    pp = pingpong(payload)
    brain_us = parts.get("pre_us", 0.0) + parts.get("inf_us", 0.0)
    rows = []
    for n in brain_counts or [1]:
        gw_n, el, st = _replay(artifacts, data_dir, n, 0.0, None)
        rows.append({"brains": n, "windows": gw_n.counters["signals"], "seconds": round(el, 2),
                     "windows_per_s": gw_n.counters["signals"] / el, "zero_loss": st > 0,
                     "dropped": gw_n.ring.dropped})
    return {"latency": latency, "pingpong": pp, "brain_p50_us": brain_us,
            "overhead_ratio": (lat["p50_us"] or 0.0) / (pp["p50_us"] + brain_us), "throughput": rows,
            "payload_bytes": payload}

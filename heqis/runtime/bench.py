"""``heqis bench runtime``: the gateway and real brain processes on loopback, against raw pyzmq.

1. Latency: the real ``Gateway`` replays stored bars at a fixed rate to one brain; latency is
   measured on the gateway's clock (send → signal received), as in production.
2. Baseline: a raw pyzmq PUSH/PULL ping-pong of the same payload size between this process and an
   echo process of its own (the brain's topology: two processes, the brain's sockets and loop), sent
   at the same fixed rate as the replay, interleaved with 1: the measurement runs in rounds — a replay
   segment, then a ping-pong batch — so both see the same machine load; the percentiles pool every
   round's samples. The same ping-pong back to back (each message sent as the last returns, so no
   process sleeps in between) is reported beside it: at 1,000 a second each side sleeps between
   messages, and waking costs each leg tens of µs that a back-to-back loop never pays.
3. Throughput: the same replay as fast as the brains take it (back-pressure, zero loss by
   construction — checked: every bar has its stored signal), for 1, 2, 4 … brains.

The overhead ratio is the end-to-end p50 over (ping-pong p50 + the brain's own preprocess and
inference p50): what the runtime adds on top of the network and the model.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from heqis.errors import HeqisError
from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.bars import REQUEST_COLUMNS, history_length
from heqis.runtime.gateway import BrainTarget, Gateway, GatewayConfig
from heqis.runtime.heap import settle
from heqis.runtime.ports import free_port_block
from heqis.runtime.protocol import decode, encode
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import Aligner, ReplaySource

# The baseline's far end: a process of its own, with the brain's sockets (PULL bound on P, PUSH on P+1) and a
# blocking receive, as the brain's, that answers every message with the same prepared reply at once (plain
# pyzmq: no decode, no work). Its first message is that reply.
ECHO = """
import sys, zmq
base = int(sys.argv[1])
ctx = zmq.Context()
pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
pull.bind(f"tcp://127.0.0.1:{base}")
push.bind(f"tcp://127.0.0.1:{base + 1}")
reply = pull.recv_multipart()
while pull.recv_multipart() != [b"stop"]:
    push.send_multipart(reply)
"""


def signal_like(artifacts_id: str = "0" * 64) -> list[bytes]:
    """A reply of the brain's size and shape: a signal with its five numbers and every field the brain sends."""
    extra = {"model": "G1", "mode": "cls", "action": 1, "brain": "brain-1", "artifacts": artifacts_id,
             "inc": "0" * 16, "queue_us": 10.0, "pre_us": 40.0, "inf_us": 80.0}
    return encode("signal", 1, "600000.SH", 0, np.array([0.001, 0.2, 0.3, 0.5, 1.0], np.float32), extra)


class EchoPeer:
    """The raw pyzmq ping-pong's far end (``ECHO``) in its own process, and the near end's sockets here:
    window-sized requests out, signal-sized replies back, as between a gateway and a brain."""

    def __init__(self, reply: list[bytes]) -> None:
        base = free_port_block(2)
        self.proc = subprocess.Popen([sys.executable, "-c", ECHO, str(base)])
        ctx = zmq.Context.instance()
        self.push, self.pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        self.push.connect(f"tcp://127.0.0.1:{base}")
        self.pull.connect(f"tcp://127.0.0.1:{base + 1}")
        self.pull.setsockopt(zmq.RCVTIMEO, 30_000)    # an echo that never started fails the bench, not hangs it
        self.push.send_multipart(reply)

    def _reply(self) -> list[bytes]:
        try:
            return self.pull.recv_multipart()
        except zmq.Again:
            raise HeqisError("the ping-pong's echo process did not answer in 30 s",
                             hint=f"check that '{sys.executable} -c \"import zmq\"' works") from None

    def __enter__(self) -> EchoPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.push.send_multipart([b"stop"])
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.push.close(0)
        self.pull.close(0)

    def samples(self, payload_bytes: int, calls: int, rate: float) -> tuple[int, np.ndarray]:
        """Round trips (µs) of a window-sized [header, payload] — sent at ``rate`` a second as the replay
        sends (0: back to back), its reply received and decoded here as the gateway does — and the bytes
        each request carries."""
        frames = encode("window", 1, "X", 0, np.zeros(payload_bytes // 4, np.float32))
        for _ in range(50):                  # connected and warm
            self.push.send_multipart(frames)
            self._reply()
        lat = np.empty(calls)
        t0 = time.perf_counter()
        for i in range(calls):
            if rate > 0 and (wait := t0 + i / rate - time.perf_counter()) > 0:
                time.sleep(wait)
            start = time.perf_counter_ns()
            self.push.send_multipart(frames)
            decode(self._reply())
            lat[i] = (time.perf_counter_ns() - start) / 1e3
        return sum(len(f) for f in frames), lat


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

    artifact_set = ArtifactSet.open(artifacts)
    window = artifact_set.max_window
    payload = history_length(window) * len(REQUEST_COLUMNS) * 4
    arrays = store_arrays(data_dir)
    rounds = max(1, rounds)
    per_round = max(1, int(rate * seconds / rounds))
    e2e: list[float] = []
    parts: dict[str, list[float]] = {}
    pp: list[float] = []
    pp_hot: list[float] = []
    sent = received = 0
    stored_ok = True
    elapsed = 0.0
    by_round = []
    size = 0
    settle()                                  # this process is the gateway: as run_gateway does
    with Brains(artifacts, 1, free_port_block(2)) as fleet, EchoPeer(signal_like(artifact_set.set_id)) as peer:
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
            size, lat = peer.samples(payload, max(200, per_round), rate)
            pp += lat.tolist()
            pp_hot += peer.samples(payload, max(200, per_round), 0.0)[1].tolist()
            by_round.append({"p50_us": _pct(values, 50), "pingpong_p50_us": _pct(pp[-len(lat):], 50)})
    parts_p50 = {k: round(float(np.median(v)), 1) for k, v in parts.items() if v}
    latency = {"rate": rate, "seconds": round(elapsed, 2), "sent": sent, "received": received,
               "stored": received if stored_ok else -received, "p50_us": _pct(e2e, 50), "p99_us": _pct(e2e, 99),
               "max_us": round(max(e2e), 1) if e2e else None, "parts_p50_us": parts_p50}
    pingpong_stats = {"bytes": size, "rate": rate, "p50_us": _pct(pp, 50), "p99_us": _pct(pp, 99),
                      "back_to_back_p50_us": _pct(pp_hot, 50)}
    brain_us = parts_p50.get("pre_us", 0.0) + parts_p50.get("inf_us", 0.0)
    rows = []
    for n in brain_counts or [1]:
        with Brains(artifacts, n, free_port_block(2 * n)) as fleet:
            gw_n, el, st = _replay(fleet, arrays, window, 0.0, None)
        rows.append({"brains": n, "windows": gw_n.counters["signals"], "seconds": round(el, 2),
                     "windows_per_s": gw_n.counters["signals"] / el, "zero_loss": st > 0,
                     "dropped": gw_n.ring.dropped})
    return {"latency": latency, "pingpong": pingpong_stats, "brain_p50_us": brain_us,
            "overhead_ratio": (latency["p50_us"] or 0.0) / ((pingpong_stats["p50_us"] or 0.0) + brain_us),
            "overhead_ratio_back_to_back": (latency["p50_us"] or 0.0) / ((pingpong_stats["back_to_back_p50_us"] or 0.0)
                                                                         + brain_us),
            "goal": "overhead_ratio <= 1.5", "rounds": rounds, "interleaved": True, "by_round": by_round,
            "throughput": rows, "payload_bytes": payload}

"""The brain (Jetson role): PULL windows, features + scaler + inference, PUSH signals back.

Sockets (docs/architecture.md, "Wire protocol"): the brain *binds* PULL on ``port`` (windows,
heartbeats, control in) and PUSH on ``port + 1`` (signals and heartbeat replies out); the gateway
connects to both. Stateless: every request carries the raw bars it needs, so a restarted brain
answers at once. Each loop turn drains what is waiting, groups the windows by the generator
``routing.json`` assigns their symbol, turns each into model input with that generator's window and
scaler (``brain_input``: the same ``model_inputs`` research uses), and runs each group as one batch;
every signal reports its own queue, preprocess and inference time (the brain's clock), and echoes
the gateway's send stamp so latency is measured on one clock. An artifact set made with other
feature code than this brain's is refused at start.

Each process draws a random *incarnation* id, sent in every heartbeat and reply: the gateway sees a
restart at the first message of the new process and sends again what the old one never answered.
Inbound messages are bounded (ZMQ_MAXMSGSIZE: a few times the largest window this artifact set
needs; a high-water mark), so a peer cannot make the brain buffer gigabytes; with keys, only the
gateway's key may connect (the ``brain`` allow-list), so only the gateway can send ``stop``.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from heqis import __version__
from heqis.actions import signal_rows
from heqis.backends import get_predictor
from heqis.features.fingerprint import feature_fingerprint, require_features
from heqis.features.transform import Scaler
from heqis.formats.artifacts import ArtifactSet, route_for
from heqis.runtime.bars import REQUEST_COLUMNS, brain_input, history_length
from heqis.runtime.heap import settle
from heqis.runtime.protocol import MAX_HEADER, Decoder, Message, encode
from heqis.runtime.security import KeyConfig, server_socket_security

log = logging.getLogger(__name__)
MAX_DRAIN = 256
RCVHWM = 1024                     # requests buffered at most (the gateway keeps ≤ max_in_flight in flight)


@dataclass
class BrainConfig:
    port: int = 5555
    artifacts: Path = Path("deploy_output")
    backend: str = "onnxruntime"
    bind: str = "127.0.0.1"
    name: str = "brain"
    keys: KeyConfig | None = None
    threads: int | None = None


class Brain:
    def __init__(self, cfg: BrainConfig) -> None:
        self.cfg = cfg
        self.artifacts = ArtifactSet.open(cfg.artifacts)
        require_features(self.artifacts.features, f"the artifact set {cfg.artifacts}",
                         hint=f"export it again with this heqis: heqis export RUN_DIR --out {cfg.artifacts}")
        self.scalers = {gid: Scaler.load(self.artifacts.path(gid, "scaler")) for gid in self.artifacts.generators}
        self.routing = self.artifacts.routing()
        options: dict[str, Any] = {"threads": cfg.threads} if cfg.backend in ("onnxruntime", "torch") and \
            cfg.threads else {}
        self.predictors = {gid: get_predictor(cfg.backend, cfg.artifacts, gid, **options)
                           for gid in self.artifacts.generators}
        self.artifacts_id = self.artifacts.set_id
        self.incarnation = secrets.token_hex(8)
        self.counters = {"windows": 0, "signals": 0, "heartbeats": 0, "bad_windows": 0, "malformed": 0,
                         "batches": 0}
        self.last_gateway_hb = 0.0
        self.decoder = Decoder(f"brain {cfg.name}")
        self.ctx = zmq.Context.instance()
        self.pull = self.ctx.socket(zmq.PULL)
        self.push = self.ctx.socket(zmq.PUSH)
        for sock in (self.pull, self.push):
            sock.setsockopt(zmq.LINGER, 0)
            server_socket_security(sock, cfg.keys, self.ctx, "brain")
        # the largest legal request: the longest history any generator needs, 4× for slack, as float32
        rows = max(history_length(self.scalers[g].window) for g in self.scalers) if self.scalers else 1024
        self.max_message = max(MAX_HEADER, 4 * rows * len(REQUEST_COLUMNS) * 4)
        self.pull.setsockopt(zmq.MAXMSGSIZE, self.max_message)
        self.pull.setsockopt(zmq.RCVHWM, RCVHWM)
        self.pull.bind(f"tcp://{cfg.bind}:{cfg.port}")
        self.push.bind(f"tcp://{cfg.bind}:{cfg.port + 1}")
        self.running = True
        self._warm_up()

    def _warm_up(self) -> None:
        """Compile the feature and reply code and initialise every model before the first real request."""
        for gid, p in self.predictors.items():
            scaler = self.scalers[gid]
            reg, cls = p.predict(np.zeros((1, scaler.window, len(scaler.inputs)), np.float32))
            signal_rows(reg[:, 0], cls, ["cls"], [0.0])
            brain_input(np.ones((history_length(scaler.window), len(REQUEST_COLUMNS)), np.float32), scaler)

    def route(self, symbol: str) -> dict[str, Any]:
        return route_for(self.routing, symbol)

    def status(self) -> dict[str, Any]:
        return {"name": self.cfg.name, "pid": os.getpid(), "version": __version__, "backend": self.cfg.backend,
                "artifacts_sha256": self.artifacts_id, "artifacts": self.artifacts_id,
                "features": feature_fingerprint()["id"], "counters": dict(self.counters),
                "incarnation": self.incarnation,
                "rejected": dict(self.decoder.rejected)}

    # ------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.pull.setsockopt(zmq.RCVTIMEO, 100)       # the first receive of a turn waits ≤ 100 ms
        while self.running:
            batch: list[tuple[Message, int]] = []
            # one blocking receive (it returns the message as it wakes: no poll first), then drain what else
            # is waiting; the EVENTS check ends the drain without raising zmq.Again each turn
            for i in range(MAX_DRAIN):
                if i and not self.pull.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    break
                try:
                    frames = self.pull.recv_multipart(0 if i == 0 else zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    break
                msg = self.decoder(frames)
                if msg is None:
                    self.counters["malformed"] += 1
                    continue
                arrived = time.monotonic_ns()
                if msg.kind == "window":
                    batch.append((msg, arrived))
                elif msg.kind == "heartbeat":
                    self.counters["heartbeats"] += 1
                    self.last_gateway_hb = time.monotonic()
                    self.push.send_multipart(encode("heartbeat", msg.seq, extra=self.status(), sent_ns=msg.sent_ns))
                elif msg.kind == "control" and msg.extra.get("cmd") == "stop":
                    self.running = False
            if batch:
                self._answer(batch)
        self.close()

    def _answer(self, batch: list[tuple[Message, int]]) -> None:
        groups: dict[str, list[tuple[Message, int, np.ndarray, dict[str, Any]]]] = {}
        t_pre = time.monotonic_ns()
        for msg, arrived in batch:
            self.counters["windows"] += 1
            route = self.route(msg.symbol)
            gid = route["generator"]
            x = brain_input(msg.data, self.scalers[gid]) if msg.data is not None and gid in self.scalers else None
            if x is None:
                self.counters["bad_windows"] += 1
                self.push.send_multipart(encode("signal", msg.seq, msg.symbol, msg.bar_time, None,
                                                {"error": "window has too few bars or invalid values",
                                                 "brain": self.cfg.name, "inc": self.incarnation},
                                                sent_ns=msg.sent_ns))
                continue
            groups.setdefault(gid, []).append((msg, arrived, x, route))
        pre_us = round((time.monotonic_ns() - t_pre) / 1e3 / max(1, len(batch)), 1)
        for gid, items in groups.items():
            t_inf = time.monotonic_ns()
            reg, cls = self.predictors[gid].predict(np.stack([x for _, _, x, _ in items]))
            inf_us = round((time.monotonic_ns() - t_inf) / 1e3 / len(items), 1)
            # the group's replies in one call: [n, 5] float32 rows of reg, p_down, p_flat, p_up, action
            payloads = signal_rows(reg[:, 0], cls, [r["mode"] for *_, r in items], [r["threshold"] for *_, r in items])
            self.counters["batches"] += 1
            for i, (msg, arrived, _, route) in enumerate(items):
                extra = {"model": gid, "mode": route["mode"], "action": int(payloads[i, 4]), "brain": self.cfg.name,
                         "artifacts": self.artifacts_id, "inc": self.incarnation,
                         "queue_us": round((t_pre - arrived) / 1e3, 1), "pre_us": pre_us, "inf_us": inf_us}
                self.push.send_multipart(encode("signal", msg.seq, msg.symbol, msg.bar_time, payloads[i], extra,
                                                sent_ns=msg.sent_ns))
                self.counters["signals"] += 1

    def stop(self, *_: Any) -> None:
        self.running = False

    def close(self) -> None:
        for sock in (self.pull, self.push):
            sock.close(linger=0)


def run_brain(cfg: BrainConfig) -> None:
    """Run until SIGTERM / SIGINT / a stop command (the ``heqis brain`` process)."""
    brain = Brain(cfg)
    settle()
    signal.signal(signal.SIGTERM, brain.stop)
    signal.signal(signal.SIGINT, brain.stop)
    log.info("brain %s ready on tcp://%s:%d (+1), backend %s, %d models, artifacts %s", cfg.name, cfg.bind,
             cfg.port, cfg.backend, len(brain.predictors), brain.artifacts_id)
    brain.run()

"""The gateway (RK3568 role): sources → ring buffer → brains, and signals → SQLite → telemetry.

One thread runs the loop below; a second serves WebSocket clients. Per brain the gateway connects
one PUSH (requests) and one PULL (replies), so it can address each brain on its own:

* dispatch: least-in-flight over the live brains, at most ``max_in_flight`` each;
* heartbeats: one per brain per second; a brain that has never answered is reported as *silent*
  after ``dead_after`` heartbeats, with the likely cause its sockets' monitor events point at
  (nothing listening, a CURVE handshake failing because keys are on one side only, …); a brain
  that answered and then falls silent for ``dead_after`` heartbeats is declared dead, its
  unacknowledged requests go back to the head of the ring buffer (so other brains answer them),
  and its reset action runs — restart the local process, or a fleet command such as an SSH reboot
  or a GPIO power cycle — with exponential back-off so a broken brain is not reset in a loop;
* replies: a signal completes its request; a late or repeated reply finds no request and is counted
  as a duplicate; every signal is written with INSERT OR IGNORE on (symbol, bar time, model,
  artifact set);
* telemetry: JSON on the PUB socket (and WebSocket) a few times a second, and one document per signal;
* control: a REP socket answers the console (status, telemetry, the last stored signals, a symbol's
  recent bars, reset a brain, pause, resume).

Requests are built from each source's history by ``request_window`` (heqis.runtime.bars): the same
bar schema and adjustment as the data store, for replayed and live bars alike.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from heqis import __version__
from heqis.runtime.bars import raw_ohlc, request_window
from heqis.runtime.link_monitor import LinkMonitor, likely_cause
from heqis.runtime.protocol import Decoder, encode
from heqis.runtime.ringbuffer import RingBuffer
from heqis.runtime.security import KeyConfig, client_socket_security, server_socket_security
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import Aligner, Bar
from heqis.runtime.telemetry import LatencyWindow, WebSocketFeed

log = logging.getLogger(__name__)


@dataclass
class BrainTarget:
    name: str
    host: str
    port: int
    reset: str | None = None     # "local" (restart from the fleet state file), a shell command, or None


@dataclass
class GatewayConfig:
    targets: list[BrainTarget]
    db: Path = Path(".heqis/signals.sqlite")
    fleet: str = "local"
    bind: str = "127.0.0.1"
    telemetry_port: int = 5560
    control_port: int = 5561
    ws_port: int = 8765          # 0: no WebSocket
    ring: int = 4096
    max_in_flight: int = 64
    heartbeat_s: float = 1.0
    dead_after: int = 3
    startup_grace_s: float = 30.0
    telemetry_hz: float = 4.0
    keys: KeyConfig | None = None
    exit_when_done: bool = False
    state_file: Path | None = None
    artifacts_id: str = ""       # the artifact set the gateway's brains should run (stored with each signal)
    routing: dict[str, Any] | None = None   # the artifact set's routing.json: which model answers which symbol
    ws_bind: str = "127.0.0.1"   # the WebSocket's address: loopback unless asked (it serves signals and status)
    ws_token: str | None = None  # with keys: the token a WebSocket client must present (heqis keys writes it)
    request_deadline_s: float = 5.0   # a request unanswered this long is sent again (to another brain if any)
    max_attempts: int = 3        # sends of one bar before it is stored as failed with its reason


@dataclass
class Request:
    seq: int
    bar: Bar
    payload: Any = None          # the [n, 7] window sent to the brain (request_window of the bar's history)
    attempts: int = 0


@dataclass
class BrainLink:
    target: BrainTarget
    push: zmq.Socket
    pull: zmq.Socket
    monitors: tuple[LinkMonitor, LinkMonitor]
    in_flight: dict[int, Request] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    last_reply: float | None = None
    alive: bool = False
    dead_events: int = 0
    restarts: int = 0
    backoff: float = 2.0
    next_reset: float = 0.0
    hb_seq: int = 0
    stall_until: float = 0.0     # the socket refused a send (peer not connected): skip it briefly
    status: dict[str, Any] = field(default_factory=dict)
    sent: int = 0
    answered: int = 0
    silent: str | None = None     # why a brain that never answered is silent (None: it answers, or not yet due)

    @property
    def name(self) -> str:
        return self.target.name


class Gateway:
    def __init__(self, cfg: GatewayConfig, source: Aligner) -> None:
        self.cfg = cfg
        self.source = source
        self.ctx = zmq.Context.instance()
        self.store = SignalStore(cfg.db)
        self.ring: RingBuffer[Request] = RingBuffer(cfg.ring)
        self.decoder = Decoder("gateway")
        self.latency = LatencyWindow()
        self.counters: Counter[str] = Counter(sent=0, signals=0)    # shown as 0 before the first one, not missing
        self.alerts: list[dict[str, Any]] = []
        self.seq = 0
        self.paused = False
        self.running = True
        self.started = time.monotonic()
        self.owner: dict[int, BrainLink] = {}
        self.brains = [self._link(t) for t in cfg.targets]
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 10_000)
        server_socket_security(self.pub, cfg.keys, self.ctx)
        self.pub.bind(f"tcp://{cfg.bind}:{cfg.telemetry_port}")
        self.rep = self.ctx.socket(zmq.REP)
        self.rep.setsockopt(zmq.LINGER, 0)
        server_socket_security(self.rep, cfg.keys, self.ctx)
        self.rep.bind(f"tcp://{cfg.bind}:{cfg.control_port}")
        self.ws = WebSocketFeed(cfg.bind, cfg.ws_port) if cfg.ws_port else None
        if self.ws is not None and self.ws.error:
            log.warning("gateway: WebSocket disabled (%s)", self.ws.error)
            self.ws = None
        self.process = psutil.Process()
        self.process.cpu_percent()

    def _link(self, target: BrainTarget) -> BrainLink:
        push = self.ctx.socket(zmq.PUSH)
        pull = self.ctx.socket(zmq.PULL)
        for sock in (push, pull):
            sock.setsockopt(zmq.LINGER, 0)
            client_socket_security(sock, self.cfg.keys, "brain")
        push.setsockopt(zmq.IMMEDIATE, 1)     # never queue requests for a brain that is not connected
        push.setsockopt(zmq.SNDHWM, self.cfg.max_in_flight * 2)
        monitors = (LinkMonitor(push), LinkMonitor(pull))    # before connect: see every event
        push.connect(f"tcp://{target.host}:{target.port}")
        pull.connect(f"tcp://{target.host}:{target.port + 1}")
        return BrainLink(target, push, pull, monitors)

    def wait_ready(self, timeout_s: float) -> bool:
        """Heartbeat the brains until every one has answered (benchmarks start their clock after this)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not all(b.alive for b in self.brains):
            self._heartbeats(time.monotonic())
            for b in self.brains:
                if b.pull.poll(100):
                    self._receive(b)
        return all(b.alive for b in self.brains)

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        poller = zmq.Poller()
        for b in self.brains:
            poller.register(b.pull, zmq.POLLIN)
        poller.register(self.rep, zmq.POLLIN)
        next_hb = next_tel = next_flush = 0.0
        while self.running:
            now = time.monotonic()
            if not self.paused:
                for bar in self._poll_sources():
                    self.seq += 1
                    if self.ring.push(Request(self.seq, bar, request_window(bar.history))) is not None:
                        self.counters["dropped"] += 1
                self._dispatch()
            # sleep until a reply arrives, the next bar is due, or 20 ms pass; never spin: the brains
            # share the cores (a back-pressured source waits for replies to make room)
            due = self.source.next_due()
            if due is not None and due <= 0 and (self.ring.free == 0 or self.paused):
                due = None
            wait_ms = 20 if due is None else min(20, math.ceil(due * 1e3))
            for sock, _ in poller.poll(wait_ms):
                if sock is self.rep:
                    self._control()
                else:
                    self._receive(next(b for b in self.brains if b.pull is sock))
            now = time.monotonic()
            if now >= next_hb:
                self._heartbeats(now)
                next_hb = now + self.cfg.heartbeat_s
            if now >= next_flush:
                self.store.flush()
                next_flush = now + 0.05
            if now >= next_tel:
                self._publish("telemetry", self.snapshot())
                next_tel = now + 1.0 / self.cfg.telemetry_hz
            if self.cfg.exit_when_done and self.source.done and not self.ring and \
                    not any(b.in_flight for b in self.brains):
                self.running = False
        self.close()

    def _poll_sources(self) -> list[Bar]:
        try:
            return self.source.poll(self.ring.free)
        except Exception as exc:  # a broken source is reported, never fatal to the gateway
            self.counters["source_errors"] += 1
            if self.counters["source_errors"] in (1, 10, 100) or self.counters["source_errors"] % 1000 == 0:
                self._alert("source_error", f"{type(exc).__name__}: {exc}")
            return []

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self.ring:
            live = [b for b in self.brains
                    if b.alive and b.stall_until <= now and len(b.in_flight) < self.cfg.max_in_flight]
            if not live:
                return
            brain = min(live, key=lambda b: len(b.in_flight))
            req = self.ring.peek()
            frames = encode("window", req.seq, req.bar.symbol, req.bar.bar_time, req.payload)
            try:
                brain.push.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:          # not connected right now: leave it to the others for a moment
                brain.stall_until = now + 0.1
                continue
            self.ring.pop()
            req.attempts += 1
            if req.attempts > 1:
                self.counters["resent"] += 1
            brain.in_flight[req.seq] = req
            self.owner[req.seq] = brain
            brain.sent += 1
            self.counters["sent"] += 1

    def _receive(self, brain: BrainLink) -> None:
        for _ in range(1024):
            try:
                frames = brain.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            msg = self.decoder(frames)
            if msg is None:
                self.counters["malformed"] += 1
                continue
            now_ns = time.monotonic_ns()
            brain.last_reply = time.monotonic()
            if not brain.alive or brain.silent:
                self._revived(brain)
            if msg.kind == "heartbeat":
                brain.status = msg.extra
                continue
            if msg.kind != "signal":
                continue
            owner = self.owner.pop(msg.seq, None)
            if owner is None:
                self.counters["duplicates"] += 1        # answered already (a re-sent request's twin)
                continue
            req = owner.in_flight.pop(msg.seq, None)
            brain.answered += 1
            if "error" in msg.extra or msg.data is None:
                self.counters["errors"] += 1
                continue
            latency_us = (now_ns - msg.sent_ns) / 1e3
            self.latency.add(latency_us, msg.extra)
            reg, p_down, p_flat, p_up, action = (float(v) for v in msg.data[:5])
            artifacts = msg.extra.get("artifacts")
            if not isinstance(artifacts, str) or not 0 < len(artifacts) <= 64:
                artifacts = self.cfg.artifacts_id or "unknown"
            row = {"symbol": msg.symbol, "bar_time": msg.bar_time, "model": msg.extra.get("model", "?"),
                   "artifacts": artifacts, "seq": msg.seq, "action": int(action), "reg": reg, "p_down": p_down,
                   "p_flat": p_flat, "p_up": p_up, "latency_us": latency_us, "queue_us": msg.extra.get("queue_us"),
                   "pre_us": msg.extra.get("pre_us"), "inf_us": msg.extra.get("inf_us"), "brain": brain.name}
            self.store.add(row)
            self.counters["signals"] += 1
            bar = req.bar.history[-1] if req is not None else None     # the bar it decided on, for K-lines
            self._publish("signal", {**row, "mode": msg.extra.get("mode"),
                                     "ohlc": raw_ohlc(bar) if bar is not None else None})

    # -- health ---------------------------------------------------------------------------------
    def _heartbeats(self, now: float) -> None:
        for b in self.brains:
            b.hb_seq += 1
            with contextlib.suppress(zmq.Again):
                b.push.send_multipart(encode("heartbeat", b.hb_seq), zmq.NOBLOCK)
            for m in b.monitors:          # drained every beat, so the state they tell is the current one
                m.poll()
            silent_for = now - (b.last_reply if b.last_reply is not None else b.started)
            limit = self.cfg.dead_after * self.cfg.heartbeat_s
            if b.last_reply is None and silent_for > limit:
                self._silent(b, silent_for)
            # a brain that has not answered since it was (re)started is still loading its models
            grace = self.cfg.startup_grace_s if b.last_reply is None else 0.0
            if silent_for > limit + grace and (b.alive or b.in_flight or now >= b.next_reset):
                self._declare_dead(b, now, silent_for)

    def _declare_dead(self, b: BrainLink, now: float, silent_for: float) -> None:
        was_alive = b.alive
        b.alive = False
        if b.in_flight:
            pending = sorted(b.in_flight.values(), key=lambda r: r.seq)
            for r in pending:
                self.owner.pop(r.seq, None)
            b.in_flight.clear()
            self.ring.push_front(pending)
            self.counters["requeued"] += len(pending)
        if was_alive:
            b.dead_events += 1
            self.counters["brains_declared_dead"] += 1
            self._alert("brain_dead", f"{b.name} silent for {silent_for:.1f} s (> {self.cfg.dead_after} heartbeats)")
        if now >= b.next_reset and b.target.reset:
            self._reset(b, now)

    def _reset(self, b: BrainLink, now: float) -> None:
        b.next_reset = now + b.backoff
        b.backoff = min(b.backoff * 2, 60.0)
        b.restarts += 1
        b.last_reply = None
        b.started = now
        self.counters["resets"] += 1
        try:
            if b.target.reset == "local":
                pid = restart_local_brain(self.cfg.state_file, b.name)
                self._alert("brain_restarted", f"{b.name} restarted as pid {pid}")
            else:
                subprocess.Popen(shlex.split(str(b.target.reset)), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
                self._alert("brain_reset", f"{b.name}: ran reset command")
        except Exception as exc:   # a failed reset is reported and retried after the back-off
            self._alert("reset_failed", f"{b.name}: {exc}")

    def _silent(self, b: BrainLink, silent_for: float) -> None:
        """A brain that has not answered since it was (re)started: say so, once, with the likely cause."""
        cause = likely_cause(*b.monitors, b.target.host, b.target.port, self.cfg.keys is not None)
        if b.silent is None:
            self._alert("brain_silent", f"{b.name} has not answered {int(silent_for / self.cfg.heartbeat_s)} "
                                        f"heartbeats: {cause}")
        b.silent = cause

    def _revived(self, b: BrainLink) -> None:
        was_silent, b.silent = b.silent, None
        b.alive = True
        b.backoff = 2.0
        if b.dead_events or b.restarts or was_silent:
            self._alert("brain_back", f"{b.name} answers again")

    def _alert(self, kind: str, text: str) -> None:
        entry = {"time": time.time(), "kind": kind, "text": text}
        self.alerts = [*self.alerts[-49:], entry]
        log.warning("gateway: %s", text)
        self._publish("alert", entry)

    # -- control and telemetry ------------------------------------------------------------------
    def _control(self) -> None:
        try:
            request = json.loads(self.rep.recv())
            cmd = request.get("cmd")
        except (ValueError, AttributeError):
            self.rep.send_json({"ok": False, "error": "send a JSON object with 'cmd'"})
            return
        if cmd == "status":
            reply: dict[str, Any] = {"ok": True, **self.status()}
        elif cmd == "telemetry":
            reply = {"ok": True, **self.snapshot()}
        elif cmd == "signals":
            self.store.flush()
            symbol = request.get("symbol") if isinstance(request.get("symbol"), str) else None
            reply = {"ok": True, "signals": self.store.latest(_limit(request.get("limit"), 40, 500), symbol)}
        elif cmd == "bars":
            symbol = request.get("symbol")
            times, rows = self.source.recent(symbol, _limit(request.get("limit"), 120, 2000)) \
                if isinstance(symbol, str) else ([], [])
            reply = {"ok": True, "symbol": symbol, "symbols": self.symbols(),
                     "bars": [[t, *raw_ohlc(r)] for t, r in zip(times, rows, strict=True)]}
        elif cmd in ("pause", "resume"):
            self.paused = cmd == "pause"
            reply = {"ok": True, "paused": self.paused}
        elif cmd == "reset":
            brain = next((b for b in self.brains if b.name == request.get("brain")), None)
            if brain is None:
                reply = {"ok": False, "error": f"no brain named {request.get('brain')!r}"}
            else:
                brain.next_reset = 0.0
                self._declare_dead(brain, time.monotonic(), 0.0)
                reply = {"ok": True, "reset": brain.name}
        elif cmd == "stop":
            self.running = False
            reply = {"ok": True}
        else:
            reply = {"ok": False, "error": f"unknown command {cmd!r}"}
        self.rep.send_json(reply)

    def _publish(self, topic: str, document: dict[str, Any]) -> None:
        try:
            self.pub.send_multipart([topic.encode(), json.dumps(document, default=str).encode()], zmq.NOBLOCK)
        except zmq.Again:
            self.counters["telemetry_dropped"] += 1
        if self.ws is not None:
            self.ws.broadcast({"topic": topic, **document})

    def symbols(self) -> list[str]:
        out: set[str] = set()
        for src in self.source.sources:
            out |= set(getattr(src, "symbols", []))
        return sorted(out)

    def status(self) -> dict[str, Any]:
        """The status document (docs/architecture.md, "Status document"): the gateway and every brain."""
        now = time.monotonic()
        gw_counters = dict(self.counters) | {"ring": len(self.ring), "ring_capacity": self.ring.capacity,
                                             "in_flight": sum(len(b.in_flight) for b in self.brains),
                                             "stored": self.store.inserted,
                                             "already_stored": self.store.duplicates, "paused": self.paused}
        nodes = [{"name": "gateway", "role": "gateway", "host": self.cfg.bind, "pid": os.getpid(), "alive": True,
                  "heartbeat_age_s": 0.0, "version": __version__, "artifacts_sha256": self.cfg.artifacts_id or None,
                  "cwd": os.getcwd(), "counters": gw_counters}]
        for b in self.brains:
            nodes.append({
                "name": b.name, "role": "brain", "host": b.target.host, "pid": b.status.get("pid"), "alive": b.alive,
                "heartbeat_age_s": round(now - b.last_reply, 3) if b.last_reply is not None else None,
                "version": b.status.get("version"), "artifacts_sha256": b.status.get("artifacts_sha256"),
                "counters": {"in_flight": len(b.in_flight), "sent": b.sent, "answered": b.answered,
                             "restarts": b.restarts, "dead_events": b.dead_events, **b.status.get("counters", {})},
                "silent": b.silent,
            })
        return {"fleet": self.cfg.fleet, "nodes": nodes}

    def snapshot(self) -> dict[str, Any]:
        mem = self.process.memory_info().rss
        return {"time": time.time(), "uptime_s": round(time.monotonic() - self.started, 1), **self.status(),
                "latency": self.latency.snapshot(), "queue_depth": len(self.ring), "drops": self.ring.dropped,
                "source_done": self.source.done, "source": self.source.describe(),
                "endpoints": {"telemetry": self.cfg.telemetry_port, "control": self.cfg.control_port,
                              "websocket": self.cfg.ws_port or None},
                "cpu_percent": self.process.cpu_percent(),
                "memory_mb": round(mem / 2**20, 1), "alerts": self.alerts[-10:]}

    def stop(self, *_: Any) -> None:
        self.running = False

    def close(self) -> None:
        self.store.close()
        if self.ws is not None:
            self.ws.close()
        for b in self.brains:
            for sock, monitor in zip((b.push, b.pull), b.monitors, strict=True):
                with contextlib.suppress(zmq.ZMQError):
                    sock.disable_monitor()
                monitor.close()
                sock.close(linger=0)
        self.pub.close(linger=0)
        self.rep.close(linger=0)


def restart_local_brain(state_file: Path | None, name: str) -> int:
    """Kill (if needed) and start again the local brain ``name`` recorded in the fleet state file."""
    from heqis.runtime.local_fleet import restart_node

    if state_file is None:
        raise RuntimeError("no fleet state file to restart the brain from")
    return restart_node(state_file, name)


def run_gateway(cfg: GatewayConfig, source: Aligner) -> Gateway:
    gw = Gateway(cfg, source)
    signal.signal(signal.SIGTERM, gw.stop)
    signal.signal(signal.SIGINT, gw.stop)
    log.info("gateway ready: %d brain(s), telemetry tcp://%s:%d, control :%d, websocket :%s",
                len(cfg.targets), cfg.bind, cfg.telemetry_port, cfg.control_port, cfg.ws_port or "off")
    gw.run()
    return gw


def _limit(value: Any, default: int, most: int) -> int:
    """A row count asked for over the control socket: an int in [1, most], else ``default``."""
    return min(max(value, 1), most) if isinstance(value, int) and not isinstance(value, bool) else default

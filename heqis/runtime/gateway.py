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
* replies (heqis.runtime.replies): a reply is taken only if it answers a request in flight to that
  brain, for the same symbol and bar time, from the model routing.json assigns the symbol; the row
  stored is built from the gateway's request record plus the validated numbers. A refused reply, an
  error reply, or a request past its deadline sends the request again — to another brain if one is
  live, else to the same after a back-off — and after ``max_attempts`` failed sends the bar is stored
  as failed with its reason. A late or repeated reply finds no request and is counted as a duplicate;
  every signal is written with INSERT OR IGNORE on (symbol, bar time, model, artifact set);
* incarnations: every brain process draws a random id, sent in each heartbeat and reply; a new id
  means the brain restarted (perhaps faster than the dead-after deadline), and what was in flight to
  the old process is sent again at once;
* telemetry: JSON on the PUB socket (and WebSocket) a few times a second, and one document per signal;
* control: a ROUTER socket (heqis.runtime.control) answers the console exactly once per request
  (status, telemetry, the last stored signals, a symbol's recent bars, and — with keys, only for an
  operator key — reset a brain, pause, resume, stop). Resets from any source obey the back-off and
  at most ``RESETS_PER_HOUR`` per brain.

Nothing that arrives over a socket can make the gateway exit: messages are decoded strictly,
bounded by ZMQ_MAXMSGSIZE, counted by reason and logged rate-limited.

Requests are built from each source's history by ``request_window`` (heqis.runtime.bars): the same
bar schema and adjustment as the data store, for replayed and live bars alike.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import os
import shlex
import signal
import subprocess
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq

from heqis import __version__
from heqis.formats.artifacts import route_for
from heqis.runtime.bars import raw_ohlc, request_window
from heqis.runtime.control import OPERATOR_COMMANDS, ControlRequest, split_request
from heqis.runtime.heap import settle
from heqis.runtime.link_monitor import LinkMonitor, likely_cause
from heqis.runtime.protocol import MAX_HEADER, VERSION, Decoder, Message, Packed, encode, pack
from heqis.runtime.ratelog import RateLimitedLog
from heqis.runtime.replies import Checked, Expected, check_reply
from heqis.runtime.ringbuffer import RingBuffer
from heqis.runtime.security import KeyConfig, client_socket_security, peer_key, server_socket_security
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import Aligner, Bar
from heqis.runtime.telemetry import LatencyWindow, WebSocketFeed
from heqis.runtime.watchdog import Verdict, Watchdog

log = logging.getLogger(__name__)
RESETS_PER_HOUR = 12              # per brain, whoever asks: a reset command may be an SSH reboot
MAX_REPLY = 1 << 20               # ZMQ_MAXMSGSIZE of the reply sockets: signals and heartbeats are small
RETRY_BACKOFF_S = (0.25, 5.0)     # first and longest wait before the same brain gets a failed request again


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
    watchdog: Watchdog | None = None   # checks every bar before the ring buffer (heqis.runtime.watchdog)


@dataclass(eq=False)              # compared by identity (the payload is an array)
class Request:
    """The gateway's record of one bar's request: the truth a reply is checked against."""

    seq: int
    bar: Bar
    payload: Packed | None = None   # the [n, 7] window sent to the brain (request_window of the bar's history)
    attempts: int = 0            # sends
    failures: int = 0            # sends that ended in a refused or error reply, or a missed deadline
    brain: str | None = None     # the brain it is in flight to (None: waiting to be sent)
    sent_ns: int = 0             # when it was last sent (the gateway's clock: latency is measured on it)
    deadline: float = 0.0
    not_before: float = 0.0      # a failed request waits this long before the same brain gets it again
    avoid: str | None = None     # the brain that failed it last: another live brain gets it first
    reason: str = ""             # why the last attempt failed
    sent_to: set[str] = field(default_factory=set)   # brains it was ever sent to: a late answer of one counts
    suspect: str | None = None   # the watchdog's reasons for the bar (policy warn: sent on, marked)


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
    incarnation: str | None = None   # the brain process's random id (a new one: it restarted)
    refused: str | None = None    # why the gateway will not use it (another protocol or artifact set)
    resets: deque[float] = field(default_factory=deque)    # when it was reset in the last hour

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
        self.rejected: Counter[str] = Counter()      # refused replies by reason (heqis.runtime.replies)
        self.control_errors: Counter[str] = Counter()
        self.reply_log = RateLimitedLog(log, "gateway: refused a reply")
        self.control_log = RateLimitedLog(log, "gateway: bad control request")
        self.retry: list[Request] = []               # failed or requeued requests, by seq: sent before the ring
        self.pending: dict[int, Request] = {}        # every request in flight or in ``retry``, by seq
        self.alerts: list[dict[str, Any]] = []
        self.seq = 0
        self.paused = False
        self.running = True
        self.started = time.monotonic()
        self.watchdog = cfg.watchdog or Watchdog("off")
        self.brains = [self._link(t) for t in cfg.targets]
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 10_000)
        server_socket_security(self.pub, cfg.keys, self.ctx, "gateway")
        self.pub.bind(f"tcp://{cfg.bind}:{cfg.telemetry_port}")
        self.rep = self.ctx.socket(zmq.ROUTER)
        self.rep.setsockopt(zmq.LINGER, 0)
        self.rep.setsockopt(zmq.MAXMSGSIZE, 2 * MAX_HEADER)
        self.rep.setsockopt(zmq.SNDHWM, 1000)
        server_socket_security(self.rep, cfg.keys, self.ctx, "gateway")
        self.rep.bind(f"tcp://{cfg.bind}:{cfg.control_port}")
        self.ws = WebSocketFeed(cfg.ws_bind, cfg.ws_port, token=cfg.ws_token) if cfg.ws_port else None
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
        pull.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY)     # a brain's answers are small: a huge frame is refused unread
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
        next_hb = next_tel = next_flush = next_expiry = 0.0
        while self.running:
            now = time.monotonic()
            if not self.paused:
                for bar in self._poll_sources():
                    self._admit(bar)
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
            if now >= next_expiry:
                self._expire(now)
                next_expiry = now + 0.1
            if now >= next_flush:
                self.store.flush()
                next_flush = now + 0.05
            if now >= next_tel:
                self._publish("telemetry", self.snapshot())
                next_tel = now + 1.0 / self.cfg.telemetry_hz
            if self.cfg.exit_when_done and self.source.done and not self.ring and not self.pending:
                self.running = False
        self.close()

    def _poll_sources(self) -> list[Bar]:
        try:
            bars = self.source.poll(self.ring.free)
        except Exception as exc:  # a broken source is reported, never fatal to the gateway
            self.counters["source_errors"] += 1
            if self.counters["source_errors"] in (1, 10, 100) or self.counters["source_errors"] % 1000 == 0:
                self._alert("source_error", f"{type(exc).__name__}: {exc}")
            return []
        if self.watchdog.active:        # bars the sources' cleaning refused are the watchdog's flags too
            for symbol, bar_time, reason in self.source.rejected():
                self._flagged(symbol, bar_time, self.watchdog.refused(symbol, bar_time, reason), "hold")
        return bars

    def _admit(self, bar: Bar) -> None:
        """One bar from the sources: the watchdog's verdict, then the ring buffer (or held)."""
        history = self.watchdog.clean_history(bar)
        verdict = self.watchdog.check(bar, history)
        hold = self.watchdog.holds(verdict)
        if verdict.reasons:
            self._flagged(bar.symbol, bar.bar_time, verdict, "hold" if hold else "warn")
        if hold:
            return
        self.seq += 1
        req = Request(self.seq, bar, pack(request_window(history)), suspect=verdict.suspect)
        if self.ring.push(req) is not None:
            self.counters["dropped"] += 1

    def _flagged(self, symbol: str, bar_time: int, verdict: Verdict, action: str) -> None:
        self.store.add_flag({"symbol": symbol, "bar_time": bar_time, "reasons": verdict.suspect,
                             "score": verdict.score, "action": action})
        if action == "hold":
            self._alert("watchdog_hold", f"{symbol} bar {_date(bar_time)} held: {verdict.suspect}"
                        + (f" (score {verdict.score:.3g})" if verdict.score is not None else ""),
                        quiet=self.watchdog.held > 3)

    def _pick(self, live: list[BrainLink], now: float) -> tuple[Request, BrainLink, bool] | None:
        """The next request to send and its brain: requests to send again first (oldest bar first; a
        failed one goes to another brain if one is live, else to the same after its back-off)."""
        least = min(live, key=lambda b: len(b.in_flight))
        for req in self.retry:
            others = [b for b in live if b.name != req.avoid]
            if others:
                return req, min(others, key=lambda b: len(b.in_flight)), False
            if now >= req.not_before:
                return req, least, False
        if self.ring:
            return self.ring.peek(), least, True
        return None

    def _dispatch(self) -> None:
        now = time.monotonic()
        while self.ring or self.retry:
            live = [b for b in self.brains if b.alive and b.refused is None and b.stall_until <= now and
                    len(b.in_flight) < self.cfg.max_in_flight]
            if not live:
                return
            picked = self._pick(live, now)
            if picked is None:
                return
            req, brain, from_ring = picked
            sent_ns = time.monotonic_ns()
            frames = encode("window", req.seq, req.bar.symbol, req.bar.bar_time, req.payload, sent_ns=sent_ns)
            try:
                brain.push.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:          # not connected right now: leave it to the others for a moment
                brain.stall_until = now + 0.1
                continue
            if from_ring:
                self.ring.pop()
            else:
                self.retry.remove(req)
            req.attempts += 1
            if req.attempts > 1:
                self.counters["resent"] += 1
            req.brain, req.sent_ns, req.deadline = brain.name, sent_ns, now + self.cfg.request_deadline_s
            req.sent_to.add(brain.name)
            brain.in_flight[req.seq] = req
            self.pending[req.seq] = req
            brain.sent += 1
            self.counters["sent"] += 1

    def _requeue(self, brain: BrainLink, requests: list[Request], now: float, reason: str | None) -> None:
        """Take ``requests`` off ``brain`` and send them again; ``reason`` set: their attempt failed
        (it counts towards ``max_attempts``), None: the brain went away (it does not)."""
        for req in requests:
            brain.in_flight.pop(req.seq, None)
            req.brain = None
            if reason is not None:
                req.failures += 1
                req.reason = reason
                req.avoid = brain.name
                req.not_before = now + min(RETRY_BACKOFF_S[0] * 2 ** (req.failures - 1), RETRY_BACKOFF_S[1])
                if req.failures >= self.cfg.max_attempts:
                    self._fail(req)
                    continue
            else:
                req.not_before = now
            bisect.insort(self.retry, req, key=lambda r: r.seq)

    def _fail(self, req: Request) -> None:
        """No brain answered ``req`` validly in ``max_attempts`` sends: store it as failed, with the reason."""
        self.pending.pop(req.seq, None)
        self.store.add_failure({"symbol": req.bar.symbol, "bar_time": req.bar.bar_time,
                                "artifacts": self.cfg.artifacts_id or "unknown", "model": self._model(req.bar.symbol),
                                "reason": req.reason, "attempts": req.attempts, "seq": req.seq})
        self.counters["failed"] += 1
        self._alert("bar_failed", f"{req.bar.symbol} bar {req.bar.bar_time}: no valid answer in {req.attempts} "
                                  f"sends (last: {req.reason})", quiet=self.counters["failed"] > 3)

    def _expire(self, now: float) -> None:
        for b in self.brains:
            late = [r for r in b.in_flight.values() if r.deadline <= now]
            if late:
                self.counters["deadline_expired"] += len(late)
                self._requeue(b, late, now, "deadline")

    def _route(self, symbol: str) -> dict[str, Any]:
        """The route routing.json gives ``symbol`` ({}: the gateway was given no routing)."""
        return route_for(self.cfg.routing, symbol) if self.cfg.routing else {}

    def _model(self, symbol: str) -> str | None:
        """The generator routing.json assigns ``symbol`` (None: the gateway was given no routing)."""
        return self._route(symbol).get("generator")

    def _receive(self, brain: BrainLink) -> None:
        for _ in range(1024):
            try:
                frames = brain.pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.handle(brain, frames)

    def handle(self, brain: BrainLink, frames: list[bytes]) -> None:
        """One message from ``brain``; each lands in exactly one counter (malformed, heartbeats, signals,
        rejected_replies, duplicates, unexpected_kind) and none can raise."""
        msg = self.decoder(frames)
        received_ns = time.monotonic_ns()    # a signal's latency ends here: received and decoded, as the baseline's
        if msg is None:
            self.counters["malformed"] += 1
            if self.decoder.last_error.startswith("protocol version"):
                self._refuse(brain, f"{brain.name} speaks another wire protocol "
                                    f"({self.decoder.last_error}; this gateway speaks {VERSION})")
            return
        now = time.monotonic()
        brain.last_reply = now
        if not brain.alive or brain.silent:
            self._revived(brain)
        self._incarnation(brain, msg.extra.get("incarnation" if msg.kind == "heartbeat" else "inc"), now,
                          keep=msg.seq if msg.kind == "signal" else None)
        if msg.kind == "heartbeat":
            self.counters["heartbeats"] += 1
            brain.status = brain_status(msg.extra)
            self._check_artifacts(brain)
        elif msg.kind == "signal":
            self._signal(brain, msg, now, received_ns)
        else:
            self.counters["unexpected_kind"] += 1

    def _signal(self, brain: BrainLink, msg: Message, now: float, received_ns: int) -> None:
        req = self.pending.get(msg.seq)
        if req is None:
            self.counters["duplicates"] += 1        # answered already (a re-sent request's twin), or never asked
            return
        if brain.name not in req.sent_to:
            self._refuse_reply(brain, req, "not_sent_to_this_brain", now, requeue=False)
            return
        brain.answered += 1
        checked = check_reply(msg.symbol, msg.bar_time, msg.data, msg.extra,
                              Expected(req.bar.symbol, req.bar.bar_time, self._model(req.bar.symbol),
                                       self.cfg.artifacts_id or None))
        if not isinstance(checked, Checked):
            if checked == "brain_error":
                self.counters["errors"] += 1
                error = msg.extra.get("error")
                checked = f"brain_error: {error[:120]}" if isinstance(error, str) else checked
            self._refuse_reply(brain, req, checked, now, requeue=req.brain == brain.name)
            return
        self._complete(req)
        latency_us = (received_ns - req.sent_ns) / 1e3     # counted only for a reply that passed its checks
        self.latency.add(latency_us, checked.timing)
        row = {"symbol": req.bar.symbol, "bar_time": req.bar.bar_time, "model": checked.model,
               "artifacts": self.cfg.artifacts_id or checked.artifacts or "unknown", "seq": req.seq,
               "action": checked.action, "reg": checked.reg, "p_down": checked.p_down, "p_flat": checked.p_flat,
               "p_up": checked.p_up, "latency_us": latency_us, **checked.timing, "brain": brain.name,
               "suspect": req.suspect}
        self.store.add(row)
        self.counters["signals"] += 1
        self._publish("signal", {**row, "mode": self._route(req.bar.symbol).get("mode"),
                                 "ohlc": raw_ohlc(req.bar.history[-1])})

    def _complete(self, req: Request) -> None:
        """``req`` is answered: out of every place it waits (in flight, perhaps to another brain; to resend)."""
        self.pending.pop(req.seq, None)
        holder = next((b for b in self.brains if b.name == req.brain), None)
        if holder is not None:
            holder.in_flight.pop(req.seq, None)
        elif req in self.retry:
            self.retry.remove(req)

    def _refuse_reply(self, brain: BrainLink, req: Request, reason: str, now: float, requeue: bool) -> None:
        key = reason.split(":")[0]
        self.rejected[key] += 1
        self.counters["rejected_replies"] += 1
        self.reply_log.warn(key, f"{brain.name} seq {req.seq} ({req.bar.symbol}): {reason}")
        if requeue:
            self._requeue(brain, [req], now, reason)

    def _incarnation(self, brain: BrainLink, incarnation: Any, now: float, keep: int | None) -> None:
        """A new process id on the brain's sockets: what was in flight to the old process is lost with it
        (``keep``: the request the new process has just answered)."""
        if not isinstance(incarnation, str) or not 0 < len(incarnation) <= 64 or incarnation == brain.incarnation:
            return
        old, brain.incarnation = brain.incarnation, incarnation
        if old is None:
            return
        self.counters["brain_restarts_seen"] += 1
        lost = [r for r in brain.in_flight.values() if r.seq != keep]
        if lost:
            self.counters["requeued"] += len(lost)
            self._requeue(brain, sorted(lost, key=lambda r: r.seq), now, None)
        self._alert("brain_restarted", f"{brain.name} is a new process (incarnation {incarnation[:8]}); "
                                       f"{len(lost)} request(s) sent again")

    def _check_artifacts(self, brain: BrainLink) -> None:
        theirs = brain.status.get("artifacts_sha256")
        ours = self.cfg.artifacts_id
        if ours and isinstance(theirs, str) and theirs != ours:
            self._refuse(brain, f"{brain.name} runs artifact set {theirs[:16]}, this gateway {ours[:16]}: "
                                f"deploy one release to the whole fleet (heqis up)")
        elif brain.refused is not None and theirs == ours:
            brain.refused = None
            self._alert("brain_accepted", f"{brain.name} runs artifact set {ours[:16]} now")

    def _refuse(self, brain: BrainLink, why: str) -> None:
        """Use ``brain`` no more (until it changes): a mixed-version fleet is named, not half-served."""
        if brain.in_flight:
            self._requeue(brain, sorted(brain.in_flight.values(), key=lambda r: r.seq), time.monotonic(), None)
        if brain.refused != why:
            brain.refused = why
            self.counters["brains_refused"] += 1
            self._alert("brain_refused", why)

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
            self.counters["requeued"] += len(b.in_flight)
            self._requeue(b, sorted(b.in_flight.values(), key=lambda r: r.seq), now, None)
        if was_alive:
            b.dead_events += 1
            self.counters["brains_declared_dead"] += 1
            self._alert("brain_dead", f"{b.name} silent for {silent_for:.1f} s (> {self.cfg.dead_after} heartbeats)")
        if b.target.reset and self.reset_wait(b, now) == 0:
            self._reset(b, now)

    def reset_wait(self, b: BrainLink, now: float) -> float:
        """Seconds until ``b`` may be reset again: its back-off, and at most RESETS_PER_HOUR an hour."""
        while b.resets and now - b.resets[0] > 3600:
            b.resets.popleft()
        wait = max(0.0, b.next_reset - now)
        if len(b.resets) >= RESETS_PER_HOUR:
            wait = max(wait, 3600 - (now - b.resets[0]))
        return wait

    def _reset(self, b: BrainLink, now: float) -> None:
        b.resets.append(now)
        if len(b.resets) == RESETS_PER_HOUR:
            self._alert("reset_rate_limited", f"{b.name}: {RESETS_PER_HOUR} resets in the last hour; the next one "
                                              f"waits until the hour has passed")
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

    def _alert(self, kind: str, text: str, quiet: bool = False) -> None:
        """An operator-facing event (telemetry, status, the log); ``quiet``: one of many, not logged."""
        entry = {"time": time.time(), "kind": kind, "text": text}
        self.alerts = [*self.alerts[-49:], entry]
        if not quiet:
            log.warning("gateway: %s", text)
        self._publish("alert", entry)

    # -- control and telemetry ------------------------------------------------------------------
    def _control(self) -> None:
        """Answer every waiting control request once; no request, however malformed, can raise."""
        for _ in range(64):
            try:
                frames = self.rep.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            req = split_request(frames)
            if req.request is None:
                reason = (req.error or "invalid").split(" ")[0]
                self.control_errors[reason] += 1
                self.control_log.warn(reason, req.error or "invalid request")
                reply: dict[str, Any] = {"ok": False, "error": req.error}
            else:
                try:
                    reply = self._command(req)
                except Exception as exc:   # a command that fails is answered, never fatal to the gateway
                    self.control_errors["failed"] += 1
                    log.exception("gateway: control command %r failed", req.request.get("cmd"))
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            if req.envelope:
                with contextlib.suppress(zmq.ZMQError):   # the asker may be gone; ROUTER drops it
                    self.rep.send_multipart([*req.envelope, json.dumps(reply, default=str).encode()], zmq.NOBLOCK)

    def _command(self, control: ControlRequest) -> dict[str, Any]:
        request = control.request or {}
        cmd = request["cmd"]
        if cmd in OPERATOR_COMMANDS and self.cfg.keys is not None:
            role = self.cfg.keys.role_of(peer_key(control.body))
            if role != "operator":
                self.control_errors["not_operator"] += 1
                return {"ok": False, "error": f"{cmd!r} needs a console key with the operator role "
                                              f"(heqis keys add NAME --role operator); this key is {role or 'unknown'}"}
        if cmd == "status":
            return {"ok": True, **self.status()}
        if cmd == "telemetry":
            return {"ok": True, **self.snapshot()}
        if cmd == "signals":
            self.store.flush()
            symbol = request.get("symbol") if isinstance(request.get("symbol"), str) else None
            return {"ok": True, "signals": self.store.latest(_limit(request.get("limit"), 40, 500), symbol)}
        if cmd == "bars":
            symbol = request.get("symbol")
            times, rows = self.source.recent(symbol, _limit(request.get("limit"), 120, 2000)) \
                if isinstance(symbol, str) else ([], [])
            return {"ok": True, "symbol": symbol, "symbols": self.symbols(),
                    "bars": [[t, *raw_ohlc(r)] for t, r in zip(times, rows, strict=True)]}
        if cmd in ("pause", "resume"):
            self.paused = cmd == "pause"
            return {"ok": True, "paused": self.paused}
        if cmd == "reset":
            brain = next((b for b in self.brains if b.name == request.get("brain")), None)
            if brain is None:
                return {"ok": False, "error": f"no brain named {str(request.get('brain'))[:64]!r}"}
            now = time.monotonic()
            wait = self.reset_wait(brain, now)
            if wait > 0:
                self.counters["resets_refused"] += 1
                return {"ok": False, "error": f"{brain.name} may be reset again in {wait:.1f} s (back-off and at "
                                              f"most {RESETS_PER_HOUR} resets an hour)", "retry_after_s": wait}
            brain.next_reset = 0.0
            self._declare_dead(brain, now, 0.0)
            return {"ok": True, "reset": brain.name}
        if cmd == "stop":
            self.running = False
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd[:40]!r}"}

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
                                             "to_resend": len(self.retry), "stored": self.store.inserted,
                                             "stored_failed": self.store.failed,
                                             "rejected_replies_by_reason": dict(self.rejected),
                                             "control_errors": dict(self.control_errors),
                                             "malformed_by_reason": dict(self.decoder.rejected),
                                             "already_stored": self.store.duplicates, "paused": self.paused,
                                             "watchdog_flagged": self.watchdog.flagged,
                                             "watchdog_held": self.watchdog.held}
        nodes = [{"name": "gateway", "role": "gateway", "host": self.cfg.bind, "pid": os.getpid(), "alive": True,
                  "heartbeat_age_s": 0.0, "version": __version__, "artifacts_sha256": self.cfg.artifacts_id or None,
                  "cwd": os.getcwd(), "counters": gw_counters, "watchdog": self.watchdog.describe(last=False)}]
        for b in self.brains:
            nodes.append({
                "name": b.name, "role": "brain", "host": b.target.host, "pid": b.status.get("pid"), "alive": b.alive,
                "heartbeat_age_s": round(now - b.last_reply, 3) if b.last_reply is not None else None,
                "version": b.status.get("version"), "artifacts_sha256": b.status.get("artifacts_sha256"),
                "counters": {**b.status.get("counters", {}), "in_flight": len(b.in_flight), "sent": b.sent,
                             "answered": b.answered, "restarts": b.restarts, "dead_events": b.dead_events},
                "silent": b.silent, "refused": b.refused, "incarnation": b.incarnation,
            })
        return {"fleet": self.cfg.fleet, "nodes": nodes}

    def snapshot(self) -> dict[str, Any]:
        mem = self.process.memory_info().rss
        return {"time": time.time(), "uptime_s": round(time.monotonic() - self.started, 1), **self.status(),
                "latency": self.latency.snapshot(), "queue_depth": len(self.ring), "drops": self.ring.dropped,
                "source_done": self.source.done, "source": self.source.describe(),
                "watchdog": self.watchdog.describe(),
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
    settle()
    signal.signal(signal.SIGTERM, gw.stop)
    signal.signal(signal.SIGINT, gw.stop)
    log.info("gateway ready: %d brain(s), telemetry tcp://%s:%d, control :%d, websocket :%s",
                len(cfg.targets), cfg.bind, cfg.telemetry_port, cfg.control_port, cfg.ws_port or "off")
    gw.run()
    return gw


STATUS_TEXT = ("name", "version", "backend", "artifacts_sha256", "artifacts", "features", "incarnation")


def brain_status(extra: dict[str, Any]) -> dict[str, Any]:
    """The fields of a brain's heartbeat the gateway shows, each checked: a peer's document is not trusted
    (a list where counters belong would otherwise break every later status request)."""
    out: dict[str, Any] = {k: v for k in STATUS_TEXT if isinstance(v := extra.get(k), str) and len(v) <= 128}
    pid = extra.get("pid")
    if isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 1 << 31:
        out["pid"] = pid
    for key in ("counters", "rejected"):
        value = extra.get(key)
        if isinstance(value, dict):
            out[key] = {k: v for k, v in list(value.items())[:64]
                        if isinstance(k, str) and len(k) <= 64 and isinstance(v, int) and not isinstance(v, bool)}
    return out


def _date(bar_time: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(bar_time / 1e9))


def _limit(value: Any, default: int, most: int) -> int:
    """A row count asked for over the control socket: an int in [1, most], else ``default``."""
    return min(max(value, 1), most) if isinstance(value, int) and not isinstance(value, bool) else default

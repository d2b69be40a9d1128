"""Fault recovery of the edge runtime on loopback: detection time, recovery time, lost and duplicated bars.

Each scenario replays the same ~700 stored bars (two symbols, from a fixed date, at a fixed rate) through
a real gateway to real brain processes over ZeroMQ into SQLite, injects one fault mid-replay and lets the
gateway finish with exit-when-done:

1. brain kill -9, restarted at once on the same port (the gateway sees the new incarnation id; this one
   scenario runs with dead_after=30 heartbeats, so the incarnation, not the dead-after deadline, detects it);
2. brain kill -9, not restarted by the script: the gateway declares it dead after 3 missed heartbeats
   and restarts it through its reset action (a shell command that starts the brain again);
3. brain SIGSTOP for 6 s, then SIGCONT (no reset action: the same process comes back);
4. gateway kill -9, restarted at once from the local fleet's state file (it resumes from the store);
5. a brain that answers only every other request (a scripted peer) next to one real brain; the
   per-request deadline (``request_deadline_s``) sends the unanswered ones again.

Measured per scenario:

* detection: fault → the first counter or alert by which the gateway notices it (scenario 4: the
  restarted gateway answers its control socket; scenario 5: the first request the peer ignores →
  the first ``deadline_expired``);
* recovery: fault → the start of the first 0.5 s window after detection in which signals are stored at
  >= 80 % of the pace of the second before the fault (scenario 5: the first ignored bar's send → its
  signal stored by the other brain);
* lost: replayed bars without a stored signal after the replay ends (``SignalStore.done()`` against the
  expected (symbol, bar_time) set); duplicated: stored rows minus distinct (symbol, bar_time) (0 by the
  primary key, counted anyway); failed: the gateway's ``failed`` counter (scenario 4: rows of the
  ``failures`` table).

Scenarios 1, 2, 3 and 5 run the gateway in a thread of this process (its alerts, counters and store
writes are timed where they happen); scenario 4 runs the local fleet (``heqis up --local``'s processes)
and times the store's ``stored_at``. Build artifacts and data as in the README (``heqis data``,
``heqis train``, ``heqis export``), then:

    python benchmarks/faults.py --artifacts heqis-demo/deploy_output --data-dir heqis-demo/data [--json]
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.bars import history_length
from heqis.runtime.gateway import BrainTarget, Gateway, GatewayConfig
from heqis.runtime.ports import free_port_block
from heqis.runtime.replay_pack import store_arrays
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import Aligner, ReplaySource

SYMBOLS = ["600519.SH", "000001.SZ"]
WATCH = ("brain_restarts_seen", "brains_declared_dead", "deadline_expired", "requeued", "resent", "failed")
PACE_WINDOW_S = 0.5
PACE_FRACTION = 0.8


@dataclass
class Plan:
    """The replay every scenario runs: which bars, how fast, and when the fault comes."""

    artifacts: Path
    data_dir: Path
    start: date
    end: date
    rate: float
    fault_after_s: float
    deadline_s: float
    window: int
    arrays: dict[str, Any]
    expected: set[tuple[str, int]]
    aset: ArtifactSet
    root: Path

    def source(self) -> ReplaySource:
        return ReplaySource(self.arrays, history_length(self.window), self.start, self.end, self.rate,
                            min_bars=2 * self.window + 10)


def make_plan(args: argparse.Namespace, root: Path) -> Plan:
    aset = ArtifactSet.open(args.artifacts)
    window = aset.max_window
    arrays = store_arrays(args.data_dir, SYMBOLS)
    lo = np.datetime64(args.start, "ns").astype(np.int64)
    events = sorted((int(t), s) for s, (times, _) in arrays.items() for i, t in enumerate(times)
                    if t >= lo and i + 1 >= 2 * window + 10)      # what the gateway replays (ReplaySource)
    if not events:
        raise SystemExit(f"no bars to replay from {args.start} in {args.data_dir}")
    last = events[min(args.bars, len(events)) - 1][0]
    end = np.datetime64(last, "ns").astype("datetime64[D]").astype(date)
    expected = {(s, t) for t, s in events if t <= last}
    return Plan(args.artifacts.resolve(), args.data_dir.resolve(), args.start, end, args.rate, args.fault_after,
                args.request_deadline, window, arrays, expected, aset, root)


# -- processes -----------------------------------------------------------------------------------
def brain_cmd(plan: Plan, port: int, name: str) -> list[str]:
    return [sys.executable, "-m", "heqis", "brain", "--port", str(port), "--artifacts", str(plan.artifacts),
            "--name", name, "--threads", "1"]


def start_brain(plan: Plan, port: int, log: Path, name: str = "brain-1") -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(brain_cmd(plan, port, name), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def wait_ready_log(log: Path, count: int = 1, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count("ready on") >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"brain not ready after {timeout:.0f} s (see {log})")


def reap_children() -> None:
    """Stop every process this script started (brains, reset commands, the local fleet) that still runs."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.send_signal(signal.SIGCONT)
            child.kill()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            child.wait(5)


# -- the in-process gateway, timed where things happen -------------------------------------------
class TimedCounter(Counter):
    """The gateway's counters, recording when a watched one goes up (on the gateway's thread)."""

    def __init__(self, base: Counter, log: list[tuple[float, str]]) -> None:
        self.log = log
        super().__init__(base)

    def __setitem__(self, key: str, value: int) -> None:
        if key in WATCH and value > self.get(key, 0):
            self.log.append((time.monotonic(), key))
        super().__setitem__(key, value)


@dataclass
class Run:
    gateway: Gateway
    source: ReplaySource
    thread: threading.Thread
    events: list[tuple[float, str]] = field(default_factory=list)            # (t, alert kind or counter)
    stored: list[tuple[float, str, int, str]] = field(default_factory=list)  # (t, symbol, bar_time, brain)
    t0: float = 0.0

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return False


def start_gateway(plan: Plan, targets: list[BrainTarget], db: Path, **cfg: Any) -> Run:
    base = free_port_block(2)
    src = plan.source()
    config = GatewayConfig(targets, db, telemetry_port=base, control_port=base + 1, ws_port=0, exit_when_done=True,
                           routing=plan.aset.routing(), artifacts_id=plan.aset.set_id,
                           request_deadline_s=plan.deadline_s, **cfg)
    gw = Gateway(config, Aligner([src]))
    run = Run(gw, src, threading.Thread(target=gw.run, daemon=True))
    gw.counters = TimedCounter(gw.counters, run.events)
    alert, add = gw._alert, gw.store.add

    def timed_alert(kind: str, text: str, quiet: bool = False) -> None:
        run.events.append((time.monotonic(), kind))
        alert(kind, text, quiet)

    def timed_add(row: dict[str, Any]) -> None:
        run.stored.append((time.monotonic(), row["symbol"], int(row["bar_time"]), str(row.get("brain"))))
        add(row)

    gw._alert = timed_alert              # type: ignore[method-assign]
    gw.store.add = timed_add             # type: ignore[method-assign]
    if not gw.wait_ready(120):
        gw.close()
        raise RuntimeError("the brains did not answer the gateway")
    run.events.clear()
    src.t0 = run.t0 = time.monotonic()   # the replay's clock starts once every brain answers
    run.thread.start()
    return run


def finish(run: Run, timeout: float = 90.0) -> bool:
    run.thread.join(timeout)
    if run.thread.is_alive():
        run.gateway.running = False
        run.thread.join(30)
        return False
    return True


# -- measurements ----------------------------------------------------------------------------------
def pace_recovery(times: list[float], fault: float, detected: float | None) -> tuple[float | None, float | None]:
    """(resumed, recovered), seconds after ``fault``: the first signal after detection, and the start of
    the first PACE_WINDOW_S after it with >= PACE_FRACTION of the pre-fault pace (signals in the second
    before the fault)."""
    times = sorted(times)
    before = bisect.bisect_left(times, fault) - bisect.bisect_left(times, fault - 1.0)
    need = max(1, int(PACE_FRACTION * before * PACE_WINDOW_S))
    i = bisect.bisect_right(times, detected if detected is not None else fault)
    if i >= len(times):
        return None, None
    resumed = times[i] - fault
    for j in range(i, len(times)):
        if bisect.bisect_left(times, times[j] + PACE_WINDOW_S) - j >= need:
            return resumed, times[j] - fault
    return resumed, None


def first_event(events: list[tuple[float, str]], after: float, kinds: tuple[str, ...]) -> tuple[float | None, str]:
    for t, kind in sorted(events):
        if t >= after and kind in kinds:
            return t, kind
    return None, "-"


def tally(plan: Plan, db: Path) -> dict[str, int]:
    store = SignalStore(db)
    try:
        done = store.done()
        rows = store.count()
        failures = len(store.failures())
    finally:
        store.close()
    return {"expected": len(plan.expected), "stored_rows": rows, "lost": len(plan.expected - done),
            "unexpected": len(done - plan.expected), "duplicated": rows - len(done), "failures_table": failures}


def result(name: str, plan: Plan, db: Path, finished: bool, fault: float, detected: float | None, detected_by: str,
           recovery: tuple[float | None, float | None], counters: dict[str, Any], events: list[str],
           **extra: Any) -> dict[str, Any]:
    def secs(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    keep = ("signals", "sent", "resent", "requeued", "deadline_expired", "brain_restarts_seen",
            "brains_declared_dead", "resets", "duplicates", "failed", "rejected_replies")
    return {"fault": name, "finished": finished, "detected_by": detected_by,
            "detection_s": secs(None if detected is None else detected - fault),
            "resumed_s": secs(recovery[0]), "recovery_s": secs(recovery[1]), **tally(plan, db),
            "failed": counters.get("failed", 0), "counters": {k: counters.get(k, 0) for k in keep},
            "alerts": events, **extra}


def alert_kinds(run: Run, after: float) -> list[str]:
    return [k for t, k in sorted(run.events) if t >= after and k not in WATCH]


def wait_fault_time(run: Run, plan: Plan) -> None:
    run.wait(lambda: time.monotonic() - run.t0 >= plan.fault_after_s, plan.fault_after_s + 5)


# -- scenarios -------------------------------------------------------------------------------------
def kill_restart_at_once(plan: Plan, tmp: Path) -> dict[str, Any]:
    port = free_port_block(2)
    brain = start_brain(plan, port, tmp / "b1.log")
    wait_ready_log(tmp / "b1.log")
    # dead_after=30 s (as tests/test_gateway_faults.py): the restart is seen by the new incarnation id alone,
    # as with systemd's Restart=always and a brain that starts faster than the dead-after deadline
    run = start_gateway(plan, [BrainTarget("brain-1", "127.0.0.1", port)], tmp / "s.db", dead_after=30,
                        startup_grace_s=60)
    wait_fault_time(run, plan)
    fault = time.monotonic()
    os.kill(brain.pid, signal.SIGKILL)
    brain.wait(10)
    start_brain(plan, port, tmp / "b2.log")              # at once, on the same port
    ok = finish(run)
    detected, by = first_event(run.events, fault, ("brain_restarted", "brain_restarts_seen", "brain_dead",
                                                   "brains_declared_dead"))
    rec = pace_recovery([t for t, *_ in run.stored], fault, detected)
    counters = dict(run.gateway.counters)
    return result("brain kill -9, restarted at once", plan, tmp / "s.db", ok, fault, detected, by, rec,
                  counters, alert_kinds(run, fault),
                  note=f"new process's first answer = detection; {counters.get('requeued', 0)} requeued")


def kill_gateway_restarts(plan: Plan, tmp: Path) -> dict[str, Any]:
    port = free_port_block(2)
    start_brain(plan, port, tmp / "b1.log")
    wait_ready_log(tmp / "b1.log")
    reset = shlex.join(["sh", "-c", f"exec {shlex.join(brain_cmd(plan, port, 'brain-1'))} "
                                    f">>{shlex.quote(str(tmp / 'b2.log'))} 2>&1"])
    run = start_gateway(plan, [BrainTarget("brain-1", "127.0.0.1", port, reset=reset)], tmp / "s.db")
    wait_fault_time(run, plan)
    pid = run.gateway.brains[0].status.get("pid")
    fault = time.monotonic()
    os.kill(int(pid), signal.SIGKILL)
    ok = finish(run)
    detected, by = first_event(run.events, fault, ("brain_dead", "brains_declared_dead"))
    rec = pace_recovery([t for t, *_ in run.stored], fault, detected)
    reset_at, _ = first_event(run.events, fault, ("brain_reset",))
    back_at, _ = first_event(run.events, fault, ("brain_back",))
    return result("brain kill -9, gateway restarts it (reset)", plan, tmp / "s.db", ok, fault, detected, by, rec,
                  dict(run.gateway.counters), alert_kinds(run, fault),
                  reset_s=None if reset_at is None else round(reset_at - fault, 3),
                  brain_back_s=None if back_at is None else round(back_at - fault, 3),
                  note=f"reset command at {fmt(None if reset_at is None else reset_at - fault)} s, "
                       f"restarted brain answers at {fmt(None if back_at is None else back_at - fault)} s")


def sigstop(plan: Plan, tmp: Path, stop_s: float = 6.0) -> dict[str, Any]:
    port = free_port_block(2)
    brain = start_brain(plan, port, tmp / "b1.log")
    wait_ready_log(tmp / "b1.log")
    run = start_gateway(plan, [BrainTarget("brain-1", "127.0.0.1", port)], tmp / "s.db")
    wait_fault_time(run, plan)
    fault = time.monotonic()
    os.kill(brain.pid, signal.SIGSTOP)
    time.sleep(stop_s)
    os.kill(brain.pid, signal.SIGCONT)
    ok = finish(run)
    detected, by = first_event(run.events, fault, ("brain_dead", "brains_declared_dead", "deadline_expired"))
    rec = pace_recovery([t for t, *_ in run.stored], fault, detected)
    return result(f"brain SIGSTOP {stop_s:.0f} s, then SIGCONT", plan, tmp / "s.db", ok, fault, detected, by, rec,
                  dict(run.gateway.counters), alert_kinds(run, fault), stopped_s=stop_s,
                  note=f"SIGCONT at {stop_s:.2f} s; {run.gateway.counters.get('requeued', 0)} requeued")


def every_other(plan: Plan, tmp: Path) -> dict[str, Any]:
    from tests.fake_brain import FakeBrain

    def half(brain: FakeBrain, msg: Any) -> list[list[bytes]]:
        return [brain.signal(msg)] if len(brain.requests) % 2 == 0 else []

    base = free_port_block(4)
    fake = FakeBrain(base, plan.aset.routing(), plan.aset.set_id, half)
    brain = start_brain(plan, base + 2, tmp / "b2.log", "brain-2")
    try:
        wait_ready_log(tmp / "b2.log")
        run = start_gateway(plan, [BrainTarget("brain-1", "127.0.0.1", base),
                                   BrainTarget("brain-2", "127.0.0.1", base + 2)], tmp / "s.db")
        ok = finish(run)
    finally:
        fake.close()
        brain.kill()
    ignored = fake.requests[0::2]             # the 1st, 3rd, … window it saw: never answered
    stored_at: dict[tuple[str, int], float] = {}
    for t, sym, bar_time, _ in run.stored:
        stored_at.setdefault((sym, bar_time), t)
    if not ignored:
        return result("brain answers every other request", plan, tmp / "s.db", ok, 0.0, None, "-", (None, None),
                      dict(run.gateway.counters), alert_kinds(run, 0.0))
    first = ignored[0]
    fault = first.sent_ns / 1e9
    detected, by = first_event(run.events, fault, ("deadline_expired",))
    delays = [stored_at[(m.symbol, m.bar_time)] - m.sent_ns / 1e9 for m in ignored
              if (m.symbol, m.bar_time) in stored_at]
    first_stored = stored_at.get((first.symbol, first.bar_time))
    rec = (None if first_stored is None else first_stored - fault,) * 2
    return result("brain answers every other request", plan, tmp / "s.db", ok, fault, detected, by, rec,
                  dict(run.gateway.counters), alert_kinds(run, fault), ignored=len(ignored),
                  windows_to_peer=len(fake.requests),
                  note=f"peer got {len(fake.requests)} windows (least-in-flight routing), ignored {len(ignored)}: "
                       f"each stored by the other brain {fmt(max(delays) if delays else None)} s after its send",
                  request_deadline_s=plan.deadline_s,
                  ignored_delay_p50_s=round(float(np.median(delays)), 3) if delays else None,
                  ignored_delay_max_s=round(max(delays), 3) if delays else None)


def kill_gateway(plan: Plan, tmp: Path) -> dict[str, Any]:
    from heqis.runtime.local_fleet import (
        LocalFleetRequest,
        alive,
        control,
        down_local,
        port_layout,
        read_state,
        spawn,
        up_local,
        write_state,
    )

    state_file = tmp / ".heqis" / "local-fleet.json"
    db = tmp / "signals.sqlite"
    req = LocalFleetRequest(artifacts=plan.artifacts, data_dir=plan.data_dir, brains=1,
                            ports=port_layout(1, free_port_block(5), ws_port=0), rate=plan.rate,
                            start=plan.start.isoformat(), end=plan.end.isoformat(), symbols=SYMBOLS, db=db,
                            wait_s=120, exit_when_done=True)

    def stored_times() -> list[float]:
        if not db.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return [(jd - 2440587.5) * 86400.0 for (jd,) in con.execute("SELECT stored_at FROM signals")]

    last_counters: dict[str, Any] = {}
    try:
        up_local(req, state_file)
        state = read_state(state_file)
        first_at = time.time()
        while time.time() - first_at < 60 and not stored_times():
            time.sleep(0.05)
        first_at = min(stored_times() or [time.time()])
        while time.time() < first_at + plan.fault_after_s:
            time.sleep(0.01)
        before = len(stored_times())
        fault = time.time()
        os.kill(state["gateway"]["pid"], signal.SIGKILL)
        state["gateway"]["pid"] = pid = spawn(state["gateway"]["cmd"], tmp / "gw2.log")   # at once
        write_state(state, state_file)
        detected = None
        while time.time() - fault < 60 and alive(pid):
            doc = control(state["control"], {"cmd": "status"}, 0.5)
            if doc and doc.get("nodes") and doc["nodes"][0].get("pid") == pid:
                detected = detected or time.time()
                last_counters = doc["nodes"][0]["counters"]
            time.sleep(0.05)
        ok = not alive(pid)
    finally:
        down_local(state_file)
    rec = pace_recovery(stored_times(), fault, detected)
    counters = {**last_counters}
    out = result("gateway kill -9, restarted at once", plan, db, ok, fault, detected, "control answers (restarted)",
                 rec, counters, [], stored_before_kill=before,
                 note=f"{before} stored before the kill; the restarted gateway sent {counters.get('sent', 0)}")
    out["failed"] = out["failures_table"]
    return out


SCENARIOS: dict[str, Callable[[Plan, Path], dict[str, Any]]] = {
    "kill-restart": kill_restart_at_once, "kill-dead": kill_gateway_restarts, "sigstop": sigstop,
    "gateway-kill": kill_gateway, "every-other": every_other,
}


def fmt(x: Any) -> str:
    return "—" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def table(rows: list[dict[str, Any]], plan: Plan) -> str:
    head = (f"{len(plan.expected)} bars ({', '.join(SYMBOLS)}, {plan.start} → {plan.end}) at {plan.rate:g} bars/s; "
            f"fault {plan.fault_after_s:g} s into the replay; dead after 3 heartbeats of 1 s; request deadline "
            f"{plan.deadline_s:g} s")
    lines = [head, "", "| fault | detected by | detection s | resumed s | recovery s | lost | duplicated | failed "
                       "| resent | late replies | notes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['fault']} | {r['detected_by']} | {fmt(r['detection_s'])} | {fmt(r['resumed_s'])} | "
                     f"{fmt(r['recovery_s'])} | {r['lost']} | {r['duplicated']} | {r['failed']} | "
                     f"{r['counters'].get('resent', 0)} | {r['counters'].get('duplicates', 0)} | "
                     f"{r.get('note', '')}{'' if r['finished'] else ' — DID NOT FINISH'} |")
    lines += ["", "detection: fault → the gateway notices (counter/alert); resumed: fault → first signal stored after "
                  "detection; recovery: fault → start of the first 0.5 s with >= 80 % of the pre-fault pace; lost: "
                  "replayed bars without a stored signal; duplicated: stored rows − distinct (symbol, bar_time); "
                  "late replies: answers to requests already answered (dropped by the gateway, `duplicates`)."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", type=Path, default=Path("heqis-demo/deploy_output"))
    ap.add_argument("--data-dir", type=Path, default=Path("heqis-demo/data"))
    ap.add_argument("--start", type=date.fromisoformat, default=date(2023, 6, 1), help="first replayed bar")
    ap.add_argument("--bars", type=int, default=700, help="bars to replay (about; whole trade dates)")
    ap.add_argument("--rate", type=float, default=100.0, help="bars per second")
    ap.add_argument("--fault-after", type=float, default=2.0, help="seconds into the replay the fault comes")
    ap.add_argument("--request-deadline", type=float, default=GatewayConfig([]).request_deadline_s,
                    help="the gateway's request_deadline_s")
    ap.add_argument("--only", action="append", choices=list(SCENARIOS), help="run only these scenarios")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="heqis-faults-") as root:
        plan = make_plan(args, Path(root))
        for key in args.only or list(SCENARIOS):
            tmp = Path(root) / key
            tmp.mkdir()
            t0 = time.monotonic()
            try:
                row = SCENARIOS[key](plan, tmp)
            finally:
                reap_children()
            row["scenario_s"] = round(time.monotonic() - t0, 1)
            rows.append(row)
            if not args.json:
                print(f"  {key}: {row['scenario_s']} s", file=sys.stderr)
    if args.json:
        print(json.dumps({"bars": len(plan.expected), "start": str(plan.start), "end": str(plan.end),
                          "rate": plan.rate, "fault_after_s": plan.fault_after_s,
                          "request_deadline_s": plan.deadline_s, "scenarios": rows}, indent=2))
    else:
        print(table(rows, plan))
    ok = all(r["finished"] and r["lost"] == 0 and r["duplicated"] == 0 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

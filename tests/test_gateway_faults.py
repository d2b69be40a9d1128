"""Faults with real brain processes: a brain killed and restarted at once, a brain of another artifact set,
and an oversized frame. Every test counts the stored rows against the bars replayed: none lost, none
duplicated (the signals table's key makes a duplicate row impossible; ``done() == want`` and
``count() == len(want)`` together say every bar is stored exactly once)."""

from __future__ import annotations

import os
import signal
import time
from datetime import date

import numpy as np
import zmq

from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.gateway import BrainTarget
from heqis.runtime.protocol import decode, encode
from heqis.runtime.replay_pack import store_arrays
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import Aligner, ReplaySource
from tests.fake_brain import FakeBrain
from tests.runtime_helpers import GatewayThread, free_ports, gateway_config, start_brain, wait_until
from tests.test_runtime import SYMBOLS, expected_bars


def ready(log) -> bool:
    return log.exists() and log.read_text(errors="replace").count("ready on") >= 1


def test_a_brain_killed_and_restarted_at_once_loses_nothing(tmp_path, sample_store, artifacts):
    """systemd's Restart=always: the new process answers heartbeats before the dead-after deadline, so
    only its new incarnation tells the gateway that what was in flight to the old one is gone."""
    aset = ArtifactSet.open(artifacts)
    base = free_ports(4)
    log1, log2 = tmp_path / "b1.log", tmp_path / "b2.log"
    brain = start_brain(artifacts, base + 2, log=log1)
    start = date(2023, 6, 1)
    try:
        assert wait_until(lambda: ready(log1), 120)
        src = ReplaySource(store_arrays(sample_store.root, SYMBOLS), 560, start, rate=150.0, min_bars=130)
        gw = GatewayThread(gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)], tmp_path / "s.db",
                                          exit_when_done=True, routing=aset.routing(), artifacts_id=aset.set_id,
                                          dead_after=30, startup_grace_s=60), Aligner([src]))
        assert gw.wait(lambda g: g.counters["signals"] > 50, 60)
        os.kill(brain.pid, signal.SIGKILL)
        brain.wait(30)
        brain = start_brain(artifacts, base + 2, log=log2)      # at once; dead_after=30 s: never declared dead
        gw.thread.join(180)
        assert not gw.thread.is_alive(), f"the replay did not finish: {dict(gw.gateway.counters)}"
        g = gw.gateway
        assert g.counters["brain_restarts_seen"] == 1 and g.counters["brains_declared_dead"] == 0
        assert any(a["kind"] == "brain_restarted" for a in g.alerts)
    finally:
        brain.kill()
    store = SignalStore(tmp_path / "s.db")
    want = expected_bars(sample_store, start)
    assert store.done() == want and store.count() == len(want)
    assert g.counters["failed"] == 0


def test_a_brain_of_another_artifact_set_is_refused_with_both_named(tmp_path, sample_store, artifacts):
    aset = ArtifactSet.open(artifacts)
    base = free_ports(6)
    stale = FakeBrain(base + 2, aset.routing(), "0123456789abcdef-old-release")
    good = FakeBrain(base + 4, aset.routing(), aset.set_id)
    start = date(2024, 11, 1)
    src = ReplaySource(store_arrays(sample_store.root, SYMBOLS), 560, start, min_bars=130)
    targets = [BrainTarget("brain-1", "127.0.0.1", base + 2), BrainTarget("brain-2", "127.0.0.1", base + 4)]
    gw = GatewayThread(gateway_config(base, targets, tmp_path / "s.db", exit_when_done=True, routing=aset.routing(),
                                      artifacts_id=aset.set_id), Aligner([src]))
    try:
        gw.thread.join(120)
        assert not gw.thread.is_alive()
    finally:
        gw.stop()
        stale.close()
        good.close()
    node = next(n for n in gw.gateway.status()["nodes"] if n["name"] == "brain-1")
    assert "0123456789abcdef" in node["refused"] and aset.set_id[:16] in node["refused"]
    assert any(a["kind"] == "brain_refused" for a in gw.gateway.alerts)
    assert stale.requests == [] or all(m.kind != "window" for m in stale.requests)
    store = SignalStore(tmp_path / "s.db")
    want = expected_bars(sample_store, start)
    assert store.done() == want and store.count() == len(want)
    assert len(good.requests) == len(want) and gw.gateway.counters["failed"] == 0


def test_an_oversized_frame_is_refused_unread_and_the_brain_answers_on(tmp_path, artifacts):
    base = free_ports(2)
    log = tmp_path / "brain.log"
    brain = start_brain(artifacts, base, log=log)
    ctx = zmq.Context.instance()
    try:
        assert wait_until(lambda: ready(log), 120)
        rogue = ctx.socket(zmq.PUSH)
        rogue.setsockopt(zmq.LINGER, 0)
        rogue.connect(f"tcp://127.0.0.1:{base}")
        big = np.zeros((600_000, 7), np.float32)          # 16 MiB: a legal frame by the protocol, not for this brain
        for _ in range(4):
            rogue.send_multipart(encode("window", 1, "600519.SH", 0, big))
        push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        for s in (push, pull):
            s.setsockopt(zmq.LINGER, 0)
        push.connect(f"tcp://127.0.0.1:{base}")
        pull.connect(f"tcp://127.0.0.1:{base + 1}")
        status = None
        deadline = time.monotonic() + 60
        while status is None and time.monotonic() < deadline:
            if push.poll(100, zmq.POLLOUT):
                push.send_multipart(encode("heartbeat", 1), zmq.NOBLOCK)
            if pull.poll(500):
                status = decode(pull.recv_multipart()).extra
        assert status is not None, "the brain stopped answering"
        assert status["counters"]["windows"] == 0 and status["counters"]["malformed"] == 0   # never read
        import psutil
        assert psutil.Process(brain.pid).memory_info().rss < 1.5 * 2**30
        for s in (rogue, push, pull):
            s.close(0)
    finally:
        brain.kill()


def test_with_keys_only_an_operator_key_changes_state_and_a_viewer_reads(tmp_path, artifacts):
    from heqis.runtime.security import KeyConfig, add_console, client_socket_security, generate_keys

    keys = tmp_path / "keys"
    generate_keys(keys)
    add_console(keys, "watcher", role="viewer")
    base = free_ports(4)
    gw = GatewayThread(gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)], tmp_path / "s.db",
                                      keys=KeyConfig(keys, "gateway")), Aligner([]))

    def ask(cfg: KeyConfig, request: dict) -> dict:
        sock = zmq.Context.instance().socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 30_000)
        client_socket_security(sock, cfg, "gateway")
        sock.connect(f"tcp://127.0.0.1:{base + 1}")
        try:
            sock.send_json(request)
            return sock.recv_json()
        finally:
            sock.close(0)

    try:
        viewer, operator = KeyConfig(keys, "console", name="watcher"), KeyConfig(keys, "console")
        assert ask(viewer, {"cmd": "status"})["ok"] is True
        refused = ask(viewer, {"cmd": "pause"})
        assert refused["ok"] is False and "operator role" in refused["error"] and "viewer" in refused["error"]
        assert gw.gateway.paused is False
        assert ask(operator, {"cmd": "pause"}) == {"ok": True, "paused": True}
        assert gw.gateway.paused is True
    finally:
        gw.stop()


def test_a_stopped_brain_is_declared_dead_its_work_resent_and_it_rejoins_on_sigcont(tmp_path, sample_store,
                                                                                  artifacts):
    aset = ArtifactSet.open(artifacts)
    base = free_ports(6)
    logs = [tmp_path / "b1.log", tmp_path / "b2.log"]
    brains = [start_brain(artifacts, base + 2, "brain-1", log=logs[0]),
              start_brain(artifacts, base + 4, "brain-2", log=logs[1])]
    start = date(2023, 6, 1)
    try:
        assert wait_until(lambda: all(ready(x) for x in logs), 120)
        # 50 bars/s: ~14 s of replay, so the stopped brain has time to rejoin before the end
        src = ReplaySource(store_arrays(sample_store.root, SYMBOLS), 560, start, rate=50.0, min_bars=130)
        targets = [BrainTarget("brain-1", "127.0.0.1", base + 2), BrainTarget("brain-2", "127.0.0.1", base + 4)]
        gw = GatewayThread(gateway_config(base, targets, tmp_path / "s.db", exit_when_done=True,
                                          routing=aset.routing(), artifacts_id=aset.set_id), Aligner([src]))
        assert gw.wait(lambda g: g.counters["signals"] > 50, 60)
        os.kill(brains[0].pid, signal.SIGSTOP)
        assert gw.wait(lambda g: g.counters["brains_declared_dead"] >= 1, 60)
        os.kill(brains[0].pid, signal.SIGCONT)
        gw.thread.join(180)
        assert not gw.thread.is_alive(), f"the replay did not finish: {dict(gw.gateway.counters)}"
        assert gw.gateway.brains[0].alive, "the brain did not rejoin after SIGCONT"
    finally:
        for b in brains:
            os.kill(b.pid, signal.SIGCONT)
            b.kill()
    store = SignalStore(tmp_path / "s.db")
    want = expected_bars(sample_store, start)
    assert store.done() == want and store.count() == len(want)
    assert gw.gateway.counters["failed"] == 0 and gw.gateway.counters["requeued"] >= 1

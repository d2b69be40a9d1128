"""Loud silence: a brain that never answers is reported within a few heartbeats, with the likely cause."""

from __future__ import annotations

from heqis.runtime.gateway import BrainTarget
from heqis.runtime.replay_pack import store_arrays
from heqis.runtime.security import KeyConfig, generate_keys
from heqis.runtime.sources import Aligner, ReplaySource
from tests.runtime_helpers import GatewayThread, free_ports, gateway_config, start_brain, wait_until


def silent_brain(gw: GatewayThread) -> dict:
    return next(n for n in gw.gateway.status()["nodes"] if n["role"] == "brain")


def replay(sample_store) -> Aligner:
    return Aligner([ReplaySource(store_arrays(sample_store.root, ["600519.SH"]), 560, rate=1.0, min_bars=130)])


def test_keys_on_the_gateway_only_are_reported_as_the_likely_cause(sample_store, artifacts, tmp_path):
    keys = tmp_path / "keys"
    generate_keys(keys)
    base = free_ports(6)
    brain = start_brain(artifacts, base + 2, log=tmp_path / "brain.log")          # plain TCP, no --keys
    try:
        assert wait_until(lambda: "ready" in (tmp_path / "brain.log").read_text(errors="replace"), 120)
        cfg = gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)], tmp_path / "s.db",
                             keys=KeyConfig(keys, "gateway"))
        gw = GatewayThread(cfg, replay(sample_store))
        try:
            # 3 heartbeats of 1 s; 60 s is the generous bound for a loaded machine, not a speed test
            assert gw.wait(lambda g: silent_brain(gw)["silent"], 60), "the silence was never reported"
            cause = silent_brain(gw)["silent"]
            assert "CURVE handshake failed" in cause and "without them" in cause
            alert = next(a for a in gw.gateway.alerts if a["kind"] == "brain_silent")
            assert "brain-1 has not answered" in alert["text"] and cause in alert["text"]
            assert gw.gateway.snapshot()["alerts"][-1]["kind"] == "brain_silent"      # telemetry carries it
            assert gw.gateway.counters["signals"] == 0
        finally:
            gw.stop()
    finally:
        brain.kill()


def test_keys_on_the_brain_only_and_nothing_listening(sample_store, artifacts, tmp_path):
    keys = tmp_path / "keys"
    generate_keys(keys)
    base = free_ports(8)
    brain = start_brain(artifacts, base + 2, log=tmp_path / "brain.log", extra=["--keys", str(keys)])
    try:
        assert wait_until(lambda: "ready" in (tmp_path / "brain.log").read_text(errors="replace"), 120)
        targets = [BrainTarget("brain-1", "127.0.0.1", base + 2), BrainTarget("nobody", "127.0.0.1", base + 4)]
        gw = GatewayThread(gateway_config(base, targets, tmp_path / "s.db"), replay(sample_store))
        try:
            assert gw.wait(lambda g: all(n["silent"] for n in g.status()["nodes"][1:]), 60)
            nodes = {n["name"]: n for n in gw.gateway.status()["nodes"]}
            assert "runs with --keys but the gateway has none" in nodes["brain-1"]["silent"]
            assert f"nothing listens on 127.0.0.1:{base + 4}" in nodes["nobody"]["silent"]
        finally:
            gw.stop()
    finally:
        brain.kill()


def test_a_brain_that_answers_is_never_silent_and_a_late_one_is_announced(sample_store, artifacts, tmp_path):
    base = free_ports(6)
    cfg = gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)], tmp_path / "s.db")
    gw = GatewayThread(cfg, replay(sample_store))
    brain = None
    try:
        assert gw.wait(lambda g: silent_brain(gw)["silent"], 60)
        brain = start_brain(artifacts, base + 2, log=tmp_path / "brain.log")    # it starts late: then answers
        assert gw.wait(lambda g: silent_brain(gw)["alive"], 120)
        assert silent_brain(gw)["silent"] is None
        assert any(a["kind"] == "brain_back" for a in gw.gateway.alerts)
    finally:
        gw.stop()
        if brain is not None:
            brain.kill()

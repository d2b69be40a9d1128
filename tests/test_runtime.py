"""The edge runtime on loopback: real ZeroMQ sockets, real brain processes, a real SQLite store."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import date

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heqis.features.windows import Scaler, inference_windows
from heqis.runtime.bars import H, brain_input, history_length, request_window
from heqis.runtime.gateway import BrainTarget
from heqis.runtime.protocol import Decoder, ProtocolError, decode, encode, pack
from heqis.runtime.replay_pack import load_pack, store_arrays, write_pack
from heqis.runtime.ringbuffer import RingBuffer
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import (
    Aligner,
    ModbusMap,
    ModbusSource,
    ReplaySource,
    decode_registers,
    encode_registers,
)
from tests.runtime_helpers import GatewayThread, free_ports, gateway_config, modbus_server, start_brain, wait_until

SYMBOLS = ["600519.SH", "000001.SZ"]


# -- protocol ------------------------------------------------------------------------------------
def test_protocol_round_trip():
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    msg = decode(encode("window", 7, "600519.SH", 123456789, data, {"a": 1}))
    assert (msg.kind, msg.seq, msg.symbol, msg.bar_time, msg.extra) == ("window", 7, "600519.SH", 123456789, {"a": 1})
    np.testing.assert_array_equal(msg.data, data)
    assert decode(encode("heartbeat", 1)).data is None
    # a request packed once when it is made sends the same bytes as the array it was packed from
    assert encode("window", 7, "X", 1, pack(data), sent_ns=5) == encode("window", 7, "X", 1, data, sent_ns=5)


@pytest.mark.parametrize("frames, reason", [
    ([b"x"], "expected 2 frames"),
    ([b"\xc1", b""], "not msgpack"),
    ([msgpack.packb({"v": 2}), b""], "version"),
    ([encode("window", 1)[0], b"\x00\x00"], "payload has 2 bytes"),
    ([msgpack.packb({"v": 1, "k": "window", "s": 1, "sym": "X", "t": 0, "shape": [10**9, 10**9], "dtype": "<f4",
                     "ns": 0, "x": {}}), b""], "bad shape"),
    ([msgpack.packb({"v": 1, "k": "evil", "s": 1}), b""], "unknown kind"),
    ([msgpack.packb({"v": 1, "k": "window", "s": "1"}), b""], "type str"),
])
def test_strict_decoder_rejects(frames, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(frames)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=256), min_size=0, max_size=4))
def test_decoder_never_crashes_on_random_frames(frames):
    d = Decoder("fuzz")
    d(frames)  # returns a Message or None, never raises


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 100), st.data())
def test_decoder_survives_truncation_and_forged_shapes(cut, data):
    header, payload = encode("window", 3, "X", 1, np.ones((5, 6), np.float32))
    d = Decoder("fuzz")
    assert d([header[: len(header) * cut // 100], payload]) is None or cut == 100
    assert d([header, payload[: len(payload) * cut // 100]]) is None or cut == 100
    shape = data.draw(st.lists(st.integers(-5, 2**40), max_size=6))
    forged = msgpack.packb({"v": 1, "k": "window", "s": 1, "sym": "X", "t": 0, "shape": shape, "dtype": "<f4",
                            "ns": 0, "x": {}})
    msg = d([forged, payload])
    assert msg is None or list(msg.data.shape) == shape


# -- features: the brain computes what research computes -----------------------------------------
def test_brain_window_equals_research_features(sample_store, tiny_run):
    """What a replayed request gives the brain equals the research inputs, on every bar of a symbol with a
    bonus issue and yearly dividends (the request re-bases its prices on its own latest factor)."""
    scaler = Scaler.load(tiny_run / "scaler_params.json")
    bars = sample_store.read_bars("300750.SZ")
    research_x, dates = inference_windows(bars, scaler.window)
    research = scaler.transform(research_x)
    _, rows = store_arrays(sample_store.root, ["300750.SZ"])["300750.SZ"]
    hist = history_length(scaler.window)
    worst = 0.0
    for i in range(hist - 1, len(bars)):
        live = brain_input(request_window(rows[i + 1 - hist: i + 1]), scaler)
        j = int(np.flatnonzero(dates == bars["trade_date"].to_numpy()[i])[0])
        worst = max(worst, float(np.max(np.abs(live - research[j]))))
    assert worst < 1e-6
    assert len(np.unique(rows[:, H["adj_factor"]])) > 4       # the factor really changes inside the span


# -- ring buffer ------------------------------------------------------------------------------------
def test_ring_buffer_counts_what_it_drops():
    ring: RingBuffer[int] = RingBuffer(3)
    dropped = [ring.push(i) for i in range(5)]
    assert dropped == [None, None, None, 0, 1] and ring.dropped == 2 and len(ring) == 3
    ring.push_front([10, 11])      # re-sends go first and are never dropped
    assert [ring.pop() for _ in range(len(ring))] == [10, 11, 2, 3, 4]


def test_source_faster_than_brains_drops_are_counted_and_reported(sample_store, tmp_path):
    base = free_ports(4)
    src = ReplaySource(store_arrays(sample_store.root, SYMBOLS), 600, date(2023, 1, 1), rate=2000.0, min_bars=130)
    gw = GatewayThread(gateway_config(base, [BrainTarget("ghost", "127.0.0.1", base + 2)], tmp_path / "s.db",
                                      ring=16), Aligner([src]))
    try:
        assert gw.wait(lambda g: g.counters["dropped"] > 100, 60)
    finally:
        gw.stop()                     # counted once the loop has stopped: the numbers are one instant's
    dropped = gw.gateway.status()["nodes"][0]["counters"]["dropped"]
    assert dropped == src.emitted - len(gw.gateway.ring)   # every bar is either waiting or counted as dropped
    assert gw.gateway.snapshot()["drops"] == gw.gateway.ring.dropped


# -- end to end ---------------------------------------------------------------------------------------
def expected_bars(store, start: date) -> set[tuple[str, int]]:
    out = set()
    for s in SYMBOLS:
        b = store.read_bars(s)
        t = b["trade_date"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        idx = np.arange(len(b))
        keep = (t >= np.datetime64(start, "ns").astype(np.int64)) & (idx + 1 >= 130)
        out |= {(s, int(x)) for x in t[keep]}
    return out


def test_replay_n_bars_gives_exactly_n_signals_in_order(sample_store, artifacts, tmp_path):
    base = free_ports(6)
    brain = start_brain(artifacts, base + 2, log=tmp_path / "brain.log")
    try:
        start = date(2024, 9, 2)
        src = ReplaySource(store_arrays(sample_store.root, SYMBOLS), 560, start, min_bars=130)
        gw = GatewayThread(gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)], tmp_path / "s.db",
                                          exit_when_done=True), Aligner([src]))
        gw.thread.join(90)
        assert not gw.thread.is_alive(), "the replay did not finish"
        store = SignalStore(tmp_path / "s.db")
        want = expected_bars(sample_store, start)
        assert store.count() == len(want) == src.total
        assert store.done() == want
        for s in SYMBOLS:
            times = [r[1] for r in store.rows(s)]
            assert times == sorted(times), "one brain answers in order"
        assert gw.gateway.counters["duplicates"] == 0 and gw.gateway.decoder.dropped == 0
    finally:
        brain.kill()


def fleet(tmp_path, artifacts, sample_store, rate: float, start: str):
    from heqis.runtime.local_fleet import LocalFleetRequest, port_layout, up_local

    base = free_ports(8)
    state = tmp_path / ".heqis" / "local-fleet.json"
    req = LocalFleetRequest(artifacts=artifacts, data_dir=sample_store.root, brains=1, ports=port_layout(1, base),
                            rate=rate, start=start, symbols=SYMBOLS, db=tmp_path / "signals.sqlite", wait_s=60)
    return up_local(req, state), state


def gateway_status(state_file):
    from heqis.runtime.local_fleet import control, read_state

    return control(read_state(state_file)["control"], {"cmd": "status"}, 2.0)


@pytest.mark.slow
def test_kill_9_a_brain_under_load(tmp_path, artifacts, sample_store):
    from heqis.runtime.local_fleet import down_local, read_state

    _, state_file = fleet(tmp_path, artifacts, sample_store, rate=150.0, start="2023-06-01")
    try:
        assert wait_until(lambda: gateway_status(state_file)["nodes"][0]["counters"].get("signals", 0) > 50, 30)
        victim = read_state(state_file)["brains"][0]["pid"]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        # declared dead after 3 missed heartbeats of 1 s: never earlier; the bound is 10× that, for a loaded machine
        assert wait_until(lambda: gateway_status(state_file)["nodes"][1]["counters"]["dead_events"] >= 1, 30)
        detected = time.monotonic() - killed_at
        assert detected >= 3 * 1.0 - 0.5, f"declared dead after {detected:.1f} s, before 3 heartbeats were missed"
        assert wait_until(lambda: read_state(state_file)["brains"][0]["pid"] != victim, 30), "no restart"
        assert wait_until(lambda: gateway_status(state_file)["nodes"][1]["alive"], 60), "the new brain never answered"
        want = expected_bars(sample_store, date(2023, 6, 1))
        assert wait_until(lambda: SignalStore(tmp_path / "signals.sqlite").count() == len(want), 60)
    finally:
        down_local(state_file)
    store = SignalStore(tmp_path / "signals.sqlite")
    assert store.done() == want and store.count() == len(want)   # none lost, none duplicated


@pytest.mark.slow
def test_kill_and_restart_the_gateway_resumes_without_duplicates(tmp_path, artifacts, sample_store):
    from heqis.runtime.local_fleet import down_local, read_state, spawn, write_state

    _, state_file = fleet(tmp_path, artifacts, sample_store, rate=200.0, start="2023-06-01")
    want = expected_bars(sample_store, date(2023, 6, 1))
    db = tmp_path / "signals.sqlite"
    try:
        assert wait_until(lambda: SignalStore(db).count() > 100, 30)
        state = read_state(state_file)
        os.kill(state["gateway"]["pid"], signal.SIGKILL)
        time.sleep(0.5)
        before = SignalStore(db).count()
        assert 0 < before < len(want)
        state["gateway"]["pid"] = spawn(state["gateway"]["cmd"], tmp_path / "gw2.log")
        write_state(state, state_file)
        assert wait_until(lambda: SignalStore(db).count() == len(want), 90)
        counters = gateway_status(state_file)["nodes"][0]["counters"]
        assert counters["sent"] <= len(want) - before + 64    # resumed: did not replay what was stored
    finally:
        down_local(state_file)
    assert SignalStore(db).done() == want


# -- Modbus ----------------------------------------------------------------------------------------------
def test_registers_round_trip():
    regs = encode_registers(5, date(2025, 1, 3), 1500.123, 1520.5, 1490.0, 1510.25, 123456)
    seq, t, row = decode_registers(regs)
    assert seq == 5 and t == np.datetime64("2025-01-03", "ns").astype(np.int64)
    np.testing.assert_allclose(row[:4], [1500.123, 1520.5, 1490.0, 1510.25], rtol=1e-6)
    assert row[H["vol"]] == 123456 and np.isnan(row[H["turnover"]])       # unknown turnover: estimated later
    _, _, with_turnover = decode_registers(encode_registers(6, date(2025, 1, 3), 10, 11, 9, 10.5, 500, 1.37))
    assert with_turnover[H["turnover"]] == pytest.approx(1.37)


def test_modbus_registers_arrive_at_the_brain_as_bars(sample_store, artifacts, tmp_path):
    base = free_ports(8)
    brain = start_brain(artifacts, base + 2, log=tmp_path / "brain.log")
    try:
        with modbus_server(base + 5):
            from pymodbus.client import ModbusTcpClient

            plc = ModbusTcpClient("127.0.0.1", port=base + 5)
            assert plc.connect()
            src = ModbusSource("127.0.0.1", base + 5, [ModbusMap("600519.SH", 0)], 560,
                               store_arrays(sample_store.root, ["600519.SH"]), interval=0.05)
            gw = GatewayThread(gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)],
                                              tmp_path / "s.db"), Aligner([src]))
            try:
                last = sample_store.read_bars("600519.SH").iloc[-1]
                for seq, day in ((1, date(2025, 1, 2)), (2, date(2025, 1, 3))):
                    regs = encode_registers(seq, day, last["open"], last["high"] * 1.01, last["low"],
                                            last["close"] * 1.005, 30000)
                    assert not plc.write_registers(0, regs, device_id=1).isError()
                    t = int(np.datetime64(day, "ns").astype(np.int64))
                    # the gateway's own thread flushes its store every 50 ms; this thread only reads it
                    assert gw.wait(lambda g, t=t: ("600519.SH", t) in {(r[0], r[1]) for r in g.store.rows()},
                                   20), f"no signal for {day}"
                assert src.errors == 0
            finally:
                gw.stop()
                src.close()
                plc.close()
    finally:
        brain.kill()


# -- CURVE -----------------------------------------------------------------------------------------------
def test_curve_admits_only_allow_listed_clients(artifacts, tmp_path):
    import zmq

    from heqis.runtime.security import KeyConfig, client_socket_security, generate_keys

    keys = tmp_path / "keys"
    generate_keys(keys)
    assert (keys / "brain.key_secret").stat().st_mode & 0o777 == 0o600
    base = free_ports(4)
    brain = start_brain(artifacts, base, log=tmp_path / "brain.log", extra=["--keys", str(keys)])
    try:
        def ask(identity_dir, identity) -> bool:
            ctx = zmq.Context.instance()
            push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
            for s in (push, pull):
                s.setsockopt(zmq.LINGER, 0)
                client_socket_security(s, KeyConfig(identity_dir, identity), "brain")
            if identity_dir != keys:   # a stranger who knows the brain's public key but is not allow-listed
                for s in (push, pull):
                    s.curve_serverkey = KeyConfig(keys, "gateway").public("brain")
            push.connect(f"tcp://127.0.0.1:{base}")
            pull.connect(f"tcp://127.0.0.1:{base + 1}")
            try:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    if push.poll(10, zmq.POLLOUT):
                        with contextlib.suppress(zmq.Again):   # a refused handshake drops the pipe after poll
                            push.send_multipart(encode("heartbeat", 1), zmq.NOBLOCK)
                    if pull.poll(300):
                        return decode(pull.recv_multipart()).kind == "heartbeat"
                return False
            finally:
                push.close(0)
                pull.close(0)

        assert ask(keys, "gateway") is True
        stranger = tmp_path / "stranger"
        generate_keys(stranger)
        assert ask(stranger, "gateway") is False
    finally:
        brain.kill()


def test_telemetry_on_pub_and_websocket_and_control(sample_store, artifacts, tmp_path):
    import json as _json

    from websockets.sync.client import connect

    from heqis.runtime.local_fleet import control
    from tests.runtime_helpers import subscribe

    base = free_ports(8)
    brain = start_brain(artifacts, base + 4, log=tmp_path / "brain.log")
    try:
        src = ReplaySource(store_arrays(sample_store.root, SYMBOLS), 560, date(2024, 12, 2), rate=20.0, min_bars=130)
        cfg = gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 4)], tmp_path / "s.db")
        cfg.ws_port = base + 2
        sub = subscribe(f"tcp://127.0.0.1:{base}")
        gw = GatewayThread(cfg, Aligner([src]))
        try:
            topics: dict[bytes, dict] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not {b"telemetry", b"signal"} <= set(topics):
                if sub.poll(200):
                    topic, body = sub.recv_multipart()
                    topics[topic] = _json.loads(body)
            assert {b"telemetry", b"signal"} <= set(topics)
            tel = topics[b"telemetry"]
            assert {"fleet", "nodes", "latency", "queue_depth", "drops", "cpu_percent", "memory_mb"} <= set(tel)
            sig = topics[b"signal"]
            assert sig["symbol"] in SYMBOLS and sig["model"].startswith("G") and sig["latency_us"] > 0
            with connect(f"ws://127.0.0.1:{base + 2}", open_timeout=30) as ws:
                doc = _json.loads(ws.recv(timeout=30))
                assert doc["topic"] in ("telemetry", "signal", "alert")
            address = f"tcp://127.0.0.1:{base + 1}"
            assert control(address, {"cmd": "pause"})["paused"] is True
            assert control(address, {"cmd": "resume"})["paused"] is False
            assert control(address, {"cmd": "nope"})["ok"] is False
            assert control(address, {"cmd": "reset", "brain": "ghost"})["ok"] is False
        finally:
            gw.stop()
            sub.close(0)
    finally:
        brain.kill()


def test_replay_pack_round_trip_needs_numpy_only(sample_store, tmp_path):
    import subprocess
    import sys

    arrays = store_arrays(sample_store.root)
    assert "000300.SH" not in arrays and set(SYMBOLS) <= set(arrays)      # indices are not replayed
    path = write_pack(arrays, tmp_path / "replay.npz")
    again = load_pack(path)
    for sym, (t, v) in arrays.items():
        np.testing.assert_array_equal(again[sym][0], t)
        np.testing.assert_array_equal(again[sym][1], v)
    code = (f"import sys; from heqis.runtime.replay_pack import load_pack; load_pack({str(path)!r}); "
            "print([m for m in ('pandas', 'pyarrow', 'torch') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


@pytest.mark.slow
def test_bench_runtime_measures_the_fleet_against_an_echo_process(sample_store, artifacts):
    """``heqis bench runtime`` end to end, short: every replayed bar answered and stored, the baseline from
    its own echo process (paced and back to back) with a signal-sized reply, the ratio from those numbers."""
    from heqis.runtime.bench import bench_runtime, signal_like

    r = bench_runtime(artifacts, sample_store.root, rate=200.0, seconds=1.0, brain_counts=[1], rounds=2)
    lat, pp = r["latency"], r["pingpong"]
    assert lat["sent"] == lat["received"] == lat["stored"] == 200
    assert len(r["by_round"]) == 2 and all(b["pingpong_p50_us"] > 0 for b in r["by_round"])
    assert pp["p50_us"] > 0 and pp["back_to_back_p50_us"] > 0 and pp["rate"] == 200.0
    assert 0 < pp["bytes"] - r["payload_bytes"] < 100                 # the request's payload plus its header
    assert len(b"".join(signal_like())) < 512 < pp["bytes"]          # window-sized out, signal-sized back
    assert r["overhead_ratio"] == pytest.approx(lat["p50_us"] / (pp["p50_us"] + r["brain_p50_us"]))
    assert r["brain_p50_us"] > 0
    (row,) = r["throughput"]
    assert row["zero_loss"] and row["windows"] > 0 and row["dropped"] == 0

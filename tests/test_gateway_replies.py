"""The gateway trusts its own request record, not the reply: bad, spoofed, error and missing replies are
counted by reason and sent again, and the gateway never exits on what arrives over a socket."""

from __future__ import annotations

import json
import math
import time
from datetime import date

import msgpack
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heqis.formats.artifacts import ArtifactSet, route_for
from heqis.runtime.control import split_request
from heqis.runtime.gateway import BrainTarget, Gateway, Request
from heqis.runtime.protocol import decode, encode
from heqis.runtime.replay_pack import store_arrays
from heqis.runtime.replies import Checked, Expected, check_reply
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import Aligner, Bar, ReplaySource
from tests.fake_brain import FakeBrain
from tests.runtime_helpers import GatewayThread, free_ports, gateway_config
from tests.test_runtime import SYMBOLS, expected_bars

START = date(2024, 11, 1)
GOOD = np.array([0.01, 0.2, 0.3, 0.5, 1.0], np.float32)
EXPECTED = Expected("600519.SH", 7, "G1", "abc")
FIELDS = {"model": "G1", "artifacts": "abc", "queue_us": 1.0, "pre_us": 2.0, "inf_us": 3.0}


# -- check_reply: known answers ------------------------------------------------------------------
@pytest.mark.parametrize("symbol, bar_time, data, extra, reason", [
    ("600519.SH", 7, GOOD[:3], FIELDS, "bad_payload"),                      # a 3-value payload
    ("600519.SH", 7, np.array([1, 5], np.float32), FIELDS, "bad_payload"),  # [1, 5]
    ("600519.SH", 7, np.array([0, .2, .3, .5, np.nan], np.float32), FIELDS, "bad_payload"),   # NaN action
    ("600519.SH", 7, np.array([np.inf, .2, .3, .5, 1], np.float32), FIELDS, "bad_payload"),   # inf return
    ("600519.SH", 7, np.array([0, .2, .3, .5, 7], np.float32), FIELDS, "bad_action"),
    ("600519.SH", 7, np.array([0, .9, .9, .5, 1], np.float32), FIELDS, "bad_probabilities"),
    ("600519.SH", 7, None, FIELDS, "bad_payload"),
    ("600519.SH", 7, GOOD, {**FIELDS, "model": ["G1"]}, "wrong_model"),       # a list as model
    ("600519.SH", 7, GOOD, {**FIELDS, "model": "G2"}, "wrong_model"),         # not the routed model
    ("600519.SH", 7, GOOD, {**FIELDS, "queue_us": "12"}, "bad_timing"),       # a string queue_us
    ("600519.SH", 7, GOOD, {**FIELDS, "pre_us": -1.0}, "bad_timing"),
    ("HACKED.SH", 7, GOOD, FIELDS, "wrong_symbol"),
    ("600519.SH", 8, GOOD, FIELDS, "wrong_bar_time"),
    ("600519.SH", 7, GOOD, {**FIELDS, "artifacts": "other"}, "wrong_artifacts"),
    ("600519.SH", 7, None, {"error": "too few bars"}, "brain_error"),
])
def test_check_reply_refuses_with_the_reason(symbol, bar_time, data, extra, reason):
    assert check_reply(symbol, bar_time, data, extra, EXPECTED) == reason


def test_check_reply_takes_the_numbers_of_a_valid_reply():
    got = check_reply("600519.SH", 7, GOOD, {**FIELDS, "queue_us": None}, EXPECTED)
    assert isinstance(got, Checked)
    assert (got.action, got.model, got.artifacts) == (1, "G1", "abc")
    assert got.reg == pytest.approx(0.01) and got.p_up == pytest.approx(0.5)
    assert got.timing == {"queue_us": None, "pre_us": 2.0, "inf_us": 3.0}


# -- control request framing -----------------------------------------------------------------------
@pytest.mark.parametrize("frames, envelope, error", [
    ([b"id", b"", b'{"cmd": "status"}'], [b"id", b""], None),                 # REQ client
    ([b"id", b'{"cmd": "status"}'], [b"id"], None),                           # DEALER client
    ([b"id", b"", b"{}", b"extra"], [b"id", b""], "send one JSON frame (got 2)"),   # the 2-frame request
    ([b"id", b""], [b"id", b""], "send one JSON frame (got 0)"),
    ([b"id", b"", b"\xff\xfe"], [b"id", b""], "send a JSON object with 'cmd'"),
    ([b"id", b"", b'["status"]'], [b"id", b""], "send a JSON object with 'cmd'"),
    ([b"id", b"", b'{"cmd": 5}'], [b"id", b""], "send a JSON object with 'cmd'"),
])
def test_control_requests_are_split_into_envelope_and_one_json_body(frames, envelope, error):
    got = split_request(frames)
    assert got.envelope == envelope and got.error == error
    assert (got.request == {"cmd": "status"}) == (error is None)


# -- a gateway against a scripted brain -------------------------------------------------------------
def replay(sample_store, start: date = START) -> Aligner:
    return Aligner([ReplaySource(store_arrays(sample_store.root, SYMBOLS), 560, start, min_bars=130)])


def run_against(tmp_path, sample_store, artifacts, answers, brains: int = 1, **cfg):
    """Replay from START to a gateway whose brains are FakeBrains answering with ``answers[i]``; returns
    (gateway, store, fake brains) once the gateway finished (exit-when-done)."""
    aset = ArtifactSet.open(artifacts)
    base = free_ports(2 + 2 * brains)
    fakes = [FakeBrain(base + 2 + 2 * i, aset.routing(), aset.set_id, answers[i]) for i in range(brains)]
    targets = [BrainTarget(f"brain-{i + 1}", "127.0.0.1", base + 2 + 2 * i) for i in range(brains)]
    config = gateway_config(base, targets, tmp_path / "s.db", exit_when_done=True, routing=aset.routing(),
                            artifacts_id=aset.set_id, **cfg)
    gw = GatewayThread(config, replay(sample_store))
    try:
        gw.thread.join(120)
        assert not gw.thread.is_alive(), f"the replay did not finish: {dict(gw.gateway.counters)}"
    finally:
        gw.stop()
        for f in fakes:
            f.close()
    return gw.gateway, SignalStore(tmp_path / "s.db"), fakes


BAD = [
    lambda b, m: b.signal(m, GOOD[:3]),
    lambda b, m: b.signal(m, np.array([1, 5], np.float32)),
    lambda b, m: b.signal(m, np.array([0, .2, .3, .5, np.nan], np.float32)),
    lambda b, m: b.signal(m, np.array([np.inf, .2, .3, .5, 1], np.float32)),
    lambda b, m: b.signal(m, model=["G1"]),
    lambda b, m: b.signal(m, queue_us="12"),
    lambda b, m: b.signal(m, symbol="HACKED.SH"),
    lambda b, m: b.signal(m, model="G999"),
    lambda b, m: encode("signal", m.seq, m.symbol, m.bar_time, None, {"error": "boom", "inc": b.incarnation}),
]


def test_bad_and_spoofed_replies_are_refused_resent_and_nothing_is_lost(tmp_path, sample_store, artifacts):
    def first_bad_then_good(brain: FakeBrain, msg):
        seen = sum(1 for r in brain.requests if r.seq == msg.seq)
        if seen == 1:
            return [BAD[msg.seq % len(BAD)](brain, msg)]
        return [brain.signal(msg)]

    gw, store, _ = run_against(tmp_path, sample_store, artifacts, [first_bad_then_good],
                               request_deadline_s=30.0)
    want = expected_bars(sample_store, START)
    assert store.done() == want and store.count() == len(want), "every bar stored once"
    assert all(r[0] != "HACKED.SH" for r in store.rows()), "a spoofed symbol was stored"
    routing = ArtifactSet.open(artifacts).routing()
    assert {r[2] for r in store.rows()} <= {route_for(routing, s)["generator"] for s in SYMBOLS}
    assert set(gw.rejected) == {"bad_payload", "wrong_model", "bad_timing", "wrong_symbol", "brain_error"}
    assert gw.counters["rejected_replies"] == len(want) and gw.counters["resent"] == len(want)
    assert gw.counters["failed"] == 0


def test_a_bar_no_brain_answers_is_stored_as_failed_and_the_replay_still_ends(tmp_path, sample_store, artifacts):
    def refuse_one_symbol(brain: FakeBrain, msg):
        if msg.symbol == SYMBOLS[0]:
            return [encode("signal", msg.seq, msg.symbol, msg.bar_time, None,
                           {"error": "window has too few bars or invalid values", "inc": brain.incarnation})]
        return [brain.signal(msg)]

    gw, store, fakes = run_against(tmp_path, sample_store, artifacts, [refuse_one_symbol], max_attempts=2)
    want = expected_bars(sample_store, START)
    failed = {(s, t) for s, t in want if s == SYMBOLS[0]}
    assert store.done() == want - failed
    rows = store.failures()
    assert {(r["symbol"], r["bar_time"]) for r in rows} == failed
    assert all(r["attempts"] == 2 and r["reason"].startswith("brain_error: window has too few bars") for r in rows)
    assert sum(1 for m in fakes[0].requests if m.symbol == SYMBOLS[0]) == 2 * len(failed)
    assert gw.counters["failed"] == len(failed) == gw.status()["nodes"][0]["counters"]["stored_failed"]


def test_a_brain_that_answers_every_other_request_loses_nothing(tmp_path, sample_store, artifacts):
    def every_other(brain: FakeBrain, msg):
        return [brain.signal(msg)] if len(brain.requests) % 2 == 0 else []

    gw, store, fakes = run_against(tmp_path, sample_store, artifacts, [every_other, FakeBrain.valid], brains=2,
                                   request_deadline_s=0.5)
    want = expected_bars(sample_store, START)
    assert store.done() == want and store.count() == len(want)
    assert gw.counters["deadline_expired"] >= 1 and gw.counters["failed"] == 0
    assert len(fakes[0].requests) >= 2 and len(fakes[1].requests) >= 1


def test_replies_for_a_request_sent_to_another_brain_are_refused(tmp_path, sample_store, artifacts):
    """Brain 2 answers every request it sees twice, the second time with seq + 1 (a request sent to brain 1
    or not at all): never stored, counted as not sent to it or as a duplicate."""
    def twins(brain: FakeBrain, msg):
        return [brain.signal(msg), encode("signal", msg.seq + 1, "HACKED.SH", msg.bar_time, GOOD,
                                          {"model": brain.model(msg.symbol), "artifacts": brain.artifacts_id})]

    gw, store, _ = run_against(tmp_path, sample_store, artifacts, [FakeBrain.valid, twins], brains=2)
    want = expected_bars(sample_store, START)
    assert store.done() == want and store.count() == len(want)
    assert all(r[0] != "HACKED.SH" for r in store.rows())
    assert gw.rejected["not_sent_to_this_brain"] + gw.counters["duplicates"] + gw.rejected["wrong_symbol"] > 0


# -- fuzz: the reply path and the control socket ---------------------------------------------------
COUNTED = ("malformed", "heartbeats", "signals", "rejected_replies", "duplicates", "unexpected_kind")
int64 = st.integers(-2**63, 2**63 - 1)      # what msgpack can carry
values = st.one_of(st.none(), st.booleans(), int64, st.floats(allow_nan=True), st.text(max_size=80),
                   st.binary(max_size=20), st.lists(int64, max_size=3),
                   st.dictionaries(st.text(max_size=5), int64, max_size=3))


@pytest.fixture(scope="module")
def bare_gateway(tmp_path_factory, artifacts):
    """A gateway with one brain link (nothing listening behind it) and no source, driven by hand."""
    aset = ArtifactSet.open(artifacts)
    base = free_ports(4)
    db = tmp_path_factory.mktemp("fuzz") / "s.db"
    gw = Gateway(gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)], db,
                                routing=aset.routing(), artifacts_id=aset.set_id), Aligner([]))
    yield gw
    gw.close()


def _in_flight(gw: Gateway, seq: int) -> Request:
    bar = Bar(1_700_000_000_000_000_000, "600519.SH", np.ones((1, 7), np.float32))
    req = Request(seq, bar, attempts=1, brain="brain-1", sent_ns=1, deadline=math.inf, sent_to={"brain-1"})
    gw.brains[0].in_flight[seq] = req
    gw.pending[seq] = req
    return req


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["signal", "signal", "heartbeat", "window", "control"]),
       seq=st.integers(0, 3), symbol=st.sampled_from(["600519.SH", "HACKED.SH", ""]),
       bar_time=st.sampled_from([1_700_000_000_000_000_000, 0]),
       data=st.one_of(st.none(), st.lists(st.floats(width=32), max_size=7)),
       extra=st.dictionaries(st.sampled_from(["model", "artifacts", "inc", "incarnation", "queue_us", "pre_us",
                                              "inf_us", "error", "counters", "pid", "artifacts_sha256", "name"]),
                             values, max_size=8),
       raw=st.one_of(st.none(), st.lists(st.binary(max_size=64), max_size=3)))
def test_no_reply_can_crash_the_gateway_and_every_one_is_counted(bare_gateway, kind, seq, symbol, bar_time, data,
                                                                 extra, raw):
    gw = bare_gateway
    if seq not in gw.pending:
        _in_flight(gw, seq)
    if raw is not None:
        frames = raw
    else:
        arr = None if data is None else np.array(data, np.float32)
        frames = encode(kind, seq, symbol, bar_time, arr, extra)
    before = sum(gw.counters[c] for c in COUNTED)
    gw.handle(gw.brains[0], frames)
    assert sum(gw.counters[c] for c in COUNTED) == before + 1
    json.dumps(gw.status(), allow_nan=True)        # the status document still renders
    gw.store.flush()
    gw.snapshot()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=100), min_size=1, max_size=4))
def test_the_control_socket_answers_every_message_once(bare_gateway, frames):
    gw = bare_gateway
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(f"tcp://127.0.0.1:{gw.cfg.control_port}")
    try:
        dealer.send_multipart(frames)
        dealer.send_multipart([b"", json.dumps({"cmd": "status"}).encode()])   # REQ-style: delimiter + body
        answers = []
        deadline = time.monotonic() + 30
        while len(answers) < 2 and time.monotonic() < deadline:
            gw._control()
            while dealer.poll(10):
                answers.append(dealer.recv_multipart())
        assert len(answers) == 2, "a control request went unanswered"
        assert not dealer.poll(100)
        assert json.loads(answers[-1][-1])["ok"] is True
    finally:
        dealer.close(0)


def test_a_two_frame_request_and_resets_from_the_control_socket_obey_the_back_off(tmp_path, artifacts):
    aset = ArtifactSet.open(artifacts)
    base = free_ports(4)
    marker = tmp_path / "resets.log"
    reset = f"sh -c 'echo x >> {marker}'"
    gw = GatewayThread(gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2, reset=reset)],
                                      tmp_path / "s.db", artifacts_id=aset.set_id), Aligner([]))
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.setsockopt(zmq.RCVTIMEO, 10_000)
    req.connect(f"tcp://127.0.0.1:{base + 1}")
    try:
        req.send_multipart([b"{}", b"second"])            # crashed a REP gateway
        assert "one JSON frame" in json.loads(req.recv())["error"]
        answers = []
        for _ in range(5):
            req.send_json({"cmd": "reset", "brain": "brain-1"})
            answers.append(req.recv_json())
        assert [a["ok"] for a in answers] == [True, False, False, False, False]
        assert "back-off" in answers[1]["error"]
        req.send_json({"cmd": "status"})
        assert req.recv_json()["ok"] and gw.thread.is_alive()
    finally:
        req.close(0)
        gw.stop()
    assert gw.gateway.counters["resets"] == 1 and gw.gateway.counters["resets_refused"] == 4
    from tests.runtime_helpers import wait_until
    assert wait_until(lambda: marker.exists() and marker.read_text().count("x") == 1, 30)


def test_malformed_messages_are_logged_rate_limited(caplog, bare_gateway):
    gw = bare_gateway
    with caplog.at_level("WARNING"):
        for _ in range(10_000):
            gw.handle(gw.brains[0], [b"\xc1", b""])
    lines = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(lines) <= 3, f"{len(lines)} log lines for 10,000 malformed messages"
    assert gw.decoder.rejected["header"] >= 10_000


def test_decode_of_an_encoded_valid_reply_matches(artifacts):
    # the fake brain's valid reply is what a real brain sends: same fields, same shape
    msg = decode(encode("signal", 1, "600519.SH", 5, GOOD, FIELDS))
    assert isinstance(check_reply(msg.symbol, msg.bar_time, msg.data, msg.extra,
                                  Expected("600519.SH", 5, "G1", "abc")), Checked)
    assert msgpack.unpackb(encode("heartbeat", 1)[0])["v"] == 1

"""The Textual console: Pilot tests over real sockets (a stand-in gateway of real ZeroMQ sockets, and the
real gateway in the slow test), fit checks and SVG snapshots at 80×24, 100×30 and 160×48."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zmq

from heqis_console.app import ChoiceScreen, HelpScreen, LiveConsole, ResearchConsole
from heqis_console.state import ConsoleState
from tests.runtime_helpers import free_ports

T0 = 1_735_000_000.0      # fixed wall-clock stamps: snapshots must not depend on today


def day_ns(day: str) -> int:
    return int(pd.Timestamp(day).value)


SYMBOLS = ("600519.SH", "000001.SZ")
FIRST_DAY = "2024-07-01"
SILENT_CAUSE = "nothing listening on 127.0.0.1:5574 (is the brain running, on that port?)"


def bar_ns(i: int) -> int:
    return day_ns(FIRST_DAY) + i * 86_400 * 10**9


# what the gateway's watchdog reports (policy warn: flagged bars are sent on, their signals marked suspect;
# the bar the sources' cleaning refused is held), and the signals it marked
SUSPECT = {(SYMBOLS[0], 3): "limit", (SYMBOLS[1], 7): "limit", (SYMBOLS[0], 10): "model",
           (SYMBOLS[1], 11): "model,limit"}


def watchdog_block() -> dict:
    last = [{"symbol": SYMBOLS[0], "bar_time": bar_ns(3), "reasons": ["limit"], "score": 0.31234, "action": "warn"},
            {"symbol": SYMBOLS[1], "bar_time": bar_ns(7), "reasons": ["limit"], "score": 0.405, "action": "warn"},
            {"symbol": SYMBOLS[0], "bar_time": bar_ns(9), "reasons": ["ohlc"], "score": None, "action": "hold"},
            {"symbol": SYMBOLS[0], "bar_time": bar_ns(10), "reasons": ["model"], "score": 0.91234, "action": "warn"},
            {"symbol": SYMBOLS[1], "bar_time": bar_ns(11), "reasons": ["model", "limit"], "score": 0.77812,
             "action": "warn"}]
    return {"policy": "warn", "model": "onnxruntime", "threshold": 0.75, "checked": 1234, "flagged": 5, "held": 1,
            "by_reason": {"stale": 0, "ohlc": 1, "limit": 3, "zero_volume": 0, "out_of_order": 0, "duplicate": 0,
                          "model": 2}, "last": last}


def recorded(n_signals: int = 12, done: bool = True, watchdog: bool = True) -> list[tuple[str, dict]]:
    """A short telemetry recording: signals for two symbols (a few marked suspect by the watchdog), then
    ten snapshots half a second apart (a latency trend for the sparkline), a silent and a dead brain,
    their alerts, a replay that has ended (``done``) and the gateway's watchdog (unless ``watchdog``
    is False: an older gateway that does not report one)."""
    nodes = [
        {"name": "gateway", "role": "gateway", "host": "127.0.0.1", "pid": 100, "alive": True,
         "heartbeat_age_s": 0.0, "version": "0.1.0", "artifacts_sha256": None,
         "counters": {"sent": 240, "signals": 238, "in_flight": 2, "duplicates": 0, "paused": False}},
        {"name": "brain-1", "role": "brain", "host": "127.0.0.1", "pid": 101, "alive": True, "heartbeat_age_s": 0.4,
         "version": "0.1.0", "artifacts_sha256": "ab12", "counters": {"sent": 120, "answered": 119}, "silent": None},
        {"name": "brain-2", "role": "brain", "host": "127.0.0.1", "pid": 102, "alive": False, "heartbeat_age_s": 3.6,
         "version": "0.1.0", "artifacts_sha256": "ab12", "counters": {"sent": 120, "answered": 119}, "silent": None},
        {"name": "brain-3", "role": "brain", "host": "127.0.0.1", "pid": None, "alive": True,
         "heartbeat_age_s": None, "version": None, "artifacts_sha256": None, "counters": {"sent": 0, "answered": 0},
         "silent": SILENT_CAUSE},
    ]
    docs: list[tuple[str, dict]] = []
    price = {SYMBOLS[0]: 1500.0, SYMBOLS[1]: 10.0}
    for i in range(n_signals):
        for sym in price:
            o = price[sym]
            c = o * (1 + 0.01 * np.sin(i))
            price[sym] = c
            docs.append(("signal", {"symbol": sym, "bar_time": bar_ns(i), "model": "G1", "artifacts": "set-ab12",
                                    "action": (1, 0, -1)[i % 3], "reg": 0.002 * np.cos(i), "p_down": 0.3,
                                    "p_flat": 0.3, "p_up": 0.4, "latency_us": 600.0, "brain": "brain-1",
                                    "ohlc": [o, max(o, c) * 1.005, min(o, c) * 0.995, c],
                                    "suspect": SUSPECT.get((sym, i))}))
    alerts = [{"time": T0 - 5, "kind": "brain_silent",
               "text": f"brain-3 has not answered 3 heartbeats: {SILENT_CAUSE}"},
              {"time": T0, "kind": "brain_dead", "text": "brain-2 silent for 3.6 s (> 3 heartbeats)"}]
    for k in range(10):
        extra = {"watchdog": watchdog_block()} if watchdog else {}
        docs.append(("telemetry", {**extra,
            "time": T0 + 0.5 * k, "fleet": "local", "nodes": nodes, "queue_depth": 3, "drops": 1,
            "cpu_percent": 12.0, "memory_mb": 150.0,
            "latency": {"count": 240, "p50_us": 640.0 + 40 * np.sin(k), "p99_us": 1830.0, "max_us": 4100.0,
                        "throughput_per_s": 40.0,
                        "parts_p50_us": {"queue_us": 30.0, "pre_us": 320.0, "inf_us": 230.0}},
            "source": {"kinds": ["replay"], "done": done and k == 9, "live": False,
                       "last_bar_time": bar_ns(n_signals - 1), "counters": {"bars": 2 * n_signals}},
            "endpoints": {"telemetry": 5560, "control": 5561, "websocket": None},
            "alerts": alerts}))
    return docs


def stored_rows(days: int = 8) -> list[dict]:
    """What the gateway's SQLite store answers to ``signals``: rows newest first, no ohlc."""
    rows = [{"symbol": sym, "bar_time": bar_ns(i), "model": "G1", "artifacts": "set-ab12", "seq": i,
             "action": (1, -1, 0)[i % 3], "reg": 0.001 * (i - 4), "p_down": 0.25, "p_flat": 0.35, "p_up": 0.4,
             "latency_us": 700.0, "queue_us": 20.0, "pre_us": 300.0, "inf_us": 250.0, "brain": "brain-1",
             "suspect": "model" if (sym, i) == (SYMBOLS[0], days - 1) else None}
            for i in range(days) for sym in SYMBOLS]
    return sorted(rows, key=lambda r: r["bar_time"], reverse=True)


def history(symbol: str, days: int = 30) -> list[list[float]]:
    """What the gateway's history answers to ``bars``: [bar_time, open, high, low, close], oldest first."""
    base = 1500.0 if symbol == SYMBOLS[0] else 10.0
    out = []
    for i in range(days):
        o = base * (1 + 0.02 * np.sin(i / 3))
        c = base * (1 + 0.02 * np.sin((i + 1) / 3))
        out.append([bar_ns(i - days + 8), o, max(o, c) * 1.01, min(o, c) * 0.99, c])
    return out


def test_state_ingests_telemetry_signals_and_alerts():
    st = ConsoleState()
    for topic, doc in recorded():
        st.ingest(topic, doc, now=1.0)
    assert [n["name"] for n in st.nodes] == ["gateway", "brain-1", "brain-2", "brain-3"]
    assert st.brains == ["brain-1", "brain-2", "brain-3"]
    assert st.symbols == ["000001.SZ", "600519.SH"] and st.symbol == "600519.SH"
    assert len(st.candles["600519.SH"]) == 12 and st.candles["600519.SH"][1].action == 0
    assert [a["kind"] for a in st.alerts] == ["brain_silent", "brain_dead"]      # once each, not per snapshot
    assert len(st.latency_window()) == 10 and st.latency_p50[0] == 640.0
    assert st.finished == "replay finished at 2024-07-12"
    assert st.stale(now=1.5) is False and st.stale(now=10.0) is True
    assert st.next_symbol() == "000001.SZ"


def test_state_merges_stored_signals_and_bars_without_duplicates():
    st = ConsoleState()
    for topic, doc in recorded():
        if topic == "signal":
            st.ingest(topic, doc, now=1.0)
    live = len(st.signals)
    rows = stored_rows()                       # days 0…7 of both symbols: all already seen live
    assert st.merge_signals(rows) == 0 and len(st.signals) == live
    older = [{**r, "bar_time": r["bar_time"] - 10 * 86_400 * 10**9} for r in rows]   # stored only
    assert st.merge_signals(older + rows) == len(older)
    keys = [(s["symbol"], s["bar_time"], s["model"]) for s in st.signals]
    assert len(keys) == len(set(keys)) and keys == sorted(keys, key=lambda k: k[1], reverse=True)
    bars = history(SYMBOLS[0])
    assert st.merge_bars(SYMBOLS[0], bars, ["300750.SZ", *SYMBOLS]) == len(bars) - 8   # 8 bars came live
    candles = st.candles[SYMBOLS[0]]
    assert [c.bar_time for c in candles] == sorted({int(b[0]) for b in bars} | {bar_ns(i) for i in range(12)})
    assert "300750.SZ" in st.symbols
    by_time = {c.bar_time: c for c in candles}
    marked = [r for r in older if r["symbol"] == SYMBOLS[0] and r["action"]]
    assert marked and all(by_time[r["bar_time"]].action == r["action"] for r in marked)   # ▲ / ▼ from the store


def test_state_says_replay_finished_only_when_done():
    st = ConsoleState()
    st.ingest("telemetry", {"source": {"kinds": ["replay"], "done": False, "last_bar_time": day_ns("2024-12-31")}})
    assert st.finished is None
    st.ingest("telemetry", {"source": {"kinds": ["replay"], "done": True, "last_bar_time": day_ns("2024-12-31")}})
    assert st.finished == "replay finished at 2024-12-31"


class Gateway:
    """A stand-in gateway made of real sockets: PUB for a recorded stream, REP answering commands.

    It answers ``signals`` from ``stored`` and ``bars`` from ``bars`` the way the real gateway's
    store and history do. The control socket is *not* at telemetry + 1 (``gap``), so a console that
    guessed the control port instead of learning it would miss it."""

    def __init__(self, stored: list[dict] | None = None, bars: dict[str, list[list[float]]] | None = None,
                 gap: int = 1) -> None:
        base = free_ports(gap + 1)
        ctx = zmq.Context.instance()
        self.pub = ctx.socket(zmq.PUB)
        self.pub.bind(f"tcp://127.0.0.1:{base}")
        self.rep = ctx.socket(zmq.REP)
        self.rep.bind(f"tcp://127.0.0.1:{base + gap}")
        self.telemetry, self.control = f"tcp://127.0.0.1:{base}", f"tcp://127.0.0.1:{base + gap}"
        self.control_port = base + gap
        self.stored = stored or []
        self.bars = bars or {}
        self.commands: list[dict] = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def answer(self, cmd: dict) -> dict:
        if cmd["cmd"] in ("pause", "resume"):
            return {"ok": True, "paused": cmd["cmd"] == "pause"}
        if cmd["cmd"] == "signals":
            return {"ok": True, "signals": self.stored[: cmd.get("limit", 40)]}
        if cmd["cmd"] == "bars":
            return {"ok": True, "symbol": cmd.get("symbol"), "symbols": sorted(self.bars),
                    "bars": self.bars.get(cmd.get("symbol"), [])[-cmd.get("limit", 120):]}
        return {"ok": True}

    def serve(self) -> None:
        while self.running:
            if self.rep.poll(50):
                cmd = json.loads(self.rep.recv())
                self.commands.append(cmd)
                self.rep.send_json(self.answer(cmd))

    def asked(self, cmd: str, **fields) -> bool:
        return any(c.get("cmd") == cmd and all(c.get(k) == v for k, v in fields.items()) for c in self.commands)

    def publish(self, docs: list[tuple[str, dict]]) -> None:
        for topic, doc in docs:
            self.pub.send_multipart([topic.encode(), json.dumps(doc).encode()])

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.pub.close(0)
        self.rep.close(0)


async def wait_for(pilot, predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await pilot.pause(0.1)
    return False


async def publish_until_heard(pilot, gw: Gateway, app: LiveConsole, docs: list[tuple[str, dict]]) -> None:
    """SUB sockets join late: publish ``docs`` again until the console has received something, then once
    more, whole (the first copy heard may have lost its head to the late join)."""
    for _ in range(100):
        gw.publish(docs)
        if await wait_for(pilot, lambda: app.state.received > 0, 0.3):
            gw.publish(docs)
            return
    raise AssertionError("the console never heard the telemetry")


def lines_of(widget) -> list[str]:
    """What ``widget`` shows on screen, line by line (its rendered strips, cut to its size)."""
    return [widget.render_line(y).text for y in range(widget.size.height)]


def on_screen(app, widget) -> list[str]:
    """What the screen shows inside ``widget``'s region (children included), line by line."""
    strips = app.screen._compositor.render_strips()
    r = widget.region
    return [strips[y].crop(r.x, r.x + r.width).text for y in range(r.y, r.y + r.height)]


async def test_live_console_populates_and_its_keys_reach_the_gateway():
    gw = Gateway()
    app = LiveConsole(gw.telemetry, gw.control)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await publish_until_heard(pilot, gw, app, recorded())
            assert await wait_for(pilot, lambda: app.state.signals and app.state.nodes)
            assert await wait_for(pilot, lambda: app.query_one("#fleet").row_count == 4)
            table = app.query_one("#signals")        # as many of the 24 signals as its height holds
            assert await wait_for(pilot, lambda: len(app.state.signals) == 24
                                  and table.row_count == min(24, table.size.height - 1))
            assert table.row_count >= 5
            assert await wait_for(pilot, lambda: "brain-2 silent" in "\n".join(lines_of(app.alerts)))
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.press("slash")
            assert isinstance(app.screen, ChoiceScreen)
            await pilot.press("down", "enter")
            assert app.state.symbol == "600519.SH"
            assert await wait_for(pilot, lambda: gw.asked("bars", symbol="600519.SH"))   # the chosen symbol's bars
            await pilot.press("p")
            assert await wait_for(pilot, lambda: {"cmd": "pause"} in gw.commands)
            assert await wait_for(pilot, lambda: app.state.paused)
            await pilot.press("r")
            await pilot.press("down", "enter")        # brain-2
            assert isinstance(app.screen, ChoiceScreen)
            await pilot.press("enter")                # "yes, reset brain-2"
            assert await wait_for(pilot, lambda: {"cmd": "reset", "brain": "brain-2"} in gw.commands)
            await pilot.press("q")
    finally:
        gw.close()


async def test_console_fills_from_the_gateway_before_any_live_telemetry():
    """A console started after the replay ended: nothing is published, yet it shows the stored
    signals and the chosen symbol's bars, with the stored actions as marks; live signals that
    repeat stored ones are not listed twice."""
    stored = stored_rows()
    gw = Gateway(stored, {sym: history(sym) for sym in SYMBOLS})
    app = LiveConsole(gw.telemetry, gw.control)
    newest = stored[0]["symbol"]
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            assert await wait_for(pilot, lambda: len(app.state.signals) == len(stored))
            assert await wait_for(pilot, lambda: len(app.state.candles.get(newest, ())) == len(history(newest)))
            assert app.state.received == 0, "all of it came over the control socket"
            assert gw.asked("signals") and gw.asked("bars", symbol=newest)
            assert app.state.symbol == newest and set(app.state.symbols) == set(SYMBOLS)
            table = app.query_one("#signals")
            assert await wait_for(pilot, lambda: table.row_count == min(len(stored), table.size.height - 1))
            assert "no data" not in "\n".join(lines_of(table))
            suspect = [line for line in lines_of(table) if SYMBOLS[0] in line and "⚠" in line]
            assert len(suspect) == 1, "the stored signal the watchdog flagged carries its marker"
            marks = {c.bar_time: c.action for c in app.state.candles[newest] if c.action}
            assert marks == {r["bar_time"]: r["action"] for r in stored if r["symbol"] == newest and r["action"]}
            assert await wait_for(pilot, lambda: app.kline.display and not app.query_one("#kline-none").display)
            # the same signals, live (with ohlc), plus one new bar: only the new one is added
            live = [(t, d) for t, d in recorded(n_signals=9) if t == "signal"]
            await publish_until_heard(pilot, gw, app, live)
            assert await wait_for(pilot, lambda: len(app.state.signals) == len(stored) + 2)
            keys = [(s["symbol"], s["bar_time"], s["model"]) for s in app.state.signals]
            assert len(keys) == len(set(keys))
            # another symbol: its bars are asked for and drawn
            other = next(s for s in SYMBOLS if s != newest)
            await pilot.press("slash")
            await pilot.press(*(["down"] * sorted(app.state.symbols).index(other)), "enter")
            assert app.state.symbol == other
            assert await wait_for(pilot, lambda: gw.asked("bars", symbol=other))
            assert await wait_for(pilot, lambda: len(app.state.candles.get(other, ())) >= len(history(other)))
            await pilot.press("q")
    finally:
        gw.close()


async def test_console_learns_the_control_port_from_telemetry():
    """``heqis console --connect tcp://HOST:PORT`` alone: the control port is not telemetry + 1 here;
    the console takes it from the snapshot's ``endpoints``, then asks for what the gateway holds,
    and shows "replay finished at …" once the snapshot says the source is done."""
    gw = Gateway(stored_rows(), {sym: history(sym) for sym in SYMBOLS}, gap=2)
    app = LiveConsole(gw.telemetry, None)
    snapshot = next(d for t, d in recorded(done=False) if t == "telemetry")
    snapshot = {**snapshot, "endpoints": {"telemetry": 0, "control": gw.control_port, "websocket": None}}
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert app.control.address is None
            await publish_until_heard(pilot, gw, app, [("telemetry", snapshot)])
            assert await wait_for(pilot, lambda: app.control.address == gw.control)
            assert await wait_for(pilot, lambda: gw.asked("signals") and gw.asked("bars"))
            assert await wait_for(pilot, lambda: len(app.state.signals) == len(stored_rows()))
            assert "replay finished" not in "\n".join(lines_of(app.stats))
            done = {**snapshot, "source": {**snapshot["source"], "done": True, "last_bar_time": day_ns("2024-12-31")}}
            gw.publish([("telemetry", done)])
            assert await wait_for(pilot, lambda: "replay finished at 2024-12-31" in "\n".join(lines_of(app.stats)))
            await pilot.press("p")
            assert await wait_for(pilot, lambda: {"cmd": "pause"} in gw.commands)
            await pilot.press("q")
    finally:
        gw.close()


async def test_console_shows_no_data_states_before_telemetry():
    app = LiveConsole("tcp://127.0.0.1:9", None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert "no data" in "\n".join(lines_of(app.stats))
        assert app.query_one("#fleet").get_row_at(0)[0] == "no data"
        # no sparkline without data: the widget is not shown, a plain "no data" is
        assert not app.latency.display and app.query_one("#latency-none").display
        box = on_screen(app, app.query_one("#latency-box"))
        assert box[0].strip().startswith("latency p50 (last 60 s)")
        assert not any(ch in "\n".join(box) for ch in "▁▂▃▄▅▆▇█")
        assert "no data" in "\n".join(box)
        assert not app.kline.display and "no bars yet" in "\n".join(on_screen(app, app.query_one("#kline-box")))


async def test_one_latency_sample_draws_no_sparkline():
    st = ConsoleState(source="recorded")
    st.ingest("telemetry", next(d for t, d in recorded() if t == "telemetry"))
    app = LiveConsole(None, None, state=st)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert not app.latency.display
        assert "one sample so far" in "\n".join(on_screen(app, app.query_one("#latency-box")))


@pytest.mark.slow
async def test_alert_appears_after_a_brain_is_killed(sample_store, artifacts, tmp_path):
    from datetime import date

    from heqis.runtime.gateway import BrainTarget
    from heqis.runtime.replay_pack import store_arrays
    from heqis.runtime.sources import Aligner, ReplaySource
    from tests.runtime_helpers import GatewayThread, gateway_config, start_brain

    base = free_ports(8)
    brain = start_brain(artifacts, base + 4, log=tmp_path / "brain.log")
    src = ReplaySource(store_arrays(sample_store.root, ["600519.SH"]), 560, date(2024, 6, 3), rate=20.0,
                       min_bars=130)
    gw = GatewayThread(gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 4)], tmp_path / "s.db"),
                       Aligner([src]))
    app = LiveConsole(f"tcp://127.0.0.1:{base}", f"tcp://127.0.0.1:{base + 1}")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: len(app.state.signals) > 3, 30), "no signals reached the console"
            assert app.state.candles["600519.SH"], "the K-line gets the bars"
            assert await wait_for(pilot, lambda: len(app.state.candles["600519.SH"]) > 100, 30), \
                "the gateway's history fills the K-line beyond the live bars"
            brain.kill()
            assert await wait_for(pilot, lambda: any(a.get("kind") == "brain_dead" for a in app.state.alerts), 15)
            assert await wait_for(pilot, lambda: "silent" in "\n".join(lines_of(app.alerts)))
    finally:
        gw.stop()
        brain.kill()


# -- the recorded console at 80, 100 and 160 columns ---------------------------------------------
SIZES = [(80, 24), (100, 30), (160, 48)]
SIZE_IDS = ["80x24", "100x30", "160x48"]


@pytest.fixture
def utc(monkeypatch):
    """Alert time stamps are local time: pin the zone so what is drawn does not depend on the host."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def recorded_state(watchdog: bool = True) -> ConsoleState:
    st = ConsoleState(source="tcp://127.0.0.1:5560")
    for topic, doc in recorded(watchdog=watchdog):
        st.ingest(topic, doc)
    return st


class FrozenLive(LiveConsole):
    """The live console on a recorded state, with no socket and no clock in what it draws."""

    def __init__(self, watchdog: bool = True) -> None:
        super().__init__(None, None, state=recorded_state(watchdog))

    def redraw(self) -> None:
        self.state.last_update = time.monotonic()   # a recording never goes stale on screen
        super().redraw()

    def settled(self) -> bool:
        """Drawn for the state and the sizes it has now (nothing left to refit)."""
        return self.drawn == (self.state.version, False, tuple(w.size for w in self.sized))


async def settle(pilot) -> None:
    assert await wait_for(pilot, pilot.app.settled), "the console never settled on its layout"
    await pilot.pause()


def expected_signal_cells(s: dict) -> dict[str, str]:
    """The full text of every cell of a signal row, as the table must show it."""
    word = {1: "BUY", -1: "SELL"}.get(s["action"], "keep") + ("⚠" if s.get("suspect") else "")
    return {"day": pd.Timestamp(s["bar_time"]).strftime("%m-%d"), "symbol": s["symbol"], "act": word,
            "ret": f"{s['reg'] * 100:+.2f}%", "p_down": f"{s['p_down']:.2f}", "p_up": f"{s['p_up']:.2f}",
            "model": s["model"], "lat": f"{s['latency_us'] / 1000:.2f}ms", "brain": s["brain"],
            "artifacts": s["artifacts"]}


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_tables_and_alerts_fit_without_cutting(utc, size):
    """Narrow layouts drop whole columns, never characters; alerts wrap, never run off the edge;
    no scrollbar or other widget is drawn over the tables."""
    app = FrozenLive()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        table = app.signal_table
        columns = [c.key for c in table.ordered_columns]
        assert {"day", "symbol", "act", "ret"} <= set(columns)
        if size[0] >= 100:
            assert "p_up" in columns
        width = sum(c.get_render_width(table) for c in table.ordered_columns)
        assert width <= table.size.width
        assert not table.show_vertical_scrollbar and not table.show_horizontal_scrollbar
        shown = lines_of(table)
        header, rows = shown[0], [line for line in shown[1:] if line.strip()]
        assert header.split() == [str(c.label) for c in table.ordered_columns]
        assert len(rows) == table.row_count == min(len(app.state.signals), table.size.height - 1)
        for line, s in zip(rows, app.state.signals, strict=False):
            cells = expected_signal_cells(s)
            assert line.split() == [cells[k] for k in columns], f"cut or missing cells in {line!r}"
        assert not any(ch in "\n".join(shown) for ch in "▁▂▃▄▅▆▇█▋▏")
        # the fleet: silent brains say so, every shown cell is whole
        fleet = lines_of(app.fleet)
        assert any("brain-3" in line and "SILENT" in line for line in fleet)
        assert any("brain-2" in line and "DEAD" in line for line in fleet)
        assert sum(c.get_render_width(app.fleet) for c in app.fleet.ordered_columns) <= app.fleet.size.width
        # alerts: newest first, each line inside the panel, the shown text whole or ended by a deliberate "…"
        alert_lines = [line.rstrip() for line in lines_of(app.alerts)]
        assert all(len(line) <= app.alerts.size.width + 1 for line in alert_lines)   # + its left padding
        body = " ".join(line.strip() for line in alert_lines[1:] if line.strip())
        assert body.startswith("00:26:40 brain-2 silent for 3.6 s (> 3 heartbeats)")       # T0, in UTC
        silent = f"00:26:35 brain-3 has not answered 3 heartbeats: {SILENT_CAUSE}"
        assert silent in body or "older not shown" in alert_lines[0] or body.endswith("…")
        # nothing overlaps: the panels' regions are disjoint
        panels = [app.fleet, app.stats, app.query_one("#kline-box"), table, app.watchdog, app.alerts,
                  app.query_one("#latency-box")]
        for i, a in enumerate(panels):
            for b in panels[i + 1:]:
                assert not a.region.overlaps(b.region), f"{a.id} overlaps {b.id}"
        # every chart has its label
        assert on_screen(app, app.query_one("#latency-box"))[0].strip().startswith("latency p50 (last 60 s)")
        assert on_screen(app, app.query_one("#kline-box"))[0].strip().startswith("600519.SH")
        # the table as the screen shows it (not only as the widget renders it) is whole too
        assert on_screen(app, table)[1].split() == rows[0].split()
        assert app.latency.display, "ten samples make a sparkline"


WATCHDOG_PANEL = {
    (80, 24): ["wd warn: 5 flagged 0.41%, 1 held"],
    (100, 30): ["watchdog warn · onnxruntime",
                "1,234 checked, 5 flagged 0.41%, 1 held",
                "by reason: limit 3 · model 2 · ohlc 1",
                "day   symbol    act  score why",
                "07-12 000001.SZ warn 0.778 model,limit",
                "07-11 600519.SH warn 0.912 model"],
    (160, 48): ["watchdog warn · onnxruntime · ⚠ = suspect · threshold 0.75",
                "1,234 checked · 5 flagged (0.41%) · 1 held",
                "by reason: limit 3 · model 2 · ohlc 1",
                "day        symbol    act  score why",
                "2024-07-12 000001.SZ warn 0.778 model,limit",
                "2024-07-11 600519.SH warn 0.912 model",
                "2024-07-10 600519.SH hold     — ohlc",
                "2024-07-08 000001.SZ warn 0.405 limit",
                "2024-07-04 600519.SH warn 0.312 limit"],
}


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
async def test_watchdog_panel_at_each_size(utc, size):
    """Under the signals: a one-line summary at 80×24; policy, backend, counts with the flag rate, counts by
    reason and the last flags (newest first, score to 3 significant digits) on taller terminals."""
    app = FrozenLive()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        shown = [line.strip() for line in on_screen(app, app.watchdog)]
        assert shown == WATCHDOG_PANEL[size]
        assert all(len(line) <= app.watchdog.size.width for line in shown)
        # the signals the watchdog marked suspect carry the marker; the others do not
        for line in lines_of(app.signal_table)[1:]:
            if not line.strip():
                continue
            day, symbol = line.split()[:2]
            i = next(i for i in range(12) if pd.Timestamp(bar_ns(i)).strftime("%m-%d") == day)
            assert ("⚠" in line) == ((symbol, i) in SUSPECT), line


async def test_watchdog_panel_says_not_reported_without_the_key(utc):
    app = FrozenLive(watchdog=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.state.watchdog is None
        assert [line.strip() for line in on_screen(app, app.watchdog)] == ["watchdog: not reported"]


async def test_watchdog_panel_follows_live_telemetry():
    """Over the real PUB socket: an older gateway's snapshot, then one with the watchdog block."""
    gw = Gateway()
    app = LiveConsole(gw.telemetry, None)
    old = next(d for t, d in recorded(watchdog=False) if t == "telemetry")
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await publish_until_heard(pilot, gw, app, [("telemetry", old)])
            assert await wait_for(pilot, lambda: "watchdog: not reported" in "\n".join(lines_of(app.watchdog)))
            gw.publish([("telemetry", {**old, "watchdog": {**watchdog_block(), "policy": "hold", "held": 2}})])
            assert await wait_for(pilot, lambda: "2 held" in "\n".join(lines_of(app.watchdog)))
            text = "\n".join(lines_of(app.watchdog))
            assert "watchdog hold" in text and "model,limit" in text and "0.41%" in text
            await pilot.press("q")
    finally:
        gw.close()


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_live_console_snapshot(snap_compare, utc, size):
    assert snap_compare(FrozenLive(), terminal_size=size, run_before=settle)


# -- research views -------------------------------------------------------------------------------
TRADE_DAYS = (5, 40, 90, 150, 200, 240)     # spread over the whole test segment, not only its end


@pytest.fixture(scope="module")
def research_run(sample_store, tmp_path_factory) -> Path:
    """A hand-made run directory (fixed numbers, so the snapshot does not depend on training)."""
    run = tmp_path_factory.mktemp("research") / "run-demo"
    (run / "backtest").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({
        "kind": "heqis-run", "version": 2, "status": "complete", "data": {"dir": str(sample_store.root)},
        "symbols": ["600519.SH", "000001.SZ"],
        "segments": {"train": ["2018-01-02", "2022-03-15"], "val": ["2022-03-16", "2023-03-31"],
                     "select": ["2023-04-03", "2023-12-12"], "test": ["2023-12-13", "2024-12-31"]}}))
    rows = ["epoch,phase,generator,kind,val_loss"]
    for e in range(1, 9):
        for i, g in enumerate(("G1", "G2", "G3", "G4")):
            rows.append(f"{e},{'pretrain' if e < 3 else 'adversarial'},{g},x,{2.1 - 0.02 * e * (i + 1) / 2:.4f}")
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    pd.DataFrame([
        {"symbol": "600519.SH", "generator": "G3", "mode": "cls", "total_return": 0.038, "buy_hold_return": -0.203,
         "sharpe": 0.34, "max_drawdown": -0.114, "trades": 5, "select_sharpe": -0.65},
        {"symbol": "000001.SZ", "generator": "G1", "mode": "reg", "total_return": 0.253, "buy_hold_return": 0.348,
         "sharpe": 0.84, "max_drawdown": -0.254, "trades": 3, "select_sharpe": -0.32},
    ]).to_csv(run / "backtest" / "best_metrics.csv", index=False)
    bars = sample_store.read_bars("600519.SH")
    test = bars[bars["trade_date"] >= "2023-12-13"].reset_index(drop=True)
    trades = pd.DataFrame([{"symbol": "600519.SH", "segment": "test", "entry_date": test["trade_date"][i],
                            "entry_price": test["open_raw"][i], "exit_date": test["trade_date"][i + 6],
                            "exit_price": test["open_raw"][i + 6], "closed": True} for i in TRADE_DAYS])
    trades.to_parquet(run / "backtest" / "trades.parquet")
    return run


def test_research_kline_covers_the_whole_test_segment(research_run):
    from heqis_console.research import load_run_views

    views = load_run_views(research_run)
    wide = views.kline("600519.SH", width=1000)
    assert wide.period == "daily" and len(wide.candles) == wide.bars > 200
    assert (wide.first, wide.last) == ("2023-12-13", "2024-12-31")
    assert wide.trades == len(TRADE_DAYS) and len(wide.marks) == 2 * len(TRADE_DAYS)   # every entry and exit
    narrow = views.kline("600519.SH", width=70)
    assert narrow.period == "weekly" and len(narrow.candles) <= 70 and narrow.bars == wide.bars
    assert narrow.candles[0].open == wide.candles[0].open and narrow.candles[-1].close == wide.candles[-1].close
    assert len(narrow.marks) == 2 * len(TRADE_DAYS)
    assert any("weekly candles" in part for part in narrow.caption_parts())


async def test_research_backtest_prints_percentages_like_the_cli(research_run):
    app = ResearchConsole(research_run)
    async with app.run_test(size=(80, 24)) as pilot:
        from textual.widgets import TabbedContent

        app.query_one(TabbedContent).active = "tab-backtest"
        table = app.query_one("#backtest")
        assert await wait_for(pilot, lambda: table.size.width > 0 and app.drawn.get("backtest") == table.size)
        shown = lines_of(table)
        assert shown[0].split() == ["symbol", "gen", "mode", "return", "B&H", "sharpe", "maxDD", "trades",
                                    "sel.sharpe"]
        assert shown[1].split() == ["600519.SH", "G3", "cls", "+3.8%", "-20.3%", "0.34", "-11.4%", "5", "-0.65"]
        assert shown[2].split() == ["000001.SZ", "G1", "reg", "+25.3%", "+34.8%", "0.84", "-25.4%", "3", "-0.32"]


RESEARCH_SNAPSHOTS = [((80, 24), "tab-training"), ((80, 24), "tab-kline"), ((100, 30), "tab-kline"),
                      ((160, 48), "tab-kline"), ((80, 24), "tab-backtest"), ((100, 30), "tab-backtest")]


@pytest.mark.parametrize(("size", "tab"), RESEARCH_SNAPSHOTS,
                         ids=[f"{w}x{h}-{tab[4:]}" for (w, h), tab in RESEARCH_SNAPSHOTS])
def test_research_console_snapshot(snap_compare, research_run, size, tab):
    async def show(pilot) -> None:
        from textual.widgets import TabbedContent

        pilot.app.query_one(TabbedContent).active = tab
        view = {"tab-kline": "#bt-kline", "tab-backtest": "#backtest"}.get(tab)
        if view:
            widget = pilot.app.query_one(view)
            key = "kline" if tab == "tab-kline" else "backtest"
            assert await wait_for(pilot, lambda: widget.size.width > 0 and pilot.app.drawn.get(key) ==
                                  ((widget.size, pilot.app.symbol) if key == "kline" else widget.size))
        await pilot.pause()

    assert snap_compare(ResearchConsole(research_run), terminal_size=size, run_before=show)


def test_watchdog_panel_lines_edge_cases():
    from heqis_console.watchdog import flag_rate, panel_lines, score_text

    assert flag_rate(5, 1234) == "0.41%" and flag_rate(0, 0) == "—"
    assert score_text(0.000123456) == "0.000123" and score_text(None) == "—"
    assert panel_lines(None, 32, 6) == [("watchdog: not reported", "dim")]
    off = {"policy": "off", "model": None, "threshold": None, "checked": 0, "flagged": 0, "held": 0,
           "by_reason": {}, "last": []}
    assert panel_lines(off, 32, 6) == [("watchdog off · bars not checked", "dim")]
    quiet = {**off, "policy": "hold", "checked": 40}
    assert [t for t, _ in panel_lines(quiet, 38, 6)] == ["watchdog hold · rules only",
                                                         "40 checked, 0 flagged 0.00%, 0 held", "no flags yet"]
    many = {**watchdog_block(), "last": [{"symbol": SYMBOLS[0], "bar_time": bar_ns(1), "action": "hold",
                                          "reasons": ["stale", "ohlc", "limit", "zero_volume"], "score": 0.5}]}
    lines = [t for t, _ in panel_lines(many, 24, 6)]
    assert all(len(t) <= 24 for t in lines) and lines[-1].startswith("07-02 600519.SH") and lines[-1].endswith("…")

"""The Textual console: Pilot tests over real sockets, and SVG snapshots at 80×24 and 160×48."""

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


def recorded(n_signals: int = 12) -> list[tuple[str, dict]]:
    """A short telemetry recording: one snapshot, signals for two symbols, an alert."""
    nodes = [
        {"name": "gateway", "role": "gateway", "host": "127.0.0.1", "pid": 100, "alive": True,
         "heartbeat_age_s": 0.0, "version": "0.1.0", "artifacts_sha256": None,
         "counters": {"sent": 240, "signals": 238, "in_flight": 2, "duplicates": 0, "paused": False}},
        {"name": "brain-1", "role": "brain", "host": "127.0.0.1", "pid": 101, "alive": True, "heartbeat_age_s": 0.4,
         "version": "0.1.0", "artifacts_sha256": "ab12", "counters": {"sent": 120, "answered": 119}},
        {"name": "brain-2", "role": "brain", "host": "127.0.0.1", "pid": 102, "alive": False, "heartbeat_age_s": 3.6,
         "version": "0.1.0", "artifacts_sha256": "ab12", "counters": {"sent": 120, "answered": 119}},
    ]
    docs: list[tuple[str, dict]] = []
    price = {"600519.SH": 1500.0, "000001.SZ": 10.0}
    for i in range(n_signals):
        for sym in price:
            o = price[sym]
            c = o * (1 + 0.01 * np.sin(i))
            price[sym] = c
            docs.append(("signal", {"symbol": sym, "bar_time": day_ns("2024-07-01") + i * 86_400 * 10**9,
                                    "model": "G1", "action": (1, 0, -1)[i % 3], "reg": 0.002 * np.cos(i),
                                    "p_down": 0.3, "p_flat": 0.3, "p_up": 0.4, "latency_us": 600.0,
                                    "ohlc": [o, max(o, c) * 1.005, min(o, c) * 0.995, c]}))
    docs.append(("telemetry", {"time": T0, "fleet": "local", "nodes": nodes, "queue_depth": 3, "drops": 1,
                               "cpu_percent": 12.0, "memory_mb": 150.0,
                               "latency": {"count": 240, "p50_us": 640.0, "p99_us": 1830.0, "max_us": 4100.0,
                                           "throughput_per_s": 40.0,
                                           "parts_p50_us": {"queue_us": 30.0, "pre_us": 320.0, "inf_us": 230.0}},
                               "alerts": [{"time": T0, "kind": "brain_dead", "text": "brain-2 silent for 3.6 s"}]}))
    return docs


def test_state_ingests_telemetry_signals_and_alerts():
    st = ConsoleState()
    for topic, doc in recorded():
        st.ingest(topic, doc, now=1.0)
    assert [n["name"] for n in st.nodes] == ["gateway", "brain-1", "brain-2"] and st.brains == ["brain-1", "brain-2"]
    assert st.symbols == ["000001.SZ", "600519.SH"] and st.symbol == "600519.SH"
    assert len(st.candles["600519.SH"]) == 12 and st.candles["600519.SH"][1].action == 0
    assert st.alerts[-1]["kind"] == "brain_dead" and list(st.latency_p50) == [640.0]
    assert st.stale(now=1.5) is False and st.stale(now=10.0) is True
    assert st.next_symbol() == "000001.SZ"


class Gateway:
    """A stand-in gateway made of real sockets: PUB for a recorded stream, REP recording commands."""

    def __init__(self) -> None:
        base = free_ports(2)
        ctx = zmq.Context.instance()
        self.pub = ctx.socket(zmq.PUB)
        self.pub.bind(f"tcp://127.0.0.1:{base}")
        self.rep = ctx.socket(zmq.REP)
        self.rep.bind(f"tcp://127.0.0.1:{base + 1}")
        self.telemetry, self.control = f"tcp://127.0.0.1:{base}", f"tcp://127.0.0.1:{base + 1}"
        self.commands: list[dict] = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            if self.rep.poll(50):
                cmd = json.loads(self.rep.recv())
                self.commands.append(cmd)
                self.rep.send_json({"ok": True, **({"paused": cmd["cmd"] == "pause"} if cmd["cmd"] in
                                                   ("pause", "resume") else {})})

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


async def test_live_console_populates_and_its_keys_reach_the_gateway():
    gw = Gateway()
    app = LiveConsole(gw.telemetry, gw.control)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            for _ in range(30):                       # SUB sockets join late: publish until it is heard
                gw.publish(recorded())
                if await wait_for(pilot, lambda: app.state.received > 0, 0.3):
                    break
            assert await wait_for(pilot, lambda: app.state.signals and app.state.nodes)
            await pilot.pause(0.4)
            assert app.query_one("#fleet").row_count == 3
            assert app.query_one("#signals").row_count >= 10
            assert "brain-2 silent" in "\n".join(str(line) for line in app.query_one("#alerts").lines)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            await pilot.press("slash")
            assert isinstance(app.screen, ChoiceScreen)
            await pilot.press("down", "enter")
            assert app.state.symbol == "600519.SH"
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


async def test_console_shows_no_data_states_before_telemetry():
    app = LiveConsole("tcp://127.0.0.1:9", None)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert "no data" in str(app.query_one("#stats").render())
        assert app.query_one("#fleet").get_row_at(0)[0] == "no data"


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
            brain.kill()
            assert await wait_for(pilot, lambda: any(a.get("kind") == "brain_dead" for a in app.state.alerts), 15)
            await pilot.pause(0.5)
            assert "silent" in "\n".join(str(line) for line in app.query_one("#alerts").lines)
    finally:
        gw.stop()
        brain.kill()


# -- snapshots --------------------------------------------------------------------------------------
def recorded_state() -> ConsoleState:
    st = ConsoleState(source="tcp://127.0.0.1:5560")
    for topic, doc in recorded():
        st.ingest(topic, doc)
    return st


class FrozenLive(LiveConsole):
    """The live console on a recorded state, with no socket and no clock in what it draws."""

    def __init__(self) -> None:
        super().__init__(None, None, state=recorded_state())

    def redraw(self) -> None:
        self.state.last_update = time.monotonic()   # a recording never goes stale on screen
        super().redraw()


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_live_console_snapshot(snap_compare, size):
    assert snap_compare(FrozenLive(), terminal_size=size)


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
    test = bars[bars["trade_date"] >= "2024-09-02"].reset_index(drop=True)
    trades = pd.DataFrame([{"symbol": "600519.SH", "segment": "test", "entry_date": test["trade_date"][i],
                            "entry_price": test["open_raw"][i], "exit_date": test["trade_date"][i + 6],
                            "exit_price": test["open_raw"][i + 6], "closed": True} for i in (10, 30, 50)])
    trades.to_parquet(run / "backtest" / "trades.parquet")
    return run


@pytest.mark.parametrize(("size", "tab"), [((80, 24), "tab-training"), ((160, 48), "tab-kline"),
                                           ((80, 24), "tab-backtest")])
def test_research_console_snapshot(snap_compare, research_run, size, tab):
    async def show(pilot) -> None:
        from textual.widgets import TabbedContent

        pilot.app.query_one(TabbedContent).active = tab
        await pilot.pause(0.2)

    assert snap_compare(ResearchConsole(research_run), terminal_size=size, run_before=show)

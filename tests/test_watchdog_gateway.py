"""The gateway's watchdog: rule checks with known answers, and the warn / hold policies end to end
(a replay with planted bad bars, a scripted brain on real sockets, the real signal store)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from heqis.formats.artifacts import ArtifactSet
from heqis.runtime.bars import REQUEST_COLUMNS, H, history_row
from heqis.runtime.gateway import BrainTarget
from heqis.runtime.replay_pack import store_arrays
from heqis.runtime.signal_store import SignalStore
from heqis.runtime.sources import Aligner, ReplaySource
from heqis.runtime.sources.history import History
from heqis.runtime.watchdog import Verdict, Watchdog, quality_ohlcv, rule_reasons
from tests.fake_brain import FakeBrain
from tests.runtime_helpers import GatewayThread, free_ports, gateway_config
from tests.test_runtime import SYMBOLS

DAY = int(np.datetime64("2024-06-03", "ns").astype(np.int64))
CLOSE = H["close_raw"]


def rows(*bars: np.ndarray) -> np.ndarray:
    return np.stack(bars)


PREV = history_row(10.0, 10.3, 9.8, 10.0, 1e6, pre_close_raw=9.9, up_limit=10.89, down_limit=8.91)
GOOD = history_row(10.1, 10.4, 9.9, 10.2, 1.2e6, pre_close_raw=10.0, up_limit=11.0, down_limit=9.0)
NO_LIMITS = dict(up_limit=np.nan, down_limit=np.nan)


@pytest.mark.parametrize("symbol, last, expected", [
    ("600519.SH", GOOD, []),
    ("600519.SH", history_row(10.1, 9.9, 10.4, 10.2, 1e6, pre_close_raw=10.0), ["ohlc"]),      # swapped high/low
    ("600519.SH", history_row(10.1, 10.4, 9.9, 10.5, 1e6, pre_close_raw=10.0), ["ohlc"]),      # close above high
    ("600519.SH", history_row(0.0, 10.4, 9.9, 10.2, 1e6, pre_close_raw=10.0), ["ohlc"]),       # zero price
    ("600519.SH", PREV.copy(), ["stale"]),                                                      # frozen feed
    ("600519.SH", history_row(101, 104, 99, 102, 1e6, pre_close_raw=10.0, up_limit=11.0, down_limit=9.0), ["limit"]),
    ("600519.SH", history_row(1.01, 1.04, .99, 1.02, 1e6, pre_close_raw=10.0, up_limit=11.0, down_limit=9.0),
     ["limit"]),
    ("600519.SH", history_row(10.9, 11.0, 10.8, 11.0, 1e6, pre_close_raw=10.0, up_limit=11.0, down_limit=9.0), []),
    # no stored limits: the board's ratio of the pre-close (main board 10%, ChiNext 20% since 2020-08-24)
    ("600519.SH", history_row(11.0, 11.2, 10.9, 11.2, 1e6, pre_close_raw=10.0, **NO_LIMITS), ["limit"]),
    ("300750.SZ", history_row(11.0, 11.2, 10.9, 11.2, 1e6, pre_close_raw=10.0, **NO_LIMITS), []),
    ("AAPL", history_row(11.0, 11.2, 10.9, 11.2, 1e6, pre_close_raw=10.0, **NO_LIMITS), []),        # no limits
    ("600519.SH", history_row(10.1, 10.4, 9.9, 10.2, 0.0, pre_close_raw=10.0), ["zero_volume"]),
])
def test_rules_flag_what_they_are_built_for(symbol, last, expected):
    assert rule_reasons(symbol, rows(PREV, last), DAY) == expected


def test_a_bar_time_at_or_before_the_last_is_flagged_and_cleaning_refusals_are_held():
    wd = Watchdog("warn")
    hist = History(10)
    bar = hist.append("600519.SH", PREV, DAY)
    assert wd.check(bar) == Verdict(())
    assert hist.append("600519.SH", GOOD, DAY) is None                          # a live source refuses it ...
    swapped = history_row(10.1, 9.9, 10.4, 10.2, 1e6, pre_close_raw=10.0)
    assert hist.append("600519.SH", swapped, DAY + 86_400 * 10**9) is None
    for symbol, t, reason in list(hist.rejected):                               # ... and the watchdog reports it
        wd.refused(symbol, t, reason)
    assert [f["reasons"] for f in wd.last] == [["duplicate"], ["ohlc"]]
    assert wd.held == 2 and wd.flagged == 2 and wd.by_reason["ohlc"] == 1
    replayed = ReplaySource({"600519.SH": (np.array([DAY, DAY]), rows(PREV, GOOD))}, 10)
    first, _ = replayed.poll(10)
    assert wd.check(first).reasons == ("duplicate",)                             # a second copy of a bar time


def test_quality_ohlcv_takes_the_raw_bar_columns_the_model_was_trained_on():
    got = quality_ohlcv(rows(PREV, GOOD))
    assert got[1].tolist() == pytest.approx([10.1, 10.4, 9.9, 10.2, 1.2e6, 10.0, 11.0, 9.0])


# -- end to end: a replay with planted bad bars through a gateway and a scripted brain ----------------
START = date(2024, 9, 2)


def planted(sample_store) -> tuple[dict, dict[tuple[str, int], str]]:
    """The sample store's bars with one bad bar of each kind in the replayed range; (arrays, {bar: reason})."""
    arrays = store_arrays(sample_store.root, SYMBOLS)
    faults: dict[tuple[str, int], str] = {}
    times, values = arrays["600519.SH"]
    values = values.copy()
    first = int(np.searchsorted(times, np.datetime64(START, "ns").astype(np.int64)))
    i = first + 5
    values[i, :4] *= 10                                  # price x10 (up_limit is the real one): limit
    faults[("600519.SH", int(times[i]))] = "limit"
    i = first + 12
    values[i, [H["open_raw"], H["high_raw"], H["low_raw"], CLOSE, H["vol"]]] = \
        values[i - 1, [H["open_raw"], H["high_raw"], H["low_raw"], CLOSE, H["vol"]]]   # a frozen feed
    faults[("600519.SH", int(times[i]))] = "stale"
    i = first + 20
    values[i, [H["high_raw"], H["low_raw"]]] = values[i, [H["low_raw"], H["high_raw"]]]  # swapped high/low
    faults[("600519.SH", int(times[i]))] = "ohlc"
    arrays["600519.SH"] = (times, values)
    times, values = arrays["000001.SZ"]
    values = values.copy()
    i = int(np.searchsorted(times, np.datetime64(START, "ns").astype(np.int64))) + 8
    values[i, H["vol"]] = 0.0
    faults[("000001.SZ", int(times[i]))] = "zero_volume"
    arrays["000001.SZ"] = (times, values)
    return arrays, faults


def run_replay(tmp_path, sample_store, artifacts, policy: str, model=None, arrays=None, faults=None):
    if arrays is None:
        arrays, faults = planted(sample_store)
    aset = ArtifactSet.open(artifacts)
    base = free_ports(4)
    fake = FakeBrain(base + 2, aset.routing(), aset.set_id)
    config = gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)], tmp_path / "s.db",
                            exit_when_done=True, routing=aset.routing(), artifacts_id=aset.set_id,
                            watchdog=Watchdog(policy, model))
    gw = GatewayThread(config, Aligner([ReplaySource(arrays, 560, START, min_bars=130)]))
    try:
        gw.thread.join(120)
        assert not gw.thread.is_alive(), f"the replay did not finish: {dict(gw.gateway.counters)}"
    finally:
        gw.stop()
        fake.close()
    return gw.gateway, SignalStore(tmp_path / "s.db"), fake, faults


def test_hold_keeps_every_flagged_bar_from_the_brains_and_out_of_later_requests(tmp_path, sample_store, artifacts):
    gw, store, fake, faults = run_replay(tmp_path, sample_store, artifacts, "hold")
    flags = {(f["symbol"], f["bar_time"]): f for f in store.flags()}
    for bar, reason in faults.items():                   # every planted bar is flagged with its reason, and held
        assert reason in flags[bar]["reasons"].split(","), (bar, flags.get(bar))
        assert flags[bar]["action"] == "hold"
    asked = {(m.symbol, m.bar_time) for m in fake.requests}
    assert not asked & set(flags), "a held bar reached the brain"
    assert gw.watchdog.held == len(flags) == gw.status()["nodes"][0]["watchdog"]["held"]
    done = {(r[0], r[1]) for r in store.rows()}
    assert done == asked and not done & set(flags)
    # the x10 bar is not in the history later requests of the symbol carry
    x10 = next(bar for bar, reason in faults.items() if reason == "limit")
    close = REQUEST_COLUMNS.index("close_raw")
    later = [m for m in fake.requests if m.symbol == x10[0] and m.bar_time > x10[1]]
    assert later and all(m.data[:, close].max() < 5 * np.median(m.data[:, close]) for m in later)
    alerts = [a for a in gw.alerts if a["kind"] == "watchdog_hold"]
    assert alerts and "held" in alerts[0]["text"]


def test_warn_sends_flagged_bars_on_and_marks_their_signals(tmp_path, sample_store, artifacts):
    gw, store, fake, faults = run_replay(tmp_path, sample_store, artifacts, "warn")
    asked = {(m.symbol, m.bar_time) for m in fake.requests}
    assert set(faults) <= asked
    suspect = {(r["symbol"], r["bar_time"]): r["suspect"] for r in store.latest(10_000)}
    for bar, reason in faults.items():
        assert reason in suspect[bar].split(",")
    flagged = {(f["symbol"], f["bar_time"]) for f in store.flags()}
    assert all(v is None for k, v in suspect.items() if k not in flagged)
    assert gw.watchdog.held == 0 and gw.watchdog.flagged == len(flagged) >= len(faults)
    doc = gw.snapshot()["watchdog"]
    assert doc["policy"] == "warn" and doc["by_reason"]["stale"] >= 1 and len(doc["last"]) <= 20


def test_the_trained_model_holds_a_volume_burst_no_rule_sees(tmp_path, sample_store, artifacts, watchdog_export):
    """The real watchdog.onnx of an exported run, in ONNX Runtime, on the gateway: a volume x1000 bar
    (inside every rule) is flagged "model", held, never asked of the brain, and counted."""
    from heqis.runtime.watchdog_model import WatchdogModel

    model = WatchdogModel.open(ArtifactSet.open(watchdog_export[1]))
    arrays = store_arrays(sample_store.root, SYMBOLS)
    times, values = arrays["000001.SZ"]
    values = values.copy()
    i = int(np.searchsorted(times, np.datetime64(START, "ns").astype(np.int64))) + 10
    values[i, H["vol"]] *= 1000
    arrays["000001.SZ"] = (times, values)
    burst = ("000001.SZ", int(times[i]))
    gw, store, fake, _ = run_replay(tmp_path, sample_store, artifacts, "hold", model, arrays, {})
    flags = {(f["symbol"], f["bar_time"]): f for f in store.flags()}
    assert flags[burst]["reasons"] == "model" and flags[burst]["action"] == "hold"
    assert flags[burst]["score"] > model.threshold
    asked = {(m.symbol, m.bar_time) for m in fake.requests}
    assert burst not in asked and not asked & set(flags)
    doc = gw.snapshot()["watchdog"]
    assert doc["model"] == "onnxruntime" and doc["by_reason"]["model"] == len(flags) == gw.watchdog.held
    assert len(flags) <= 0.05 * gw.watchdog.checked          # the clean bars mostly pass (1% calibration)


def test_a_schema_2_store_gets_the_suspect_column_and_keeps_its_rows(tmp_path):
    import sqlite3

    from heqis.runtime import signal_store

    old = signal_store.SCHEMA.replace("    suspect    TEXT,               -- the watchdog's reasons for this bar, "
                                      "comma-joined (NULL: not flagged)\n", "")
    assert "suspect" not in old
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(old)
    db.execute("INSERT INTO signals (symbol, bar_time, model, artifacts, seq, action, reg) "
               "VALUES ('600519.SH', 1, 'G1', 'abc', 1, 1, 0.01)")
    db.commit()
    db.close()
    store = SignalStore(tmp_path / "s.db")
    assert store.latest(5)[0]["suspect"] is None and store.count() == 1

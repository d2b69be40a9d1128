"""`heqis status` shows the gateway's watchdog: one line under the table (known input → exact string),
nothing for a gateway that does not report one, and --json passes the block through unchanged."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

from heqis.cli.render import render_status, watchdog_line

WATCHDOG = {"policy": "hold", "model": "onnxruntime", "checked": 1234, "flagged": 5, "held": 5,
            "by_reason": {"stale": 0, "ohlc": 0, "limit": 2, "zero_volume": 0, "out_of_order": 0, "duplicate": 0,
                          "model": 3}}


def status_doc(watchdog: dict | None = WATCHDOG) -> dict:
    gateway = {"name": "gateway", "role": "gateway", "host": "127.0.0.1", "pid": 100, "alive": True,
               "heartbeat_age_s": 0.0, "counters": {"sent": 10, "signals": 10}}
    if watchdog is not None:
        gateway["watchdog"] = watchdog
    brain = {"name": "brain-1", "role": "brain", "host": "127.0.0.1", "pid": 101, "alive": True,
             "heartbeat_age_s": 0.3, "counters": {"sent": 10, "answered": 10}}
    return {"fleet": "local", "nodes": [gateway, brain]}


def test_watchdog_line_known_input():
    assert watchdog_line(WATCHDOG) == ("watchdog (hold, onnxruntime): 1,234 checked, 5 flagged (0.41%), 5 held"
                                       " — model 3, limit 2")
    assert watchdog_line({**WATCHDOG, "policy": "warn", "model": None, "flagged": 0, "held": 0,
                          "by_reason": {k: 0 for k in WATCHDOG["by_reason"]}}) == \
        "watchdog (warn, rules only): 1,234 checked, 0 flagged (0.00%), 0 held"
    assert watchdog_line({"policy": "warn", "model": "rknnlite", "checked": 0, "flagged": 0, "held": 0,
                          "by_reason": {}}) == "watchdog (warn, rknnlite): 0 checked, 0 flagged, 0 held"
    assert watchdog_line({"policy": "off", "model": None, "checked": 0, "flagged": 0, "held": 0, "by_reason": {}}) \
        == "watchdog (off): bars are not checked"


def rendered(doc: dict) -> list[str]:
    out = io.StringIO()
    render_status(Console(file=out, width=120, color_system=None), doc)
    return out.getvalue().splitlines()


def test_status_prints_the_watchdog_under_the_table_only_when_reported():
    lines = rendered(status_doc())
    assert lines[-1] == watchdog_line(WATCHDOG)
    assert not any("watchdog" in line for line in rendered(status_doc(None)))


def test_status_cli_human_and_json(monkeypatch):
    import heqis.runtime.local_fleet as local_fleet
    from heqis.cli import app

    monkeypatch.setattr(local_fleet, "choose_fleet", lambda fleet, local: None)
    monkeypatch.setattr(local_fleet, "status_local", lambda: status_doc())
    human = CliRunner().invoke(app, ["status"], env={"COLUMNS": "160"})
    assert human.exit_code == 0, human.output
    assert watchdog_line(WATCHDOG) in human.output
    out = CliRunner().invoke(app, ["status", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["nodes"][0]["watchdog"] == WATCHDOG

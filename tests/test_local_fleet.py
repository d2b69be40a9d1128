"""A local fleet that tells the truth: its own ports, its own processes, a clear line when a port is taken.

Real processes started through the CLI, as a user does, in the test's own directories; every port
comes from the OS; every process check is scoped to the pids this test's fleets recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from heqis.errors import InvalidValue
from heqis.runtime.local_fleet import (
    STATE_FILE,
    choose_fleet,
    is_ours,
    port_layout,
    read_state,
    status_local,
    write_state,
)
from heqis.runtime.signal_store import SignalStore
from tests.runtime_helpers import free_ports, wait_until
from tests.test_cli import assert_one_line_error, run

SYMBOLS = "600519.SH,000001.SZ"


def up(where: Path, artifacts: Path, data: Path, base: int, *extra: str):
    return run("up", "--local", "-a", str(artifacts), "-d", str(data), "--base-port", str(base), "--symbols", SYMBOLS,
               "--start", "2024-11-01", *extra, cwd=where)


def recorded_pids(where: Path) -> set[int]:
    state = read_state(where / STATE_FILE)
    return {n["pid"] for n in [state["gateway"], *state["brains"]] if n.get("pid")}


def test_port_layout_follows_the_base_and_refuses_collisions():
    layout = port_layout(3, 6000)
    assert (layout.telemetry, layout.control, layout.ws) == (6000, 6001, 6002)
    assert [layout.brain_ports(i) for i in range(3)] == [(6003, 6004), (6005, 6006), (6007, 6008)]
    assert len(set(layout.named().values())) == 9
    with pytest.raises(InvalidValue, match=r"brain-2 signals .* and telemetry .* would both use port 6006"):
        port_layout(3, 6000, telemetry_port=6006)
    with pytest.raises(InvalidValue, match="outside 1-65535"):
        port_layout(2, 65533)
    no_ws = port_layout(1, 6000, ws_port=0)
    assert no_ws.ws == 0 and "WebSocket (--ws-port)" not in no_ws.named()


def test_two_fleets_side_by_side_and_a_third_on_a_taken_port(tmp_path, artifacts, sample_store):
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    for d in (a, b, c):
        d.mkdir()
    base_a, base_b = free_ports(8), None
    try:
        assert up(a, artifacts, sample_store.root, base_a).returncode == 0
        base_b = free_ports(8)
        proc_b = up(b, artifacts, sample_store.root, base_b, "--json", "--watchdog", "hold")
        assert proc_b.returncode == 0, proc_b.stderr
        for where, policy in ((a, "warn"), (b, "hold")):
            doc = json.loads(run("status", "--json", cwd=where).stdout)
            pids = {n["pid"] for n in doc["nodes"]}
            assert pids == recorded_pids(where) and doc["dir"] == str(where.resolve())
            assert all(n["alive"] for n in doc["nodes"])
            assert doc["nodes"][0]["watchdog"]["policy"] == policy             # --watchdog reaches the gateway
        assert not recorded_pids(a) & recorded_pids(b)
        assert read_state(b / STATE_FILE)["ports"]["telemetry"] == base_b
        # a third fleet on the first one's ports: one line naming the port and the other fleet's directory
        third = up(c, artifacts, sample_store.root, base_a)
        assert_one_line_error(third, 1, f"port {base_a} (telemetry (--telemetry-port)) is in use by the local "
                              f"fleet in {a.resolve()}", "--base-port")
        assert not (c / STATE_FILE).exists(), "nothing was started"
        # the first fleet is untouched by the refusal
        assert all(n["alive"] for n in json.loads(run("status", "--json", cwd=a).stdout)["nodes"])
    finally:
        for where in (a, b):
            if (where / STATE_FILE).exists():
                run("down", cwd=where)
    for where in (a, b):
        assert not any(is_ours(n) for n in [read_state(where / STATE_FILE)["gateway"],
                                           *read_state(where / STATE_FILE)["brains"]])


def test_status_does_not_claim_a_reused_pid(tmp_path, monkeypatch):
    """A recorded pid that now runs another program is not this fleet's (here: the test's own pid)."""
    monkeypatch.chdir(tmp_path)
    node = {"name": "gateway", "role": "gateway", "host": "127.0.0.1", "pid": os.getpid(),
            "cmd": [sys.executable, "-m", "heqis", "gateway"], "log": str(tmp_path / "gw.log")}
    brain = {**node, "name": "brain-1", "role": "brain", "cmd": [sys.executable, "-m", "heqis", "brain"]}
    write_state({"fleet": "local", "dir": str(tmp_path), "telemetry": "tcp://127.0.0.1:9",
                 "control": "tcp://127.0.0.1:9", "gateway": node, "brains": [brain]}, tmp_path / STATE_FILE)
    doc = status_local(tmp_path / STATE_FILE)
    assert [(n["alive"], n["pid"]) for n in doc["nodes"]] == [(False, None), (False, None)]
    down = run("down", "--json", cwd=tmp_path)
    assert down.returncode == 0 and all(r["was_running"] is False for r in json.loads(down.stdout)["stopped"])
    import psutil

    assert is_ours({"pid": os.getpid(), "cmd": psutil.Process().cmdline()})   # the same pid with its own command line


def test_a_stale_local_state_does_not_win_over_fleet_toml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fleet.toml").write_text("[fleet]\nname='x'\n")
    write_state({"fleet": "local", "gateway": {"name": "gateway", "pid": 999999999, "cmd": []}, "brains": []},
                tmp_path / STATE_FILE)
    assert choose_fleet(None, False) == Path("fleet.toml")        # its processes are gone: fleet.toml it is
    assert choose_fleet(None, True) is None                       # --local says it outright
    with pytest.raises(InvalidValue):
        choose_fleet(Path("fleet.toml"), True)


def test_replay_from_replays_stored_bars_and_a_new_export_is_stored_beside_the_old(tmp_path, artifacts,
                                                                                    sample_store):
    from heqis.fileio import sha256_file, write_json
    from heqis.formats.artifacts import ArtifactSet, write_artifact_manifest

    db = tmp_path / ".heqis" / "signals.sqlite"
    base = free_ports(8)

    def replay(art: Path, *extra: str) -> None:
        proc = up(tmp_path, art, sample_store.root, base, "--json", *extra)
        assert proc.returncode == 0, proc.stderr
        state = read_state(tmp_path / STATE_FILE)
        try:
            assert wait_until(lambda: _done(tmp_path), 300)
        finally:
            run("down", cwd=tmp_path)
        assert not any(is_ours(n) for n in [state["gateway"], *state["brains"]])

    replay(artifacts)
    first = SignalStore(db).count()
    assert first > 0
    replay(artifacts)                                    # resumes: every bar is stored already, nothing replayed
    assert SignalStore(db).count() == first
    replay(artifacts, "--replay-from", "2024-11-01")     # replays on purpose: duplicates ignored, not stored twice
    assert SignalStore(db).count() == first
    # a new export (another artifact set id) stores its decisions beside the old ones
    other = tmp_path / "export2"
    shutil.copytree(artifacts, other)
    routing = json.loads((other / "routing.json").read_text())
    routing["default"]["mode"] = "reg"
    write_json(other / "routing.json", routing)
    manifest = ArtifactSet.open(other, verify=False).manifest
    manifest["files"] = {name: sha256_file(other / name) for name in manifest["files"]}
    write_artifact_manifest(other, manifest)
    assert ArtifactSet.open(other).set_id != ArtifactSet.open(artifacts).set_id
    replay(other)
    store = SignalStore(db)
    assert store.count() == 2 * first
    assert len(store.done(artifacts=ArtifactSet.open(other).set_id)) == len(store.done(artifacts=ArtifactSet.open(
        artifacts).set_id))


def _done(where: Path) -> bool:
    from heqis.runtime.local_fleet import control

    state = read_state(where / STATE_FILE)
    t = control(state["control"], {"cmd": "telemetry"}, 2.0)
    return bool(t and t["source"]["done"] and not t["queue_depth"] and not t["nodes"][0]["counters"]["in_flight"])

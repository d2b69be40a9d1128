"""The ``heqis`` command as a user runs it: a real subprocess in a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heqis.data.store import DataStore
from tests.tushare_server import serve

HEQIS = [sys.executable, "-m", "heqis"]


def run(*args: str, env: dict | None = None, cwd: Path | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess:
    """``heqis ARGS`` as a subprocess. Timeouts are ~10× a loaded 2-core machine's time (the demo: ~70 s
    idle → 1800 s), never a measure of speed."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HEQIS_")}
    full_env.update({"COLUMNS": "100", "NO_COLOR": "1"}, **(env or {}))
    return subprocess.run([*HEQIS, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("error:"), proc.stderr
    assert len(lines) <= 2  # the error, and at most one hint line
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_version_and_help():
    assert run("--version").stdout.strip().startswith("heqis ")
    top = run("--help")
    assert top.returncode == 0 and "data" in top.stdout and "demo" in top.stdout
    data_help = run("data", "--help")
    assert "--source" in data_help.stdout and "--json" in data_help.stdout
    assert "HEQIS_DATA_DIR" in data_help.stdout  # help text is not eaten by markup


def test_data_sample_end_to_end_json(isolated):
    proc = run("data", "--source", "sample", "--json", cwd=isolated)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["synthetic"] is True and result["source"] == "sample"
    assert {s["ts_code"] for s in result["symbols"]} == {
        "600519.SH", "000001.SZ", "600289.SH", "300750.SZ", "688981.SH", "000300.SH", "510300.SH"}
    assert result["cleaning"]["dropped"] == 0
    store = DataStore(isolated / "heqis-data")
    assert store.manifest()["content_hash"] == result["content_hash"]
    again = json.loads(run("data", "--json", cwd=isolated).stdout)
    assert again["api_calls"] == 0 and "up to date: nothing to fetch" in again["notes"]


def test_data_table_output_says_synthetic(isolated):
    proc = run("data", cwd=isolated)
    assert proc.returncode == 0, proc.stderr
    assert "SYNTHETIC sample data" in proc.stdout and "600519.SH" in proc.stdout


def test_demo_headless_prints_summary_and_leaves_a_fleet_for_status(isolated):
    from tests.runtime_helpers import free_ports

    proc = run("demo", "--watch", "2", "--base-port", str(free_ports(16)), cwd=isolated, timeout=1800)
    try:
        assert proc.returncode == 0, proc.stderr
        for step in ("step 1/6: data", "step 2/6: train", "step 3/6: backtest", "step 4/6: export",
                     "step 5/6: local fleet"):
            assert step in proc.stdout, step
        assert "SYNTHETIC" in proc.stdout
        assert (isolated / "heqis-demo" / "deploy_output" / "manifest.json").exists()
        status = run("status", "--json", cwd=isolated)
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["fleet"] == "local" and [n["role"] for n in doc["nodes"]] == ["gateway", "brain", "brain"]
        for node in doc["nodes"]:
            assert {"name", "role", "host", "pid", "alive", "heartbeat_age_s", "version", "artifacts_sha256",
                    "counters"} <= set(node)
            assert node["alive"] is True
        assert doc["nodes"][0]["counters"]["signals"] > 0
        assert "watchdog: " in proc.stdout and "threshold" in proc.stdout        # trained with the run
        assert doc["nodes"][0]["watchdog"]["model"] == "onnxruntime"              # and on the gateway
        for stage in ("demo 1/4: data (sample)", "demo 2/4: train (tiny preset)", "demo 3/4: backtest",
                      "demo 4/4: export", "demo: local fleet"):                  # headless: a line as each stage
            assert f"{stage} …" in proc.stderr and f"{stage}: done in" in proc.stderr, stage   # starts and ends
        # a second demo in the same folder reuses the run and replays again: new signals arrive (so the
        # console has data), but none is stored twice
        from heqis.runtime.signal_store import SignalStore

        run("down", cwd=isolated)
        stored = SignalStore(isolated / ".heqis" / "signals.sqlite").count()
        again = run("demo", "--watch", "3", "--base-port", str(free_ports(16)), cwd=isolated, timeout=1800)
        assert again.returncode == 0, again.stderr
        assert "reused the run of an earlier demo" in again.stdout
        counters = json.loads(run("status", "--json", cwd=isolated).stdout)["nodes"][0]["counters"]
        assert counters["signals"] > 0 and counters["already_stored"] > 0      # replayed; duplicates not stored
        assert SignalStore(isolated / ".heqis" / "signals.sqlite").count() >= stored
    finally:
        down = run("down", "--json", cwd=isolated)
    assert down.returncode == 0 and all(r["stopped"] for r in json.loads(down.stdout)["stopped"])
    assert_one_line_error(run("up", "--local", "-a", "nowhere", cwd=isolated), 1, "no artifact set here")


def test_usage_errors_exit_2(isolated):
    proc = run("data", "--source", "bogus", cwd=isolated)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert run("data", "--start", "yesterday", cwd=isolated).returncode == 2
    assert run("nosuchcommand", cwd=isolated).returncode == 2
    assert run("data", "-s", "csv", cwd=isolated).returncode == 2  # csv without --path


def test_user_mistakes_exit_1_with_one_line(isolated):
    assert_one_line_error(run("data", "-s", "csv", "--path", "missing.csv", cwd=isolated), 1, "missing.csv")
    assert_one_line_error(run("data", "--start", "2024-05-01", "--end", "2024-01-01", cwd=isolated), 1,
                          "is after")
    (isolated / "wl.txt").write_text("600519.SH\nnot-a-code\n", encoding="utf-8")
    assert_one_line_error(run("data", "--watchlist", "wl.txt", cwd=isolated), 1, "wl.txt:2", "not-a-code")
    (isolated / "heqis.toml").write_text("[tushare]\ntoken = 'abc'\n", encoding="utf-8")
    proc = run("data", cwd=isolated)
    assert_one_line_error(proc, 1, "[tushare] token must not be stored")
    assert "abc" not in proc.stderr


def test_tushare_without_token_explains_where_to_put_it(isolated):
    assert_one_line_error(run("data", "-s", "tushare", cwd=isolated), 1, "no Tushare token", "HEQIS_TUSHARE_TOKEN")


def test_token_file_must_be_private(isolated):
    token = isolated / "token"
    token.write_text("secret-token-value\n")
    token.chmod(0o644)
    proc = run("data", "-s", "tushare", env={"HEQIS_TUSHARE_TOKEN_FILE": str(token)}, cwd=isolated)
    assert_one_line_error(proc, 1, "readable by others", "chmod 600")
    assert "secret-token-value" not in proc.stderr + proc.stdout


def test_tushare_source_against_the_test_server(isolated, table_api):
    token = isolated / "token"
    token.write_text("test-token\n")
    token.chmod(0o600)
    with serve(table_api) as srv:
        env = {"HEQIS_TUSHARE_URL": srv.url, "HEQIS_TUSHARE_TOKEN_FILE": str(token)}
        proc = run("data", "-s", "tushare", "--start", "2024-01-01", "--end", "2024-03-31", "--json",
                   env=env, cwd=isolated)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["source"] == "tushare" and result["synthetic"] is False
    assert {s["ts_code"]: s["rows"] for s in result["symbols"]}["000300.SH"] == 58  # Q1 2024: 22 + 15 + 21 sessions
    assert "test-token" not in proc.stdout + proc.stderr


def test_bad_token_from_the_server_is_one_line(isolated, table_api):
    with serve(table_api) as srv:
        proc = run("data", "-s", "tushare", env={"HEQIS_TUSHARE_URL": srv.url, "HEQIS_TUSHARE_TOKEN": "nope"},
                   cwd=isolated)
    assert_one_line_error(proc, 1, "token rejected by Tushare")
    assert "nope" not in proc.stderr


@pytest.mark.parametrize("module", ["heqis.cli", "heqis.data.pipeline", "heqis.train.run"])
def test_core_imports_neither_textual_nor_fabric(module):
    banned = ('textual', 'fabric') if module == 'heqis.train.run' else ('textual', 'fabric', 'torch')
    code = f"import sys, {module}; print([m for m in {banned!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_train_cli_end_to_end_json(isolated, sample_store):
    env = {"HEQIS_DATA_DIR": str(sample_store.root)}
    proc = run("train", "--epochs", "1", "--symbols", "600519.SH,000300.SH", "--out", "runs/r1", "--json",
               env=env, cwd=isolated)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "complete" and result["epochs_run"] == 1
    evaluation = result["evaluation"]["segments"]                       # training ends with heqis evaluate …
    assert list(evaluation) == ["val"] and {"G1", "ensemble", "zero"} <= set(evaluation["val"]["models"])  # … on val
    run_dir = isolated / "runs" / "r1"
    for name in ("manifest.json", "metrics.csv", "scaler_params.json", "checkpoints/last.pt", "checkpoints/G1.pt"):
        assert (run_dir / name).exists(), name
    again = run("train", "--epochs", "1", "--out", "runs/r1", env=env, cwd=isolated)
    assert_one_line_error(again, 1, "already holds a training run", "--resume")
    assert run("train", "--resume", env=env, cwd=isolated).returncode == 2           # --resume needs --out
    resumed = run("train", "--resume", "-o", "runs/r1", "--class-weights", "none", env=env, cwd=isolated)
    assert resumed.returncode == 2 and "keeps the class weights it started with" in resumed.stderr
    resumed = run("train", "--resume", "-o", "runs/r1", "--target", "open", env=env, cwd=isolated)
    assert resumed.returncode == 2 and "keeps the target it started with" in resumed.stderr
    for bad in (("--preset", "huge"), ("--device", "tpu"), ("--class-weights", "equal")):   # usage errors
        proc = run("train", *bad, env=env, cwd=isolated)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and bad[1] in proc.stderr
    assert_one_line_error(run("train", "--symbols", "999999.SH", env=env, cwd=isolated), 1, "999999.SH")
    assert_one_line_error(run("train", "--device", "cuda", env=env, cwd=isolated), 1, "no CUDA device")


def test_fleet_commands_explain_missing_or_bad_fleet_files(isolated):
    assert_one_line_error(run("up", cwd=isolated), 1, "no fleet.toml here", "--local")
    (isolated / "fleet.toml").write_text('[fleet]\nname = "lab"\n[[hosts]]\nname = "rk"\nrole = "gateway"\n'
                                         'host = "192.0.2.10"\n')
    assert_one_line_error(run("status", cwd=isolated), 1, "fleet.toml: hosts[0].user: Field required")
    assert_one_line_error(run("logs", "rk", "--fleet", "nope.toml", cwd=isolated), 1, "nope.toml: fleet file not found")

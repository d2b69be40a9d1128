"""benchmarks/watchdog.py runs end to end at a small size: it builds its cached artifact set once, checks
the outputs it compares, and reports every number it promises (no timing is asserted: the machine is shared)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "watchdog.py"
MS_KEYS = ("model_build_ms", "model_score_ms", "model_ms", "rules_ms", "check_ms", "gateway_off_ms",
           "gateway_rules_ms", "gateway_model_ms")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_watchdog", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_watchdog_benchmark_reports_its_numbers_and_reuses_its_cached_set(bench, tmp_path, capsys):
    args = ["--cache", str(tmp_path / "cache"), "--bars", "40", "--rounds", "2"]
    assert bench.main([*args, "--json"]) == 0
    out = capsys.readouterr()
    r = json.loads(out.out)
    assert r["artifacts_built"] and "building a small artifact set" in out.err
    for key in MS_KEYS:
        assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, key
    assert r["bars"] == r["requests_compared"] == 40 and r["rounds"] == 2
    assert r["threads"] == 1 and r["batch"] == 1 and r["window"] == 20 and r["bars_per_request"] > r["window"]
    assert r["target_ms"] == 0.3 and r["target_met"] == (r["model_ms"] <= 0.3)
    assert r["watchdog_on_path_ms"] == pytest.approx(r["gateway_model_ms"] - r["gateway_off_ms"])
    assert r["share_on_path"] == pytest.approx(r["watchdog_on_path_ms"] / r["gateway_model_ms"])
    assert 0 <= r["suspect_requests"] == r["flagged"] <= 40      # warn: every flagged bar is sent on, marked

    assert bench.main(args) == 0                                 # the text report, from the cached set
    out = capsys.readouterr()
    assert "building" not in out.err
    assert "target ≤ 0.3 ms" in out.out and ("met" in out.out or "MISSED" in out.out)
    assert "share of the gateway's per-bar time" in out.out


def test_artifacts_and_data_dir_go_together(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--artifacts", str(tmp_path)])
    assert exc.value.code == 2 and "--artifacts and --data-dir go together" in capsys.readouterr().err


@pytest.mark.slow
def test_heqis_bench_watchdog_on_an_exported_set(watchdog_export, sample_store):
    from typer.testing import CliRunner

    from heqis.cli import app

    _, out = watchdog_export
    args = ["bench", "watchdog", "-a", str(out), "-d", str(sample_store.root), "--bars", "40", "--rounds", "1"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["bars"] == r["requests_compared"] == 40 and all(r[k] > 0 for k in MS_KEYS)
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0 and "model per window" in text.stdout and "target ≤ 0.3 ms" in text.stdout


def test_heqis_bench_watchdog_without_a_watchdog_is_a_one_line_error(artifacts, sample_store):
    from typer.testing import CliRunner

    from heqis.cli import app

    result = CliRunner().invoke(app, ["bench", "watchdog", "-a", str(artifacts), "-d", str(sample_store.root)])
    assert result.exit_code == 1 and "has no watchdog.onnx" in result.output
    assert "heqis train --watchdog" in result.output
    assert "Traceback" not in result.output

"""CLI conventions: every help page renders, every option explains itself, usage errors exit 2,
and every command resolves its paths and ports through the one settings resolver."""

from __future__ import annotations

import json

import click
import pytest
import typer
from typer.testing import CliRunner

from heqis.cli import app
from tests.test_cli import assert_one_line_error, run


def commands() -> list[tuple[list[str], click.Command]]:
    """Every command and subcommand of ``heqis`` with its path."""
    root = typer.main.get_command(app)
    out: list[tuple[list[str], click.Command]] = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        out.append((path, cmd))
        if hasattr(cmd, "commands"):     # typer ships its own click copy: isinstance(click.Group) misses it
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])

    walk(root, [])
    return out


ALL = commands()


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "heqis")
def test_every_help_page_renders(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Error" not in result.output.split("Usage:")[0]
    assert "<bool>" not in result.output                     # a flag takes no value


@pytest.mark.parametrize(("path", "cmd"), [(p, c) for p, c in ALL if not isinstance(c, click.Group)],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_option_has_help(path, cmd):
    missing = [p.name for p in cmd.params if isinstance(p, click.Option) and not (p.help or "").strip()
               and p.name not in ("help", "install_completion", "show_completion")]
    assert not missing, f"heqis {' '.join(path)}: options without help: {missing}"


def test_help_text_keeps_its_brackets_and_examples():
    data = CliRunner().invoke(app, ["data", "--help"], env={"COLUMNS": "120"}).output
    assert "[data] dir" in data and "HEQIS_DATA_DIR" in data and "heqis data -s csv --path prices.csv" in data
    gateway = CliRunner().invoke(app, ["gateway", "--help"], env={"COLUMNS": "120"}).output
    assert "SYMBOL@ADDRESS[/UNIT]" in gateway and "--replay-from" in gateway


@pytest.mark.parametrize("args", [
    ["train", "--preset", "huge"],
    ["train", "--device", "tpu"],
    ["backtest", "runs/x", "--score", "luck"],
    ["backtest", "runs/x", "--rules", "slippage_bps=zero"],
    ["backtest", "runs/x", "--rules", "nope=1"],
    ["data", "--source", "bogus"],
    ["data", "--volume-unit", "kg"],
    ["convert", "--to", "coreml"],
    ["bench", "backends", "--backend", "cuda9"],
    ["bench", "runtime", "--brains", "1,x"],
    ["gateway", "--target", "b@nowhere"],
    ["gateway", "--target", "b@127.0.0.1:5555", "--source", "radio"],
    ["gateway", "--target", "b@127.0.0.1:5555", "--source", "modbus", "--modbus", "127.0.0.1:5020",
     "--modbus-map", "600519.SH@abc"],
    ["gateway", "--target", "b@127.0.0.1:5555", "--target-reset", "ghost=reboot"],
    ["up", "--local", "--brains", "3", "--base-port", "6000", "--telemetry-port", "6006"],
    ["train", "--symbols", "600519.SH,no way"],
    ["status", "--local", "--fleet", "fleet.toml"],
    ["nosuchcommand"],
    ["data", "--start", "yesterday"],
    ["data", "--symbols", "5"],                                   # a synthetic-panel option without synthetic
    ["data", "-s", "synthetic", "--planted-ic", "5"],
    ["data", "-s", "synthetic", "--cluster", "foo"],
    ["train", "--workers", "2"],                                  # --workers without --search
    ["train", "--from-search", "runs/s", "--params", "p.json"],
])
def test_usage_errors_exit_2_without_a_traceback(isolated, args):
    proc = run(*args, cwd=isolated)
    assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_a_bad_modbus_map_names_the_option_in_one_line(isolated, artifacts):
    proc = run("gateway", "--target", "b@127.0.0.1:5555", "--source", "modbus", "--modbus", "127.0.0.1:5020",
               "--modbus-map", "X@abc", "-a", str(artifacts), cwd=isolated)
    assert_one_line_error(proc, 2, "--modbus-map: 'X@abc' is not SYMBOL@ADDRESS[/UNIT]")


def test_paths_and_ports_come_from_heqis_toml_and_the_environment(isolated, tiny_run, artifacts):
    from heqis.config import load_settings

    (isolated / "heqis.toml").write_text('[artifacts]\ndir = "from-toml"\n[runtime]\ntelemetry_port = 7100\n'
                                         '[local]\nbase_port = 7200\n', encoding="utf-8")
    s = load_settings()
    assert (str(s.artifacts_dir), s.runtime_telemetry_port, s.local_base_port) == ("from-toml", 7100, 7200)
    exported = run("export", str(tiny_run), "-g", "G1", "--json", env={"HEQIS_ARTIFACTS_DIR": "from-env"},
                   cwd=isolated)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["out_dir"] == "from-env" and (isolated / "from-env" / "manifest.json").exists()
    bench = run("bench", "backends", "-g", "G1", "--calls", "10", "--backend", "onnxruntime", "--json",
                env={"HEQIS_ARTIFACTS_DIR": str(artifacts)}, cwd=isolated)
    assert bench.returncode == 0 and json.loads(bench.stdout)["artifact_dir"] == str(artifacts)
    bad = run("brain", cwd=isolated, env={"HEQIS_RUNTIME_BRAIN_PORT": "0"})
    assert_one_line_error(bad, 1, "runtime_brain_port", "HEQIS_RUNTIME_BRAIN_PORT")

"""Shared fixtures: an isolated working directory, the sample tables and a sample store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heqis.config import load_settings
from heqis.data.pipeline import DataRequest, run_data
from heqis.data.sources.sample import generate_tables
from heqis.data.sources.tables import TableApi
from heqis.data.store import DataStore
from heqis.data.watchlist import default_watchlist_text, parse_watchlist

REPO = Path(__file__).resolve().parents[1]
# set by `make test` / .ci/run for the test machinery itself, not user settings
TEST_INFRA_ENV = {"HEQIS_RKNN_PYTHON", "HEQIS_REQUIRE_RKNN", "HEQIS_REQUIRE_SSHD", "HEQIS_WHEELHOUSE"}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own directory with no HEQIS_* variables from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("HEQIS_") and key not in TEST_INFRA_ENV:
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="session")
def instruments():
    return parse_watchlist(default_watchlist_text())


@pytest.fixture(scope="session")
def sample_tables(instruments):
    return generate_tables(instruments)


@pytest.fixture
def table_api(sample_tables) -> TableApi:
    return TableApi({k: v.copy() for k, v in sample_tables.items()})


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> DataStore:
    """The bundled sample set, written once per session (read-only for tests)."""
    base = tmp_path_factory.mktemp("sample")
    watchlist = base / "watchlist.txt"
    watchlist.write_text(default_watchlist_text(), encoding="utf-8")
    root = base / "heqis-data"
    run_data(DataRequest(source="sample", data_dir=root, watchlist=watchlist), load_settings())
    return DataStore(root)


@pytest.fixture(scope="session")
def tiny_run(sample_store, tmp_path_factory):
    """A short training run on the whole sample store (read-only for tests)."""
    from heqis.train.run import TrainRequest, run_train

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    run_train(TrainRequest(data_dir=sample_store.root, preset="tiny", epochs=2, device="cpu", out=out,
                           overrides={"pretrain_epochs": 1, "encoder_epochs": 1, "max_train_windows": 600}))
    return out


@pytest.fixture(scope="session")
def artifacts(tiny_run, tmp_path_factory):
    """The tiny run exported (every generator), read-only for tests."""
    from heqis.export.onnx_export import export_run

    out = tmp_path_factory.mktemp("artifacts") / "deploy_output"
    export_run(tiny_run, out=out)
    return out


@pytest.fixture(scope="session")
def watchdog_export(tiny_run, tmp_path_factory):
    """The tiny run with a watchdog added through the CLI (generators untouched), exported: (run, set)."""
    import json
    import shutil

    import torch
    from typer.testing import CliRunner

    from heqis.cli import app
    from heqis.export.onnx_export import export_run

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("wd-export")
    run = base / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "manifest.json").read_bytes()
    result = CliRunner().invoke(app, ["train", "--watchdog", "--watchdog-fpr", "0.01", "-o", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert (run / "manifest.json").read_bytes() == before                # only the watchdog was trained
    assert json.loads((run / "watchdog.json").read_text())["fpr"] == 0.01
    out = base / "deploy_output"
    export_run(run, out=out)
    return run, out


@pytest.fixture(scope="session")
def watchdog_panel(tmp_path_factory):
    """A SYNTHETIC store of 50 symbols x 3 years and a watchdog trained on it at the default 0.5%
    calibration: (store root, watchdog run folder, WatchdogResult)."""
    import torch

    from heqis.train.watchdog import WatchdogConfig, train_watchdog

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("watchdog")
    root = base / "store"
    run_data(DataRequest(source="synthetic", data_dir=root, symbols=50, years=3, workers=1), load_settings())
    result = train_watchdog(base / "wd", data_dir=root, config=WatchdogConfig(epochs=8))
    return root, base / "wd", result

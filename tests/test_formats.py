"""Formats and their versions: older stores are upgraded, older runs / artifact sets / signal stores get a
one-line error or a migration, a stale feature cache is refused or recomputed, and generators may use
different window lengths end to end."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pandas as pd
import pytest

from heqis.config import load_settings
from heqis.data.pipeline import DataRequest, run_data
from heqis.data.store import DataStore
from heqis.errors import HeqisError
from heqis.features.frames import add_features
from heqis.formats import ArtifactSet, RunFolder
from heqis.runtime.signal_store import SignalStore
from tests.test_cli import assert_one_line_error, run


def wave1_store(sample_store, where):
    """The sample store as wave 1 wrote it: feature columns inside bars/, manifest format 1, no cache."""
    shutil.copytree(sample_store.root, where)
    shutil.rmtree(where / "features")
    for path in (where / "bars").glob("*.parquet"):
        add_features(pd.read_parquet(path)).to_parquet(path, index=False)
    manifest = json.loads((where / "manifest.json").read_text())
    manifest["version"] = 1
    manifest.pop("features")
    manifest["features"] = ["ma5", "ma10"]        # wave 1 recorded column names only
    (where / "manifest.json").write_text(json.dumps(manifest))
    return DataStore(where)


def test_an_older_store_is_refused_by_research_and_upgraded_by_heqis_data(sample_store, isolated):
    old = wave1_store(sample_store, isolated / "old")
    proc = run("train", "-d", str(old.root), "--epochs", "1", cwd=isolated)
    assert_one_line_error(proc, 1, "written by an older heqis (store format 1", f"heqis data -s sample -d {old.root}")
    result = run_data(DataRequest(source="sample", data_dir=old.root, bundled_watchlist=True), load_settings())
    assert any("upgraded the store to format 2" in n for n in result.notes)
    assert result.content_hash == sample_store.manifest()["content_hash"]       # the same market data
    for code in sample_store.symbols():
        pd.testing.assert_frame_equal(old.read_bars(code), sample_store.read_bars(code))
        pd.testing.assert_frame_equal(old.read_features(code), sample_store.read_features(code))
    assert old.require_current()["version"] == 2


def test_a_stale_feature_cache_is_refused_then_recomputed(sample_store, isolated, tiny_run):
    store = DataStore(isolated / "store")
    shutil.copytree(sample_store.root, store.root)
    manifest = json.loads(store.manifest_path.read_text())
    manifest["features"]["fingerprint"] = {**manifest["features"]["fingerprint"], "id": "v0-oldcode", "version": 0}
    store.manifest_path.write_text(json.dumps(manifest))
    frame = store.read_features("600519.SH")
    frame["ma5"] = 0.0                                      # what older indicator code might have stored
    store.write_features("600519.SH", frame)
    with pytest.raises(HeqisError, match=r"feature cache of .* was made with features v0-oldcode"):
        store.require_current()
    assert_one_line_error(run("backtest", str(tiny_run), "-d", str(store.root), cwd=isolated), 1, "v0-oldcode",
                          "heqis data -s sample")
    result = run_data(DataRequest(source="sample", data_dir=store.root, bundled_watchlist=True), load_settings())
    assert any("recomputed the feature cache" in n for n in result.notes)
    np.testing.assert_array_equal(store.read_features("600519.SH")["ma5"],
                                  sample_store.read_features("600519.SH")["ma5"])
    assert store.require_current()["content_hash"] == sample_store.manifest()["content_hash"]


def test_older_runs_and_artifact_sets_get_one_line_errors(tiny_run, artifacts, isolated):
    run_dir, art = isolated / "run", isolated / "art"
    shutil.copytree(tiny_run, run_dir)
    shutil.copytree(artifacts, art)
    for folder in (run_dir, art):
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["version"] = 1
        (folder / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(run("backtest", str(run_dir), cwd=isolated), 1, "written by an older heqis (heqis-run "
                          "format 1", "train it again")
    assert_one_line_error(run("brain", "-a", str(art), cwd=isolated), 1, "written by an older heqis "
                          "(heqis-artifacts format 1", "export it again")


def test_a_brain_refuses_artifacts_made_with_other_feature_code(artifacts, isolated):
    art = isolated / "art"
    shutil.copytree(artifacts, art)
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["features"] = {**manifest["features"], "id": "v9-future"}
    (art / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(run("brain", "-a", str(art), cwd=isolated), 1, "made with features v9-future",
                          "export it again with this heqis")


def test_manifest_names_outside_the_folder_are_refused(artifacts, isolated):
    art = isolated / "art"
    shutil.copytree(artifacts, art)
    manifest = json.loads((art / "manifest.json").read_text())
    for name in ("../../etc/hostname", "/etc/hostname", "a/../../x"):
        bad = {**manifest, "files": {**manifest["files"], name: "0" * 64}}
        (art / "manifest.json").write_text(json.dumps(bad))
        with pytest.raises(HeqisError, match="not a plain relative path"):
            ArtifactSet.open(art)


def test_a_wave1_signal_store_is_migrated_with_its_rows(isolated):
    path = isolated / "signals.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE signals (symbol TEXT NOT NULL, bar_time INTEGER NOT NULL, model TEXT NOT NULL,
            seq INTEGER NOT NULL, action INTEGER NOT NULL, reg REAL NOT NULL, p_down REAL, p_flat REAL, p_up REAL,
            latency_us REAL, queue_us REAL, pre_us REAL, inf_us REAL, brain TEXT,
            stored_at REAL NOT NULL DEFAULT (julianday('now')), PRIMARY KEY (symbol, bar_time, model));
        INSERT INTO signals (symbol, bar_time, model, seq, action, reg) VALUES ('A', 1, 'G1', 1, 1, 0.1),
            ('A', 2, 'G1', 2, -1, -0.2);""")
    db.commit()
    db.close()
    store = SignalStore(path)
    assert store.migrated == 2 and store.count() == 2
    assert {r["artifacts"] for r in store.latest()} == {"unknown"}
    store.add({"symbol": "A", "bar_time": 2, "model": "G1", "artifacts": "new-set", "seq": 3, "action": 1, "reg": 0.0})
    assert store.flush() == 1 and store.count() == 3        # a new export's decision goes beside the old one
    store.close()
    assert SignalStore(path).migrated == 0                   # once


@pytest.mark.slow
def test_generators_with_different_windows_train_export_and_serve(tiny_run, sample_store, tmp_path):
    """A run whose G2 uses 30-bar windows next to G3's 60: export writes one scaler and calibration set per
    window, the brain feeds each generator its own window, and the gateway's requests carry enough bars."""
    from heqis.export.onnx_export import export_run
    from heqis.runtime.gateway import BrainTarget
    from heqis.runtime.replay_pack import store_arrays
    from heqis.runtime.sources import Aligner, ReplaySource
    from heqis.train.run import TrainRequest, run_train
    from tests.runtime_helpers import GatewayThread, free_ports, gateway_config, start_brain

    short = tmp_path / "short"
    run_train(TrainRequest(data_dir=sample_store.root, preset="tiny", epochs=1, device="cpu", out=short,
                           overrides={"pretrain_epochs": 1, "encoder_epochs": 1, "max_train_windows": 400,
                                      "window": 30, "game": "legacy"}))
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_run, mixed)
    shutil.copyfile(short / "checkpoints" / "G2.pt", mixed / "checkpoints" / "G2.pt")
    shutil.copyfile(short / "scaler_params.json", mixed / "scaler_w30.json")
    manifest = json.loads((mixed / "manifest.json").read_text())
    manifest["generators"]["G2"].update(window=30, scaler="scaler_w30.json")
    (mixed / "manifest.json").write_text(json.dumps(manifest))
    assert RunFolder.open(mixed).window("G2") == 30 and RunFolder.open(mixed).window("G3") == 60

    art = tmp_path / "art"
    export_run(mixed, ["G3", "G2"], out=art)
    aset = ArtifactSet.open(art)
    assert (aset.window("G3"), aset.window("G2"), aset.max_window) == (60, 30, 60)
    assert aset.file_name("G2", "scaler") == "scaler_w30.json" and aset.file_name("G3", "scaler") == \
        "scaler_params.json"
    assert np.load(aset.path("G2", "calibration")).shape[1] == 30
    assert np.load(aset.path("G3", "calibration")).shape[1] == 60
    routing = json.loads((art / "routing.json").read_text())
    routing["symbols"]["600519.SH"]["generator"] = "G2"
    routing["symbols"]["000001.SZ"]["generator"] = "G3"
    from heqis.fileio import sha256_file, write_json
    from heqis.formats.artifacts import write_artifact_manifest

    write_json(art / "routing.json", routing)
    doc = aset.manifest
    doc["files"] = {n: sha256_file(art / n) for n in doc["files"]}
    write_artifact_manifest(art, doc)

    base = free_ports(6)
    brain = start_brain(art, base + 2, log=tmp_path / "brain.log")
    try:
        from datetime import date

        from heqis.runtime.bars import history_length

        src = ReplaySource(store_arrays(sample_store.root, ["600519.SH", "000001.SZ"]), history_length(60),
                           date(2024, 12, 2), min_bars=130)
        gw = GatewayThread(gateway_config(base, [BrainTarget("brain-1", "127.0.0.1", base + 2)], tmp_path / "s.db",
                                          exit_when_done=True), Aligner([src]))
        gw.thread.join(180)
        assert not gw.thread.is_alive()
        rows = SignalStore(tmp_path / "s.db").rows()
        models = {(sym, model) for sym, _, model, _, _ in rows}
        assert models == {("600519.SH", "G2"), ("000001.SZ", "G3")} and len(rows) == src.total
        assert gw.gateway.counters["errors"] == 0
    finally:
        brain.kill()

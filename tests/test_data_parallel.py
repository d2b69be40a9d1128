"""``heqis data`` in parallel: the same store from K processes, from a Dask local cluster and from one
process, and a run interrupted mid-way resumes without losing or duplicating a symbol."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heqis.config import load_settings
from heqis.data.pipeline import DataRequest, run_data
from heqis.data.sources.synthetic import SyntheticPanel
from heqis.data.store import DataStore
from heqis.errors import HeqisError

REPO = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict[str, str]:
    """The stored market files by sha256 (bars, calendar, universe: what content_hash covers)."""
    return dict(DataStore(root).require_current()["files"])


def assert_same_store(a: Path, b: Path) -> None:
    """Same market files byte for byte; the same feature cache within 1e-12 relative. (The cache is
    computed data: with a cold numba cache a worker process and the parent may contract the MACD's
    multiply-adds differently, measured 3.6e-15 absolute / 1.6e-13 relative.)"""
    import numpy as np
    import pandas as pd

    assert _files(a) == _files(b)
    fa, fb = (sorted(p.name for p in (r / "features").glob("*.parquet")) for r in (a, b))
    assert fa == fb and fa
    for name in fa:
        x, y = pd.read_parquet(a / "features" / name), pd.read_parquet(b / "features" / name)
        assert list(x.columns) == list(y.columns) and len(x) == len(y), name
        num = x.select_dtypes("number").columns
        np.testing.assert_allclose(x[num].to_numpy(), y[num].to_numpy(), rtol=1e-12, atol=1e-12, err_msg=name)


def _csv_folder(folder: Path, symbols: int) -> Path:
    folder.mkdir()
    panel = SyntheticPanel(symbols, years=1, seed=3)
    for inst in panel.instruments():
        raw, _ = panel.build(inst)
        out = raw.rename(columns={"trade_date": "date", "open_raw": "open", "high_raw": "high",
                                  "low_raw": "low", "close_raw": "close"})
        out["volume"] = (out["vol"] * 100).round(0)
        out["amount"] = (out["amount"] * 1000).round(2)
        out["date"] = out["date"].dt.strftime("%Y-%m-%d")
        out[["date", "open", "high", "low", "close", "volume", "amount"]].to_csv(folder / f"{inst.ts_code}.csv",
                                                                                 index=False)
    return folder


def test_two_processes_write_the_store_one_process_writes(tmp_path):
    one = run_data(DataRequest(source="synthetic", data_dir=tmp_path / "one", symbols=24, years=1, workers=1),
                   load_settings())
    two = run_data(DataRequest(source="synthetic", data_dir=tmp_path / "two", symbols=24, years=1, workers=2),
                   load_settings())
    assert one.content_hash == two.content_hash
    assert_same_store(tmp_path / "one", tmp_path / "two")                 # the feature cache too
    assert [s.ts_code for s in one.symbols] == [s.ts_code for s in two.symbols]
    assert DataStore(tmp_path / "two").verify() == []


def test_csv_on_a_dask_local_cluster_gives_the_one_process_store(tmp_path):
    pytest.importorskip("distributed")
    folder = _csv_folder(tmp_path / "csv", 5)
    one = run_data(DataRequest(source="csv", csv_path=folder, data_dir=tmp_path / "one", workers=1), load_settings())
    dask = run_data(DataRequest(source="csv", csv_path=folder, data_dir=tmp_path / "dask", workers=1,
                                cluster="local"), load_settings())
    assert one.content_hash == dask.content_hash
    assert_same_store(tmp_path / "one", tmp_path / "dask")
    assert len(one.symbols) == 6


def test_a_bad_csv_file_stops_the_run_before_anything_is_written(tmp_path):
    folder = _csv_folder(tmp_path / "csv", 3)
    (folder / "BAD.csv").write_text("date,open,high\n2024-01-02,1,2\n", encoding="utf-8")
    with pytest.raises(HeqisError, match=r"BAD\.csv"):
        run_data(DataRequest(source="csv", csv_path=folder, data_dir=tmp_path / "store", workers=2), load_settings())
    assert not (tmp_path / "store" / "bars").exists()


SYMBOLS = 240


def test_an_interrupted_run_resumes_without_losing_or_duplicating_a_symbol(tmp_path):
    # enough symbols that the run is still going seconds after the tenth (a starved test process on a
    # loaded machine once saw 80 symbols finish before its first Ctrl-C landed)
    root = tmp_path / "store"
    cmd = [sys.executable, "-m", "heqis", "data", "-s", "synthetic", "--symbols", str(SYMBOLS), "--years", "1",
           "--workers", "1", "-d", str(root), "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # a job started in the background (`make test &`) inherits SIGINT ignored, and a Python started so
    # never installs its KeyboardInterrupt handler: give the run the terminal's default, as a user's has
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    journal = root / ".partial" / "journal.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text(encoding="utf-8").splitlines()) > 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    # Ctrl-C until it stops: a first SIGINT that lands inside a compiled extension (numba compiling
    # on a cold cache) can be swallowed there, as a user would press it again
    stop = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < stop:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not (root / "manifest.json").exists()                      # the manifest is written last
    done = len(journal.read_text(encoding="utf-8").splitlines()) - 1
    assert 10 <= done < SYMBOLS + 1

    resumed = run_data(DataRequest(source="synthetic", data_dir=root, symbols=SYMBOLS, years=1, workers=1),
                       load_settings())
    assert any(f"{done} of {SYMBOLS + 1} symbols were already built" in n for n in resumed.notes), resumed.notes
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["symbols"]) == len(set(manifest["symbols"])) == SYMBOLS + 1
    assert DataStore(root).verify() == [] and not journal.exists()
    fresh = run_data(DataRequest(source="synthetic", data_dir=tmp_path / "fresh", symbols=SYMBOLS, years=1, workers=1),
                     load_settings())
    assert resumed.content_hash == fresh.content_hash
    assert_same_store(root, tmp_path / "fresh")


def test_the_sample_in_two_processes_writes_the_one_process_store(tmp_path):
    """The bundled sample's symbols in worker processes: the same store, and a second run fetches nothing."""
    from heqis.data.watchlist import default_watchlist_text

    watchlist = tmp_path / "wl.txt"
    watchlist.write_text(default_watchlist_text() + "600010.SH\n300002.SZ\n688002.SH\n159915.SZ\n", encoding="utf-8")
    runs = {k: run_data(DataRequest(source="sample", data_dir=tmp_path / f"w{k}", watchlist=watchlist, workers=k),
                        load_settings()) for k in (1, 2)}
    assert runs[1].content_hash == runs[2].content_hash
    assert_same_store(tmp_path / "w1", tmp_path / "w2")
    assert [s.ts_code for s in runs[1].symbols] == [s.ts_code for s in runs[2].symbols]
    assert [s.__dict__ for s in runs[1].symbols] == [s.__dict__ for s in runs[2].symbols]
    assert runs[1].api_calls == runs[2].api_calls > 0
    again = run_data(DataRequest(source="sample", data_dir=tmp_path / "w2", watchlist=watchlist, workers=2),
                     load_settings())
    assert again.content_hash == runs[2].content_hash and not any(s.fetched for s in again.symbols)
    assert "up to date: nothing to fetch" in again.notes and DataStore(tmp_path / "w2").verify() == []

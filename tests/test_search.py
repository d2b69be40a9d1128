"""``heqis train --search N --workers K``: K processes on one Optuna journal study, N trials between
them, and ``heqis train --from-search`` training the best one (tiny data, 1 epoch)."""

from __future__ import annotations

import json
import math
import socket
import time
from pathlib import Path

import pytest
import torch

from heqis.errors import HeqisError, InvalidValue
from heqis.train.run import TrainRequest
from tests.test_cli import assert_one_line_error, run

SYMBOLS = ["600519.SH", "000001.SZ"]
TINY = {"pretrain_epochs": 1, "encoder_epochs": 1, "max_train_windows": 300}
N = 4


def request(store, out: Path, **kw) -> TrainRequest:
    return TrainRequest(data_dir=store.root, preset="tiny", symbols=SYMBOLS, epochs=1, device="cpu", out=out,
                        overrides=dict(TINY), **kw)


@pytest.fixture(scope="module")
def searched(sample_store, tmp_path_factory):
    """A search of N trials by two concurrent worker processes on the default journal storage."""
    from heqis.train.search import run_search

    out = tmp_path_factory.mktemp("search") / "s"
    t0 = time.monotonic()
    result = run_search(request(sample_store, out), N, None, workers=2)
    print(f"2 workers, {N} trials: {time.monotonic() - t0:.1f} s")
    return out, result


def stored_trials(out: Path):
    import optuna

    from heqis.train.search import JOURNAL, StorageSpec, open_storage

    storage = open_storage(StorageSpec("journal", str(out / JOURNAL)))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)


def test_two_workers_run_n_trials_once_each_on_one_journal(searched):
    out, result = searched
    trials = stored_trials(out)
    assert sorted(t.number for t in trials) == list(range(N))              # none lost, none duplicated
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert all(math.isfinite(t.value) for t in trials if t.state.name == "COMPLETE")
    assert (result.trials, result.added, result.workers) == (N, N, 2)
    print("trials per worker:", {w: sum(t.user_attrs["worker"] == w for t in trials)
                                 for w in {t.user_attrs["worker"] for t in trials}})
    record = json.loads((out / "search.json").read_text())
    table = [{k: row[k] for k in ("number", "state", "value", "params")} for row in record["trials_table"]]
    assert table == [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
                     for t in sorted(trials, key=lambda t: t.number)]
    best = min((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert (record["best_trial"], record["best_params"]) == (best.number, best.params)
    assert record["storage"] == f"journal:{(out / 'optuna.journal').resolve()}"


def test_from_search_trains_the_best_trial_and_records_it(searched, sample_store, tmp_path):
    from typer.testing import CliRunner

    from heqis.cli import app

    out, _ = searched
    record = json.loads((out / "search.json").read_text())
    best = record["best_params"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a 1-epoch run: a second thread only spins on a busy 2-core machine
    try:
        res = CliRunner().invoke(app, ["train", "--from-search", str(out), "-d", str(sample_store.root),
                                       "-o", str(tmp_path / "best"), "--device", "cpu", "--seed", "11", "--json"])
    finally:
        torch.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "best" / "manifest.json").read_text())
    preset = manifest["preset"]
    assert (preset["lr"], preset["window"], manifest["window"]) == (best["lr"], best["window"], best["window"])
    assert preset["generators"]["G1"]["hidden"] == best["hidden"] == preset["generators"]["G3"]["d_model"]
    assert (preset["name"], preset["epochs"], preset["max_train_windows"]) == ("tiny", 1, 300)  # the study's
    assert manifest["seed"] == 11 and manifest["symbols"] == sorted(SYMBOLS)  # --seed given wins; symbols: the study's
    source = manifest["params_from"]
    assert (source["kind"], source["trial"], source["study"]) == ("search", record["best_trial"], record["study"])
    assert source["record"] == str((out / "search.json").resolve()) and source["params"] == best


def test_from_search_refuses_a_store_with_other_data(searched, sample_store, tmp_path):
    from heqis.train.provenance import params_from_search
    from heqis.train.run import run_train

    out, _ = searched
    moved = tmp_path / "other"
    moved.mkdir()
    record = json.loads((out / "search.json").read_text())
    (moved / "search.json").write_text(json.dumps({**record, "data_hash": "f" * 64}))
    chosen = params_from_search(moved)
    req = request(sample_store, tmp_path / "run", params=chosen.params, params_from=chosen.source)
    with pytest.raises(HeqisError, match=r"ran on other data \(ffffffffffff\)") as exc:
        run_train(req)
    assert "--data-dir" in (exc.value.hint or "") and not (tmp_path / "run" / "manifest.json").exists()


def test_params_files_are_checked(tmp_path):
    from heqis.train.presets import get_preset
    from heqis.train.provenance import apply_params, params_from_file

    good = tmp_path / "p.json"
    good.write_text('{"lr": 0.003, "hidden": 48, "window": 40}')
    chosen = params_from_file(good)
    p = apply_params(get_preset("tiny"), chosen.params)
    assert (p.lr, p.window, p.generators["G2"]["hidden"], p.generators["G3"]["d_model"]) == (0.003, 40, 48, 48)
    assert 48 % p.generators["G3"]["heads"] == 0 and chosen.source["kind"] == "file"
    for body, needle in (('{"lr": -1}', "lr must be a positive number"), ('{"depth": 3}', "unknown parameter"),
                         ('{"hidden": 2.5}', "hidden must be a whole number"), ("[1, 2]", "a JSON object"),
                         ("{lr: 1", "not valid JSON")):
        good.write_text(body)
        with pytest.raises(HeqisError, match=needle):
            params_from_file(good)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://heqis:s3cret@db:5432/optuna", "postgresql://heqis:***@db:5432/optuna"),
    ("postgresql+psycopg2://u:p@ss@db/x", "postgresql+psycopg2://u:***@db/x"),
    ("mysql://u@db/x?password=s3cret&ssl=1", "mysql://u@db/x?password=***&ssl=1"),
    ("sqlite:///runs/s/optuna.db", "sqlite:///runs/s/optuna.db"),
])
def test_storage_urls_are_printed_without_passwords(url, shown):
    from heqis.train.search import redact_url

    assert redact_url(url) == shown


def test_storage_forms(tmp_path):
    from heqis.train.search import parse_storage

    assert parse_storage(None, tmp_path).shown == f"journal:{(tmp_path / 'optuna.journal').resolve()}"
    assert parse_storage("journal:x/study.db", tmp_path).kind == "journal"
    assert parse_storage("x/study.log", tmp_path).target == str(Path("x/study.log").resolve())
    assert parse_storage("postgresql://u:p@h/db", tmp_path).kind == "rdb"
    for bad in ("redis://h:6379", "optuna.db"):
        with pytest.raises(InvalidValue):
            parse_storage(bad, tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_databases_and_missing_folders_are_one_line_errors(sample_store, tmp_path):
    from heqis.train.search import run_search

    url = f"postgresql://heqis:s3cret@127.0.0.1:{free_port()}/optuna"
    with pytest.raises(HeqisError) as exc:   # no driver installed, or nothing listening: either way one line
        run_search(request(sample_store, tmp_path / "a"), 1, url)
    text = f"{exc.value.message} {exc.value.hint}"
    assert "s3cret" not in text and "heqis:***@127.0.0.1" in text and "\n" not in text
    with pytest.raises(HeqisError, match="does not exist"):
        run_search(request(sample_store, tmp_path / "b"), 1, str(tmp_path / "no" / "such" / "s.journal"))


def test_cli_refuses_workers_without_search_and_a_folder_without_a_search(tmp_path):
    from typer.testing import CliRunner

    from heqis.cli import app

    for args, needle in ((["--workers", "2"], "--workers needs --search"),
                         (["--from-search", str(tmp_path), "--search", "3"], "does not go with"),
                         (["--from-search", str(tmp_path), "--params", "p.json"], "not both")):
        res = CliRunner().invoke(app, ["train", *args], env={"COLUMNS": "200"})
        assert res.exit_code == 2 and needle in res.output, res.output
    assert_one_line_error(run("train", "--from-search", str(tmp_path)), 1, "no search.json there")

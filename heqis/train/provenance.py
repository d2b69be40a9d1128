"""Provenance recorded in every run manifest: package versions, the git commit, and where the
hyper-parameters came from (a finished ``heqis train --search`` or a ``--params`` file).

A run trained with ``--from-search RUN_DIR`` records the search record, its study and best trial
(docs/architecture.md, "Scaling out"), so its manifest says why it has the sizes it has.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import subprocess
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from heqis.errors import HeqisError
from heqis.train.presets import Preset

PACKAGES = ("heqis", "torch", "numpy", "pandas", "pyarrow", "numba", "optuna", "tushare")
SEARCH_RECORD = "search.json"
PARAM_NAMES = ("lr", "hidden", "window")   # what heqis train --search searches


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the heqis source tree (with '+dirty' when it has changes), or None outside git."""
    here = where or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


# -- hyper-parameters from a search or a file ---------------------------------------------------------
def check_params(raw: Any, where: str) -> dict[str, Any]:
    """``{"lr": float > 0, "hidden": int >= 1, "window": int >= 2}`` (any subset), or a one-line error."""
    if not isinstance(raw, dict):
        raise HeqisError(f"{where}: expected a JSON object of {', '.join(PARAM_NAMES)}",
                         hint='e.g. {"lr": 0.002, "hidden": 32, "window": 45}')
    unknown = sorted(set(raw) - set(PARAM_NAMES))
    if unknown:
        raise HeqisError(f"{where}: unknown parameter(s) {', '.join(unknown)}",
                         hint=f"known: {', '.join(PARAM_NAMES)}")
    out: dict[str, Any] = {}
    if "lr" in raw:
        lr = raw["lr"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise HeqisError(f"{where}: lr must be a positive number, got {lr!r}")
        out["lr"] = float(lr)
    for name, least in (("hidden", 1), ("window", 2)):
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise HeqisError(f"{where}: {name} must be a whole number of at least {least}, got {value!r}")
            out[name] = value
    return out


def apply_params(preset: Preset, params: dict[str, Any]) -> Preset:
    """A copy of ``preset`` with the searched parameters set: ``hidden`` sizes every generator
    (attention heads kept dividing the transformer's width)."""
    p = copy.deepcopy(preset)
    if "lr" in params:
        p.lr = float(params["lr"])
    if "window" in params:
        p.set_window(int(params["window"]))
    if "hidden" in params:
        hidden = int(params["hidden"])
        for spec in p.generators.values():
            if spec["kind"] == "transformer":
                spec["d_model"] = hidden
                spec["heads"] = math.gcd(spec.get("heads", 2), hidden)
            else:
                spec["hidden"] = hidden
    return p


@dataclass
class ParamsSource:
    """Parameters to train with, the study settings that go with them, and where they came from."""

    params: dict[str, Any]
    source: dict[str, Any]                    # recorded as the run manifest's "params_from"
    preset: str | None = None                 # the search's, used unless given on the command line
    epochs: int | None = None
    seed: int | None = None
    symbols: list[str] | None = None          # the search's symbols, used unless --symbols is given
    overrides: dict[str, Any] = field(default_factory=dict)   # the search's preset overrides


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HeqisError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise HeqisError(f"{path} is not valid JSON ({exc})") from None


def params_from_search(run_dir: Path) -> ParamsSource:
    """The best trial of the search whose ``--out`` was ``run_dir`` (its ``search.json``)."""
    run_dir = Path(run_dir)
    record = run_dir / SEARCH_RECORD
    if not record.is_file():
        hint = ("give the --out folder of a finished heqis train --search" if run_dir.is_dir()
                else "no such folder")
        raise HeqisError(f"--from-search {run_dir}: no {SEARCH_RECORD} there", hint=hint)
    raw = _read_json(record, "the search record")
    missing = [k for k in ("best_params", "data_hash", "preset", "epochs", "seed", "study", "best_trial")
               if not isinstance(raw, dict) or k not in raw]
    if missing:
        raise HeqisError(f"{record}: not a search record (no {', '.join(missing)})",
                         hint="re-run heqis train --search to write it again")
    params = check_params(raw["best_params"], str(record))
    source = {"kind": "search", "record": str(record.resolve()), "study": raw["study"],
              "trial": raw["best_trial"], "value": raw.get("best_value"), "storage": raw.get("storage"),
              "data_hash": raw["data_hash"], "params": params}
    return ParamsSource(params, source, preset=raw["preset"], epochs=raw["epochs"], seed=raw["seed"],
                        symbols=raw.get("symbols"), overrides=dict(raw.get("overrides") or {}))


def params_from_file(path: Path) -> ParamsSource:
    """Parameters from a JSON file (a ``search.json``'s ``best_params``, or written by hand)."""
    path = Path(path)
    if not path.is_file():
        raise HeqisError(f"--params {path}: no such file", hint='a JSON like {"lr": 0.002, "hidden": 32, '
                         '"window": 45}')
    params = check_params(_read_json(path, "the parameter file"), str(path))
    return ParamsSource(params, {"kind": "file", "path": str(path.resolve()), "params": params})


def check_data_hash(source: dict[str, Any] | None, content_hash: str, store_root: Path) -> None:
    """Parameters searched on other data are refused: they were chosen for that data."""
    wanted = (source or {}).get("data_hash")
    if wanted and wanted != content_hash:
        raise HeqisError(f"the search in {Path(source['record']).parent} ran on other data "   # type: ignore[index]
                         f"({wanted[:12]}) than {store_root} ({content_hash[:12]})",
                         hint="point --data-dir at the store the search used, or search again on this one")

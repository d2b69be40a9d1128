"""What edge hosts install from: the heqis wheel and a wheelhouse for the host's platform and Python.

Hosts are often offline, so everything ``heqis[edge]`` (the base install: no torch, pandas or
pyarrow) needs is downloaded here with ``pip download --only-binary=:all: --platform …
--python-version …`` and installed there with ``--no-index``. Both are cached under
``.heqis/wheelhouse/<machine>-py<version>/`` ($HEQIS_WHEELHOUSE) and rebuilt only when the requirements change; the
wheel is built with a fixed SOURCE_DATE_EPOCH so an unchanged source tree gives identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

from heqis.errors import HeqisError


def cache_dir() -> Path:
    """``$HEQIS_WHEELHOUSE`` or ./.heqis/wheelhouse."""
    return Path(os.environ.get("HEQIS_WHEELHOUSE", ".heqis/wheelhouse"))


def platform_tags(machine: str) -> list[str]:
    """manylinux tags for ``machine`` (x86_64, aarch64); onnxruntime needs the 2_28 one."""
    arch = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine.lower(), machine.lower())
    return [f"manylinux2014_{arch}", f"manylinux_2_17_{arch}", f"manylinux_2_28_{arch}"]


def edge_requirements() -> list[str]:
    """heqis' base requirements (markers kept: pip evaluates them for the target Python)."""
    reqs = [r for r in (requires("heqis") or []) if "extra ==" not in r]
    if not reqs:
        raise HeqisError("cannot read heqis' requirements (is it installed?)")
    return sorted(reqs)


def source_root() -> Path:
    import heqis

    root = Path(heqis.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").exists():
        raise HeqisError("heqis is not installed from a source tree, so its wheel cannot be built here",
                         hint="run heqis up from a checkout (pip install -e .)")
    return root


def build_wheel(out: Path) -> Path:
    """The heqis wheel, reproducibly (identical bytes for an unchanged source tree)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("heqis-*.whl"):
        old.unlink()
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out),
                        str(source_root())], capture_output=True, text=True, env=env)
    wheels = sorted(out.glob("heqis-*.whl"))
    if p.returncode != 0 or not wheels:
        raise HeqisError(f"building the heqis wheel failed: {(p.stderr or p.stdout).strip().splitlines()[-1:]}")
    return wheels[-1]


def wheelhouse(machine: str, python: str, cache: Path | None = None) -> Path:
    """Wheels of every edge requirement for (machine, python 'X.Y'); downloaded once, then cached."""
    reqs = edge_requirements()
    folder = (cache or cache_dir()) / f"{machine}-py{python}"
    stamp = folder / ".requirements.json"
    key = hashlib.sha256(json.dumps([reqs, platform_tags(machine)]).encode()).hexdigest()
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", python,
           "--implementation", "cp", "-d", str(folder)]
    for tag in platform_tags(machine):
        cmd += ["--platform", tag]
    p = subprocess.run([*cmd, *reqs], capture_output=True, text=True,
                       env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-2:]
        raise HeqisError(f"downloading the wheelhouse for {machine}/py{python} failed: {' '.join(tail)}",
                         hint="this machine needs the package index once; the hosts never do")
    stamp.write_text(json.dumps({"key": key, "requirements": reqs}))
    return folder

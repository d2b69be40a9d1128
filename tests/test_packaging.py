"""Packaging: every sub-package is installed, and the layering holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"heqis": "heqis", "heqis_console": "console", "heqis_remote": "remote"}


def test_every_package_directory_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for name, folder in ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == listed


def test_console_and_remote_import_under_their_package_names():
    code = "import heqis_console, heqis_remote; print(heqis_console.__name__, heqis_remote.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["heqis_console", "heqis_remote"]


def test_constraints_pin_cpu_torch():
    lines = (REPO / "constraints.txt").read_text().splitlines()
    assert "torch==2.13.0" in [ln.strip() for ln in lines]

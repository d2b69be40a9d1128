"""The JSON manifest every format carries: a ``kind``, a format ``version``, and what the format lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heqis.errors import HeqisError
from heqis.fileio import read_json

MANIFEST = "manifest.json"


def read_manifest(folder: Path, kind: str, version: int, what: str, missing_hint: str,
                  outdated_hint: str) -> dict[str, Any]:
    """``folder/manifest.json`` of ``kind`` at format ``version``; one clear HeqisError otherwise.

    An older format version is refused with ``outdated_hint`` (the command that rebuilds it)."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise HeqisError(f"{folder}: {what} (manifest.json missing)", hint=missing_hint)
    manifest = read_json(path, "manifest")
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        raise HeqisError(f"{path}: not a {kind} manifest", hint=missing_hint)
    found = manifest.get("version")
    if found != version:
        older = isinstance(found, int) and found < version
        raise HeqisError(f"{folder}: written by {'an older' if older else 'another'} heqis ({kind} format "
                         f"{found}, this heqis reads {version})", hint=outdated_hint if older else
                         "use the heqis version that wrote it")
    return manifest


def safe_name(name: object, folder: Path) -> str:
    """A file name listed in a manifest: relative, inside ``folder``, no '..' (never a path out of it)."""
    if not isinstance(name, str) or not name or name.startswith(("/", "\\")) or "\\" in name or \
            any(part in ("", ".", "..") for part in name.split("/")) or "\0" in name:
        raise HeqisError(f"{folder}/{MANIFEST}: refusing file name {name!r} (not a plain relative path)",
                         hint="the manifest was altered; re-create the folder with heqis")
    return name

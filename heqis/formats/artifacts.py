"""The artifact set the edge runs, and its integrity check.

::

    deploy_output/
      model_G1.onnx …        one ONNX model per exported generator (input [B,W,F] scaled windows;
                             outputs output_reg [B,1] next-day return, output_cls [B,3] logits)
      torch_G1.pt …          the generator's state dict, for the torch backend and parity checks
      routing.json           symbol → generator, mode, threshold (plus a default)
      scaler_params.json     feature order, window, scaler, indicator parameters (a generator may
                             name its own scaler when its window differs)
      calibration.npy        real scaled windows from the train segment (INT8 calibration, RKNN dataset)
      watchdog.onnx          optional: the gateway's data-quality model (input "window" [B,20,5] quality
                             windows, heqis.features.quality; output "score" [B]); manifest key "watchdog"
                             holds its window, columns, threshold, fpr and parity
      watchdog_calibration.npy  clean validation quality windows (INT8 / RKNN later)
      manifest.json          kind "heqis-artifacts", format version, set_id, feature fingerprint,
                             sha256 of every file, per-generator files and window, source run, parity

``set_id`` names the set (a hash of every file's sha256): the brain reports it, the gateway stores
it with every signal, so decisions of two exports never mix. Every reader goes through
``ArtifactSet``: a missing, altered or out-of-folder file is refused, never half-used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heqis.errors import HeqisError
from heqis.fileio import read_json, sha256_file, write_json
from heqis.formats.manifest import MANIFEST, read_manifest, safe_name

KIND = "heqis-artifacts"
VERSION = 2
SCALER = "scaler_params.json"
ROUTING = "routing.json"
CALIBRATION = "calibration.npy"


def check_artifact_name(name: object, root: Path) -> str:
    """A file name listed in ``root``'s manifest: a plain relative path (no '..', no absolute path, no
    backslash, NUL, newline or other control character)."""
    name = safe_name(name, root)
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise HeqisError(f"{root}/{MANIFEST}: refusing file name {name!r} (control character in it)",
                         hint="the manifest was altered; re-create the folder with heqis")
    return name


def artifact_path(root: Path, name: object, contained: bool = False) -> Path:
    """``root / name`` after ``check_artifact_name``. With ``contained`` (what ``heqis up`` ships) a symlink (of
    the file or a folder on the way) that resolves outside ``root`` is refused too; a release on a host is
    links into its content store by design, so readers there check names and sha256 only."""
    checked = check_artifact_name(name, root)
    path = Path(root) / checked
    inside = Path(root).resolve()
    if contained and not path.resolve().is_relative_to(inside):
        raise HeqisError(f"{root}/{MANIFEST}: refusing file name {checked!r} (it resolves outside the folder, "
                         f"to {path.resolve()})", hint="the artifact folder holds a symlink out of it; re-export")
    return path


def set_identity(files: dict[str, str]) -> str:
    """The artifact set's id: a hash over (name, sha256) of every file it lists."""
    return hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ArtifactSet:
    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: Path, verify: bool | Iterable[str] = True) -> ArtifactSet:
        """The set in ``root``; ``verify`` checks every file's sha256 (or only the names given)."""
        root = Path(root)
        manifest = read_manifest(root, KIND, VERSION, "no artifact set here", "run: heqis export RUN_DIR --out DIR",
                                 f"export it again: heqis export RUN_DIR --out {root}")
        files = manifest.get("files")
        if not isinstance(files, dict) or not isinstance(manifest.get("generators"), dict):
            raise HeqisError(f"{root}/{MANIFEST}: lists no files or generators", hint="re-run heqis export")
        for name in files:
            artifact_path(root, name)
        found = cls(root, manifest)
        if verify is True:
            found.verify()
        elif verify:
            found.verify(verify)  # type: ignore[arg-type]
        return found

    def verify(self, names: Iterable[str] | None = None) -> None:
        """sha256 of every listed file (or of ``names``) against the manifest."""
        files: dict[str, str] = self.manifest["files"]
        for name in (files if names is None else names):
            if name not in files:
                raise HeqisError(f"{self.root}: {name} is not listed in manifest.json", hint="re-run heqis export")
            path = artifact_path(self.root, name)
            if not path.is_file():
                raise HeqisError(f"{path}: artifact missing", hint="re-run heqis export (or heqis up to re-upload)")
            if sha256_file(path) != files[name]:
                raise HeqisError(f"{path}: sha256 does not match manifest.json (file altered or truncated)",
                                 hint="re-run heqis export; never edit artifacts in place")

    # -- identity ------------------------------------------------------------------------------
    @property
    def set_id(self) -> str:
        return str(self.manifest.get("set_id") or set_identity(self.manifest["files"]))

    @property
    def features(self) -> dict[str, Any]:
        return dict(self.manifest.get("features") or {})

    @property
    def n_features(self) -> int:
        return int(self.manifest["n_features"])

    # -- per generator -------------------------------------------------------------------------
    @property
    def generators(self) -> list[str]:
        return list(self.manifest["generators"])

    def generator(self, gid: str) -> dict[str, Any]:
        gens = self.manifest["generators"]
        if gid not in gens:
            raise HeqisError(f"generator {gid} is not in the artifact set {self.root}",
                             hint=f"exported: {', '.join(gens) or 'none'}")
        return dict(gens[gid])

    def file_name(self, gid: str, key: str) -> str:
        """The name of one of a generator's files: onnx, torch, scaler or calibration."""
        info = self.generator(gid)
        default = {"scaler": SCALER, "calibration": CALIBRATION}.get(key)
        name = info.get(key) or default
        if name is None:
            raise HeqisError(f"{self.root}: generator {gid} has no {key} file", hint="re-run heqis export")
        return check_artifact_name(name, self.root)

    def path(self, gid: str, key: str) -> Path:
        return artifact_path(self.root, self.file_name(gid, key))

    def window(self, gid: str) -> int:
        return int(self.generator(gid).get("window") or self.manifest["window"])

    @property
    def max_window(self) -> int:
        return max((self.window(g) for g in self.generators), default=int(self.manifest["window"]))

    def routing(self) -> dict[str, Any]:
        routing = read_json(self.root / ROUTING, "routing", hint="re-run heqis export")
        if not isinstance(routing, dict) or not isinstance(routing.get("default"), dict):
            raise HeqisError(f"{self.root / ROUTING}: no default route", hint="re-run heqis export")
        return routing


def route_for(routing: dict[str, Any], symbol: str) -> dict[str, Any]:
    """The route (generator, mode, threshold) routing.json gives ``symbol``: its own, else the default."""
    return (routing.get("symbols") or {}).get(symbol) or routing["default"]


def write_artifact_manifest(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest`` (with kind, version and set_id added) into ``root``; returns what was written."""
    body = {k: v for k, v in manifest.items() if k not in ("kind", "version", "set_id")}
    doc = {"kind": KIND, "version": VERSION, "set_id": set_identity(body["files"]), **body}
    write_json(Path(root) / MANIFEST, doc)
    return doc

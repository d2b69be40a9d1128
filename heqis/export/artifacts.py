"""The artifact set the edge runs (DESIGN.md §7), and its integrity check.

::

    deploy_output/
      model_G1.onnx …        one ONNX model per exported generator (input [B,W,F] scaled windows;
                             outputs output_reg [B,1] next-day return, output_cls [B,3] logits)
      torch_G1.pt …          the generator's state dict, for the torch backend and parity checks
      routing.json           symbol → generator, mode, threshold (plus a default)
      scaler_params.json     feature order, window, scaler, indicator parameters
      calibration.npy        real scaled windows from the train segment (INT8 calibration, RKNN dataset)
      manifest.json          sha256 of every file, source run, opset, versions, parity numbers

Every reader goes through ``verify``: a missing or altered file is refused, never half-used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heqis.errors import HeqisError
from heqis.fileio import read_manifest as read_json_manifest
from heqis.fileio import sha256_file

MANIFEST = "manifest.json"
KIND = "heqis-artifacts"


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    return read_json_manifest(Path(artifact_dir) / MANIFEST, KIND, "no artifact set here",
                              "run: heqis export RUN_DIR --out DIR")


def verify(artifact_dir: Path, only: list[str] | None = None) -> dict[str, Any]:
    """The manifest, after checking the sha256 of every file it lists (or of ``only`` those)."""
    manifest = read_manifest(artifact_dir)
    for name, digest in manifest["files"].items():
        if only is not None and name not in only:
            continue
        path = Path(artifact_dir) / name
        if not path.exists():
            raise HeqisError(f"{path}: artifact missing", hint="re-run heqis export (or heqis up to re-upload)")
        if sha256_file(path) != digest:
            raise HeqisError(f"{path}: sha256 does not match manifest.json (file altered or truncated)",
                             hint="re-run heqis export; never edit artifacts in place")
    return manifest


def generator_files(manifest: dict[str, Any], generator: str) -> dict[str, str]:
    gens = manifest.get("generators", {})
    if generator not in gens:
        raise HeqisError(f"generator {generator} is not in this artifact set",
                         hint=f"exported: {', '.join(gens) or 'none'}")
    return gens[generator]

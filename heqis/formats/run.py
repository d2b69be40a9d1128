"""The run folder ``heqis train`` writes and backtest, export, lookahead and the console read.

::

    RUN_DIR/
      manifest.json          kind "heqis-run", format version, config, seed, data hash, segment dates,
                             feature fingerprint, per-generator window / scaler / checkpoint, results
      metrics.csv            one row per epoch and generator (plus the encoder epochs), with events
      scaler_params.json     the scaler fitted on the train segment (a generator may name its own)
      checkpoints/G1.pt ...  best state dict per generator (by validation loss)
      checkpoints/last.pt    everything needed to resume (models, optimisers, RNG, history)

Readers go through ``RunFolder``: it checks the kind and the format version (an older run gets a
one-line error saying to train again) and answers per generator, because generators may use
different window lengths (and so different scalers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heqis.errors import HeqisError
from heqis.fileio import write_json
from heqis.formats.manifest import MANIFEST, read_manifest, safe_name

RUN_KIND = "heqis-run"
RUN_VERSION = 2
SCALER = "scaler_params.json"


@dataclass(frozen=True)
class RunFolder:
    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: Path) -> RunFolder:
        root = Path(root)
        manifest = read_manifest(root, RUN_KIND, RUN_VERSION, "not a training run", "run heqis train first",
                                 f"train it again: heqis train --out {root}-new")
        return cls(root, manifest)

    # -- what the run is -----------------------------------------------------------------------
    @property
    def status(self) -> str:
        return str(self.manifest.get("status", "unknown"))

    @property
    def symbols(self) -> list[str]:
        return list(self.manifest.get("symbols", []))

    @property
    def data_dir(self) -> Path:
        return Path(self.manifest["data"]["dir"])

    @property
    def data_hash(self) -> str:
        return str(self.manifest["data"]["content_hash"])

    @property
    def features(self) -> dict[str, Any]:
        """The feature fingerprint the run was trained with (heqis.features.fingerprint)."""
        return dict(self.manifest.get("features") or {})

    @property
    def segments(self) -> dict[str, tuple[str, str]]:
        """Segment name → (first, last) ISO date, inclusive."""
        return {k: (v[0], v[1]) for k, v in self.manifest["segments"].items()}

    # -- per generator -------------------------------------------------------------------------
    def generator(self, gid: str) -> dict[str, Any]:
        gens = self.manifest.get("generators", {})
        if gid not in gens:
            raise HeqisError(f"{self.root}: no generator {gid} in this run", hint=f"generators: {', '.join(gens)}")
        return dict(gens[gid])

    def generators(self) -> list[str]:
        """The generators that have a best checkpoint (in manifest order)."""
        return [g for g, info in self.manifest.get("generators", {}).items() if info.get("checkpoint")]

    def checkpoint(self, gid: str) -> Path:
        name = self.generator(gid).get("checkpoint") or f"checkpoints/{gid}.pt"
        return self.root / safe_name(name, self.root)

    def window(self, gid: str) -> int:
        return int(self.generator(gid).get("window") or self.manifest["window"])

    def scaler_path(self, gid: str) -> Path:
        return self.root / safe_name(self.generator(gid).get("scaler") or SCALER, self.root)

    @property
    def backtest_dir(self) -> Path:
        return self.root / "backtest"


def write_run_manifest(root: Path, manifest: dict[str, Any]) -> None:
    body = {k: v for k, v in manifest.items() if k not in ("kind", "version")}
    write_json(Path(root) / MANIFEST, {"kind": RUN_KIND, "version": RUN_VERSION, **body})

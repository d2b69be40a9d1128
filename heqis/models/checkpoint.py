"""Checkpoints (torch): plain state dicts, loaded with ``weights_only=True`` and strict key checks.

``weights_only`` refuses arbitrary pickled objects (a checkpoint is data, not code), and a file
that is truncated, from another model shape or not a checkpoint at all becomes one clear
HeqisError naming the file — never a half-loaded model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from heqis.errors import HeqisError
from heqis.fileio import atomic_write

FORMAT = "heqis-checkpoint-1"


def save(path: Path, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (tensors, dicts, lists, numbers, strings) to ``path``."""
    atomic_write(Path(path), lambda fh: torch.save({"format": FORMAT, **payload}, fh))


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save``; HeqisError when it is missing or unusable."""
    if not path.exists():
        raise HeqisError(f"{path}: checkpoint not found", hint="train first, or check the run directory")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, disallowed pickle content ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HeqisError(f"{path}: corrupt or unreadable checkpoint ({first[:160]})",
                         hint="delete it and train again, or restore it from a backup") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HeqisError(f"{path}: not a HEQIS checkpoint", hint="it was not written by heqis train")
    return payload


def load_into(module: nn.Module, state: dict[str, torch.Tensor], origin: Path | str) -> None:
    """``module.load_state_dict(state, strict=True)``, with a readable error on a mismatch."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = str(exc).replace("\n", " ").replace("\t", "")
        raise HeqisError(f"{origin}: checkpoint does not fit the model ({detail[:200]})",
                         hint="it comes from another preset or heqis version; train again") from None


def load_generator_file(path: Path) -> Any:
    """A generator from its checkpoint file (spec + state dict), strictly, as an eval-mode CPU module."""
    from heqis.models.encoders import build_encoders
    from heqis.models.generators import build_generator

    payload = load(path)
    try:
        spec, n_f, window = payload["spec"], int(payload["n_features"]), int(payload["window"])
        encoders = None
        if spec["kind"] == "latent":
            encoders = build_encoders(n_f, window, payload["cae"], payload["t3vae"])
        model = build_generator(spec["kind"], n_f, window, spec, encoders)
    except (KeyError, TypeError, ValueError) as exc:
        raise HeqisError(f"{path}: checkpoint metadata is incomplete ({exc})") from None
    load_into(model, payload["state_dict"], path)
    return model.eval()

"""Checkpoints: plain state dicts, loaded with ``weights_only=True`` and strict key checks.

``weights_only`` refuses arbitrary pickled objects (a checkpoint is data, not code), and a file
that is truncated, from another model shape or not a checkpoint at all becomes one clear
HeqisError naming the file — never a half-loaded model.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from heqis.errors import HeqisError

FORMAT = "heqis-checkpoint-1"


def save(path: Path, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` (tensors, dicts, lists, numbers, strings) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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

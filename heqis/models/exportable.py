"""A generator as the edge runs it: its regression output turned back into a next-day return.

The ONNX export and the torch backend wrap a generator in ``ExportModule`` so both return the same
thing (``output_reg`` is the return itself, not the scaler's standardised target).
"""

from __future__ import annotations

import torch
from torch import nn


class ExportModule(nn.Module):
    """A generator whose regression output is the next-day return (the target scaling undone)."""

    def __init__(self, generator: nn.Module, y_scale: float, y_min: float) -> None:
        super().__init__()
        self.generator = generator
        self.register_buffer("y_scale", torch.tensor(float(y_scale)))
        self.register_buffer("y_min", torch.tensor(float(y_min)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reg, cls = self.generator(x)
        return (reg - self.y_min) / self.y_scale, cls

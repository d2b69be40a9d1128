"""The gateway's data-quality model: a small CAE over heqis.features.quality windows, scored on the last bar.

The CAE sees the window with its last bar's row masked (zeroed; the context columns excepted), so it
predicts that row from the 19 bars before it, and reconstructs the others: a bad last bar cannot be
"explained" by the network copying it through. The anomaly score of a window is the mean squared
error of its last bar's judged (masked) columns, so a bad bar is flagged when it arrives (not the
bars after it). ``WatchdogScorer`` computes it inside the graph that ``heqis export`` writes as
watchdog.onnx (input "window" [B, W, 6], output "score" [B]).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from heqis.features.quality import CONTEXT_COLUMNS
from heqis.models.encoders import CAE


class WatchdogNet(nn.Module):
    """[B, W, F] → [B, W, F]: the CAE on the window with its last row masked, except the context
    columns (``limit_move``: the bar's move when its close sits at the day's price limit, which the
    exchange publishes and a bad tick does not hit to the fen), which also reach the last row through
    a linear skip, so that a genuine limit-locked day — a move of many σ that A-shares make every
    week — is predicted, not flagged."""

    def __init__(self, columns: tuple[str, ...] | list[str], window: int, latent: int, channels: int) -> None:
        super().__init__()
        self.cae = CAE(len(columns), window, latent, channels)
        judged = torch.tensor([c not in CONTEXT_COLUMNS for c in columns], dtype=torch.float32)
        mask = torch.ones(1, window, len(columns))
        mask[:, -1] = 1.0 - judged
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("judged", judged / judged.sum(), persistent=False)   # weights of the score
        self.context = [i for i, c in enumerate(columns) if c in CONTEXT_COLUMNS]
        # the context reaches the last row's prediction directly: through the CAE's 4-number bottleneck
        # a rare limit day is lost in the reconstruction of the other 19 bars
        self.skip = nn.Linear(len(self.context), len(columns), bias=False) if self.context else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cae(x * self.mask)
        if self.skip is None:
            return y
        last = y[:, -1:, :] + self.skip(x[:, -1:, self.context])
        return torch.cat([y[:, :-1, :], last], dim=1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mean((self(x) - x) ** 2)


def build_watchdog(config: dict[str, Any]) -> WatchdogNet:
    return WatchdogNet(list(config["columns"]), int(config["window"]), int(config["latent"]),
                       int(config["channels"]))


def last_row_score(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the last row's judged (masked) columns."""
    return (((net(x) - x)[:, -1, :] ** 2) * net.judged).sum(dim=-1)   # a product, not a gather: RKNN-friendly


class WatchdogScorer(nn.Module):
    """[B, W, F] windows → [B] last-row squared error (the anomaly score)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return last_row_score(self.net, window)

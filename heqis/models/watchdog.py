"""The gateway's data-quality model: a small CAE over heqis.features.quality windows, scored on the last bar.

The CAE sees the window with its last bar's row masked (zeroed), so it predicts that row from the 19
bars before it, and reconstructs the others: a bad last bar cannot be "explained" by the network
copying it through. The anomaly score of a window is the mean squared error of its last bar's row, so a
bad bar is flagged when it arrives (not the bars after it). ``WatchdogScorer`` computes it inside the
graph that ``heqis export`` writes as watchdog.onnx (input "window" [B, W, 5], output "score" [B]).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from heqis.models.encoders import CAE


class WatchdogNet(nn.Module):
    """[B, W, F] → [B, W, F]: the CAE on the window with its last row masked."""

    def __init__(self, n_features: int, window: int, latent: int, channels: int) -> None:
        super().__init__()
        self.cae = CAE(n_features, window, latent, channels)
        mask = torch.ones(1, window, 1)
        mask[:, -1] = 0.0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cae(x * self.mask)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mean((self(x) - x) ** 2)


def build_watchdog(config: dict[str, Any]) -> WatchdogNet:
    return WatchdogNet(len(config["columns"]), int(config["window"]), int(config["latent"]),
                       int(config["channels"]))


def last_row_score(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return ((net(x) - x)[:, -1, :] ** 2).mean(dim=-1)


class WatchdogScorer(nn.Module):
    """[B, W, F] windows → [B] last-row squared error (the anomaly score)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return last_row_score(self.net, window)

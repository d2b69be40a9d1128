"""Label-conditioned 1-D convolutional discriminators (one per generator).

A discriminator sees a short sequence of returns — the window's last ``context`` daily returns
followed by a candidate next-day return — together with the true direction label, and outputs
one logit: real (the candidate is what happened) or fake (a generator's prediction). One sigmoid
only, inside BCE-with-logits; real is target 1, fake is target 0.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvDiscriminator(nn.Module):
    def __init__(self, context: int, channels: int = 32, n_classes: int = 3, label_dim: int = 4) -> None:
        super().__init__()
        self.context = context
        self.label = nn.Embedding(n_classes, label_dim)
        self.net = nn.Sequential(
            nn.Conv1d(1 + label_dim, channels, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(channels, 2 * channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2 * channels, 1),
        )

    def forward(self, context: torch.Tensor, candidate: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """context [B, L], candidate [B, 1], label [B] → logit [B, 1]."""
        seq = torch.cat([context, candidate], dim=1).unsqueeze(1)             # [B, 1, L+1]
        lab = self.label(label).unsqueeze(-1).expand(-1, -1, seq.shape[-1])    # [B, E, L+1]
        return self.net(torch.cat([seq, lab], dim=1))

"""Generators G1..G4: GRU, BiLSTM, Transformer with RoPE, and a generator on encoder latents.

All share the same contract, so the trainer, the backtest and the exporter treat them alike:
``forward(x [B, W, F]) -> (reg [B, 1], cls [B, 3])``. The TorchScript ONNX exporter handles every
layer used here (GRU, LSTM, scaled_dot_product_attention).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from heqis.models.encoders import CAE, T3VAE
from heqis.models.rope import RopeSelfAttention

GENERATOR_KINDS = ("gru", "bilstm", "transformer", "latent")
N_CLASSES = 3


class Generator(nn.Module):
    """Base: a trunk producing one vector per window, and the two heads."""

    kind = "base"

    def __init__(self, width: int) -> None:
        super().__init__()
        self.reg_head = nn.Linear(width, 1)
        self.cls_head = nn.Linear(width, N_CLASSES)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.reg_head(h), self.cls_head(h)


class GRUGenerator(Generator):
    """G1: stacked GRU; the last step's hidden state summarises the window."""

    kind = "gru"

    def __init__(self, n_features: int, hidden: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__(hidden)
        self.rnn = nn.GRU(n_features, hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.drop(out[:, -1])


class BiLSTMGenerator(Generator):
    """G2: bidirectional LSTM; the final states of both directions are concatenated."""

    kind = "bilstm"

    def __init__(self, n_features: int, hidden: int, layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__(2 * hidden)
        self.rnn = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                           dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.rnn(x)
        return self.drop(torch.cat([h_n[-2], h_n[-1]], dim=-1))


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block with RoPE attention."""

    def __init__(self, d_model: int, heads: int, ff: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = RopeSelfAttention(d_model, heads, max_len=max_len, dropout=dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``last_only``: only the last position's output ``[B, 1, d]`` (its attention reads every
        position; the feed-forward runs on that one row)."""
        h = self.norm1(x)
        x = (x[:, -1:] if last_only else x) + self.drop(self.attn(h, last_only=last_only))
        return x + self.drop(self.ff(self.norm2(x)))


class TransformerGenerator(Generator):
    """G3: Transformer encoder with rotary position embeddings; reads out the last position.

    Only the last position is read, so the last block computes only that row (its query against
    every key, one feed-forward row): the same output to float rounding, ~T times less work in
    that block — the tiny preset's single block is most of G3's inference cost."""

    kind = "transformer"

    def __init__(self, n_features: int, d_model: int, layers: int = 2, heads: int = 8, ff: int | None = None,
                 dropout: float = 0.0, max_len: int = 512) -> None:
        super().__init__(d_model)
        self.inp = nn.Linear(n_features, d_model)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, heads, ff or 4 * d_model, dropout, max_len)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for i, block in enumerate(self.blocks):
            h = block(h, last_only=i == len(self.blocks) - 1)
        return self.norm(h[:, -1])


class LatentGenerator(Generator):
    """G4: an MLP on the latent factors of the (frozen) CAE and t3-VAE plus the window's last bar."""

    kind = "latent"

    def __init__(self, n_features: int, cae: CAE, t3vae: T3VAE, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(hidden)
        self.cae = cae
        self.t3vae = t3vae
        for p in (*cae.parameters(), *t3vae.parameters()):
            p.requires_grad_(False)
        width = cae.latent + t3vae.latent + n_features
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU())

    def train(self, mode: bool = True) -> LatentGenerator:
        super().train(mode)
        self.cae.eval()  # the encoders are frozen feature extractors
        self.t3vae.eval()
        return self

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z = torch.cat([self.cae.encode(x), self.t3vae.encode_mean(x)], dim=-1)
        return self.mlp(torch.cat([z, x[:, -1]], dim=-1))


def build_generator(kind: str, n_features: int, window: int, spec: dict[str, Any],
                    encoders: tuple[CAE, T3VAE] | None = None) -> Generator:
    """A generator of ``kind`` sized by a preset's ``spec``."""
    dropout = float(spec.get("dropout", 0.0))
    if kind == "gru":
        return GRUGenerator(n_features, spec["hidden"], spec.get("layers", 1), dropout)
    if kind == "bilstm":
        return BiLSTMGenerator(n_features, spec["hidden"], spec.get("layers", 2), dropout)
    if kind == "transformer":
        return TransformerGenerator(n_features, spec["d_model"], spec.get("layers", 2), spec.get("heads", 8),
                                    spec.get("ff"), dropout, max_len=max(window, 64))
    if kind == "latent":
        if encoders is None:
            raise ValueError("the latent generator needs the trained CAE and t3-VAE")
        return LatentGenerator(n_features, encoders[0], encoders[1], spec["hidden"], dropout)
    raise ValueError(f"unknown generator kind {kind!r}; known: {', '.join(GENERATOR_KINDS)}")

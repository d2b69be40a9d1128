"""Rotary position embedding (RoPE, Su et al. 2021) and an attention layer that applies it.

RoPE rotates each pair of query/key channels by an angle proportional to the position, so the
dot product q_m·k_n depends on the positions only through m - n: attention becomes aware of
*relative* position without any learned position table (tests check this numerically).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rope_angles(seq_len: int, dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``[seq_len, dim]`` (dim even), pairs laid out as (first half, second half)."""
    if dim % 2:
        raise ValueError(f"RoPE needs an even head dimension, got {dim}")
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    pos = torch.arange(seq_len, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)                       # [T, dim/2]
    emb = torch.cat([freqs, freqs], dim=-1)                  # [T, dim]
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[..., T, dim]`` by the position angles."""
    return x * cos + rotate_half(x) * sin


class RopeSelfAttention(nn.Module):
    """Multi-head self-attention with RoPE applied to queries and keys inside every head."""

    def __init__(self, d_model: int, heads: int, max_len: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = d_model // heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        cos, sin = rope_angles(max_len, self.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = self.cos[:t], self.sin[:t]
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Attention logits ``[B, heads, T, T]`` (before softmax), for inspection and tests."""
        q, k, _ = self.split(x)
        return q @ k.transpose(-1, -2) / self.head_dim**0.5

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``[B, T, d] -> [B, T, d]``; ``last_only``: the last position's output only, ``[B, 1, d]``,
        the same numbers as the full output's last row (to float rounding): its query against every
        key and value, without the other T - 1 queries."""
        b, t, d = x.shape
        if not last_only:
            q, k, v = self.split(x)
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
            return self.proj(out.transpose(1, 2).reshape(b, t, d))
        w, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(x[:, -1:], w[:d], bias[:d]).reshape(b, 1, self.heads, self.head_dim).transpose(1, 2)
        k, v = F.linear(x, w[d:], bias[d:]).reshape(b, t, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q = apply_rope(q, self.cos[t - 1:t], self.sin[t - 1:t])
        k = apply_rope(k, self.cos[:t], self.sin[:t])
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, 1, d))

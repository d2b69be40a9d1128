"""Model contracts: shapes and dtypes, RoPE's relative-position property, the t3-VAE constants."""

from __future__ import annotations

import math

import pytest
import torch

from heqis.models.discriminator import ConvDiscriminator
from heqis.models.encoders import CAE, T3VAE
from heqis.models.generators import GENERATOR_KINDS, build_generator
from heqis.models.rope import RopeSelfAttention, apply_rope, rope_angles

B, W, F = 5, 60, 24
SPECS = {"gru": {"hidden": 16}, "bilstm": {"hidden": 12, "layers": 2}, "transformer": {"d_model": 16, "heads": 2},
         "latent": {"hidden": 16}}


@pytest.fixture(scope="module")
def encoders():
    torch.manual_seed(0)
    return CAE(F, W, 6, 8), T3VAE(F, W, 6, 32)


@pytest.mark.parametrize("kind", GENERATOR_KINDS)
def test_generator_shapes_and_dtypes(kind, encoders):
    g = build_generator(kind, F, W, SPECS[kind], encoders)
    reg, cls = g(torch.randn(B, W, F))
    assert reg.shape == (B, 1) and cls.shape == (B, 3)
    assert reg.dtype == cls.dtype == torch.float32
    # windows of another length work too (the exported ONNX keeps W fixed, training may search it)
    if kind != "latent":
        assert g(torch.randn(2, 30, F))[0].shape == (2, 1)


def test_latent_generator_freezes_its_encoders(encoders):
    g = build_generator("latent", F, W, SPECS["latent"], encoders)
    trainable = {n for n, p in g.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith(("cae.", "t3vae.")) for n in trainable)
    g.train()
    assert not g.cae.training and not g.t3vae.training


def test_encoder_shapes(encoders):
    cae, t3 = encoders
    x = torch.randn(B, W, F)
    assert cae.encode(x).shape == (B, 6) and cae(x).shape == x.shape
    recon, mu, logvar = t3(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (B, 6)
    assert torch.isfinite(t3.loss(x))


def test_t3vae_constants_follow_the_paper():
    t3 = T3VAE(n_features=2, window=3, latent=2, hidden=8, nu=5.0)
    n, m, nu = 6, 2, 5.0
    assert t3.gamma == pytest.approx(-2 / (nu + n + m))
    assert t3.nu_post == nu + n
    with pytest.raises(ValueError, match="nu > 2"):
        T3VAE(2, 3, 2, nu=2.0)


def test_t3vae_samples_are_heavy_tailed():
    """Few degrees of freedom (small data dimension): the t reparameterisation has fat tails."""
    torch.manual_seed(0)
    t3 = T3VAE(n_features=1, window=1, latent=1, hidden=4, nu=3.0)   # nu' = 4
    z = t3.sample(torch.zeros(200_000, 1), torch.zeros(200_000, 1)).squeeze(1)
    kurtosis = float(((z - z.mean()) ** 4).mean() / z.var() ** 2)
    assert kurtosis > 6  # a Gaussian has 3


def test_discriminator_shape():
    d = ConvDiscriminator(context=20, channels=8)
    out = d(torch.randn(B, 20), torch.randn(B, 1), torch.tensor([0, 1, 2, 1, 0]))
    assert out.shape == (B, 1) and out.dtype == torch.float32


def test_rope_scores_depend_only_on_position_difference():
    torch.manual_seed(0)
    attn = RopeSelfAttention(d_model=16, heads=2, max_len=64)
    token = torch.randn(1, 1, 16)
    x = token.expand(1, 40, 16).contiguous()       # the same token everywhere: only positions differ
    with torch.no_grad():
        s = attn.scores(x)[0, 0]                   # [T, T]
    for shift in (1, 5, 17):
        torch.testing.assert_close(s[: 40 - shift, : 40 - shift], s[shift:, shift:], atol=1e-4, rtol=1e-4)
    assert abs(float(s[10, 0]) - float(s[10, 9])) > 1e-3  # and position does matter


def test_rope_rotation_preserves_norm_and_is_relative():
    cos, sin = rope_angles(32, 8)
    q = torch.randn(8)
    k = torch.randn(8)
    rq = apply_rope(q.expand(32, 8), cos, sin)
    rk = apply_rope(k.expand(32, 8), cos, sin)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(32), atol=1e-5, rtol=1e-5)
    assert float(rq[7] @ rk[3]) == pytest.approx(float(rq[20] @ rk[16]), abs=1e-4)
    assert math.isclose(float(rq[0] @ rk[0]), float(q @ k), abs_tol=1e-5)


@pytest.mark.parametrize("layers", [1, 2])
def test_transformer_last_block_computes_only_the_row_it_reads(layers):
    """G3 reads out the last position, so its last block computes that row alone: the outputs equal
    the full blocks' last row (to float rounding), and the gradient still reaches every bar of the
    window."""
    torch.manual_seed(0)
    g = build_generator("transformer", F, W, {"d_model": 16, "heads": 2, "layers": layers}, None).eval()
    x = torch.randn(64, W, F, requires_grad=True)
    reg, cls = g(x)
    with torch.no_grad():
        h = g.inp(x)
        for block in g.blocks:
            h = block(h)                                   # every row of every block
        full = g.norm(h[:, -1])
    torch.testing.assert_close(reg, g.reg_head(full), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cls, g.cls_head(full), atol=1e-5, rtol=1e-5)
    reg.sum().backward()
    assert (x.grad[:, 0].abs().sum(dim=-1) > 0).all()       # the first bar still counts
    row = RopeSelfAttention(16, 2, max_len=64).eval()
    y = torch.randn(3, 40, 16)
    torch.testing.assert_close(row(y, last_only=True), row(y)[:, -1:], atol=1e-6, rtol=1e-5)

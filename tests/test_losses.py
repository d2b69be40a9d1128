"""The adversarial losses: real is 1 and fake is 0 (the prototype had them inverted)."""

from __future__ import annotations

import torch

from heqis.models.discriminator import ConvDiscriminator
from heqis.train.losses import discriminator_loss, distillation_loss, generator_adversarial_loss

BIG = torch.full((8, 1), 10.0)


def test_discriminator_targets_real_one_fake_zero():
    right = discriminator_loss(real_logits=BIG, fake_logits=-BIG)       # confident and correct
    inverted = discriminator_loss(real_logits=-BIG, fake_logits=BIG)    # confident and inverted
    assert float(right) < 1e-3
    assert float(inverted) > 19.0


def test_generator_wants_its_fake_called_real():
    assert float(generator_adversarial_loss(BIG)) < 1e-3       # D fooled: nothing to gain
    assert float(generator_adversarial_loss(-BIG)) > 9.0       # D sees through it


def test_a_trained_discriminator_calls_real_real():
    """Real: the context continues smoothly; fake: a random jump. D must learn sigmoid(real) > 0.5 > sigmoid(fake)."""
    torch.manual_seed(0)
    d = ConvDiscriminator(context=10, channels=8)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    label = torch.ones(64, dtype=torch.long)

    def batch():
        ctx = torch.cumsum(torch.full((64, 10), 0.1), dim=1) + torch.randn(64, 1)
        return ctx, ctx[:, -1:] + 0.1, ctx[:, -1:] + 3 * torch.randn(64, 1).abs() + 1

    for _ in range(150):
        ctx, real, fake = batch()
        loss = discriminator_loss(d(ctx, real, label), d(ctx, fake, label))
        opt.zero_grad()
        loss.backward()
        opt.step()
    ctx, real, fake = batch()
    with torch.no_grad():
        assert torch.sigmoid(d(ctx, real, label)).mean() > 0.9
        assert torch.sigmoid(d(ctx, fake, label)).mean() < 0.1


def test_distillation_is_zero_when_student_equals_teacher():
    reg = torch.randn(4, 1)
    cls = torch.randn(4, 3)
    assert float(distillation_loss(reg, cls, reg, cls, 2.0)) < 1e-6
    assert float(distillation_loss(reg, cls, reg + 1, cls.flip(1), 2.0)) > 0.5

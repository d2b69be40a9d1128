"""Loss functions of the multi-agent adversarial scheme, small enough to test one by one.

The prototype inverted its adversarial targets and applied a sigmoid twice; here there is one
sigmoid (inside BCE-with-logits), real samples get target 1 and fakes target 0 for the
discriminator, and the generator is rewarded when the discriminator calls its fake real.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE with target 1 for real and 0 for fake."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator wants its fakes judged real (target 1; the non-saturating GAN loss)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def supervised_loss(reg: torch.Tensor, cls: torch.Tensor, y: torch.Tensor, label: torch.Tensor,
                    mse_weight: float = 1.0, ce_weight: float = 1.0, class_weight: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, mse, ce): MSE on the scaled next-day return, cross-entropy on the direction, with the
    classes weighted by ``class_weight`` (``balanced_class_weights``) when given."""
    mse = F.mse_loss(reg, y)
    ce = F.cross_entropy(cls, label, weight=class_weight)
    return mse_weight * mse + ce_weight * ce, mse, ce


def balanced_class_weights(labels: torch.Tensor, classes: int = 3) -> torch.Tensor:
    """``N / (K · n_c)`` per class c of the training labels (sklearn's "balanced"; 0 for a class that
    never occurs). Unweighted, a direction head on daily returns learns the majority class — "up" on
    every day — because that already minimises the cross-entropy of a nearly unpredictable target;
    weighted, every class costs the same in total, so a constant answer no longer pays."""
    counts = torch.bincount(labels, minlength=classes).double()
    present = counts > 0
    weights = torch.zeros(classes, dtype=torch.float64)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.float()


def distillation_loss(student_reg: torch.Tensor, student_cls: torch.Tensor, teacher_reg: torch.Tensor,
                      teacher_cls: torch.Tensor, temperature: float) -> torch.Tensor:
    """Match the teacher's return (MSE) and its softened class distribution (KL · T², Hinton et al.)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_cls / t, dim=-1), F.softmax(teacher_cls / t, dim=-1),
                  reduction="batchmean") * t * t
    return F.mse_loss(student_reg, teacher_reg) + kl

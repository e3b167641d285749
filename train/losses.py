"""The GAN losses, as pure functions of the discriminator's logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant target."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_losses(d_real: torch.Tensor, d_fake: torch.Tensor,
                         smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss on real, loss on fake) for the discriminator, with one-sided label smoothing."""
    return bce_logits(d_real, 1.0 - smoothing), bce_logits(d_fake, 0.0)


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: D's fake logits against the 'real' target."""
    return bce_logits(d_fake, 1.0)

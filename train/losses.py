"""The GAN objectives, as pure functions of the discriminator's logits (the gradient penalty takes D itself)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

GRADIENT_PENALTY_WEIGHT = 10.0  # WGAN-GP's lambda (Gulrajani et al. 2017)


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Binary cross-entropy of logits against a constant target."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def discriminator_losses(
    d_real: torch.Tensor, d_fake: torch.Tensor, smoothing: float, objective: str = "bce"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss on real, loss on fake) for the discriminator; `smoothing` lowers the real target (bce, lsgan)."""
    if objective == "bce":
        return bce_logits(d_real, 1.0 - smoothing), bce_logits(d_fake, 0.0)
    if objective == "lsgan":
        return 0.5 * (d_real - (1.0 - smoothing)).pow(2).mean(), 0.5 * d_fake.pow(2).mean()
    if objective == "hinge":
        return F.relu(1.0 - d_real).mean(), F.relu(1.0 + d_fake).mean()
    if objective == "wgan-gp":
        return -d_real.mean(), d_fake.mean()
    raise ValueError(f"unknown GAN objective {objective!r}")


def generator_loss(d_fake: torch.Tensor, objective: str = "bce") -> torch.Tensor:
    """G's loss on D's fake logits: non-saturating BCE, least squares, or the critic's mean (hinge, wgan-gp)."""
    if objective == "bce":
        return bce_logits(d_fake, 1.0)
    if objective == "lsgan":
        return 0.5 * (d_fake - 1.0).pow(2).mean()
    if objective in ("hinge", "wgan-gp"):
        return -d_fake.mean()
    raise ValueError(f"unknown GAN objective {objective!r}")


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """WGAN-GP's penalty: (||grad critic(x)|| - 1)^2 at random points x between real and fake images."""
    mix = torch.rand(len(real), 1, 1, 1, generator=generator, device=real.device)
    points = (mix * real + (1.0 - mix) * fake).requires_grad_(True)
    (gradients,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    return GRADIENT_PENALTY_WEIGHT * (gradients.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


def r1_penalty(d_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): half the mean squared norm of D's gradient at the real images `real` (which
    require grad), `d_real` D's logits on them; it keeps D flat on the data, so training settles instead of
    circling."""
    (gradients,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return 0.5 * gradients.flatten(1).pow(2).sum(dim=1).mean()


def mode_seeking_loss(
    images_a: torch.Tensor, images_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """MSGAN's diversity term (Mao et al. 2019) for pairs of fakes of one class: 1 / (mean image distance / mean
    latent distance), so G is penalised when two latents give the same image."""
    ratio = (images_a - images_b).abs().mean() / (z_a - z_b).abs().mean()
    return 1.0 / (ratio + eps)


def coverage_loss(
    real: torch.Tensor,
    fake: torch.Tensor,
    real_labels: torch.Tensor | None = None,
    fake_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """IMLE's term (Li and Malik 2018): the mean over real images [N, ...] of the per-pixel squared distance to
    their nearest fake [M, ...], of the same class when labels [N], [M] are given; G pays for every real image it
    leaves without a fake nearby, the variety a GAN's loss alone does not ask for. A real image with no fake of its
    class in the batch adds nothing."""
    distances = torch.cdist(real.flatten(1), fake.flatten(1)).pow(2) / real[0].numel()
    if real_labels is not None:
        distances = distances.masked_fill(real_labels[:, None] != fake_labels[None, :], float("inf"))
    nearest = distances.min(dim=1).values
    covered = torch.isfinite(nearest)
    return nearest[covered].mean() if covered.any() else fake.sum() * 0.0


def margin_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over the batch of max(0, cross-entropy - margin): logits [N, C], labels [N]; a sample read as its class
    with probability above exp(-margin) adds nothing."""
    return F.relu(F.cross_entropy(logits, labels, reduction="none") - margin).mean()

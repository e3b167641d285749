"""MLP VAE of report 000 with per-class latent Gaussians, and its loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genmodels.models.layers import IMAGE_PIXELS, IMAGE_SHAPE, check_labels, gaussian_noise, mlp


@dataclass
class VAEConfig:
    """MLP VAE of report 000 (Linear + LeakyReLU 0.2), Bernoulli decoder on [0, 1] pixels.

    Beyond the report: an optional linear class head on the latent code (training only),
    which separates the classes in latent space so the per-class Gaussians decode to their class.
    """

    latent_dim: int = 32
    hidden: tuple[int, ...] = (512, 512)
    negative_slope: float = 0.2
    num_classes: int = 10
    class_weight: float = 0.0  # > 0: a linear class head on z shapes the latent space into class clusters


class GaussianVAE(nn.Module):
    """What every VAE shares: the reparameterised forward pass, decoding to [0, 1], per-class latent Gaussians.

    A subclass builds its encoder and decoder, then calls `_add_latent_heads`; it defines `encode` (images
    [N, 1, 28, 28] in [0, 1] -> (mu, logvar) [N, L]) and `decode_logits` (latents [N, L] -> pixel logits).
    Buffers `class_means` [C, L] and `class_scale_tril` [C, L, L] hold a Gaussian per class fitted to the
    encoded training set (see `fit_class_gaussians`), for class-conditional sampling.
    """

    takes_labels = False  # the class picks the latent's Gaussian in `latents`; decoding needs no label

    def _add_latent_heads(self, config) -> None:
        """The optional class head on z and the per-class Gaussian buffers (after the networks: init order)."""
        self.to_class = nn.Linear(config.latent_dim, config.num_classes) if config.class_weight > 0 else None
        eye = torch.zeros(config.num_classes, config.latent_dim, config.latent_dim)
        eye.diagonal(dim1=1, dim2=2).fill_(1.0)  # not torch.eye: on the meta device it would import torch._dynamo
        self.register_buffer("class_means", torch.zeros(config.num_classes, config.latent_dim))
        self.register_buffer("class_scale_tril", eye)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """images -> (pixel logits, mu, logvar, the sampled z = mu + noise * sigma); noise [N, L] is drawn when not
        given."""
        mu, logvar = (stat.float() for stat in self.encode(images))  # fp32 even under bf16 autocast: exp(logvar)
        if noise is not None:
            eps = noise
        elif generator is not None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        else:
            eps = torch.randn_like(mu)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar, z

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """latents [N, latent_dim] -> images [N, 1, 28, 28] in [0, 1] (labels: unused)."""
        return torch.sigmoid(self.decode_logits(z))

    @torch.no_grad()
    def latents(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Latents [n, L] from each label's fitted Gaussian, noise scaled by temperature; without labels, from the
        mixture of the class Gaussians (a uniformly drawn class each)."""
        device = self.class_means.device
        eps = gaussian_noise(n, self.latent_dim, generator, device) * temperature
        if labels is None:
            # The class head clusters the latent space, so N(0, I) draws fall between the clusters and decode to
            # blends (MNIST conv VAE FID 302 against 32 from the mixture, docs/model_zoo.md). Before the fit every
            # class Gaussian is N(0, I), so the mixture is the prior.
            source = generator.device if generator is not None else device
            labels = torch.randint(0, self.config.num_classes, (n,), generator=generator, device=source)
        labels = check_labels(labels, self.config.num_classes).to(device)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} samples")
        return self.class_means[labels] + torch.einsum("nij,nj->ni", self.class_scale_tril[labels], eps)

    @torch.no_grad()
    def fit_class_gaussians(self, mu: torch.Tensor, labels: torch.Tensor) -> None:
        """Fit a full-covariance Gaussian per class to encoded means mu [N, L] with labels [N]."""
        means, trils = [], []
        jitter = 1e-4 * torch.eye(self.latent_dim, device=mu.device)
        for c in range(self.config.num_classes):
            members = mu[labels == c]
            if len(members) < 2:
                raise ValueError(f"class {c} has {len(members)} encoded images; need at least 2 to fit a Gaussian")
            means.append(members.mean(0))
            trils.append(torch.linalg.cholesky(torch.cov(members.T) + jitter))
        self.class_means.copy_(torch.stack(means))
        self.class_scale_tril.copy_(torch.stack(trils))


class VAE(GaussianVAE):
    """MLP VAE: image [N, 1, 28, 28] in [0, 1] -> (pixel logits [N, 1, 28, 28], mu [N, L], logvar [N, L], z)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = mlp([IMAGE_PIXELS, *config.hidden], config.negative_slope)
        self.to_stats = nn.Linear(config.hidden[-1], 2 * config.latent_dim)
        self.decoder = mlp([config.latent_dim, *reversed(config.hidden)], config.negative_slope)
        self.to_pixels = nn.Linear(config.hidden[0], IMAGE_PIXELS)
        self._add_latent_heads(config)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [N, 1, 28, 28] in [0, 1] -> (mu, logvar), each [N, latent_dim]."""
        mu, logvar = self.to_stats(self.encoder(images.reshape(len(images), -1))).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """latents [N, latent_dim] -> pixel logits [N, 1, 28, 28]."""
        return self.to_pixels(self.decoder(z)).view(-1, *IMAGE_SHAPE)


def vae_loss(
    pixel_logits: torch.Tensor, images: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, KL), each in nats per image: BCE summed over pixels, KL to N(0, I)."""
    recon = F.binary_cross_entropy_with_logits(pixel_logits, images, reduction="sum") / len(images)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(images)
    return recon, kl

"""Unconditional MLP GAN of report 001: generator and discriminator."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genmodels.models.layers import IMAGE_PIXELS, IMAGE_SHAPE, gaussian_noise, mlp


@dataclass
class GANConfig:
    """Unconditional MLP GAN of report 001: fc layers, LeakyReLU 0.2, dropout 0.3 in D, tanh output."""

    latent_dim: int = 100
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    negative_slope: float = 0.2
    dropout: float = 0.3


class Generator(nn.Module):
    """z [N, latent_dim] -> image [N, 1, 28, 28] in [-1, 1]."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.body = mlp([config.latent_dim, *config.g_hidden], config.negative_slope)
        self.to_pixels = nn.Linear(config.g_hidden[-1], IMAGE_PIXELS)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_pixels(self.body(z))).view(-1, *IMAGE_SHAPE)

    takes_labels = False  # unconditional: its label mapper (genmodels.models.mapper) picks latents per class

    @torch.no_grad()
    def latents(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Latents [n, latent_dim] ~ N(0, temperature^2 I); labels need its mapper."""
        if labels is not None:
            raise ValueError("the unconditional GAN samples by class only through its label mapper")
        return gaussian_noise(n, self.latent_dim, generator, self.to_pixels.weight.device) * temperature

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents [N, latent_dim] -> images [N, 1, 28, 28] in [0, 1] (labels: unused, unconditional)."""
        return self(z).add_(1.0).mul_(0.5)


class Discriminator(nn.Module):
    """image [N, 1, 28, 28] in [-1, 1] -> real/fake logit [N]."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.body = mlp([IMAGE_PIXELS, *config.d_hidden], config.negative_slope, config.dropout)
        self.to_logit = nn.Linear(config.d_hidden[-1], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_logit(self.body(images.reshape(len(images), -1))).squeeze(1)

"""Convolutional VAE: strided convolutions encode, transposed convolutions decode, with the MLP VAE's
per-class latent Gaussians for class-conditional sampling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genmodels.models.vae import GaussianVAE

BASE = 7  # two stride-2 steps between 28x28 images and 7x7 feature maps


@dataclass
class ConvVAEConfig:
    """Conv VAE for 28x28 images: channels at 14x14 and 7x7, one dense layer each way, Bernoulli decoder."""

    latent_dim: int = 32
    channels: tuple[int, ...] = (32, 64)
    hidden: int = 256
    negative_slope: float = 0.2
    num_classes: int = 10
    class_weight: float = 0.0  # > 0: a linear class head on z shapes the latent space into class clusters
    refine_channels: int = 0  # > 0: the decoder upsamples to this many maps at 28x28 and ends in a 3x3 convolution


class ConvVAE(GaussianVAE):
    """image [N, 1, 28, 28] in [0, 1] -> (pixel logits [N, 1, 28, 28], mu [N, L], logvar [N, L], z [N, L])."""

    def __init__(self, config: ConvVAEConfig):
        super().__init__()
        self.config = config
        narrow, wide = config.channels
        slope = config.negative_slope
        self.encoder = nn.Sequential(
            nn.Conv2d(1, narrow, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),  # 28 -> 14
            nn.Conv2d(narrow, wide, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),  # 14 -> 7
            nn.Flatten(),
            nn.Linear(wide * BASE * BASE, config.hidden),
            nn.LeakyReLU(slope, inplace=True),
        )
        self.to_stats = nn.Linear(config.hidden, 2 * config.latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden),
            nn.LeakyReLU(slope, inplace=True),
            nn.Linear(config.hidden, wide * BASE * BASE),
            nn.LeakyReLU(slope, inplace=True),
            nn.Unflatten(1, (wide, BASE, BASE)),
            nn.ConvTranspose2d(wide, narrow, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),  # 7 -> 14
            *self._to_pixels(narrow, config.refine_channels, slope),  # 14 -> 28
        )
        self._add_latent_heads(config)

    @staticmethod
    def _to_pixels(narrow: int, refine: int, slope: float) -> list[nn.Module]:
        """14x14 maps -> 28x28 pixel logits: one transposed convolution, or, with `refine` maps, one to them and a
        3x3 convolution over full-resolution neighbourhoods (sharper strokes and textures, a lower ELBO)."""
        if not refine:
            return [nn.ConvTranspose2d(narrow, 1, 4, stride=2, padding=1)]
        return [
            nn.ConvTranspose2d(narrow, refine, 4, stride=2, padding=1),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(refine, 1, 3, padding=1),
        ]

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [N, 1, 28, 28] in [0, 1] -> (mu, logvar), each [N, latent_dim]."""
        mu, logvar = self.to_stats(self.encoder(images.reshape(-1, 1, 28, 28))).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """latents [N, latent_dim] -> pixel logits [N, 1, 28, 28]."""
        return self.decoder(z)

"""Label-to-latent mapper of report 001, question 10: class + noise -> latent of a frozen generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genmodels.models.layers import check_labels, gaussian_noise, mlp


@dataclass
class MapperConfig:
    """Class + noise -> latent of a frozen unconditional generator (report 001, question 10)."""

    num_classes: int = 10
    latent_dim: int = 100
    embed_dim: int = 32
    hidden: tuple[int, ...] = (256, 256)
    negative_slope: float = 0.2


class Mapper(nn.Module):
    """(labels [N], noise [N, latent_dim]) -> latent z [N, latent_dim] = noise + offset(label, noise).

    The residual form keeps samples varied (the noise passes through) while the learned
    offset moves them into the requested class's region of the generator's latent space.
    """

    def __init__(self, config: MapperConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.num_classes, config.embed_dim)
        self.body = mlp([config.embed_dim + config.latent_dim, *config.hidden], config.negative_slope)
        self.to_offset = nn.Linear(config.hidden[-1], config.latent_dim)

    def forward(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        h = self.body(torch.cat([self.embed(labels), noise], dim=1))
        return noise + self.to_offset(h)

    @torch.no_grad()
    def latents(
        self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> torch.Tensor:
        """labels [n] -> latents [n, latent_dim] for the frozen generator, from noise ~ N(0, temperature^2 I)."""
        if labels is None or len(labels) != n:
            raise ValueError(f"the label mapper needs one label per latent: {n} latents")
        labels = check_labels(labels, self.config.num_classes).to(self.embed.weight.device)
        noise = gaussian_noise(n, self.config.latent_dim, generator, self.embed.weight.device) * temperature
        return self(labels, noise)

"""Conditional MLP GAN of report 000: generator and projection discriminator with a class head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genmodels.models.layers import IMAGE_PIXELS, IMAGE_SHAPE, check_labels, gaussian_noise, mlp


@dataclass
class CGANConfig:
    """Conditional MLP GAN of report 000 (label embedding, Linear, LeakyReLU 0.2, dropout in D).

    Beyond the report: D is a projection discriminator with an auxiliary class head
    (AC-GAN term, weight `aux_weight`), which makes the requested class come out reliably.
    """

    num_classes: int = 10
    latent_dim: int = 100
    embed_dim: int = 32
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    negative_slope: float = 0.2
    dropout: float = 0.3
    aux_weight: float = 1.0
    g_batch_norm: bool = False  # BatchNorm1d after each of G's hidden Linear layers
    twin_class_head: bool = False  # TAC-GAN: D's second class head, trained on fakes; see AdversarialTask
    info_dims: int = 0  # > 0: D's head also reads back the first info_dims of a fake's z (InfoGAN); see AdversarialTask
    info_weight: float = 1.0  # weight of that read-back's squared error in D's and G's losses
    class_margin: float = 0.0  # > 0: G's class term spares fakes read as their class (see AdversarialTask)

    def __post_init__(self):
        check_class_terms(self)


def check_class_terms(config) -> None:
    """ValueError for a conditional GAN config whose read-back is wider than z or whose class margin is negative."""
    name = type(config).__name__
    if config.info_dims > config.latent_dim:
        raise ValueError(f"{name}.info_dims ({config.info_dims}) cannot exceed latent_dim ({config.latent_dim})")
    if config.class_margin < 0:
        raise ValueError(f"{name}.class_margin must be >= 0 (a cross-entropy in nats), got {config.class_margin}")


def class_heads(features: int, config) -> nn.Linear:
    """A conditional D's class head: num_classes logits, or, with `config.twin_class_head`, the main head's and
    the twin's side by side in one layer (one matmul for all), then `config.info_dims` latent read-backs."""
    return nn.Linear(features, config.num_classes * (2 if config.twin_class_head else 1) + config.info_dims)


class EmbeddingConditionedGenerator(nn.Module):
    """What every class-conditional generator shares: the class enters as an embedding (`self.embed`) next to z,
    so a blend of two classes' embeddings is a continuous path; a subclass defines `forward_embedded`
    ((z [N, latent_dim], embeddings [N, embed_dim]) -> image [N, 1, 28, 28] in [-1, 1])."""

    takes_labels = True  # decoding needs a class per latent

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(z, self.embed(labels))

    @torch.no_grad()
    def latents(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Latents [n, latent_dim] ~ N(0, temperature^2 I); the class goes to `decode`, not into z."""
        return gaussian_noise(n, self.latent_dim, generator, self.embed.weight.device) * temperature

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(latents [N, latent_dim], labels [N]) -> images [N, 1, 28, 28] in [0, 1]."""
        if labels is None or len(labels) != len(z):
            raise ValueError("the conditional GAN needs one label per latent")
        labels = check_labels(labels, self.config.num_classes).to(self.embed.weight.device)
        return self(z, labels).add_(1.0).mul_(0.5)


class CondGenerator(EmbeddingConditionedGenerator):
    """(z [N, latent_dim], labels [N]) -> image [N, 1, 28, 28] in [-1, 1]."""

    def __init__(self, config: CGANConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.num_classes, config.embed_dim)
        self.body = mlp(
            [config.latent_dim + config.embed_dim, *config.g_hidden],
            config.negative_slope,
            batch_norm=config.g_batch_norm,
        )
        self.to_pixels = nn.Linear(config.g_hidden[-1], IMAGE_PIXELS)

    def forward_embedded(self, z: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """(z [N, latent_dim], class embeddings [N, embed_dim]) -> image [N, 1, 28, 28] in [-1, 1]."""
        h = self.body(torch.cat([z, embeddings], dim=1))
        return torch.tanh(self.to_pixels(h)).view(-1, *IMAGE_SHAPE)


class CondDiscriminator(nn.Module):
    """(image [N, 1, 28, 28], labels [N]) -> (real/fake logit [N], class logits [N, num_classes]; with the twin
    head, [N, 2 * num_classes]: the main head's, then the twin's; then info_dims latent read-backs)."""

    def __init__(self, config: CGANConfig):
        super().__init__()
        self.config = config
        self.body = mlp([IMAGE_PIXELS, *config.d_hidden], config.negative_slope, config.dropout)
        self.to_logit = nn.Linear(config.d_hidden[-1], 1)
        self.projection = nn.Embedding(config.num_classes, config.d_hidden[-1])
        self.to_class = class_heads(config.d_hidden[-1], config)
        nn.init.normal_(self.projection.weight, std=0.02)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(images.reshape(len(images), -1))
        logit = self.to_logit(h).squeeze(1) + (self.projection(labels) * h).sum(dim=1)
        return logit, self.to_class(h)

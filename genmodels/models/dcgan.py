"""Class-conditional convolutional GAN (DCGAN-style): transposed convolutions with batch norm in G, strided
convolutions in a projection discriminator with an auxiliary class head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genmodels.models.cgan import EmbeddingConditionedGenerator, check_class_terms, class_heads
from genmodels.models.layers import STRIDED_SIDE, strided_features

BASE = 7  # G starts from 7x7 feature maps; two stride-2 steps reach 28x28


@dataclass
class DCGANConfig:
    """Conditional DCGAN for 28x28 images: channel widths of G's and D's two resolutions (7x7, 14x14)."""

    num_classes: int = 10
    latent_dim: int = 64
    embed_dim: int = 32
    g_channels: tuple[int, ...] = (64, 32)
    d_channels: tuple[int, ...] = (32, 64)
    negative_slope: float = 0.2
    aux_weight: float = 1.0
    twin_class_head: bool = False  # TAC-GAN: D's second class head, trained on fakes; see AdversarialTask
    info_dims: int = 0  # > 0: D's head also reads back the first info_dims of a fake's z (InfoGAN); see AdversarialTask
    info_weight: float = 1.0  # weight of that read-back's squared error in D's and G's losses
    class_margin: float = 0.0  # > 0: G's class term spares fakes read as their class (see AdversarialTask)
    refine_channels: int = 0  # > 0: G upsamples to this many maps at 28x28 and ends in a 3x3 convolution
    class_norm: bool = False  # G's batch norms take a per-class gain and shift from the class embedding

    def __post_init__(self):
        check_class_terms(self)


class ClassBatchNorm2d(nn.Module):
    """Batch norm whose gain and shift also depend on the class (conditional batch norm, de Vries et al. 2017, as
    in the projection cGAN's generator): (maps [N, C, H, W], class embeddings [N, embed_dim]) -> [N, C, H, W].

    It holds a plain `norm` rather than being one, so multi-process training can swap in a synchronised one."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.modulation = nn.Linear(embed_dim, 2 * channels, bias=False)
        nn.init.zeros_(self.modulation.weight)  # starts as plain batch norm

    def forward(self, maps: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        gain, shift = self.modulation(embeddings)[:, :, None, None].chunk(2, dim=1)
        return self.norm(maps) * (1 + gain) + shift


class DCGenerator(EmbeddingConditionedGenerator):
    """(z [N, latent_dim], labels [N]) -> image [N, 1, 28, 28] in [-1, 1]."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        wide, narrow = config.g_channels
        self.embed = nn.Embedding(config.num_classes, config.embed_dim)
        self.project = nn.Sequential(
            nn.Linear(config.latent_dim + config.embed_dim, wide * BASE * BASE, bias=False),
            nn.Unflatten(1, (wide, BASE, BASE)),
            self._norm(wide),
            nn.ReLU(inplace=True),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(wide, narrow, 4, stride=2, padding=1, bias=False),  # 7 -> 14
            self._norm(narrow),
            nn.ReLU(inplace=True),
            *self._to_pixels(narrow, config.refine_channels),  # 14 -> 28
        )

    def _norm(self, channels: int) -> nn.Module:
        if self.config.class_norm:
            return ClassBatchNorm2d(channels, self.config.embed_dim)
        return nn.BatchNorm2d(channels)

    def _to_pixels(self, narrow: int, refine: int) -> list[nn.Module]:
        """14x14 maps -> 28x28 pixels before tanh: one transposed convolution, or, with `refine` maps, one to them
        and a 3x3 convolution over full-resolution neighbourhoods (textures a single upsampling cannot draw)."""
        if not refine:
            return [nn.ConvTranspose2d(narrow, 1, 4, stride=2, padding=1)]
        return [
            nn.ConvTranspose2d(narrow, refine, 4, stride=2, padding=1, bias=False),
            self._norm(refine),
            nn.ReLU(inplace=True),
            nn.Conv2d(refine, 1, 3, padding=1),
        ]

    def forward_embedded(self, z: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """(z [N, latent_dim], class embeddings [N, embed_dim]) -> image [N, 1, 28, 28] in [-1, 1]."""
        h = torch.cat([z, embeddings], dim=1)
        for layer in (*self.project, *self.upsample):
            h = layer(h, embeddings) if isinstance(layer, ClassBatchNorm2d) else layer(h)
        return torch.tanh(h)


class DCDiscriminator(nn.Module):
    """(image [N, 1, 28, 28] in [-1, 1], labels [N]) -> (real/fake logit [N], class logits [N, num_classes]; with
    the twin head, [N, 2 * num_classes]: the main head's, then the twin's).

    No normalisation of its own: the recipe's `spectral_norm` adds it to every layer. Measured on MNIST, spectral
    norm here also bounded the features of the class head, which then let G pass it with speckled images (class
    accuracy 64-83% by the project's classifier over 3 epochs while G's class loss fell to 0.03).
    """

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        self.body = strided_features(config.d_channels, config.negative_slope)
        features = config.d_channels[1] * STRIDED_SIDE * STRIDED_SIDE
        self.to_logit = nn.Linear(features, 1)
        self.projection = nn.Embedding(config.num_classes, features)
        nn.init.normal_(self.projection.weight, std=0.02)  # as the MLP cgan's: a small class term at the start
        self.to_class = class_heads(features, config)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(images)
        logit = self.to_logit(h).squeeze(1) + (self.projection(labels) * h).sum(dim=1)
        return logit, self.to_class(h)

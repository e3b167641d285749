"""A critic trained after the fact against a frozen generator, for discriminator rejection sampling (DRS, Azadi et
al. 2019): it keeps each draw with a probability that rises with how real the critic finds it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genmodels.models.layers import STRIDED_SIDE, check_labels, strided_features


@dataclass
class SampleCriticConfig:
    """Projection critic for 28x28 images: channel widths at 14x14 and 7x7, and the quantile of its logits on the
    generator's draws of a class above which a draw is always kept."""

    num_classes: int = 10
    channels: tuple[int, ...] = (64, 128)
    negative_slope: float = 0.2
    ceiling_quantile: float = 0.8


class SampleCritic(nn.Module):
    """(images [N, 1, 28, 28] in [-1, 1], labels [N]) -> logit [N].

    Trained with binary cross-entropy on real images against the frozen generator's, its logit estimates
    log p_data(x | y) / p_generator(x | y); `ceilings` [num_classes] holds each class's acceptance cap, set once
    training ends.
    """

    def __init__(self, config: SampleCriticConfig):
        super().__init__()
        self.config = config
        self.body = strided_features(config.channels, config.negative_slope)
        features = config.channels[1] * STRIDED_SIDE * STRIDED_SIDE
        self.to_logit = nn.Linear(features, 1)
        self.projection = nn.Embedding(config.num_classes, features)
        nn.init.normal_(self.projection.weight, std=0.02)
        self.register_buffer("ceilings", torch.zeros(config.num_classes))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(images)
        return self.to_logit(h).squeeze(1) + (self.projection(labels) * h).sum(dim=1)

    @torch.no_grad()
    def acceptance(self, images: torch.Tensor, labels: torch.Tensor, strictness: float = 1.0) -> torch.Tensor:
        """Images [N, 1, 28, 28] in [0, 1] of classes `labels` [N] -> the probability [N] of keeping each."""
        device = self.ceilings.device
        labels = check_labels(labels, self.config.num_classes).to(device)
        logits = self(images.to(device, torch.float32) * 2.0 - 1.0, labels).float()
        return keep_probability(logits, self.ceilings[labels], strictness)

    @torch.no_grad()
    def set_ceilings(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Set each class's ceiling from the logits [N] of the generator's draws of classes `labels` [N]."""
        self.ceilings.copy_(class_ceilings(logits, labels, self.config.num_classes, self.config.ceiling_quantile))


def keep_probability(logits: torch.Tensor, ceilings: torch.Tensor, strictness: float = 1.0) -> torch.Tensor:
    """exp(strictness (logit - ceiling)), capped at 1: the estimated density ratio (to the power `strictness`)
    rescaled so that draws at or above their class's ceiling are always kept. Strictness 1 aims at the data's
    density; above 1 favours the draws the critic finds likeliest, trading variety for typical images."""
    return torch.exp((strictness * (logits - ceilings)).clamp(max=0.0))


def class_ceilings(logits: torch.Tensor, labels: torch.Tensor, num_classes: int, quantile: float) -> torch.Tensor:
    """[num_classes]: the `quantile` of the logits [N] of each class's draws (labels [N]); ValueError if a class has
    none."""
    ceilings = []
    for c in range(num_classes):
        members = logits[labels == c]
        if len(members) == 0:
            raise ValueError(f"no draws of class {c} to set its acceptance ceiling from")
        ceilings.append(torch.quantile(members.float(), quantile))
    return torch.stack(ceilings)

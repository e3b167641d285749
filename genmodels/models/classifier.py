"""CNN classifier of report 001: the judge of every generated image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genmodels.models.layers import IMAGE_SHAPE, Dropout


@dataclass
class ClassifierConfig:
    """CNN of report 001: two 3x3 convs (stride 1, padding 1) with ReLU and max-pool, one hidden FC layer.

    Beyond the report: batch norm after each conv and dropout before the output layer.
    """

    num_classes: int = 10
    channels: tuple[int, ...] = (32, 64)
    hidden: int = 256
    dropout: float = 0.3


class Classifier(nn.Module):
    """image [N, 1, 28, 28] in [-1, 1] -> class logits [N, num_classes]."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        # ReLU after the max-pool: the same function (both are monotone), on a quarter of the values
        self.convs = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=1, padding=1),
            nn.BatchNorm2d(c1),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=1, padding=1),
            nn.BatchNorm2d(c2),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.fc = nn.Linear(c2 * 7 * 7, config.hidden)
        self.dropout = Dropout(config.dropout)
        self.to_logits = nn.Linear(config.hidden, config.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 1, 28, 28] in [-1, 1] -> hidden FC activations [N, hidden] (the FID feature space)."""
        return F.relu(self.fc(self.convs(images).flatten(1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_logits(self.dropout(self.features(images)))

    @torch.no_grad()
    def predict_unit(self, images: torch.Tensor) -> torch.Tensor:
        """images in [0, 1] [N, 1, 28, 28] -> class probabilities [N, num_classes] (call in eval mode)."""
        return F.softmax(self(images.reshape(-1, *IMAGE_SHAPE) * 2.0 - 1.0), dim=1)

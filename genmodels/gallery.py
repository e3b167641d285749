"""What the Sample page shows: a batch of generated images with the classifier's verdict on each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genmodels.api import GenerativeModel, check_seed, predict, resolve_labels
from genmodels.latent import edit_latents
from genmodels.metrics import class_accuracy

MAX_GALLERY = 100


@dataclass
class Gallery:
    """Generated images [N, 1, 28, 28], requested labels (or None), latents, and classifier probabilities (or None)."""

    images: torch.Tensor
    labels: torch.Tensor | None
    latents: torch.Tensor
    probs: torch.Tensor | None

    @property
    def accuracy(self) -> float | None:
        """Share of images the classifier puts in their requested class (None when unlabelled or unclassified)."""
        if self.labels is None or self.probs is None:
            return None
        return class_accuracy(self.probs, self.labels)

    def captions(self, class_names: Sequence[str]) -> list[str]:
        """One caption per image (see `prediction_captions`)."""
        return prediction_captions(self.probs, class_names, self.labels, len(self.images))


def prediction_captions(
    probs: torch.Tensor | None, class_names: Sequence[str], labels: torch.Tensor | None = None, count: int = 0
) -> list[str]:
    """Captions 'predicted class NN%' for probs [N, C], with a cross where it is not the requested label; blanks without
    probs."""
    if probs is None:
        return [""] * count
    confidence, predicted = probs.max(1)
    captions = []
    for i, (c, p) in enumerate(zip(confidence.tolist(), predicted.tolist(), strict=True)):
        miss = labels is not None and int(labels[i]) != p
        captions.append(f"{'✗ ' if miss else ''}{class_names[p]} {c:.0%}")
    return captions


def generate_gallery(
    model: GenerativeModel,
    classifier: torch.nn.Module | None,
    label: int | str | None,
    n: int,
    seed: int,
    temperature: float = 1.0,
    offsets: Sequence[float] = (),
    edit_first_only: bool = True,
) -> Gallery:
    """Sample n images (n per class for label='all'), shift their first latent dimensions by `offsets`, decode and
    classify."""
    labels = resolve_labels(label, n, model.num_classes)
    count = n if labels is None else len(labels)
    if count > MAX_GALLERY:
        raise ValueError(f"at most {MAX_GALLERY} images at once, asked for {count}")
    z, labels = model.latents(labels, count, seed, temperature)
    if any(offsets):
        z = edit_latents(z, offsets, edit_first_only)
    images = model.decode(z, labels)
    probs = predict(classifier, images) if classifier is not None else None
    return Gallery(images, labels, z.cpu(), probs)


def next_seed(seed: int) -> int:
    """The seed after `seed` for a re-roll: a deterministic scramble, so re-rolls are reproducible."""
    return int(np.random.SeedSequence(check_seed(seed)).generate_state(1)[0])


def display_pixels(images: torch.Tensor, scale: int = 3) -> list[np.ndarray]:
    """images [N, 1, 28, 28] in [0, 1] -> uint8 arrays upscaled by `scale` (nearest, so pixels stay crisp on screen)."""
    pixels = images.reshape(-1, 28, 28).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    return list(pixels.repeat(scale, axis=1).repeat(scale, axis=2))

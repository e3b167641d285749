"""What the Your image page computes for one prepared 28x28 input: the classifier's verdict and its reasons, the VAE's
encoding, and the pictures (attribution overlay, residual) that show them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genmodels.api import GenerativeModel, predict, seeded_generator
from genmodels.attribution import integrated_gradients
from genmodels.data import DataMissingError, load_split
from genmodels.datasets import missing_files
from genmodels.models import Classifier
from genmodels.summary import load_summary

ELLIPSE_DRAWS = 64  # draws of q(z|x) whose plane points give the sigma ellipse


def as_batch(pixels: np.ndarray) -> torch.Tensor:
    """A prepared image [28, 28] in [0, 1] -> the models' input [1, 1, 28, 28]."""
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).reshape(1, 1, 28, 28)


@dataclass
class Verdict:
    """The classifier's probabilities [C], its top class, and Integrated Gradients of that class [28, 28]."""

    probs: np.ndarray
    predicted: int
    attribution: np.ndarray


def verdict(classifier: Classifier, pixels: np.ndarray) -> Verdict:
    """Classify a prepared image and attribute the top class to its pixels."""
    image = as_batch(pixels)
    probs = predict(classifier, image)[0]
    predicted = int(probs.argmax())
    return Verdict(probs.numpy(), predicted, integrated_gradients(classifier, image, predicted))


@dataclass
class VaeView:
    """The VAE's encoding of an image: mean and standard deviation [L], reconstruction, draws of q(z|x) and images
    of the first few of them."""

    mu: np.ndarray
    sigma: np.ndarray
    reconstruction: torch.Tensor  # [1, 1, 28, 28]
    draws: np.ndarray  # [ELLIPSE_DRAWS, L]
    draw_images: torch.Tensor  # [shown, 1, 28, 28]


@torch.no_grad()
def vae_view(vae: GenerativeModel, pixels: np.ndarray, shown: int = 6, seed: int = 0) -> VaeView:
    """Encode a prepared image, reconstruct it from its mean and decode a few draws of q(z|x)."""
    mu, logvar = vae.module.encode(as_batch(pixels).to(vae.device))
    sigma = torch.exp(0.5 * logvar)
    noise = torch.randn(ELLIPSE_DRAWS, vae.latent_dim, generator=seeded_generator(seed)).to(vae.device)
    draws = mu + noise * sigma
    return VaeView(
        mu[0].cpu().numpy(), sigma[0].cpu().numpy(), vae.decode(mu), draws.cpu().numpy(), vae.decode(draws[:shown])
    )


def neighbour_pool(dataset: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(uint8 images, labels, what they are) to search: the training split, or the bundled test images without it."""
    if not missing_files(dataset):
        try:
            images, labels = load_split(dataset, "train", download=False)
            return images, labels, "training images"
        except DataMissingError:
            pass  # unreadable files: the bundled images still answer
    summary = load_summary(dataset, prefer_full=False)
    return summary.subset_images, summary.subset_labels, "bundled test images (the training files are not here)"


def attribution_overlay(pixels: np.ndarray, attribution: np.ndarray, scale: int = 6) -> np.ndarray:
    """RGB uint8 [28 s, 28 s, 3]: the image in grey, ink for the class in red and against it in blue."""
    peak = max(float(np.abs(attribution).max()), 1e-8)
    signed = np.sign(attribution) * np.sqrt(np.abs(attribution) / peak)  # the square root lifts the weaker pixels
    base = np.repeat((0.3 * np.clip(pixels, 0, 1))[..., None], 3, axis=2)
    red = np.array([1.0, 0.15, 0.1]) * np.clip(signed, 0, None)[..., None]
    blue = np.array([0.1, 0.45, 1.0]) * np.clip(-signed, 0, None)[..., None]
    rgb = np.clip(base + red + blue, 0.0, 1.0)
    return _upscale((rgb * 255).round().astype(np.uint8), scale)


def residual_image(target: torch.Tensor, image: torch.Tensor, scale: int = 3) -> np.ndarray:
    """RGB uint8 [28 s, 28 s, 3] of image - target: red where the model adds ink, blue where it misses ink."""
    difference = (image - target).reshape(28, 28).clamp(-1, 1).numpy()
    rgb = np.zeros((28, 28, 3), dtype=np.float32)
    rgb[..., 0] = np.clip(difference, 0, None)
    rgb[..., 2] = np.clip(-difference, 0, None)
    return _upscale((rgb * 255).round().astype(np.uint8), scale)


def _upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    return rgb.repeat(scale, axis=0).repeat(scale, axis=1)

"""Latent-space tools: straight-line interpolation, latent edits, and PCA maps of VAE codes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from genmodels.api import GenerativeModel, check_count, encode
from genmodels.data import load_split
from genmodels.models import VAE
from genmodels.summary import DataSummary

MAX_STRIP = 50


def interpolate(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """`steps` points [steps, L] on the straight line from latent `start` [L] to `end` [L], both included."""
    if start.shape != end.shape or start.ndim != 1:
        raise ValueError(
            f"endpoints must be two latents of the same shape [L], got {tuple(start.shape)} and {tuple(end.shape)}"
        )
    steps = check_count(steps, MAX_STRIP)
    if steps < 2:
        raise ValueError("an interpolation needs at least 2 steps")
    weights = torch.linspace(0.0, 1.0, steps, dtype=start.dtype, device=start.device).unsqueeze(1)
    return start.unsqueeze(0) * (1 - weights) + end.unsqueeze(0) * weights


def edit_latents(z: torch.Tensor, offsets: Sequence[float], first_only: bool) -> torch.Tensor:
    """A copy of z [N, L] with offsets added to its first len(offsets) dimensions (of row 0 only, or of every row)."""
    if len(offsets) > z.shape[1]:
        raise ValueError(f"{len(offsets)} offsets for {z.shape[1]} latent dimensions")
    edited = z.clone()
    shift = torch.tensor(list(offsets), dtype=z.dtype, device=z.device)
    rows = slice(0, 1) if first_only else slice(None)
    edited[rows, : len(offsets)] += shift
    return edited


@torch.no_grad()
def decode_class_blend(model: GenerativeModel, z: torch.Tensor, start_label: int, end_label: int) -> torch.Tensor:
    """Images for latents z [S, L] whose class embedding moves linearly from one class to the other."""
    generator = model.module
    device = model.device
    weights = torch.linspace(0.0, 1.0, len(z), device=device).unsqueeze(1)
    embeddings = generator.embed(torch.tensor([start_label, end_label], device=device))
    blended = embeddings[0] * (1 - weights) + embeddings[1] * weights
    return generator.forward_embedded(z.to(device, torch.float32), blended).add(1.0).mul(0.5).cpu()


def interpolation_strip(
    model: GenerativeModel,
    start_label: int | None,
    end_label: int | None,
    start_seed: int,
    end_seed: int,
    steps: int = 10,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Images [steps, 1, 28, 28] along the straight latent line between (class, seed) endpoints (labels None:
    unconditional)."""
    if (start_label is None) != (end_label is None):
        raise ValueError("give both endpoint classes or neither")
    if start_label is not None and not model.supports_labels:
        raise ValueError(f"the {model.dataset} {model.kind} cannot be sampled by class")
    ends = []
    for label, seed in ((start_label, start_seed), (end_label, end_seed)):
        labels = None if label is None else torch.tensor([label])
        if labels is not None and not 0 <= label < model.num_classes:
            raise ValueError(f"class must be between 0 and {model.num_classes - 1}, got {label}")
        z, _ = model.latents(labels, 1, seed, temperature)
        ends.append(z[0].cpu())
    path = interpolate(ends[0], ends[1], steps)
    if not model.module.takes_labels:
        return model.decode(path)
    if start_label is None:
        # an unconditional cgan draw picks its class from the seed; keep the start's class along the path
        start_label = end_label = int(model.latents(None, 1, start_seed, temperature)[1][0])
    if start_label == end_label:
        return model.decode(path, torch.full((steps,), start_label))
    return decode_class_blend(model, path, start_label, end_label)


@dataclass
class LatentMap:
    """Latent codes [N, L] of real images with their 2-D PCA projection, labels and test-set indices."""

    latents: np.ndarray
    coords: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    mean: np.ndarray
    components: np.ndarray  # [2, L]
    explained_variance_ratio: np.ndarray  # [2]

    def to_latent(self, points: np.ndarray) -> np.ndarray:
        """PCA-plane points [M, 2] -> latents [M, L] (the inverse transform: the plane through the mean)."""
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        if not np.isfinite(points).all():
            raise ValueError("plane coordinates must be finite")
        return (points @ self.components + self.mean).astype(np.float32)

    def project(self, latents: np.ndarray) -> np.ndarray:
        """Latents [M, L] -> PCA-plane points [M, 2]."""
        return ((np.asarray(latents, dtype=np.float32) - self.mean) @ self.components.T).astype(np.float32)

    def nearest(self, row: int, k: int = 8) -> np.ndarray:
        """Rows of the k codes nearest to code `row` in the full latent space (itself excluded), nearest first."""
        if not 0 <= row < len(self.latents):
            raise ValueError(f"point must be between 0 and {len(self.latents) - 1}, got {row}")
        distances = np.linalg.norm(self.latents - self.latents[row], axis=1)
        distances[row] = np.inf
        k = min(k, len(self.latents) - 1)
        return np.argsort(distances, kind="stable")[:k]

    def distances(self, row: int, rows: np.ndarray) -> np.ndarray:
        """Latent-space distances from code `row` to the codes `rows`."""
        return np.linalg.norm(self.latents[rows] - self.latents[row], axis=1)

    def line(self, start_row: int, end_row: int, steps: int) -> np.ndarray:
        """`steps` latents [steps, L] on the straight line from code `start_row` to code `end_row`."""
        ends = torch.from_numpy(self.latents[start_row]), torch.from_numpy(self.latents[end_row])
        return interpolate(*ends, steps).numpy()


def principal_axes(latents: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean [L], components [n, L], explained variance ratios [n]) of codes [N, L], by a full SVD in float64.

    Each component's sign is fixed so its largest-magnitude entry is positive (scikit-learn's convention), so a
    map looks the same on every run and machine.
    """
    data = np.asarray(latents, dtype=np.float64)
    mean = data.mean(axis=0)
    _, singular, components = np.linalg.svd(data - mean, full_matrices=False)
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular**2
    total = variance.sum()
    ratio = variance / total if total > 0 else np.zeros_like(variance)
    return mean, components[:n_components], ratio[:n_components]


def fit_latent_map(
    latents: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, indices: torch.Tensor | np.ndarray
) -> LatentMap:
    """Fit a 2-component PCA to latent codes [N, L] (numpy's SVD: scikit-learn's import alone held ~140 MB)."""
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2 or len(latents) < 3 or latents.shape[1] < 2:
        raise ValueError(f"need at least 3 latent codes of at least 2 dimensions [N, L], got shape {latents.shape}")
    if not np.isfinite(latents).all():
        raise ValueError("latent codes must be finite (the encoder produced NaN or inf)")
    mean, components, ratio = principal_axes(latents)
    mean, components = mean.astype(np.float32), components.astype(np.float32)
    return LatentMap(
        latents=latents,
        coords=((latents - mean) @ components.T).astype(np.float32),
        labels=np.asarray(labels),
        indices=np.asarray(indices),
        mean=mean,
        components=components,
        explained_variance_ratio=ratio.astype(np.float64),
    )


@dataclass
class RealImages:
    """Real test images (uint8 [N, 28, 28]) with their labels and indices in the test split."""

    pixels: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor

    def unit(self, rows: np.ndarray | slice) -> torch.Tensor:
        """The images of `rows` as floats [M, 1, 28, 28] in [0, 1]."""
        return unit_images(self.pixels[torch.as_tensor(rows) if isinstance(rows, np.ndarray) else rows])


def summary_images(summary: DataSummary) -> RealImages:
    """The class-balanced real test subset bundled in a data summary."""
    return RealImages(summary.subset_images, summary.subset_labels, summary.subset_indices)


def full_test_images(dataset: str, root: str | os.PathLike | None = None) -> RealImages:
    """The whole test split (needs the dataset files; raises DataMissingError without them)."""
    pixels, labels = load_split(dataset, "test", root, download=False)
    return RealImages(pixels, labels, torch.arange(len(labels)))


def real_latent_map(vae: VAE, images: RealImages) -> LatentMap:
    """The PCA map of the VAE latent means of real test images."""
    return fit_latent_map(encode(vae, unit_images(images.pixels)), images.labels, images.indices)


def unit_images(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 images [N, 28, 28] -> float images [N, 1, 28, 28] in [0, 1]."""
    return pixels.reshape(-1, 1, 28, 28).float().div(255.0)


def decode_points(model: GenerativeModel, latents: np.ndarray) -> torch.Tensor:
    """Images [M, 1, 28, 28] in [0, 1] of latents [M, L] given as a numpy array."""
    return model.decode(torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32)))


def class_verdicts(probs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class [N], its probability [N]) of class probabilities [N, C], as numpy arrays."""
    confidence, predicted = probs.max(1)
    return predicted.numpy(), confidence.numpy()


@torch.no_grad()
def reconstruct(vae: VAE, images: torch.Tensor) -> torch.Tensor:
    """VAE reconstructions (decoded latent means) of images [N, 1, 28, 28] in [0, 1]."""
    return vae.decode(encode(vae, images).to(next(vae.parameters()).device)).cpu()

"""Measures of generated images, as pure functions of tensors (probabilities, labels, features, pixels)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

BLOCK_FLOATS = 2**24  # pairwise distances are computed in blocks of at most this many floats (64 MiB)
MIDTONE = (0.1, 0.9)


# ----------------------------------------------------------------------------- class accuracy and confidence


def class_accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows of probs [N, C] whose argmax equals the requested label [N]."""
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} predictions for {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("class accuracy of zero images is undefined")
    return float((probs.argmax(1) == labels.to(probs.device)).float().mean())


def per_class_accuracy(probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float | None]:
    """Class accuracy for each requested class (None where a class was not requested)."""
    hits = probs.argmax(1) == labels
    return [float(hits[labels == c].float().mean()) if (labels == c).any() else None for c in range(num_classes)]


def mean_confidence(probs: torch.Tensor) -> float:
    """Mean of the top class probability."""
    return float(probs.max(1).values.mean())


def per_class_confidence(probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float | None]:
    """Mean top class probability of the images requested as each class (None where a class was not requested)."""
    top = probs.max(1).values
    return [float(top[labels == c].mean()) if (labels == c).any() else None for c in range(num_classes)]


def class_histogram(probs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Share of images predicted as each class [num_classes]."""
    return torch.bincount(probs.argmax(1), minlength=num_classes).float() / max(len(probs), 1)


def coverage_kl(probs: torch.Tensor, reference: torch.Tensor | None = None, eps: float = 1e-6) -> float:
    """KL(reference class mix || predicted class mix) in nats; large when classes go missing (mode collapse)."""
    predicted = class_histogram(probs, probs.shape[1]).clamp_min(eps)
    reference = (
        torch.full_like(predicted, 1.0 / len(predicted)) if reference is None else reference.float() / reference.sum()
    )
    mask = reference > 0
    return float((reference[mask] * (reference[mask].log() - predicted[mask].log())).sum())


def classifier_score(probs: torch.Tensor, eps: float = 1e-12) -> float:
    """Inception-score analogue exp(E_x KL(p(y|x) || p(y))): C for confident, balanced predictions, 1 for one class or
    no confidence."""
    p = probs.double().clamp_min(eps)
    marginal = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - marginal.log())).sum(1).mean()))


# ----------------------------------------------------------------------------- variety within a class


def class_spread(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float | None]:
    """Per class, the mean pixel (L2) distance between two different images of that class (None below two images)."""
    spreads: list[float | None] = []
    for c in range(num_classes):
        pixels = images[labels == c].flatten(1).float()
        n = len(pixels)
        spreads.append(float(torch.cdist(pixels, pixels).sum()) / (n * (n - 1)) if n >= 2 else None)
    return spreads


def spread_ratios(spreads: list[float | None], real: list[float | None]) -> tuple[float | None, list[float | None]]:
    """(mean over classes, per class) of generated spread / real spread, skipping classes either side lacks."""
    per_class = [g / r if g is not None and r else None for g, r in zip(spreads, real, strict=False)]
    known = [v for v in per_class if v is not None]
    return (sum(known) / len(known) if known else None), per_class


# ----------------------------------------------------------------------------- Fréchet distance


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [D], covariance [D, D]) of features [N, D], in float64."""
    if len(features) < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {len(features)}")
    x = features.double()
    return x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix (negative round-off eigenvalues clipped)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """Fréchet distance between N(mean_a, cov_a) and N(mean_b, cov_b): |Δμ|² + tr(A + B - 2 (A^½ B A^½)^½)."""
    mean_a, cov_a, mean_b, cov_b = (t.double() for t in (mean_a, cov_a, mean_b, cov_b))
    root_a = _psd_sqrt(cov_a)
    # tr((A B)^½) = tr((A^½ B A^½)^½), and A^½ B A^½ is symmetric, so eigh applies
    inner = root_a @ cov_b @ root_a
    cross = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    value = (mean_a - mean_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * cross
    return max(float(value), 0.0)


def feature_frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D] (FID on given features)."""
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))


# ----------------------------------------------------------------------------- nearest neighbours, precision / recall


def _block_rows(columns: int) -> int:
    return max(1, BLOCK_FLOATS // max(columns, 1))


def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances [N, k] and indices [N, k] of each query row's k nearest reference rows, nearest first."""
    if not 1 <= k <= len(reference):
        raise ValueError(f"k must be between 1 and {len(reference)}, got {k}")
    queries, reference = queries.flatten(1).float(), reference.flatten(1).float()
    ref_sq = reference.pow(2).sum(1)
    distances, indices = [], []
    for block in queries.split(_block_rows(len(reference))):
        # |q - r|² = |q|² - 2 q·r + |r|²: one matmul instead of cdist's pairwise loop
        squared = (block.pow(2).sum(1, keepdim=True) - 2 * block @ reference.T + ref_sq).clamp_min_(0)
        where = squared.topk(k, dim=1, largest=False).indices
        # the expanded form loses precision to cancellation (an exact copy comes out ~0.01 away): re-measure the k
        # winners
        exact = (block.unsqueeze(1) - reference[where]).norm(dim=2)
        order = exact.argsort(dim=1)
        distances.append(exact.gather(1, order))
        indices.append(where.gather(1, order))
    return torch.cat(distances), torch.cat(indices)


def knn_radii(features: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Distance [N] from each row to its k-th nearest other row: the radius of its k-NN ball."""
    if not 1 <= k < len(features):
        raise ValueError(f"k must be between 1 and {len(features) - 1}, got {k}")
    return nearest_neighbours(features, features, k + 1)[0][:, k]  # column 0 is the row itself


def precision_recall(
    real: torch.Tensor, fake: torch.Tensor, k: int = 3, real_radii: torch.Tensor | None = None
) -> dict[str, float]:
    """k-NN manifold precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020).

    precision: share of fake rows inside some real row's k-NN ball (fidelity); recall: share of real
    rows inside some fake row's ball (diversity); density: mean count of real balls holding a fake
    row over k (about 1 when matched); coverage: share of real balls holding at least one fake row.
    """
    real, fake = real.float(), fake.float()
    real_radii = knn_radii(real, k) if real_radii is None else real_radii.float()
    fake_radii = knn_radii(fake, k)
    real_sq = real.pow(2).sum(1)
    in_real_ball = torch.zeros(len(fake), dtype=torch.bool)
    ball_counts = torch.zeros(len(fake))
    real_hit = torch.zeros(len(real), dtype=torch.bool)
    nearest_fake = torch.full((len(real),), math.inf)
    chunk = _block_rows(len(real))
    for start in range(0, len(fake), chunk):
        block = fake[start : start + chunk]
        d = (block.pow(2).sum(1, keepdim=True) - 2 * block @ real.T + real_sq).clamp_min_(0).sqrt_()
        inside = d <= real_radii
        in_real_ball[start : start + len(block)] = inside.any(1)
        ball_counts[start : start + len(block)] = inside.sum(1).float()
        real_hit |= (d <= fake_radii[start : start + len(block), None]).any(0)
        nearest_fake = torch.minimum(nearest_fake, d.min(0).values)
    return {
        "precision": float(in_real_ball.float().mean()),
        "recall": float(real_hit.float().mean()),
        "density": float(ball_counts.mean() / k),
        "coverage": float((nearest_fake <= real_radii).float().mean()),
    }


# ----------------------------------------------------------------------------- memorisation


@dataclass
class Memorisation:
    """How close generated images sit to the training set, against real test images as the yardstick."""

    distances: torch.Tensor  # [N] pixel distance of each generated image to its nearest training image
    nearest_indices: torch.Tensor  # [N] index of that training image (to show them side by side)
    test_distances: torch.Tensor  # [M] the same for real test images
    distance_ratio: float  # mean generated / mean test distance: about 1 is healthy, near 0 is copying
    copy_share: float  # share of generated images at most as far from the training set as the closest 1% of test images


def memorisation(
    generated: torch.Tensor,
    train: torch.Tensor,
    test: torch.Tensor | None = None,
    test_distances: torch.Tensor | None = None,
    copy_quantile: float = 0.01,
) -> Memorisation:
    """Nearest-training-image pixel distances of generated images against those of real test images.

    Images are in [0, 1], any shape per image; give the test images, or their distances to the
    training set when already computed (they are the same for every generator of a dataset).
    """
    if (test is None) == (test_distances is None):
        raise ValueError("give exactly one of test images or test_distances")
    if test_distances is None:
        test_distances = nearest_neighbours(test, train)[0][:, 0]
    distances, indices = nearest_neighbours(generated, train)
    distances = distances[:, 0]
    threshold = torch.quantile(test_distances.float(), copy_quantile)
    return Memorisation(
        distances=distances,
        nearest_indices=indices[:, 0],
        test_distances=test_distances,
        distance_ratio=float(distances.mean() / test_distances.mean().clamp_min(1e-12)),
        copy_share=float((distances <= threshold).float().mean()),
    )


# ----------------------------------------------------------------------------- latent smoothness


def interpolate(start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """Straight lines from start [P, L] to end [P, L] in `steps` equal steps -> [P, steps + 1, L]."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    t = torch.linspace(0.0, 1.0, steps + 1, dtype=start.dtype, device=start.device).view(1, -1, 1)
    return start.unsqueeze(1) + t * (end - start).unsqueeze(1)


def path_smoothness(path_features: torch.Tensor) -> dict[str, float]:
    """How features move along latent paths [P, S + 1, D] (a perceptual-path-length analogue).

    step_mean: mean feature distance per step; ppl: mean of (step distance x S)², StyleGAN's
    path length with the classifier's features; jump_ratio: mean over paths of the largest step
    over the mean step (1 when features change evenly, up to S when all change happens in one step).
    """
    if path_features.ndim != 3 or path_features.shape[1] < 2:
        raise ValueError(f"path features must have shape [P, S + 1 >= 2, D], got {tuple(path_features.shape)}")
    steps = (path_features[:, 1:] - path_features[:, :-1]).double().norm(dim=2)
    num_steps = steps.shape[1]
    mean_step = steps.mean(1)
    jump_ratio = torch.where(
        mean_step > 0, steps.max(1).values / mean_step.clamp_min(1e-12), torch.ones_like(mean_step)
    )
    return {
        "step_mean": float(steps.mean()),
        "ppl": float((steps * num_steps).pow(2).mean()),
        "jump_ratio": float(jump_ratio.mean()),
    }


# ----------------------------------------------------------------------------- pixels: blur and variety


def midtone_share(images: torch.Tensor) -> float:
    """Share of pixels strictly between 0.1 and 0.9: near 0 for crisp strokes, higher for blurry images."""
    low, high = MIDTONE
    return float(((images > low) & (images < high)).float().mean())


def jump_ratio(images: torch.Tensor) -> float:
    """Largest pixel change between neighbouring frames of a strip over the mean change: 1 is an even morph."""
    steps = (images[1:] - images[:-1]).flatten(1).norm(dim=1)
    mean = float(steps.mean())
    return float(steps.max()) / mean if mean > 0 else 1.0


def sample_health(images: torch.Tensor, previous: torch.Tensor | None, probs: torch.Tensor | None) -> dict[str, float]:
    """Cheap health signals of fixed-noise samples [N, 1, 28, 28] in [0, 1] (genmodels.health reads them): pixel
    mean and spread, the mean change since the previous epoch's samples, and, with the judge's probabilities
    [N, C], the class histogram's dominant class, its share, the classes covered and the histogram's entropy."""
    out = {"pixel_mean": float(images.mean()), "pixel_std": float(images.std())}
    if previous is not None and previous.shape == images.shape:
        out["sample_change"] = float((images - previous).abs().mean())
    if probs is not None:
        counts = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).float()
        shares = counts / counts.sum()
        out.update(
            dominant_class=int(shares.argmax()),
            dominant_class_share=float(shares.max()),
            classes_covered=int((counts > 0).sum()),
            class_entropy=float(-(shares[shares > 0] * shares[shares > 0].log()).sum()),
        )
    return out

"""Measures of generated images, as pure functions of tensors (probabilities, labels, features)."""
from __future__ import annotations

import torch


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


def class_histogram(probs: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Share of images predicted as each class [num_classes]."""
    return torch.bincount(probs.argmax(1), minlength=num_classes).float() / max(len(probs), 1)


def coverage_kl(probs: torch.Tensor, reference: torch.Tensor | None = None, eps: float = 1e-6) -> float:
    """KL(reference class mix || predicted class mix) in nats; large when classes go missing (mode collapse)."""
    predicted = class_histogram(probs, probs.shape[1]).clamp_min(eps)
    reference = torch.full_like(predicted, 1.0 / len(predicted)) if reference is None else reference.float() / reference.sum()
    mask = reference > 0
    return float((reference[mask] * (reference[mask].log() - predicted[mask].log())).sum())

"""The numbers behind the GAN vs VAE comparison: class accuracy, S0/S1, sharpness, training stability, stored metrics."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genmodels.api import GenerativeModel, predict
from genmodels.checkpoint import read_metadata
from genmodels.data import load_split, to_unit
from genmodels.metrics import class_accuracy, coverage_kl, mean_confidence, per_class_accuracy
from genmodels.paths import checkpoints_dir
from genmodels.runs import read_metrics
from genmodels.summary import DataSummary

COMPARED_KINDS = ("cgan", "gan", "vae")
LOSS_KEYS = {"cgan": "loss_g", "gan": "loss_g", "vae": "loss"}  # the generator's loss; the VAE's negative ELBO
MIDTONE = (0.1, 0.9)


@dataclass
class GeneratedScores:
    """Classifier verdicts on n generated images per class (accuracies are None for a model without labels)."""

    accuracy: float | None
    per_class: list[float | None]
    confidence: float
    coverage_kl: float
    midtone_share: float


def midtone_share(images: torch.Tensor) -> float:
    """Share of pixels strictly between 0.1 and 0.9: near 0 for crisp strokes, higher for blurry images."""
    low, high = MIDTONE
    return float(((images > low) & (images < high)).float().mean())


def generated_scores(model: GenerativeModel, classifier: torch.nn.Module, n_per_class: int, seed: int,
                     temperature: float = 1.0) -> GeneratedScores:
    """Sample n_per_class images of every class (or as many unconditionally) and score them with the classifier."""
    if model.supports_labels:
        samples = model.sample(n_per_class, "all", seed, temperature)
    else:
        samples = model.sample(n_per_class * model.num_classes, None, seed, temperature)
    probs = predict(classifier, samples.images)
    labelled = samples.labels is not None
    return GeneratedScores(
        accuracy=class_accuracy(probs, samples.labels) if labelled else None,
        per_class=per_class_accuracy(probs, samples.labels, model.num_classes) if labelled else [None] * model.num_classes,
        confidence=mean_confidence(probs),
        coverage_kl=coverage_kl(probs),
        midtone_share=midtone_share(samples.images),
    )


def real_subset(summary: DataSummary, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first per_class real test images of each class of a data summary, as ([N, 1, 28, 28] in [0, 1], labels)."""
    rows = torch.cat([torch.nonzero(summary.subset_labels == c).squeeze(1)[:per_class] for c in range(len(summary.classes))])
    return summary.subset_images[rows].reshape(-1, 1, 28, 28).float().div(255.0), summary.subset_labels[rows]


def real_scores(classifier: torch.nn.Module, summary: DataSummary, per_class: int = 10) -> tuple[float, float]:
    """(classifier accuracy, mid-tone share) on per_class real test images per class: report 001's S0."""
    images, labels = real_subset(summary, per_class)
    return class_accuracy(predict(classifier, images), labels), midtone_share(images)


def shipped_log(kind: str, dataset: str, root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The records of the training log behind a shipped checkpoint ([] when absent)."""
    return read_metrics(checkpoints_dir(root) / dataset / "logs" / f"{kind}.jsonl")


def epoch_series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of `key` in the per-epoch records, finite values only."""
    epochs, values = [], []
    for record in records:
        value = record.get(key)
        if record.get("type") == "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
            epochs.append(float(record.get("epoch", len(epochs) + 1)))
            values.append(float(value))
    return epochs, values


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    """(mean, standard deviation) of a list, None for an empty one."""
    if not values:
        return None, None
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


def training_stability(kind: str, records: list[dict[str, Any]], last: int = 10) -> dict[str, float | None]:
    """Loss level and wobble over the last `last` epochs, and the spread of the epoch-end classifier checks."""
    _, losses = epoch_series(records, LOSS_KEYS[kind])
    mean, std = _spread(losses[-last:])
    window = losses[-last - 1:]  # one more epoch, so each of the last epochs has a change into it
    steps = [abs(b - a) for a, b in zip(window, window[1:])]
    return {
        "epochs logged": float(len(losses)),
        "loss mean": mean,
        "loss std": std,
        "loss std / mean": std / abs(mean) if mean else None,
        "mean epoch-to-epoch loss change": _spread(steps)[0],
        "epoch-end confidence std": _spread(epoch_series(records, "classifier_confidence")[1][-last:])[1],
        "epoch-end class accuracy std": _spread(epoch_series(records, "class_accuracy")[1][-last:])[1],
    }


def jump_ratio(images: torch.Tensor) -> float:
    """Largest pixel change between neighbouring frames of a strip over the mean change: 1 is an even morph."""
    steps = (images[1:] - images[:-1]).flatten(1).norm(dim=1)
    mean = float(steps.mean())
    return float(steps.max()) / mean if mean > 0 else 1.0


def stored_numbers(path: str | os.PathLike) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(stored_metrics, stored_class_profile) of a checkpoint file, read and verified once."""
    meta = read_metadata(Path(path))
    return stored_metrics(meta), stored_class_profile(meta)


def stored_metrics(meta: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics in a checkpoint's metadata (training-end and `evaluate` results), flattened."""
    found: dict[str, float] = {}

    def collect(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                collect(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[prefix] = float(value)

    for section in ("metrics", "evaluation"):
        collect("" if section == "metrics" else section, meta.get(section))
    return found


def stored_class_profile(meta: dict[str, Any]) -> dict[str, list[float]]:
    """The per-class lists `evaluate` stored in a checkpoint's metadata: 'per_class_accuracy' and 'class_histogram'."""
    evaluation = meta.get("evaluation") or {}
    return {key: [float(v) for v in evaluation[key]] for key in ("per_class_accuracy", "class_histogram")
            if isinstance(evaluation.get(key), list)}


def nearest_training_pairs(images: torch.Tensor, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(nearest training image of each image [N, 1, 28, 28] in [0, 1], pixel distances [N]); needs the full dataset."""
    from genmodels.evaluation import nearest_training_images  # deferred: only this page section needs it

    distances, indices = nearest_training_images(images, dataset)
    train_images, _ = load_split(dataset, "train", download=False)
    return to_unit(train_images[indices]), distances

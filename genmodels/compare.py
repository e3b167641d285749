"""The numbers behind the GAN vs VAE comparison: class accuracy, S0/S1, sharpness, variety, training stability, stored metrics."""
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
from genmodels.evaluation import classifier_outputs, nearest_training_images
from genmodels.metrics import (class_accuracy, class_spread, coverage_kl, frechet_distance_to, mean_confidence,
                               per_class_accuracy, reference_stats, spread_ratios)
from genmodels.runs import ShippedLogs, read_metrics
from genmodels.summary import DataSummary

COMPARED_KINDS = ("cgan", "gan", "vae")
LOSS_KEYS = {"cgan": "loss_g", "gan": "loss_g", "vae": "loss"}  # the generator's loss; the VAE's negative ELBO
MIDTONE = (0.1, 0.9)
SPREAD_REAL_PER_CLASS = 100  # real test images per class behind the variety baseline
REALISM_PER_CLASS = 100  # real test images per class on each side of the realism check


@dataclass
class GeneratedScores:
    """Classifier verdicts on n generated images per class (accuracies are None for a model without labels).

    The spread ratios compare the variety within each class with real test images' (1 = as varied as real
    images); they are None when no real baseline was given.
    """

    accuracy: float | None
    per_class: list[float | None]
    confidence: float
    coverage_kl: float
    midtone_share: float
    spread_ratio: float | None = None
    per_class_spread_ratio: list[float | None] | None = None
    fid: float | None = None  # FID on classifier features against a RealismReference, when one was given


@dataclass
class RealismReference:
    """Classifier features of half of a data summary's real test images, and the FID of the other half to them:
    the floor that samples of the same number are measured against."""

    features: torch.Tensor
    floor: float
    stats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # the features' reference_stats, fitted once for every model


def realism_reference(classifier: torch.nn.Module, summary: DataSummary, per_class: int = REALISM_PER_CLASS) -> RealismReference:
    """Two disjoint sets of per_class real test images per class: features of the second, FID of the first to them."""
    held_out, reference = (classifier_outputs(classifier, real_subset(summary, per_class, start)[0])[0]
                           for start in (0, per_class))
    stats = reference_stats(reference)
    return RealismReference(reference, frechet_distance_to(held_out, stats), stats)


def midtone_share(images: torch.Tensor) -> float:
    """Share of pixels strictly between 0.1 and 0.9: near 0 for crisp strokes, higher for blurry images."""
    low, high = MIDTONE
    return float(((images > low) & (images < high)).float().mean())


def real_class_spread(summary: DataSummary, per_class: int = SPREAD_REAL_PER_CLASS) -> list[float | None]:
    """`class_spread` of real test images from a data summary: the baseline of the spread ratios."""
    images, labels = real_subset(summary, per_class)
    return class_spread(images, labels, len(summary.classes))


def generated_scores(model: GenerativeModel, classifier: torch.nn.Module, n_per_class: int, seed: int,
                     temperature: float = 1.0, real_spread: list[float | None] | None = None,
                     realism: RealismReference | None = None) -> GeneratedScores:
    """Sample n_per_class images of every class (or as many unconditionally) and score them with the classifier.

    With `real_spread` (see `real_class_spread`) it also measures variety within each class: by requested
    class, or by the classifier's verdict for a model without labels. With `realism` it also measures the FID
    of the samples to real images, which a classifier's confident verdict on noise cannot hide.
    """
    if model.supports_labels:
        samples = model.sample(n_per_class, "all", seed, temperature)
    else:
        samples = model.sample(n_per_class * model.num_classes, None, seed, temperature)
    fid = None
    if realism is not None:
        features, probs = classifier_outputs(classifier, samples.images)
        fid = frechet_distance_to(features, realism.stats)
    else:
        probs = predict(classifier, samples.images)
    labelled = samples.labels is not None
    spread, per_class_spread = None, None
    if real_spread is not None:
        groups = samples.labels if labelled else probs.argmax(1)
        spread, per_class_spread = spread_ratios(class_spread(samples.images, groups, model.num_classes), real_spread)
    return GeneratedScores(
        accuracy=class_accuracy(probs, samples.labels) if labelled else None,
        per_class=per_class_accuracy(probs, samples.labels, model.num_classes) if labelled else [None] * model.num_classes,
        confidence=mean_confidence(probs),
        coverage_kl=coverage_kl(probs),
        midtone_share=midtone_share(samples.images),
        spread_ratio=spread,
        per_class_spread_ratio=per_class_spread,
        fid=fid,
    )


def real_subset(summary: DataSummary, per_class: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """per_class real test images of each class of a data summary from the class's `start`-th on, as
    ([N, 1, 28, 28] in [0, 1], labels)."""
    rows = torch.cat([torch.nonzero(summary.subset_labels == c).squeeze(1)[start:start + per_class]
                      for c in range(len(summary.classes))])
    return summary.subset_images[rows].reshape(-1, 1, 28, 28).float().div(255.0), summary.subset_labels[rows]


def real_scores(classifier: torch.nn.Module, summary: DataSummary, per_class: int = 10) -> tuple[float, float]:
    """(classifier accuracy, mid-tone share) on per_class real test images per class: report 001's S0."""
    images, labels = real_subset(summary, per_class)
    return class_accuracy(predict(classifier, images), labels), midtone_share(images)


def shipped_log(kind: str, dataset: str, root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The records of the training log behind a shipped checkpoint ([] when absent)."""
    return read_metrics(ShippedLogs.of(dataset, root).metrics_file(kind))


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


# (stored key, what a reader should see, format): training-end checks first, then `python -m genmodels evaluate`
METRIC_LABELS: tuple[tuple[str, str, str], ...] = (
    ("class_accuracy", "class accuracy, last epoch-end check (1,000 samples)", "percent"),
    ("classifier_confidence", "classifier confidence, last epoch-end check", "percent"),
    ("coverage_kl", "class coverage KL (nats), last epoch-end check", "4"),
    ("test_neg_elbo", "test neg-ELBO (nats), end of training", "2"),
    ("test_recon", "test reconstruction BCE (nats), end of training", "2"),
    ("test_kl", "test KL (nats), end of training", "2"),
    ("evaluation.class_accuracy", "class accuracy", "percent"),
    ("evaluation.class_accuracy_crosscheck", "class accuracy by the pixel-MLP cross-check", "percent"),
    ("evaluation.class_confidence", "classifier confidence in the requested class", "percent"),
    ("evaluation.s1_accuracy", "S1 accuracy (100 samples, report 001)", "percent"),
    ("evaluation.fid", "FID on classifier features (lower is better)", "1"),
    ("evaluation.classifier_score", "classifier score (max 10)", "2"),
    ("evaluation.precision", "precision (k-NN: share of samples that look real)", "2"),
    ("evaluation.recall", "recall (k-NN: share of real data the samples cover)", "2"),
    ("evaluation.density", "density (k-NN)", "2"),
    ("evaluation.coverage", "coverage (k-NN)", "2"),
    ("evaluation.coverage_kl", "class coverage KL (nats)", "4"),
    ("evaluation.memorisation_copy_share", "samples as close to train as the closest 1% of test", "percent"),
    ("evaluation.memorisation_distance_ratio", "distance to the nearest training image, samples / test images", "2"),
    ("evaluation.latent_jump_ratio", "latent jump ratio (1 = smooth, 16 = one jump)", "2"),
    ("evaluation.latent_step_mean", "mean feature change per latent step", "2"),
    ("evaluation.latent_ppl", "perceptual path length on classifier features", "0"),
    ("evaluation.test_neg_elbo", "test neg-ELBO (nats)", "2"),
    ("evaluation.test_recon", "test reconstruction BCE (nats)", "2"),
    ("evaluation.test_kl", "test KL (nats)", "2"),
)
RUN_FACTS = ("evaluation.samples", "evaluation.seed", "evaluation.seconds", "evaluation.cpu_seconds")
MISSING = "—"


def format_metric(value: float | None, style: str) -> str:
    """A stored number for a table: a percentage, or fixed decimals ('0'..'4'); a dash when missing."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.1%}" if style == "percent" else f"{value:,.{int(style)}f}"


def metric_rows(tables: dict[str, dict[str, float]]) -> list[dict[str, str]]:
    """Rows of {'measure': label, <model>: formatted value} for the stored metrics of several models.

    Known measures come in METRIC_LABELS order with readable names; others keep their stored key, so nothing
    stored is hidden. Run facts (samples, seed, timings) are left out: see `evaluation_facts`.
    """
    known = {key for key, _, _ in METRIC_LABELS}
    present = {key for table in tables.values() for key in table}
    entries = [(key, label, style) for key, label, style in METRIC_LABELS if key in present]
    entries += [(key, key, "4") for key in sorted(present - known - set(RUN_FACTS))]
    return [{"measure": label, **{model: format_metric(table.get(key), style) for model, table in tables.items()}}
            for key, label, style in entries]


def evaluation_facts(tables: dict[str, dict[str, float]]) -> tuple[int, int] | None:
    """(samples, seed) that `evaluate` used, when every model that has them agrees; None otherwise."""
    facts = {(table["evaluation.samples"], table.get("evaluation.seed")) for table in tables.values() if "evaluation.samples" in table}
    if len(facts) != 1:
        return None
    samples, seed = facts.pop()
    return int(samples), int(seed or 0)


def stored_class_profile(meta: dict[str, Any]) -> dict[str, list[float]]:
    """The per-class lists `evaluate` stored in a checkpoint's metadata: 'per_class_accuracy' and 'class_histogram'."""
    evaluation = meta.get("evaluation")
    evaluation = evaluation if isinstance(evaluation, dict) else {}
    return {key: [float(v) for v in evaluation[key]] for key in ("per_class_accuracy", "class_histogram")
            if isinstance(evaluation.get(key), list)}


def nearest_training_pairs(images: torch.Tensor, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(nearest training image of each image [N, 1, 28, 28] in [0, 1], pixel distances [N]); needs the full dataset."""
    distances, indices = nearest_training_images(images, dataset)
    train_images, _ = load_split(dataset, "train", download=False)
    return to_unit(train_images[indices]), distances

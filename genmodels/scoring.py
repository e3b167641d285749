"""One scoring path: draw samples, classify them, and measure them against a reference set of real images.

`python -m genmodels evaluate`, the GAN vs VAE and Training pages and the trainer's epoch-end checks all score
through `score`; they differ only in the samples and the reference they pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genmodels import metrics
from genmodels.api import PREDICT_BATCH, GenerativeModel, Samples
from genmodels.models import Classifier

NEIGHBOURS = 3  # k of the k-NN balls in precision / recall


@torch.no_grad()
def classify(classifier: Classifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden features [N, D], class probabilities [N, C]) on the CPU for images in [0, 1], in one pass."""
    device = next(classifier.parameters()).device
    features, probs = [], []
    for chunk in images.reshape(-1, 1, 28, 28).split(PREDICT_BATCH):
        hidden = classifier.features(chunk.to(device, torch.float32) * 2.0 - 1.0)
        features.append(hidden.cpu())
        probs.append(F.softmax(classifier.to_logits(hidden), dim=1).cpu())  # eval-mode dropout is the identity
    return torch.cat(features), torch.cat(probs)


def draw(model: GenerativeModel, per_class: int, seed: int, temperature: float = 1.0) -> Samples:
    """per_class samples of every class in one batch, or as many unconditional ones from a model without labels."""
    if model.supports_labels:
        return model.sample(per_class, "all", seed, temperature)
    return model.sample(per_class * model.num_classes, None, seed, temperature)


@dataclass
class Reference:
    """Real images that samples are measured against, with what is fitted to them once for every model."""

    features: torch.Tensor  # classifier features [N, D] of the real images
    stats: tuple[torch.Tensor, torch.Tensor]  # their Gaussian (mean, covariance), for the FID
    radii: torch.Tensor | None = None  # their k-NN radii, for precision / recall (None: not measured)
    spread: list[float | None] | None = None  # their within-class pixel spread, for spread ratios (None: not measured)


def reference_set(
    features: torch.Tensor, precision_recall: bool = False, spread: list[float | None] | None = None
) -> Reference:
    """A Reference of real images' classifier features; k-NN radii only when precision / recall will be measured."""
    radii = metrics.knn_radii(features, NEIGHBOURS) if precision_recall else None
    return Reference(features, metrics.gaussian_stats(features), radii, spread)


def fid(features: torch.Tensor, reference: Reference) -> float:
    """FID on classifier features of a set of images [N, D] to a reference."""
    return metrics.frechet_distance(*metrics.gaussian_stats(features), *reference.stats)


@dataclass
class Scores:
    """Measures of one set of samples; None where the samples (no labels) or the reference do not allow one.

    Spread ratios compare the variety within each class with the reference's (1 = as varied as real images),
    by requested class, or by the classifier's verdict for samples without labels.
    """

    accuracy: float | None
    per_class: list[float | None]
    per_class_confidence: list[float | None]
    confidence: float
    coverage_kl: float
    class_histogram: list[float]
    classifier_score: float
    midtone_share: float
    fid: float | None = None
    spread_ratio: float | None = None
    per_class_spread_ratio: list[float | None] | None = None
    precision_recall: dict[str, float] | None = None  # precision, recall, density, coverage


def score(
    classifier: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    num_classes: int,
    reference: Reference | None = None,
    class_mix: torch.Tensor | None = None,
) -> Scores:
    """Classify images [N, 1, 28, 28] in [0, 1] (requested as `labels`, or None) and measure them.

    class_mix: the real class counts that coverage KL compares with (None: uniform). The FID, precision / recall
    and spread ratios need a reference, with radii and spread for the last two.
    """
    features, probs = classify(classifier, images)
    labelled = labels is not None
    out = Scores(
        accuracy=metrics.class_accuracy(probs, labels) if labelled else None,
        per_class=metrics.per_class_accuracy(probs, labels, num_classes) if labelled else [None] * num_classes,
        per_class_confidence=(
            metrics.per_class_confidence(probs, labels, num_classes) if labelled else [None] * num_classes
        ),
        confidence=metrics.mean_confidence(probs),
        coverage_kl=metrics.coverage_kl(probs, class_mix),
        class_histogram=metrics.class_histogram(probs, num_classes).tolist(),
        classifier_score=metrics.classifier_score(probs),
        midtone_share=metrics.midtone_share(images),
    )
    if reference is None:
        return out
    out.fid = fid(features, reference)
    if reference.radii is not None:
        out.precision_recall = metrics.precision_recall(reference.features, features, NEIGHBOURS, reference.radii)
    if reference.spread is not None:
        groups = labels if labelled else probs.argmax(1)
        spreads = metrics.class_spread(images, groups, num_classes)
        out.spread_ratio, out.per_class_spread_ratio = metrics.spread_ratios(spreads, reference.spread)
    return out


def sample_scores(
    model: GenerativeModel,
    classifier: Classifier,
    per_class: int,
    seed: int,
    reference: Reference | None = None,
    class_mix: torch.Tensor | None = None,
) -> Scores:
    """`score` of per_class samples of every class of a model (as many unconditional ones from one without labels)."""
    samples = draw(model, per_class, seed)
    return score(classifier, samples.images, samples.labels, model.num_classes, reference, class_mix)


def judge_checks(
    judge: Classifier, images: torch.Tensor, labels: torch.Tensor | None, class_mix: torch.Tensor | None = None
) -> dict[str, float]:
    """The trainer's epoch-end checks: class accuracy (of requested labels) or coverage KL, and confidence."""
    scores = score(judge, images, labels, judge.config.num_classes, class_mix=class_mix)
    if labels is None:
        return {"classifier_confidence": scores.confidence, "coverage_kl": scores.coverage_kl}
    return {"class_accuracy": scores.accuracy, "classifier_confidence": scores.confidence}

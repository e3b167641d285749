"""The GAN vs VAE comparison for the page: the numbers it shows (computed once and shipped, or live for a user's
choice), training stability, stored metrics, and the tables they are presented in."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from genmodels import metrics, scoring
from genmodels.api import GenerativeModel, load_classifier, load_generator
from genmodels.checkpoint import checkpoint_path, read_metadata, shipped_generators, sidecar_path
from genmodels.data import load_split, to_unit
from genmodels.evaluation import nearest_training_images, noise_tolerance, same_within_noise
from genmodels.kinds import KINDS
from genmodels.models import Classifier
from genmodels.paths import atomic_write_bytes, checkpoints_dir
from genmodels.runs import ShippedLogs, read_metrics
from genmodels.summary import DataSummary, load_summary

COUNTS = tuple(range(10, 201, 10))  # the page's choices of samples per class, each measured once and shipped
S_PER_CLASS = 10  # report 001: S0 and S1 hold 100 images, 10 of each class
SCORE_SEED = 0  # the measured numbers use one fixed seed, so the page's seed picker only changes the pictures
SPREAD_REAL_PER_CLASS = 100  # real test images per class behind the variety baseline
REALISM_PER_CLASS = 100  # real test images per class on each side of the realism check
COMPARISON_FILE = "comparison.json"
COMPARISON_VERSION = 1


@dataclass
class Baseline:
    """The real side of the comparison, from a data summary's test images: the reference the samples are measured
    against, the FID of as many other real images to it (the floor), and report 001's S0 numbers."""

    reference: scoring.Reference
    class_mix: torch.Tensor  # test-split class counts, for the coverage KL
    floor: float
    s0_accuracy: float
    s0_midtone_share: float

    @property
    def reference_size(self) -> int:
        """How many real images the reference holds."""
        return len(self.reference.features)


def summary_baseline(classifier: Classifier, summary: DataSummary, per_class: int = REALISM_PER_CLASS) -> Baseline:
    """Two disjoint sets of per_class real test images per class: features of the second are the reference, the
    first's FID to it is the floor; the within-class spread of SPREAD_REAL_PER_CLASS of them is the variety baseline."""
    num_classes = len(summary.classes)
    held_out, real = (real_subset(summary, per_class, start)[0] for start in (0, per_class))
    spread_images, spread_labels = real_subset(summary, SPREAD_REAL_PER_CLASS)
    spread = metrics.class_spread(spread_images, spread_labels, num_classes)
    reference = scoring.reference_set(scoring.classify(classifier, real)[0], spread=spread)
    s0_images, s0_labels = real_subset(summary, S_PER_CLASS)
    s0 = scoring.score(classifier, s0_images, s0_labels, num_classes)
    return Baseline(
        reference,
        summary.test_counts,
        scoring.fid(scoring.classify(classifier, held_out)[0], reference),
        s0.accuracy,
        s0.midtone_share,
    )


def model_scores(model: GenerativeModel, classifier: Classifier, per_class: int, baseline: Baseline) -> scoring.Scores:
    """The classifier's verdicts on per_class samples of every class of one model (seed SCORE_SEED), their variety
    within each class and their FID to the baseline."""
    return scoring.sample_scores(model, classifier, per_class, SCORE_SEED, baseline.reference, baseline.class_mix)


def fingerprint(model: GenerativeModel) -> str:
    """The weights a model's numbers were measured on: its checkpoint's hash (and its label mapper's or critic's)."""
    companions = [
        (meta or {}).get("weights_sha256", "")
        for network, meta in ((model.mapper, model.mapper_meta), (model.critic, model.critic_meta))
        if network is not None
    ]
    return "+".join([model.meta.get("weights_sha256", ""), *filter(None, companions)])


@dataclass
class Comparison:
    """Every number of the comparison that does not depend on the page's widgets, for each choice of samples per
    class in COUNTS: computed by `evaluate --write` and shipped, so the page only reads it."""

    floor: float
    reference_size: int
    s0_accuracy: float
    s0_midtone_share: float
    fingerprints: dict[str, str]  # kind (and "classifier") -> the weights measured
    scores: dict[str, dict[int, scoring.Scores]]  # kind -> samples per class -> scores


def comparison(
    models: dict[str, GenerativeModel],
    classifier: Classifier,
    classifier_sha: str,
    summary: DataSummary,
    counts: tuple[int, ...] | None = None,
) -> Comparison:
    """Measure every model at every count of samples per class (default: COUNTS) against the summary's real images."""
    counts = COUNTS if counts is None else counts
    baseline = summary_baseline(classifier, summary)
    return Comparison(
        floor=baseline.floor,
        reference_size=baseline.reference_size,
        s0_accuracy=baseline.s0_accuracy,
        s0_midtone_share=baseline.s0_midtone_share,
        fingerprints={"classifier": classifier_sha, **{kind: fingerprint(model) for kind, model in models.items()}},
        scores={
            kind: {n: model_scores(model, classifier, n, baseline) for n in counts} for kind, model in models.items()
        },
    )


def comparison_path(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """The shipped comparison numbers of a dataset."""
    return checkpoints_dir(root) / dataset / COMPARISON_FILE


def comparison_json(result: Comparison) -> dict[str, Any]:
    """A Comparison as plain JSON (counts as string keys)."""
    data = asdict(result)
    data["scores"] = {
        kind: {str(n): asdict(s) for n, s in by_count.items()} for kind, by_count in result.scores.items()
    }
    return {"version": COMPARISON_VERSION, **data}


def classifier_fingerprint(dataset: str, root: str | os.PathLike | None = None) -> str:
    """The shipped classifier's weights hash, from its JSON sidecar ('' when unreadable)."""
    try:
        return str(json.loads(sidecar_path(checkpoint_path("classifier", dataset, root)).read_text())["weights_sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def measure_comparison(
    dataset: str, root: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> Comparison:
    """The Comparison of a dataset's shipped generators, against its bundled summary (as the page measures)."""
    models = {
        kind: load_generator(kind, dataset, root=root, device=device) for kind in shipped_generators(dataset, root)
    }
    classifier = load_classifier(dataset, root=root, device=device)
    summary = load_summary(dataset, prefer_full=False)
    return comparison(models, classifier, classifier_fingerprint(dataset, root), summary)


def write_comparison(result: Comparison, path: str | os.PathLike) -> bool:
    """Write a Comparison as JSON unless the file already holds the same (other weights or numbers beyond float noise:
    see `evaluation.same_within_noise`); True when written."""
    path = Path(path)
    data = comparison_json(result)
    # the fewest samples per class set the tolerance of a share: one image of a class
    fewest, num_classes = min(
        ((n, len(s.per_class)) for by_count in result.scores.values() for n, s in by_count.items()), default=(1, 1)
    )
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = None
    if same_within_noise(stored, data, noise_tolerance(fewest * num_classes, num_classes)):
        return False
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    return True


def shipped_comparison(
    dataset: str, fingerprints: dict[str, str], root: str | os.PathLike | None = None
) -> Comparison | None:
    """The shipped Comparison of a dataset when it was measured on exactly these weights (those of the models asked
    for: the page compares any few of the shipped ones); None otherwise."""
    result = read_comparison(comparison_path(dataset, root))
    if result is None or any(result.fingerprints.get(name) != print_ for name, print_ in fingerprints.items()):
        return None
    return result


def read_comparison(path: str | os.PathLike) -> Comparison | None:
    """The shipped comparison at path; None when it is missing, unreadable or of another version."""
    try:
        data = json.loads(Path(path).read_text())
        if data.pop("version") != COMPARISON_VERSION:
            return None
        data["scores"] = {
            kind: {int(n): scoring.Scores(**s) for n, s in by_count.items()}
            for kind, by_count in data["scores"].items()
        }
        return Comparison(**data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def real_subset(summary: DataSummary, per_class: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """per_class real test images of each class of a data summary from the class's `start`-th on, as
    ([N, 1, 28, 28] in [0, 1], labels)."""
    rows = torch.cat(
        [
            torch.nonzero(summary.subset_labels == c).squeeze(1)[start : start + per_class]
            for c in range(len(summary.classes))
        ]
    )
    return summary.subset_images[rows].reshape(-1, 1, 28, 28).float().div(255.0), summary.subset_labels[rows]


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
    _, losses = epoch_series(records, KINDS[kind].loss_key)
    mean, std = _spread(losses[-last:])
    window = losses[-last - 1 :]  # one more epoch, so each of the last epochs has a change into it
    steps = [abs(b - a) for a, b in zip(window, window[1:], strict=False)]
    return {
        "epochs logged": float(len(losses)),
        "loss mean": mean,
        "loss std": std,
        "loss std / mean": std / abs(mean) if mean else None,
        "mean epoch-to-epoch loss change": _spread(steps)[0],
        "epoch-end confidence std": _spread(epoch_series(records, "classifier_confidence")[1][-last:])[1],
        "epoch-end class accuracy std": _spread(epoch_series(records, "class_accuracy")[1][-last:])[1],
    }


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
    return [
        {"measure": label, **{model: format_metric(table.get(key), style) for model, table in tables.items()}}
        for key, label, style in entries
    ]


def evaluation_facts(tables: dict[str, dict[str, float]]) -> tuple[int, int] | None:
    """(samples, seed) that `evaluate` used, when every model that has them agrees; None otherwise."""
    facts = {
        (table["evaluation.samples"], table.get("evaluation.seed"))
        for table in tables.values()
        if "evaluation.samples" in table
    }
    if len(facts) != 1:
        return None
    samples, seed = facts.pop()
    return int(samples), int(seed or 0)


def stored_class_profile(meta: dict[str, Any]) -> dict[str, list[float]]:
    """The per-class lists `evaluate` stored in a checkpoint's metadata: 'per_class_accuracy' and 'class_histogram'."""
    evaluation = meta.get("evaluation")
    evaluation = evaluation if isinstance(evaluation, dict) else {}
    return {
        key: [float(v) for v in evaluation[key]]
        for key in ("per_class_accuracy", "class_histogram")
        if isinstance(evaluation.get(key), list)
    }


def nearest_training_pairs(images: dict[str, torch.Tensor], dataset: str) -> dict[str, tuple[torch.Tensor, ...]]:
    """Per model, (its images, the nearest training image of each [N, 1, 28, 28] in [0, 1], pixel distances [N]),
    with one search of the training set for every model; needs the full dataset."""
    distances, indices = nearest_training_images(torch.cat(list(images.values())), dataset)
    train_images, _ = load_split(dataset, "train", download=False)
    nearest = to_unit(train_images[indices])
    sizes = [len(batch) for batch in images.values()]
    return {
        kind: (batch, near, far)
        for (kind, batch), near, far in zip(images.items(), nearest.split(sizes), distances.split(sizes), strict=True)
    }

"""Evaluate the shipped generators of a dataset against its real data with every measure in genmodels.metrics."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genmodels import metrics, scoring
from genmodels.api import GenerativeModel, check_temperature, load_classifier, load_generator
from genmodels.checkpoint import CheckpointError, checkpoint_path, read_metadata, shipped_generators, update_metadata
from genmodels.data import DataMissingError, load_split, to_unit
from genmodels.datasets import dataset_info, missing_files
from genmodels.kinds import KINDS, labelling_kinds
from genmodels.models import Classifier, vae_loss
from genmodels.models.vae import GaussianVAE

DEFAULT_SAMPLES = 10_000
MIN_SAMPLES = 100  # ten per class at least, and enough rows for k-NN balls
EVAL_SEED = 0
SMALL_SET = 100  # report 001's S0 (real) and S1 (generated) test sets
WITHOUT_CRITIC = "without_critic"  # key infix of a screened generator's measures drawn without its critic
MEMORISATION_SAMPLES = 1_000  # generated and test images compared with all 60,000 training images
SMOOTHNESS_PATHS = 100
SMOOTHNESS_STEPS = 16
BATCH = 1_000
CROSSCHECK_HIDDEN = 256
CROSSCHECK_EPOCHS = 3
CROSSCHECK_BATCH = 256
CROSSCHECK_LR = 2e-3


# ----------------------------------------------------------------------------- classifiers


class PixelMLP(nn.Module):
    """The cross-check classifier: 2x2-averaged pixels -> one ReLU layer -> class logits; shares nothing with the CNN.

    The averaging makes it cheap to train and damps pixel-level adversarial noise, which a
    generator or mapper tuned against the CNN could otherwise exploit.
    """

    def __init__(self, num_classes: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.hidden = nn.Linear(14 * 14, hidden)
        self.to_logits = nn.Linear(hidden, num_classes)
        for layer in (self.hidden, self.to_logits):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 1, 28, 28] in [0, 1] -> class logits [N, C]."""
        return self.to_logits(F.relu(self.hidden(F.avg_pool2d(images.reshape(-1, 1, 28, 28), 2).flatten(1))))


def train_crosscheck(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, seed: int = EVAL_SEED, epochs: int = CROSSCHECK_EPOCHS
) -> PixelMLP:
    """Train the independent pixel MLP on uint8 images [N, 28, 28] (a few seconds on a CPU); deterministic for a
    seed."""
    generator = torch.Generator().manual_seed(seed)
    model = PixelMLP(num_classes, CROSSCHECK_HIDDEN, generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=CROSSCHECK_LR)
    inputs = to_unit(images)
    for _ in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        for idx in order.split(CROSSCHECK_BATCH):
            loss = F.cross_entropy(model(inputs[idx]), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


@torch.no_grad()
def crosscheck_probs(model: PixelMLP, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, C] of the cross-check classifier for images in [0, 1]."""
    return torch.cat(
        [F.softmax(model(chunk.float()), dim=1) for chunk in images.reshape(-1, 1, 28, 28).cpu().split(BATCH)]
    )


# ----------------------------------------------------------------------------- the real side


@dataclass
class RealData:
    """Everything about the real data that every generator of a dataset is compared with (computed once)."""

    dataset: str
    classifier: Classifier
    crosscheck: PixelMLP
    test_images: torch.Tensor  # uint8 [10000, 28, 28], the whole test split
    test_labels: torch.Tensor
    reference: scoring.Reference  # classifier features of `samples` real test images, their Gaussian and k-NN radii
    class_mix: torch.Tensor  # test-split class counts
    train_pixels: torch.Tensor  # float [60000, 784] in [0, 1], for memorisation
    test_distances: torch.Tensor  # nearest-training-image distances of MEMORISATION_SAMPLES test images
    real: dict[str, Any]  # the real data's own numbers: classifier accuracy, FID floor, score...


def require_data(dataset: str, root: str | os.PathLike | None = None) -> None:
    """Raise DataMissingError with a clear message when the real dataset files are absent."""
    missing = missing_files(dataset, root)
    if missing:
        raise DataMissingError(
            f"evaluation needs the real {dataset_info(dataset).title} files; "
            f"missing {', '.join(p.name for p in missing)} "
            f"in {missing[0].parent} (set GENMODELS_DATA to a folder with {dataset_info(dataset).folder}/raw/)"
        )


def check_samples(n: Any) -> int:
    """A sample count for evaluation in [MIN_SAMPLES, DEFAULT_SAMPLES]; ValueError otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or not MIN_SAMPLES <= n <= DEFAULT_SAMPLES:
        raise ValueError(f"number of samples must be an integer between {MIN_SAMPLES} and {DEFAULT_SAMPLES}, got {n!r}")
    return n


def small_set_indices(labels: torch.Tensor, num_classes: int, size: int = SMALL_SET) -> torch.Tensor:
    """Indices of the first size / C images of each class (report 001's S0: 100 real test images)."""
    per_class = size // num_classes
    return torch.cat([torch.nonzero(labels == c).squeeze(1)[:per_class] for c in range(num_classes)])


def build_reference(
    dataset: str,
    samples: int = DEFAULT_SAMPLES,
    seed: int = EVAL_SEED,
    data_root: str | os.PathLike | None = None,
    checkpoints_root: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> RealData:
    """Load the real splits and the project classifier, train the cross-check, and measure the real data itself."""
    samples = check_samples(samples)
    require_data(dataset, data_root)
    train_x, train_y = load_split(dataset, "train", data_root, download=False)
    test_x, test_y = load_split(dataset, "test", data_root, download=False)
    classifier = load_classifier(dataset, root=checkpoints_root, device=device)
    crosscheck = train_crosscheck(train_x, train_y, dataset_info(dataset).num_classes, seed)
    return make_reference(dataset, classifier, crosscheck, train_x, test_x, test_y, samples, seed)


def make_reference(
    dataset: str,
    classifier: Classifier,
    crosscheck: PixelMLP,
    train_images: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    samples: int,
    seed: int = EVAL_SEED,
) -> RealData:
    """The RealData of given uint8 splits: `samples` test images (and as many train images for the floors)."""
    num_classes = dataset_info(dataset).num_classes
    samples = min(samples, len(test_images), len(train_images))
    generator = torch.Generator().manual_seed(seed)
    test_pick = torch.randperm(len(test_images), generator=generator)[:samples]
    train_pick = torch.randperm(len(train_images), generator=generator)[:samples]
    test_features_all, test_probs_all = scoring.classify(classifier, to_unit(test_images))
    reference = scoring.reference_set(test_features_all[test_pick], precision_recall=True)
    train_features, train_probs = scoring.classify(classifier, to_unit(train_images[train_pick]))
    train_pixels = to_unit(train_images).flatten(1)
    memo_pick = test_pick[:MEMORISATION_SAMPLES]
    test_distances = metrics.nearest_neighbours(to_unit(test_images[memo_pick]), train_pixels)[0][:, 0]
    class_mix = torch.bincount(test_labels, minlength=num_classes)

    s0 = small_set_indices(test_labels, num_classes)
    real = {
        "classifier_test_accuracy": metrics.class_accuracy(test_probs_all, test_labels),
        "classifier_test_confidence": metrics.mean_confidence(test_probs_all),
        # what real images of each class score: the floor a conditional generator's lowest class is read against
        "classifier_test_per_class_accuracy": metrics.per_class_accuracy(test_probs_all, test_labels, num_classes),
        "crosscheck_test_accuracy": metrics.class_accuracy(
            crosscheck_probs(crosscheck, to_unit(test_images)), test_labels
        ),
        "s0_accuracy": metrics.class_accuracy(test_probs_all[s0], test_labels[s0]),
        "real_classifier_score": metrics.classifier_score(test_probs_all[test_pick]),
        "real_fid_floor": scoring.fid(train_features, reference),
        "real_coverage_kl": metrics.coverage_kl(train_probs, class_mix),
        **{
            f"real_{k}": v
            for k, v in metrics.precision_recall(
                reference.features, train_features, scoring.NEIGHBOURS, reference.radii
            ).items()
        },
    }
    return RealData(
        dataset=dataset,
        classifier=classifier,
        crosscheck=crosscheck,
        test_images=test_images,
        test_labels=test_labels,
        reference=reference,
        class_mix=class_mix,
        train_pixels=train_pixels,
        test_distances=test_distances,
        real=real,
    )


# ----------------------------------------------------------------------------- the generated side


def conditional_metrics(
    model: GenerativeModel,
    classifier: Classifier,
    per_class: int,
    seed: int = EVAL_SEED,
    crosscheck: PixelMLP | None = None,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Class accuracy and confidence (overall, per class, and by the cross-check) of per_class samples of every
    class, drawn at `temperature`."""
    samples = scoring.draw(model, per_class, seed, temperature)
    scores = scoring.score(classifier, samples.images, samples.labels, model.num_classes)
    out: dict[str, Any] = {
        "class_accuracy": scores.accuracy,
        "class_confidence": scores.confidence,
        "per_class_accuracy": scores.per_class,
        "per_class_confidence": scores.per_class_confidence,
    }
    if crosscheck is not None:
        out["class_accuracy_crosscheck"] = metrics.class_accuracy(
            crosscheck_probs(crosscheck, samples.images), samples.labels
        )
    small = scoring.draw(model, SMALL_SET // model.num_classes, seed + 1, temperature)
    out["s1_accuracy"] = scoring.score(classifier, small.images, small.labels, model.num_classes).accuracy
    return out


def unconditional_metrics(
    model: GenerativeModel,
    classifier: Classifier,
    n: int,
    class_mix: torch.Tensor,
    seed: int = EVAL_SEED,
    real: RealData | None = None,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Classifier score and class coverage of n unconditional samples drawn at `temperature`; with the real data also
    FID, precision / recall, memorisation."""
    samples = model.sample(n, seed=seed + 2, temperature=temperature)
    reference = None if real is None else real.reference
    scores = scoring.score(classifier, samples.images, None, len(class_mix), reference, class_mix)
    out: dict[str, Any] = {
        "classifier_score": scores.classifier_score,
        "coverage_kl": scores.coverage_kl,
        "class_histogram": scores.class_histogram,
    }
    if real is not None:
        out["fid"] = scores.fid
        out.update(scores.precision_recall)
        memo = metrics.memorisation(
            samples.images[:MEMORISATION_SAMPLES], real.train_pixels, test_distances=real.test_distances
        )
        out["memorisation_distance_ratio"] = memo.distance_ratio
        out["memorisation_copy_share"] = memo.copy_share
    return out


def latent_paths(model: GenerativeModel, paths: int, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Straight lines between pairs of prior latents: latents [paths, steps + 1, L] and, for the cgan, one label per
    path."""
    z, labels = model.latents(None, 2 * paths, seed)
    return metrics.interpolate(z[:paths].cpu(), z[paths:].cpu(), steps), None if labels is None else labels[:paths]


def smoothness_metrics(
    model: GenerativeModel,
    classifier: Classifier,
    paths: int = SMOOTHNESS_PATHS,
    steps: int = SMOOTHNESS_STEPS,
    seed: int = EVAL_SEED,
) -> dict[str, float]:
    """Latent smoothness: classifier-feature steps along straight prior interpolations (unconditional; cgan at a fixed
    label)."""
    line, labels = latent_paths(model, paths, steps, seed + 3)
    flat_labels = None if labels is None else labels.repeat_interleave(steps + 1)
    images = model.decode(line.reshape(-1, line.shape[2]), flat_labels)
    features, _ = scoring.classify(classifier, images)
    return {f"latent_{k}": v for k, v in metrics.path_smoothness(features.view(paths, steps + 1, -1)).items()}


@torch.no_grad()
def vae_test_neg_elbo(vae: GaussianVAE, images: torch.Tensor, seed: int = EVAL_SEED) -> dict[str, float]:
    """Negative ELBO on images in [0, 1] in nats per image (BCE summed over pixels + KL), one seeded latent draw
    each."""
    device = next(vae.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    recon_sum = kl_sum = 0.0
    for chunk in images.reshape(-1, 1, 28, 28).split(BATCH):
        chunk = chunk.to(device, torch.float32)
        logits, mu, logvar, _ = vae(chunk, generator=generator)
        recon, kl = vae_loss(logits, chunk, mu, logvar)
        recon_sum += float(recon) * len(chunk)
        kl_sum += float(kl) * len(chunk)
    count = len(images)
    return {"test_recon": recon_sum / count, "test_kl": kl_sum / count, "test_neg_elbo": (recon_sum + kl_sum) / count}


def evaluate_generator(
    model: GenerativeModel, real: RealData, n: int = DEFAULT_SAMPLES, seed: int = EVAL_SEED, temperature: float = 1.0
) -> dict[str, Any]:
    """Every measure of one generator: class accuracy (if it takes labels), FID, score, coverage, precision / recall,
    memorisation (of draws at `temperature`), smoothness."""
    n = check_samples(n)
    started, cpu_started = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {}
    if model.supports_labels:
        per_class = n // model.num_classes
        out.update(conditional_metrics(model, real.classifier, per_class, seed, real.crosscheck, temperature))
    out.update(unconditional_metrics(model, real.classifier, n, real.class_mix, seed, real, temperature))
    out.update(smoothness_metrics(model, real.classifier, seed=seed))
    if KINDS[model.kind].encodes:  # a model with an encoder has a likelihood bound
        out.update(vae_test_neg_elbo(model.module, to_unit(real.test_images), seed))
    # wall time depends on what else the machine runs; CPU time (all threads) is the work itself
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["cpu_seconds"] = round(time.process_time() - cpu_started, 2)
    return out


def evaluate_dataset(
    dataset: str,
    n: int = DEFAULT_SAMPLES,
    seed: int = EVAL_SEED,
    kinds: tuple[str, ...] | None = None,
    data_root: str | os.PathLike | None = None,
    checkpoints_root: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[str], None] | None = None,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Evaluate the shipped classifier and generators of a dataset -> one flat dict (`<kind>_<measure>` keys); `kinds`:
    the generators with a checkpoint for it unless given; the generators draw at `temperature`."""
    dataset_info(dataset)
    n = check_samples(n)
    temperature = check_temperature(temperature)
    report = progress or (lambda message: None)
    started, cpu_started = time.perf_counter(), time.process_time()
    report(f"{dataset}: real data, classifier and cross-check")
    real = build_reference(dataset, n, seed, data_root, checkpoints_root, device)
    result: dict[str, Any] = {
        "dataset": dataset,
        "samples": n,
        "seed": seed,
        "temperature": temperature,
        **real.real,
        "reference_seconds": round(time.perf_counter() - started, 2),
        "reference_cpu_seconds": round(time.process_time() - cpu_started, 2),
    }
    for kind in shipped_generators(dataset, checkpoints_root) if kinds is None else kinds:
        report(f"{dataset}: {kind}")
        try:
            model = load_generator(kind, dataset, root=checkpoints_root, device=device)
        except CheckpointError as exc:  # one broken file: the other models are still measured and reported
            result[f"{kind}_error"] = str(exc)
            continue
        measured = evaluate_generator(model, real, n, seed, temperature)
        result.update({f"{kind}_{key}": value for key, value in measured.items()})
        if model.critic is not None:  # what the critic's rejection sampling changes: the same measures without it
            raw = model.without_critic()
            if raw.supports_labels:
                per_class = n // raw.num_classes
                measures = conditional_metrics(raw, real.classifier, per_class, seed, real.crosscheck, temperature)
                result.update({f"{kind}_{WITHOUT_CRITIC}_{key}": value for key, value in measures.items()})
            measures = unconditional_metrics(raw, real.classifier, n, real.class_mix, seed, real, temperature)
            result.update({f"{kind}_{WITHOUT_CRITIC}_{key}": value for key, value in measures.items()})
    return result


# ----------------------------------------------------------------------------- results into the checkpoints


def _measured_as(kind: str) -> str:
    """The evaluate_dataset prefix a checkpoint kind's numbers come under: a labeller's are its generator's."""
    return labelling_kinds().get(kind, kind)


def model_evaluation(result: dict[str, Any], kind: str) -> dict[str, Any]:
    """The entries of an evaluate_dataset result that belong to one checkpoint kind, unprefixed ({} if none)."""
    if kind == "classifier":
        real_keys = (
            "classifier_test_accuracy",
            "classifier_test_confidence",
            "classifier_test_per_class_accuracy",
            "crosscheck_test_accuracy",
            "s0_accuracy",
        )
        values = {k.removeprefix("classifier_"): result[k] for k in real_keys}
        values.update({k: v for k, v in result.items() if k.startswith("real_")})
    else:
        source = _measured_as(kind)
        values = {k[len(source) + 1 :]: v for k, v in result.items() if k.startswith(f"{source}_")}
        if kind in labelling_kinds():  # a labeller's own numbers are its generator's labelled ones
            values = {k: v for k, v in values.items() if k.startswith(("class_", "per_class_", "s1_"))}
    return {"samples": result["samples"], "seed": result["seed"], **values} if values else {}


TIMING_KEYS = ("seconds", "cpu_seconds")  # differ from run to run: alone, no reason to rewrite a checkpoint
NOISE_REL = 1e-4  # another CPU sums in another order: FIDs and path lengths move in the 6th-8th digit
NOISE_IMAGES = 1.5  # ...and an image on a decision or k-NN boundary may flip, moving a per-class share by one image


def noise_tolerance(samples: int, num_classes: int) -> float:
    """The absolute tolerance of a share measured on `samples` images: one image of a class."""
    return NOISE_IMAGES * num_classes / max(samples, 1)


def same_within_noise(stored: Any, value: Any, abs_tol: float) -> bool:
    """Equal, or numbers (also inside lists and dicts) equal to NOISE_REL relative or abs_tol absolute."""
    if isinstance(stored, dict) and isinstance(value, dict):
        return stored.keys() == value.keys() and all(same_within_noise(stored[k], value[k], abs_tol) for k in value)
    if isinstance(stored, list) and isinstance(value, list):
        return len(stored) == len(value) and all(
            same_within_noise(a, b, abs_tol) for a, b in zip(stored, value, strict=True)
        )
    if isinstance(stored, float) and isinstance(value, float):
        return math.isclose(stored, value, rel_tol=NOISE_REL, abs_tol=abs_tol)
    return stored == value


def write_evaluation(
    result: dict[str, Any], checkpoints_root: str | os.PathLike | None = None, kinds: tuple[str, ...] = tuple(KINDS)
) -> list[Path]:
    """Merge the numbers of an evaluate_dataset result into each checkpoint's metadata under "evaluation".

    Only `evaluate --write` calls this. A checkpoint that already holds the same numbers (timings aside, within float
    noise: see `same_within_noise`) is left byte for byte as it was, so measuring unchanged models on another CPU
    does not rewrite multi-megabyte files. ValueError for numbers drawn at another temperature than 1.0: the stored
    numbers are the ones every page's default sampler gives.
    """
    if result.get("temperature", 1.0) != 1.0:
        raise ValueError(f"numbers drawn at temperature {result['temperature']} are not stored; 1.0 is")
    abs_tol = noise_tolerance(result["samples"], dataset_info(result["dataset"]).num_classes)
    written = []
    for kind in kinds:
        if f"{_measured_as(kind)}_error" in result:
            continue  # not measured: its file (or its generator's) could not be loaded
        path = checkpoint_path(kind, result["dataset"], checkpoints_root)
        entry = model_evaluation(result, kind)
        if not entry or not path.exists():
            continue
        stored = read_metadata(path).get("evaluation")
        stored = stored if isinstance(stored, dict) else {}  # a hand-edited or foreign field: replaced, not read
        if all(
            same_within_noise(stored.get(key), value, abs_tol) for key, value in entry.items() if key not in TIMING_KEYS
        ):
            continue
        update_metadata(path, evaluation=entry)
        written.append(path)
    return written


TRAIN_CHUNK = 10_000  # train images turned into floats at a time: ~30 MB, where the whole split took ~190 MB twice


def nearest_training_images(
    images: torch.Tensor, dataset: str, data_root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel distances [N], indices [N]) of the nearest training image of each image in [0, 1]: to show them side by
    side."""
    require_data(dataset, data_root)
    train_x, _ = load_split(dataset, "train", data_root, download=False)
    queries = images.reshape(len(images), -1)
    best_distances = torch.full((len(queries),), math.inf)
    best_indices = torch.zeros(len(queries), dtype=torch.long)
    for start in range(0, len(train_x), TRAIN_CHUNK):
        distances, indices = metrics.nearest_neighbours(
            queries, to_unit(train_x[start : start + TRAIN_CHUNK]).flatten(1)
        )
        closer = distances[:, 0] < best_distances
        best_distances = torch.where(closer, distances[:, 0], best_distances)
        best_indices = torch.where(closer, indices[:, 0] + start, best_indices)
    return best_distances, best_indices

"""The shipped checkpoints meet the project's quality targets (on subsets, to stay fast)."""

import os
from dataclasses import asdict

import pytest
import torch

from genmodels import api, compare, metrics, scoring
from genmodels.checkpoint import shipped_generators
from genmodels.data import load_split, to_unit
from genmodels.datasets import missing_files
from genmodels.evaluation import noise_tolerance, same_within_noise
from genmodels.models import vae_loss
from genmodels.summary import load_summary

pytestmark = pytest.mark.checkpoints

PER_CLASS = 200
CLASS_ACCURACY_TARGETS = {  # issue #2: share of samples the classifier assigns to the requested class
    ("cgan", "mnist"): 0.98,
    ("cgan", "fashion"): 0.90,
    ("gan", "mnist"): 0.95,
    ("gan", "fashion"): 0.85,
    ("vae", "mnist"): 0.90,
    ("vae", "fashion"): 0.80,
    ("conv_vae", "mnist"): 0.97,  # issue 18
    ("conv_vae", "fashion"): 0.90,
}
CLASSIFIER_TARGETS = {"mnist": 0.993, "fashion": 0.925}
MAPPER_SPREAD_TARGET = 0.75  # within-class spread of gan + mapper samples / real test images' (0.62 / 0.46 unmatched)


@pytest.mark.parametrize("kind, dataset", sorted(CLASS_ACCURACY_TARGETS))
def test_generators_make_the_requested_class(kind, dataset):
    model = api.load_generator(kind, dataset, device="cpu")
    samples = model.sample(n=PER_CLASS, label="all", seed=2024)
    probs = api.predict(api.load_classifier(dataset, device="cpu"), samples.images)
    assert samples.images.shape == (10 * PER_CLASS, 1, 28, 28)
    assert metrics.class_accuracy(probs, samples.labels) >= CLASS_ACCURACY_TARGETS[kind, dataset]


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_the_label_mapper_draws_each_class_varied(dataset):
    """A mapper that draws nearly one convincing image per class (Fashion T-shirts at 0.16 of real spread) fails."""
    classifier = api.load_classifier(dataset, device="cpu")
    baseline = compare.summary_baseline(classifier, load_summary(dataset, prefer_full=False))
    scores = scoring.sample_scores(
        api.load_generator("gan", dataset, device="cpu"), classifier, PER_CLASS, 2024, baseline.reference
    )
    assert scores.spread_ratio >= MAPPER_SPREAD_TARGET
    assert min(scores.per_class_spread_ratio) >= MAPPER_SPREAD_TARGET - 0.1


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_classifier_accuracy(dataset):
    """On the full test split when present, else on the bundled 2,000-image real subset (0.5 points of slack:
    the first test images of each class are harder than average, and 2,000 images carry ~0.2 points of noise)."""
    root = os.environ.get("GENMODELS_DATA")
    target = CLASSIFIER_TARGETS[dataset]
    if root and not missing_files(dataset, root):
        images, labels = load_split(dataset, "test", root)
    else:
        summary = load_summary(dataset, prefer_full=False)
        images, labels, target = summary.subset_images, summary.subset_labels, target - 0.005
    probs = api.predict(api.load_classifier(dataset, device="cpu"), to_unit(images))
    assert metrics.class_accuracy(probs, labels) >= target


def test_mnist_vae_neg_elbo_under_100_nats():
    images = to_unit(load_summary("mnist", prefer_full=False).subset_images)
    vae = api.load_vae("mnist", device="cpu")
    with torch.no_grad():
        logits, mu, logvar, _ = vae(images, generator=torch.Generator().manual_seed(0))
        recon, kl = vae_loss(logits, images, mu, logvar)
    assert recon + kl <= 100.0


@pytest.mark.parametrize("kind", shipped_generators("fashion"))
def test_same_seed_same_images(kind):
    model = api.load_generator(kind, "fashion", device="cpu")
    first, again = model.sample(n=8, label=9, seed=7), model.sample(n=8, label=9, seed=7)
    other = model.sample(n=8, label=9, seed=8)
    assert torch.equal(first.images, again.images) and not torch.equal(first.images, other.images)
    everything = model.sample(n=2, label="all", seed=1)
    assert everything.labels.tolist() == [c for c in range(10) for _ in range(2)]


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_the_shipped_comparison_is_what_the_page_would_measure(dataset):
    """checkpoints/<dataset>/comparison.json belongs to the shipped weights and holds the numbers the GAN vs VAE page
    would measure itself (at two of its slider positions, to stay fast); `evaluate --write` rebuilds it."""
    models = {kind: api.load_generator(kind, dataset, device="cpu") for kind in shipped_generators(dataset)}
    classifier = api.load_classifier(dataset, device="cpu")
    prints = {
        "classifier": compare.classifier_fingerprint(dataset),
        **{kind: compare.fingerprint(model) for kind, model in models.items()},
    }
    shipped = compare.shipped_comparison(dataset, prints)
    assert shipped is not None, f"run python -m genmodels evaluate --dataset {dataset} --write"
    assert set(shipped.scores) == set(models) and all(
        set(by_count) == set(compare.COUNTS) for by_count in shipped.scores.values()
    )
    counts = (compare.S_PER_CLASS, 50)
    live = compare.comparison(
        models, classifier, prints["classifier"], load_summary(dataset, prefer_full=False), counts
    )
    tolerance = noise_tolerance(min(counts) * 10, 10)
    assert same_within_noise(live.floor, shipped.floor, tolerance)
    for kind in models:
        for n in counts:
            assert same_within_noise(asdict(live.scores[kind][n]), asdict(shipped.scores[kind][n]), tolerance), (
                kind,
                n,
            )

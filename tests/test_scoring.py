"""genmodels.scoring: the one path that samples, classifies and measures, on tiny models."""

import pytest
import torch

from genmodels import api, metrics, scoring
from genmodels.kinds import generator_kinds
from genmodels.models import Classifier, ClassifierConfig


def tiny(kind, root):
    return api.load_generator(kind, "mnist", root=root, device="cpu")


def tiny_classifier(root):
    return api.load_classifier("mnist", root=root, device="cpu")


def test_classify_agrees_with_predict():
    torch.manual_seed(0)
    classifier = Classifier(ClassifierConfig(channels=(2, 4), hidden=8)).eval()
    images = torch.rand(7, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    features, probs = scoring.classify(classifier, images)
    assert features.shape == (7, 8)
    assert torch.equal(probs, api.predict(classifier, images))


@pytest.mark.parametrize("kind", generator_kinds())
def test_sample_scores_of_tiny_models(tiny_checkpoints, kind):
    scores = scoring.sample_scores(tiny(kind, tiny_checkpoints), tiny_classifier(tiny_checkpoints), 3, seed=0)
    assert 0 <= scores.accuracy <= 1 and len(scores.per_class) == 10 and all(a is not None for a in scores.per_class)
    assert 0 <= scores.confidence <= 1 and scores.coverage_kl >= 0 and 0 <= scores.midtone_share <= 1
    assert scores.fid is None and scores.spread_ratio is None and scores.precision_recall is None  # no reference


def test_sample_scores_without_labels(tiny_checkpoints, tmp_path):
    root = tmp_path / "ckpt"
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / "gan.safetensors").write_bytes((tiny_checkpoints / "mnist" / "gan.safetensors").read_bytes())
    scores = scoring.sample_scores(tiny("gan", root), tiny_classifier(tiny_checkpoints), 2, seed=0)
    assert (
        scores.accuracy is None and scores.per_class == [None] * 10 and sum(scores.class_histogram) == pytest.approx(1)
    )


def test_a_reference_adds_fid_spread_and_precision_recall(tiny_checkpoints):
    model, classifier = tiny("cgan", tiny_checkpoints), tiny_classifier(tiny_checkpoints)
    real = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    real_features = scoring.classify(classifier, real)[0]
    reference = scoring.reference_set(real_features, precision_recall=True, spread=[1.0] * 10)
    scores = scoring.sample_scores(model, classifier, 3, seed=0, reference=reference)
    samples = model.sample(3, "all", 0)
    own = metrics.class_spread(samples.images, samples.labels, 10)
    assert scores.per_class_spread_ratio == pytest.approx(own) and scores.spread_ratio == pytest.approx(sum(own) / 10)
    features = scoring.classify(classifier, samples.images)[0]
    assert scores.fid == pytest.approx(metrics.feature_frechet_distance(features, real_features), rel=1e-9)
    assert set(scores.precision_recall) == {"precision", "recall", "density", "coverage"}


def test_coverage_kl_against_a_class_mix(tiny_checkpoints):
    model, classifier = tiny("vae", tiny_checkpoints), tiny_classifier(tiny_checkpoints)
    samples = model.sample(3, "all", 0)
    mix = torch.arange(1, 11)
    scores = scoring.score(classifier, samples.images, samples.labels, 10, class_mix=mix)
    assert scores.coverage_kl == metrics.coverage_kl(api.predict(classifier, samples.images), mix)


def test_judge_checks_are_the_trainer_s_keys(tiny_checkpoints):
    classifier = tiny_classifier(tiny_checkpoints)
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    labels = torch.arange(20) % 10
    probs = api.predict(classifier, images)
    assert scoring.judge_checks(classifier, images, labels) == {
        "class_accuracy": metrics.class_accuracy(probs, labels),
        "classifier_confidence": metrics.mean_confidence(probs),
    }
    mix = torch.ones(10)
    assert scoring.judge_checks(classifier, images, None, mix) == {
        "classifier_confidence": metrics.mean_confidence(probs),
        "coverage_kl": metrics.coverage_kl(probs, mix),
    }

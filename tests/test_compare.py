"""genmodels.compare: live scores, S0, sharpness, training-log stability, stored metrics."""
import json

import pytest
import torch

from genmodels import api
from genmodels.checkpoint import read_metadata, update_metadata
from genmodels.compare import (MISSING, class_spread, epoch_series, evaluation_facts, format_metric, generated_scores,
                               jump_ratio, metric_rows, midtone_share, real_class_spread, real_scores, realism_reference,
                               shipped_log, spread_ratios, stored_metrics, training_stability)
from genmodels.evaluation import classifier_outputs
from genmodels.metrics import feature_frechet_distance
from genmodels.summary import DataSummary


def test_midtone_share_separates_crisp_from_blurry():
    assert midtone_share(torch.tensor([0.0, 1.0, 0.05, 0.95])) == 0.0
    assert midtone_share(torch.tensor([0.5, 0.5, 0.0, 1.0])) == 0.5


@pytest.mark.parametrize("kind", ["cgan", "gan", "vae"])
def test_generated_scores_of_tiny_models(tiny_checkpoints, kind):
    model = api.load_generator(kind, "mnist", root=tiny_checkpoints, device="cpu")
    classifier = api.load_classifier("mnist", root=tiny_checkpoints, device="cpu")
    scores = generated_scores(model, classifier, 3, seed=0)
    assert 0 <= scores.accuracy <= 1 and len(scores.per_class) == 10 and all(a is not None for a in scores.per_class)
    assert 0 <= scores.confidence <= 1 and scores.coverage_kl >= 0 and 0 <= scores.midtone_share <= 1


def test_generated_scores_without_labels(tiny_checkpoints, tmp_path):
    root = tmp_path / "ckpt"
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / "gan.safetensors").write_bytes((tiny_checkpoints / "mnist" / "gan.safetensors").read_bytes())
    model = api.load_generator("gan", "mnist", root=root, device="cpu")
    scores = generated_scores(model, api.load_classifier("mnist", root=tiny_checkpoints, device="cpu"), 2, seed=0)
    assert scores.accuracy is None and scores.per_class == [None] * 10


def test_real_scores_use_per_class_images(tiny_checkpoints):
    pixels = torch.zeros(40, 28, 28, dtype=torch.uint8)
    summary = DataSummary("mnist", torch.zeros(10), torch.zeros(10), torch.zeros(10, 28, 28), torch.zeros(256),
                          pixels, torch.arange(40) % 10, torch.arange(40), "bundled summary")
    accuracy, midtones = real_scores(api.load_classifier("mnist", root=tiny_checkpoints, device="cpu"), summary, 2)
    assert accuracy in (pytest.approx(0.0), pytest.approx(0.1)) and midtones == 0.0


def records(losses, accuracies=None):
    out = [{"type": "step", "epoch": 0.5, "loss_g": 99.0}]
    for i, loss in enumerate(losses):
        record = {"type": "epoch", "epoch": i + 1, "loss_g": loss, "classifier_confidence": 0.9}
        if accuracies:
            record["class_accuracy"] = accuracies[i]
        out.append(record)
    return out


def test_epoch_series_keeps_finite_epoch_values_only():
    log = records([1.0, float("nan"), 3.0])
    assert epoch_series(log, "loss_g") == ([1.0, 3.0], [1.0, 3.0])
    assert epoch_series(log, "missing") == ([], [])


def test_training_stability_measures_the_last_epochs():
    steady = training_stability("gan", records([5.0] * 5 + [1.0, 1.0, 1.0]), last=3)
    assert steady["loss mean"] == 1.0 and steady["loss std"] == 0.0 and steady["epoch-end class accuracy std"] is None
    assert steady["mean epoch-to-epoch loss change"] == pytest.approx(4 / 3)
    wobbly = training_stability("cgan", records([1.0, 2.0, 1.0, 2.0], [0.5, 0.7, 0.5, 0.7]), last=4)
    assert wobbly["loss std"] == pytest.approx(0.5) and wobbly["loss std / mean"] == pytest.approx(1 / 3)
    assert wobbly["mean epoch-to-epoch loss change"] == pytest.approx(1.0) and wobbly["epoch-end class accuracy std"] == pytest.approx(0.1)
    assert training_stability("vae", [])["loss mean"] is None


def test_shipped_log_reads_a_checkpoint_folder(tmp_path):
    (tmp_path / "mnist" / "logs").mkdir(parents=True)
    (tmp_path / "mnist" / "logs" / "vae.jsonl").write_text(json.dumps({"type": "epoch", "epoch": 1, "loss": 3.0}) + "\n{torn")
    assert shipped_log("vae", "mnist", tmp_path) == [{"type": "epoch", "epoch": 1, "loss": 3.0}]
    assert shipped_log("gan", "mnist", tmp_path) == []


def test_jump_ratio_is_one_for_an_even_morph_and_large_for_a_jump():
    even = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 1, 28, 28)
    assert jump_ratio(even) == pytest.approx(1.0)
    jump = torch.zeros(5, 1, 28, 28)
    jump[3:] = 1.0
    assert jump_ratio(jump) == pytest.approx(4.0)


def test_stored_metrics_flattens_training_and_evaluation_numbers(tiny_checkpoints, tmp_path):
    path = tmp_path / "vae.safetensors"
    path.write_bytes((tiny_checkpoints / "mnist" / "vae.safetensors").read_bytes())
    update_metadata(path, metrics={"class_accuracy": 0.5, "note": "text"}, evaluation={"fid": 12.0, "pr": {"precision": 0.7}})
    assert stored_metrics(read_metadata(path)) == {"class_accuracy": 0.5, "evaluation.fid": 12.0, "evaluation.pr.precision": 0.7}


def test_class_spread_is_zero_for_copies_and_the_mean_pairwise_distance_otherwise():
    images = torch.zeros(5, 1, 28, 28)
    images[3, 0, 0, 0] = 3.0  # class 1: two images 3 apart, and one apart from both by 3 and 0
    images[4, 0, 0, 0] = 4.0
    labels = torch.tensor([0, 0, 1, 1, 2])
    spreads = class_spread(images, labels, 4)
    assert spreads[0] == 0.0 and spreads[1] == pytest.approx(3.0) and spreads[2] is None and spreads[3] is None


def test_spread_ratios_skip_classes_either_side_lacks():
    mean, per_class = spread_ratios([2.0, None, 1.0, 3.0], [4.0, 5.0, None, 3.0])
    assert per_class == [0.5, None, None, 1.0] and mean == pytest.approx(0.75)
    assert spread_ratios([None], [1.0]) == (None, [None])


def test_generated_scores_measure_variety_against_real_images(tiny_checkpoints):
    model = api.load_generator("cgan", "mnist", root=tiny_checkpoints, device="cpu")
    classifier = api.load_classifier("mnist", root=tiny_checkpoints, device="cpu")
    assert generated_scores(model, classifier, 3, seed=0).spread_ratio is None
    scores = generated_scores(model, classifier, 3, seed=0, real_spread=[1.0] * 10)
    own = class_spread(*(lambda s: (s.images, s.labels))(model.sample(3, "all", 0)), 10)
    assert scores.per_class_spread_ratio == pytest.approx(own) and scores.spread_ratio == pytest.approx(sum(own) / 10)


def test_a_model_s_fid_costs_one_eigendecomposition(tiny_checkpoints, monkeypatch):
    """The real side's Gaussian and its square root are fitted once, in the realism reference: each model's FID then
    needs one eigendecomposition, not two (under a busy CPU each can take seconds), and keeps its value."""
    pixels = torch.randint(0, 256, (80, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    summary = DataSummary("mnist", torch.zeros(10), torch.zeros(10), torch.zeros(10, 28, 28), torch.zeros(256),
                          pixels, torch.arange(80) % 10, torch.arange(80), "bundled summary")
    classifier = api.load_classifier("mnist", root=tiny_checkpoints, device="cpu")
    model = api.load_generator("cgan", "mnist", root=tiny_checkpoints, device="cpu")
    realism = realism_reference(classifier, summary, per_class=4)
    decompositions = []
    for name in ("eigh", "eigvalsh"):
        def counted(*args, real=getattr(torch.linalg, name), name=name, **kwargs):
            decompositions.append(name)
            return real(*args, **kwargs)
        monkeypatch.setattr(torch.linalg, name, counted)
    scores = generated_scores(model, classifier, 3, seed=0, realism=realism)
    assert decompositions == ["eigvalsh"]
    features = classifier_outputs(classifier, model.sample(3, "all", 0).images)[0]
    assert scores.fid == pytest.approx(feature_frechet_distance(features, realism.features), rel=1e-6)


def test_real_class_spread_uses_the_summary_images():
    pixels = torch.zeros(40, 28, 28, dtype=torch.uint8)
    pixels[10, 0, 0] = 255  # image 10 is class 0's second: it differs by one full pixel; classes 1-9 are copies
    summary = DataSummary("mnist", torch.zeros(10), torch.zeros(10), torch.zeros(10, 28, 28), torch.zeros(256),
                          pixels, torch.arange(40) % 10, torch.arange(40), "bundled summary")
    spreads = real_class_spread(summary, per_class=4)
    assert spreads[0] > 0 and spreads[1:] == [0.0] * 9


def test_metric_rows_name_and_format_the_stored_numbers():
    tables = {"A": {"evaluation.fid": 24.57, "class_accuracy": 0.999, "evaluation.samples": 10000.0, "evaluation.seed": 0.0,
                    "custom.thing": 1.5},
              "B": {"evaluation.fid": float("nan"), "evaluation.samples": 10000.0, "evaluation.seed": 0.0}}
    rows = {row["measure"]: row for row in metric_rows(tables)}
    assert rows["class accuracy, last epoch-end check (1,000 samples)"] == {
        "measure": "class accuracy, last epoch-end check (1,000 samples)", "A": "99.9%", "B": MISSING}
    assert rows["FID on classifier features (lower is better)"]["A"] == "24.6"
    assert rows["FID on classifier features (lower is better)"]["B"] == MISSING
    assert rows["custom.thing"]["A"] == "1.5000"  # an unknown key keeps its name: nothing stored is hidden
    assert not any("samples" == r.split(".")[-1] for r in rows)
    assert list(rows)[0].startswith("class accuracy, last epoch-end")  # training-end checks first
    assert evaluation_facts(tables) == (10000, 0)
    assert evaluation_facts({"A": {"evaluation.samples": 100.0}, "B": {"evaluation.samples": 200.0}}) is None
    assert format_metric(None, "2") == MISSING and format_metric(1234.5, "0") == "1,234"


def test_a_malformed_evaluation_field_reads_as_no_profile():
    from genmodels.compare import stored_class_profile

    assert stored_class_profile({"evaluation": [0.5, 0.5]}) == {} and stored_metrics({"evaluation": "bad"}) == {}


def test_without_mapper_is_an_unconditional_copy(tiny_checkpoints):
    model = api.load_generator("gan", "mnist", root=tiny_checkpoints, device="cpu")
    bare = model.without_mapper()
    assert model.supports_labels and not bare.supports_labels and bare.module is model.module and model.mapper is not None

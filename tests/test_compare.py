"""genmodels.compare: the real baseline, the shipped comparison, training-log stability, stored metrics."""

import json

import pytest
import torch

from genmodels import api, metrics, scoring
from genmodels.checkpoint import read_metadata, update_metadata
from genmodels.compare import (
    MISSING,
    Comparison,
    classifier_fingerprint,
    comparison,
    comparison_path,
    epoch_series,
    evaluation_facts,
    fingerprint,
    format_metric,
    metric_rows,
    read_comparison,
    shipped_comparison,
    shipped_log,
    stored_metrics,
    summary_baseline,
    training_stability,
    write_comparison,
)
from genmodels.summary import DataSummary


def summary_of(pixels):
    n = len(pixels)
    return DataSummary(
        "mnist",
        torch.zeros(10),
        torch.full((10,), 2),
        torch.zeros(10, 28, 28),
        torch.zeros(256),
        pixels,
        torch.arange(n) % 10,
        torch.arange(n),
        "bundled summary",
    )


def random_pixels(n, seed=0):
    return torch.randint(0, 256, (n, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_summary_baseline_s0_and_spread(tiny_checkpoints):
    pixels = torch.zeros(40, 28, 28, dtype=torch.uint8)
    pixels[10, 0, 0] = 255  # image 10 is class 0's second: it differs by one full pixel; classes 1-9 are copies
    baseline = summary_baseline(
        api.load_classifier("mnist", root=tiny_checkpoints, device="cpu"), summary_of(pixels), 2
    )
    assert baseline.s0_accuracy in (pytest.approx(0.0), pytest.approx(0.1)) and baseline.s0_midtone_share == 0.0
    assert baseline.reference.spread[0] > 0 and baseline.reference.spread[1:] == [0.0] * 9
    assert baseline.reference_size == 20 and baseline.reference.radii is None


def test_the_floor_is_the_fid_of_other_real_images(tiny_checkpoints):
    classifier = api.load_classifier("mnist", root=tiny_checkpoints, device="cpu")
    pixels = random_pixels(80)
    baseline = summary_baseline(classifier, summary_of(pixels), per_class=4)
    images = pixels.float().div(255).reshape(-1, 1, 28, 28)  # the k-th image of class c is image c + 10 k
    first, second = (scoring.classify(classifier, half)[0] for half in (images[:40], images[40:]))
    assert baseline.floor == pytest.approx(metrics.feature_frechet_distance(first, second), rel=1e-9)


def measured(tiny_checkpoints, counts=(2, 3)):
    models = {kind: api.load_generator(kind, "mnist", root=tiny_checkpoints, device="cpu") for kind in ("cgan", "vae")}
    classifier = api.load_classifier("mnist", root=tiny_checkpoints, device="cpu")
    return comparison(
        models, classifier, classifier_fingerprint("mnist", tiny_checkpoints), summary_of(random_pixels(2000)), counts
    )


def test_the_comparison_round_trips_and_is_rewritten_only_beyond_float_noise(tiny_checkpoints, tmp_path):
    result = measured(tiny_checkpoints)
    assert set(result.scores["cgan"]) == {2, 3} and result.fingerprints["classifier"]
    path = tmp_path / "comparison.json"
    assert write_comparison(result, path)
    assert read_comparison(path) == result
    before = path.read_bytes()
    noisy = read_comparison(path)
    noisy.scores["vae"][3].fid *= 1 + 1e-7
    noisy.floor *= 1 - 1e-7
    assert not write_comparison(noisy, path) and path.read_bytes() == before
    retrained = read_comparison(path)
    retrained.fingerprints["vae"] = "another model"
    assert write_comparison(retrained, path) and read_comparison(path).fingerprints["vae"] == "another model"
    path.write_text("{torn")
    assert read_comparison(path) is None


def test_the_shipped_comparison_is_used_only_for_the_weights_it_measured(tiny_checkpoints, tmp_path):
    result = measured(tiny_checkpoints)
    root = tmp_path / "checkpoints"
    comparison_path("mnist", root).parent.mkdir(parents=True)
    write_comparison(result, comparison_path("mnist", root))
    assert shipped_comparison("mnist", result.fingerprints, root) == result
    other = {**result.fingerprints, "cgan": fingerprint(api.load_generator("vae", "mnist", root=tiny_checkpoints))}
    assert shipped_comparison("mnist", other, root) is None
    assert shipped_comparison("fashion", result.fingerprints, root) is None
    assert isinstance(result, Comparison)


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
    assert wobbly["mean epoch-to-epoch loss change"] == pytest.approx(1.0) and wobbly[
        "epoch-end class accuracy std"
    ] == pytest.approx(0.1)
    assert training_stability("vae", [])["loss mean"] is None


def test_shipped_log_reads_a_checkpoint_folder(tmp_path):
    (tmp_path / "mnist" / "logs").mkdir(parents=True)
    (tmp_path / "mnist" / "logs" / "vae.jsonl").write_text(
        json.dumps({"type": "epoch", "epoch": 1, "loss": 3.0}) + "\n{torn"
    )
    assert shipped_log("vae", "mnist", tmp_path) == [{"type": "epoch", "epoch": 1, "loss": 3.0}]
    assert shipped_log("gan", "mnist", tmp_path) == []


def test_stored_metrics_flattens_training_and_evaluation_numbers(tiny_checkpoints, tmp_path):
    path = tmp_path / "vae.safetensors"
    path.write_bytes((tiny_checkpoints / "mnist" / "vae.safetensors").read_bytes())
    update_metadata(
        path, metrics={"class_accuracy": 0.5, "note": "text"}, evaluation={"fid": 12.0, "pr": {"precision": 0.7}}
    )
    assert stored_metrics(read_metadata(path)) == {
        "class_accuracy": 0.5,
        "evaluation.fid": 12.0,
        "evaluation.pr.precision": 0.7,
    }


def test_metric_rows_name_and_format_the_stored_numbers():
    tables = {
        "A": {
            "evaluation.fid": 24.57,
            "class_accuracy": 0.999,
            "evaluation.samples": 10000.0,
            "evaluation.seed": 0.0,
            "custom.thing": 1.5,
        },
        "B": {"evaluation.fid": float("nan"), "evaluation.samples": 10000.0, "evaluation.seed": 0.0},
    }
    rows = {row["measure"]: row for row in metric_rows(tables)}
    assert rows["class accuracy, last epoch-end check (1,000 samples)"] == {
        "measure": "class accuracy, last epoch-end check (1,000 samples)",
        "A": "99.9%",
        "B": MISSING,
    }
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
    assert (
        model.supports_labels and not bare.supports_labels and bare.module is model.module and model.mapper is not None
    )

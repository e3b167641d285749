"""Tests of genmodels.evaluation: the cross-check classifier, the whole pipeline on tiny models and data, and the
shipped numbers."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from genmodels import evaluation, metrics
from genmodels.api import load_classifier, load_generator, predict
from genmodels.checkpoint import checkpoint_path, read_metadata, shipped_generators
from genmodels.data import DataMissingError, to_unit
from genmodels.kinds import KINDS, generator_kinds, screening_kinds
from genmodels.summary import load_summary


def striped_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images whose class is which horizontal band is bright: trivially learnable."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = (torch.rand(n, 28, 28, generator=g) * 60).to(torch.uint8)
    for i, c in enumerate(labels.tolist()):
        images[i, 2 * c + 4 : 2 * c + 6] = 255
    return images, labels


def test_crosscheck_learns_and_is_deterministic():
    images, labels = striped_images(400, 0)
    first = evaluation.train_crosscheck(images, labels, 10, seed=3, epochs=2)
    second = evaluation.train_crosscheck(images, labels, 10, seed=3, epochs=2)
    test_images, test_labels = striped_images(200, 1)
    probs = evaluation.crosscheck_probs(first, to_unit(test_images))
    assert metrics.class_accuracy(probs, test_labels) > 0.9
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )


def test_check_samples_and_missing_data(tmp_path):
    assert evaluation.check_samples(100) == 100
    for bad in (99, 10_001, 1.5, True):
        with pytest.raises(ValueError):
            evaluation.check_samples(bad)
    with pytest.raises(DataMissingError, match="GENMODELS_DATA"):
        evaluation.require_data("mnist", tmp_path)


def test_small_set_indices_take_ten_of_each_class():
    labels = torch.arange(10).repeat(30)
    picked = evaluation.small_set_indices(labels, 10)
    assert len(picked) == 100
    assert torch.equal(torch.bincount(labels[picked]), torch.full((10,), 10))


@pytest.fixture
def tiny_root(tiny_checkpoints, tmp_path):
    """A private copy of the tiny checkpoints (evaluation writes into their metadata)."""
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny_checkpoints, root)
    return root


def test_evaluate_dataset_and_write_on_tiny_models(synthetic_data, tiny_root):
    result = evaluation.evaluate_dataset("mnist", n=100, data_root=synthetic_data, checkpoints_root=tiny_root)
    for key in (
        "classifier_test_accuracy",
        "crosscheck_test_accuracy",
        "s0_accuracy",
        "real_fid_floor",
        *(f"{kind}_test_neg_elbo" for kind in generator_kinds() if KINDS[kind].encodes),
        *(
            f"{kind}_{m}"
            for kind in generator_kinds()
            for m in (
                "class_accuracy",
                "class_accuracy_crosscheck",
                "s1_accuracy",
                "fid",
                "classifier_score",
                "coverage_kl",
                "precision",
                "recall",
                "memorisation_distance_ratio",
                "latent_ppl",
                "latent_jump_ratio",
                "seconds",
            )
        ),
    ):
        assert key in result, key
        assert isinstance(result[key], float) and math.isfinite(result[key]), key
    assert len(result["cgan_per_class_accuracy"]) == len(result["classifier_test_per_class_accuracy"]) == 10
    assert sum(result["gan_class_histogram"]) == pytest.approx(1.0)
    assert 1.0 <= result["vae_classifier_score"] <= 10.0

    again = evaluation.evaluate_dataset(
        "mnist", n=100, kinds=("vae",), data_root=synthetic_data, checkpoints_root=tiny_root
    )
    assert again["vae_fid"] == result["vae_fid"] and again["vae_class_accuracy"] == result["vae_class_accuracy"]

    for kind in screening_kinds().values():  # a screened generator is measured with and without its critic
        assert math.isfinite(result[f"{kind}_without_critic_fid"]) and f"{kind}_without_critic_seconds" not in result

    written = evaluation.write_evaluation(result, tiny_root)
    assert {p.stem for p in written} == set(KINDS) - set(screening_kinds())  # a critic's numbers are its generator's
    screened = read_metadata(checkpoint_path("dcgan", "mnist", tiny_root))["evaluation"]
    assert screened["without_critic_fid"] == result["dcgan_without_critic_fid"]
    meta = read_metadata(checkpoint_path("gan", "mnist", tiny_root))
    assert meta["evaluation"]["fid"] == result["gan_fid"] and meta["evaluation"]["samples"] == 100
    assert (
        read_metadata(checkpoint_path("mapper", "mnist", tiny_root))["evaluation"]["class_accuracy"]
        == result["gan_class_accuracy"]
    )
    assert (
        read_metadata(checkpoint_path("classifier", "mnist", tiny_root))["evaluation"]["test_accuracy"]
        == result["classifier_test_accuracy"]
    )
    load_generator("gan", "mnist", root=tiny_root)  # the mapper still matches its generator after the rewrite

    files = {kind: checkpoint_path(kind, "mnist", tiny_root) for kind in KINDS}
    before = {kind: path.read_bytes() for kind, path in files.items()}
    retimed = {**result, "gan_seconds": result["gan_seconds"] + 5.0, "vae_cpu_seconds": 123.0}
    assert evaluation.write_evaluation(retimed, tiny_root) == []  # same numbers, other timings: nothing rewritten
    summed_elsewhere = {
        **result,
        "vae_fid": result["vae_fid"] * (1 + 1e-7),
        "gan_latent_ppl": result["gan_latent_ppl"] * (1 - 5e-5),
        "cgan_precision": result["cgan_precision"] + 1 / 100,
    }  # and one sample on a k-NN boundary
    assert (
        evaluation.write_evaluation(summed_elsewhere, tiny_root) == []
    )  # float noise of another CPU: nothing rewritten
    assert all(path.read_bytes() == before[kind] for kind, path in files.items())
    changed = {**result, "vae_fid": result["vae_fid"] + 1.0}
    assert evaluation.write_evaluation(changed, tiny_root) == [files["vae"]]
    assert read_metadata(files["vae"])["evaluation"]["fid"] == result["vae_fid"] + 1.0


def test_model_evaluation_leaves_out_kinds_not_evaluated():
    result = {"dataset": "mnist", "samples": 100, "seed": 0, "vae_fid": 1.0}
    assert evaluation.model_evaluation(result, "vae") == {"samples": 100, "seed": 0, "fid": 1.0}
    assert evaluation.model_evaluation(result, "gan") == {}
    assert evaluation.model_evaluation(result, "mapper") == {}


# ----------------------------------------------------------------------------- the shipped checkpoints


def shipped_evaluation(kind: str, dataset: str) -> dict:
    meta = read_metadata(checkpoint_path(kind, dataset))
    if "evaluation" not in meta:
        pytest.skip(
            f"checkpoints/{dataset}/{kind} has no evaluation yet (run python -m genmodels evaluate --dataset {dataset})"
        )
    return meta["evaluation"]


def binomial_tolerance(p: float, n: int, sigmas: float = 4.0, floor: float = 0.01) -> float:
    return sigmas * math.sqrt(max(p * (1 - p), 1e-4) / n) + floor


@pytest.mark.checkpoints
@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_shipped_numbers_hold_on_a_subset(dataset):
    """1,000 fresh samples per generator reproduce the stored 10,000-sample numbers within sampling error."""
    classifier = load_classifier(dataset, device="cpu")
    summary = load_summary(dataset, prefer_full=False)  # 200 real test images per class, bundled
    stored = shipped_evaluation("classifier", dataset)
    real_probs = predict(classifier, to_unit(summary.subset_images))
    accuracy = metrics.class_accuracy(real_probs, summary.subset_labels)
    assert accuracy == pytest.approx(
        stored["test_accuracy"], abs=binomial_tolerance(stored["test_accuracy"], len(real_probs), floor=0.02)
    )
    for kind in shipped_generators(dataset):
        expected = shipped_evaluation(kind, dataset)
        model = load_generator(kind, dataset, device="cpu")
        seed = 11  # not the evaluation's seed: fresh samples
        labelled = evaluation.conditional_metrics(model, classifier, per_class=100, seed=seed)
        assert labelled["class_accuracy"] == pytest.approx(
            expected["class_accuracy"], abs=binomial_tolerance(expected["class_accuracy"], 1000)
        ), kind
        unlabelled = evaluation.unconditional_metrics(model, classifier, 1000, summary.test_counts, seed=seed)
        # the plug-in KL of 1,000 draws scatters roughly in proportion to its value (and is biased up by ~(C - 1) / 2N)
        assert unlabelled["coverage_kl"] == pytest.approx(
            expected["coverage_kl"], abs=0.02 + 0.3 * expected["coverage_kl"]
        ), kind
        assert unlabelled["classifier_score"] == pytest.approx(expected["classifier_score"], rel=0.06), kind
        smooth = evaluation.smoothness_metrics(model, classifier, paths=50, seed=seed)
        # per-path jump ratios scatter with sd up to ~1.1 (fashion gan): 25% is about 4 standard errors of the
        # difference
        assert smooth["latent_jump_ratio"] == pytest.approx(expected["latent_jump_ratio"], rel=0.25), kind
        if kind == "vae":
            elbo = evaluation.vae_test_neg_elbo(model.module, to_unit(summary.subset_images[::2]), seed)
            assert elbo["test_neg_elbo"] == pytest.approx(expected["test_neg_elbo"], rel=0.05)


def test_nearest_training_images_match_a_brute_force_search_across_chunks(synthetic_data, monkeypatch):
    """Chunking the train split (to bound memory) finds the same nearest image as one search over all of it."""
    from genmodels.data import load_split

    monkeypatch.setattr(evaluation, "TRAIN_CHUNK", 7)
    train_x, _ = load_split("mnist", "train", synthetic_data, download=False)
    pool = to_unit(train_x).flatten(1)
    queries = torch.cat(
        [to_unit(train_x[[3, 20]]), torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))]
    )
    distances, indices = evaluation.nearest_training_images(queries, "mnist", synthetic_data)
    expected = torch.cdist(queries.flatten(1), pool, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
    assert indices[:2].tolist() == [3, 20] and distances[:2].tolist() == [0.0, 0.0]
    assert torch.allclose(distances, expected.values, atol=1e-4)
    assert torch.allclose((pool[indices] - queries.flatten(1)).norm(dim=1), expected.values, atol=1e-4)

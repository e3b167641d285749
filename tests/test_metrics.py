"""Unit tests of genmodels.metrics on small synthetic tensors."""

from __future__ import annotations

import math

import pytest
import torch

from genmodels import metrics


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def one_hot(labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, num_classes).float()


# ----------------------------------------------------------------------------- class accuracy, confidence, coverage


def test_class_accuracy_and_per_class():
    labels = torch.tensor([0, 0, 1, 1])
    probs = one_hot(torch.tensor([0, 1, 1, 1]), 3)
    assert metrics.class_accuracy(probs, labels) == pytest.approx(0.75)
    assert metrics.per_class_accuracy(probs, labels, 3) == [0.5, 1.0, None]


def test_class_accuracy_refuses_mismatch_and_empty():
    with pytest.raises(ValueError):
        metrics.class_accuracy(torch.ones(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError):
        metrics.class_accuracy(torch.ones(0, 2), torch.zeros(0, dtype=torch.long))


def test_confidence_overall_and_per_class():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    labels = torch.tensor([0, 0, 1])
    assert metrics.mean_confidence(probs) == pytest.approx((0.9 + 0.6 + 0.8) / 3)
    assert metrics.per_class_confidence(probs, labels, 3) == pytest.approx([0.75, 0.8, None])


def test_coverage_flags_a_generator_of_one_class():
    balanced = one_hot(torch.arange(10).repeat(50))
    collapsed = one_hot(torch.full((500,), 7))
    assert metrics.coverage_kl(balanced) == pytest.approx(0.0, abs=1e-6)
    assert metrics.coverage_kl(collapsed) > 5.0  # log(10) from the one class plus 9 empty ones at eps
    histogram = metrics.class_histogram(collapsed, 10)
    assert histogram[7] == 1.0 and histogram.sum() == pytest.approx(1.0)


def test_coverage_kl_against_a_reference_mix():
    reference = torch.tensor([3.0, 1.0])
    matching = one_hot(torch.tensor([0, 0, 0, 1]), 2)
    assert metrics.coverage_kl(matching, reference) == pytest.approx(0.0, abs=1e-6)
    assert metrics.coverage_kl(one_hot(torch.tensor([0, 1, 0, 1]), 2), reference) > 0.1


def test_classifier_score_extremes():
    confident_balanced = one_hot(torch.arange(10).repeat(20))
    one_class = one_hot(torch.zeros(200, dtype=torch.long))
    unsure = torch.full((200, 10), 0.1)
    assert metrics.classifier_score(confident_balanced) == pytest.approx(10.0, rel=1e-6)
    assert metrics.classifier_score(one_class) == pytest.approx(1.0, rel=1e-6)
    assert metrics.classifier_score(unsure) == pytest.approx(1.0, rel=1e-6)


# ----------------------------------------------------------------------------- Fréchet distance


def test_frechet_distance_closed_form_1d():
    # N(m1, s1²) vs N(m2, s2²): (m1 - m2)² + (s1 - s2)²
    value = metrics.frechet_distance(
        torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[9.0]])
    )
    assert value == pytest.approx(9.0 + 1.0)


def test_frechet_distance_closed_form_diagonal():
    mean_a, mean_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    sd_a, sd_b = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 2.0, 1.5])
    expected = float((mean_a - mean_b).pow(2).sum() + (sd_a - sd_b).pow(2).sum())
    value = metrics.frechet_distance(mean_a, torch.diag(sd_a**2), mean_b, torch.diag(sd_b**2))
    assert value == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_non_commuting_covariances_is_symmetric_and_rotation_invariant():
    a = torch.randn(6, 6, generator=gen(1), dtype=torch.float64)
    b = torch.randn(6, 6, generator=gen(2), dtype=torch.float64)
    cov_a, cov_b = a @ a.T + 0.1 * torch.eye(6), b @ b.T + 0.1 * torch.eye(6)
    mean_a, mean_b = torch.randn(6, generator=gen(3), dtype=torch.float64), torch.zeros(6, dtype=torch.float64)
    forward = metrics.frechet_distance(mean_a, cov_a, mean_b, cov_b)
    assert forward == pytest.approx(metrics.frechet_distance(mean_b, cov_b, mean_a, cov_a), rel=1e-8)
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen(4), dtype=torch.float64))
    rotated = metrics.frechet_distance(
        rotation @ mean_a, rotation @ cov_a @ rotation.T, rotation @ mean_b, rotation @ cov_b @ rotation.T
    )
    assert rotated == pytest.approx(forward, rel=1e-8)
    assert metrics.frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0.0, abs=1e-8)


def test_feature_frechet_distance_self_real_and_noise():
    centres = torch.randn(10, 16, generator=gen(5)) * 3

    def real_like(seed: int) -> torch.Tensor:
        g = gen(seed)
        return centres[torch.randint(0, 10, (2000,), generator=g)] + torch.randn(2000, 16, generator=g)

    set_a, set_b = real_like(6), real_like(7)
    noise = torch.rand(2000, 16, generator=gen(8)) * 20 - 10
    assert metrics.feature_frechet_distance(set_a, set_a) == pytest.approx(0.0, abs=1e-6)
    same_distribution = metrics.feature_frechet_distance(set_a, set_b)
    assert same_distribution < 1.0
    assert metrics.feature_frechet_distance(set_a, noise) > 50 * same_distribution


def test_gaussian_stats_needs_two_rows():
    with pytest.raises(ValueError):
        metrics.gaussian_stats(torch.zeros(1, 3))


# ----------------------------------------------------------------------------- nearest neighbours, precision / recall


def test_nearest_neighbours_matches_cdist():
    queries, reference = torch.randn(37, 5, generator=gen(9)), torch.randn(50, 5, generator=gen(10))
    distances, indices = metrics.nearest_neighbours(queries, reference, k=2)
    full = torch.cdist(queries, reference)
    expected, expected_idx = full.topk(2, dim=1, largest=False)
    assert torch.allclose(distances, expected, atol=1e-4)
    assert torch.equal(indices, expected_idx)


def test_knn_radii_excludes_the_point_itself():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert metrics.knn_radii(points, k=1).tolist() == pytest.approx([1.0, 1.0, 2.0, 4.0])
    with pytest.raises(ValueError):
        metrics.knn_radii(points, k=4)


def test_precision_recall_identical_sets():
    real = torch.randn(300, 8, generator=gen(11))
    scores = metrics.precision_recall(real, real.clone(), k=3)
    assert scores["precision"] == pytest.approx(1.0)
    assert scores["recall"] == pytest.approx(1.0)
    assert scores["coverage"] == pytest.approx(1.0)
    assert scores["density"] >= 1.0


def test_precision_recall_disjoint_far_sets():
    real = torch.randn(300, 8, generator=gen(12))
    fake = torch.randn(300, 8, generator=gen(13)) + 100.0
    scores = metrics.precision_recall(real, fake, k=3)
    assert scores == pytest.approx({"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0})


def test_precision_recall_collapsed_generator_is_precise_but_not_diverse():
    real = torch.randn(400, 4, generator=gen(14))
    fake = real[:20].repeat(20, 1) + 1e-3 * torch.randn(400, 4, generator=gen(15))  # 20 modes only
    scores = metrics.precision_recall(real, fake, k=3)
    assert scores["precision"] > 0.95
    assert scores["recall"] < 0.3
    assert scores["coverage"] < 0.2


# ----------------------------------------------------------------------------- memorisation


def test_memorisation_flags_exact_copies():
    train = torch.rand(200, 1, 28, 28, generator=gen(16))
    test = torch.rand(50, 1, 28, 28, generator=gen(17))
    copies = train[torch.tensor([5, 17, 99])]
    result = metrics.memorisation(copies, train, test)
    assert result.nearest_indices.tolist() == [5, 17, 99]
    assert result.distances.tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-3)
    assert result.distance_ratio < 0.01
    assert result.copy_share == 1.0


def test_memorisation_of_fresh_images_is_near_one():
    train = torch.rand(200, 1, 28, 28, generator=gen(18))
    test = torch.rand(100, 1, 28, 28, generator=gen(19))
    fresh = torch.rand(100, 1, 28, 28, generator=gen(20))
    result = metrics.memorisation(fresh, train, test)
    assert 0.9 < result.distance_ratio < 1.1
    assert result.copy_share < 0.1
    again = metrics.memorisation(fresh, train, test_distances=result.test_distances)
    assert again.distance_ratio == pytest.approx(result.distance_ratio)
    with pytest.raises(ValueError):
        metrics.memorisation(fresh, train)


# ----------------------------------------------------------------------------- latent smoothness


def test_interpolate_endpoints_and_even_steps():
    start, end = torch.zeros(2, 3), torch.ones(2, 3)
    line = metrics.interpolate(start, end, 4)
    assert line.shape == (2, 5, 3)
    assert torch.equal(line[:, 0], start) and torch.allclose(line[:, -1], end)
    assert torch.allclose(line[0, :, 0], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))


def test_path_smoothness_even_path_vs_one_jump():
    even = metrics.interpolate(torch.zeros(3, 2), torch.full((3, 2), 4.0), 8)
    jump = torch.zeros(3, 9, 2)
    jump[:, 5:] = 4.0  # all the change in one step
    smooth, jumpy = metrics.path_smoothness(even), metrics.path_smoothness(jump)
    assert smooth["jump_ratio"] == pytest.approx(1.0)
    assert jumpy["jump_ratio"] == pytest.approx(8.0)
    assert smooth["step_mean"] == pytest.approx(jumpy["step_mean"]) == pytest.approx(math.sqrt(32) / 8)
    assert smooth["ppl"] == pytest.approx(32.0)  # (step x S)² = |end - start|² on an even path
    assert jumpy["ppl"] == pytest.approx(32.0 * 8)
    assert metrics.path_smoothness(torch.zeros(2, 4, 3))["jump_ratio"] == 1.0  # constant features: no jump


# ----------------------------------------------------------------------------- pixels: blur and variety


def test_midtone_share_separates_crisp_from_blurry():
    assert metrics.midtone_share(torch.tensor([0.0, 1.0, 0.05, 0.95])) == 0.0
    assert metrics.midtone_share(torch.tensor([0.5, 0.5, 0.0, 1.0])) == 0.5


def test_class_spread_is_zero_for_copies_and_the_mean_pairwise_distance_otherwise():
    images = torch.zeros(5, 1, 28, 28)
    images[3, 0, 0, 0] = 3.0  # class 1: two images 3 apart, and one apart from both by 3 and 0
    images[4, 0, 0, 0] = 4.0
    labels = torch.tensor([0, 0, 1, 1, 2])
    spreads = metrics.class_spread(images, labels, 4)
    assert spreads[0] == 0.0 and spreads[1] == pytest.approx(3.0) and spreads[2] is None and spreads[3] is None


def test_spread_ratios_skip_classes_either_side_lacks():
    mean, per_class = metrics.spread_ratios([2.0, None, 1.0, 3.0], [4.0, 5.0, None, 3.0])
    assert per_class == [0.5, None, None, 1.0] and mean == pytest.approx(0.75)
    assert metrics.spread_ratios([None], [1.0]) == (None, [None])


def test_jump_ratio_is_one_for_an_even_morph_and_large_for_a_jump():
    even = torch.linspace(0, 1, 5).view(5, 1, 1, 1).expand(5, 1, 28, 28)
    assert metrics.jump_ratio(even) == pytest.approx(1.0)
    jump = torch.zeros(5, 1, 28, 28)
    jump[3:] = 1.0
    assert metrics.jump_ratio(jump) == pytest.approx(4.0)

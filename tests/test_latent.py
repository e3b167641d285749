"""genmodels.latent: interpolation, latent edits, PCA maps and interpolation strips."""

import numpy as np
import pytest
import torch

from genmodels import api
from genmodels.latent import (
    edit_latents,
    fit_latent_map,
    full_test_images,
    interpolate,
    interpolation_strip,
    principal_axes,
    real_latent_map,
    reconstruct,
    summary_images,
    unit_images,
)
from genmodels.summary import DataSummary


def test_interpolate_is_a_straight_line_through_both_ends():
    start, end = torch.zeros(3), torch.tensor([2.0, 4.0, -2.0])
    path = interpolate(start, end, 5)
    assert path.shape == (5, 3)
    assert torch.equal(path[0], start) and torch.equal(path[-1], end)
    assert torch.allclose(path[2], (start + end) / 2)


@pytest.mark.parametrize("steps", [0, 1, 51, 2.5])
def test_interpolate_rejects_bad_step_counts(steps):
    with pytest.raises(ValueError):
        interpolate(torch.zeros(3), torch.ones(3), steps)


def test_interpolate_rejects_mismatched_endpoints():
    with pytest.raises(ValueError, match="same shape"):
        interpolate(torch.zeros(3), torch.ones(4), 5)


def test_edit_latents_shifts_first_row_or_all_rows_without_touching_the_input():
    z = torch.zeros(3, 5)
    first = edit_latents(z, (1.0, -2.0), first_only=True)
    every = edit_latents(z, (1.0, -2.0), first_only=False)
    assert torch.equal(z, torch.zeros(3, 5))
    assert first[0, :2].tolist() == [1.0, -2.0] and torch.equal(first[1:], torch.zeros(2, 5))
    assert torch.equal(every[:, :2], torch.tensor([[1.0, -2.0]] * 3)) and torch.equal(every[:, 2:], torch.zeros(3, 3))
    with pytest.raises(ValueError):
        edit_latents(z, (0.0,) * 6, first_only=True)


def planar_codes():
    """Codes lying exactly in a 2-D plane of a 6-D space, three classes."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0].T
    coefficients = rng.normal(size=(60, 2)) * np.array([3.0, 1.0])
    return (coefficients @ basis + 5.0).astype(np.float32), np.arange(60) % 3


def test_latent_map_round_trips_points_of_its_plane():
    codes, labels = planar_codes()
    lmap = fit_latent_map(codes, labels, np.arange(60) + 100)
    assert lmap.coords.shape == (60, 2)
    assert lmap.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-5)
    assert lmap.explained_variance_ratio[0] >= lmap.explained_variance_ratio[1]
    np.testing.assert_allclose(lmap.to_latent(lmap.coords), codes, atol=1e-4)
    np.testing.assert_allclose(lmap.project(codes), lmap.coords, atol=1e-4)
    np.testing.assert_allclose(lmap.to_latent(np.zeros((1, 2)))[0], codes.mean(0), atol=1e-4)


def test_principal_axes_find_the_known_directions_with_a_fixed_sign():
    rng = np.random.default_rng(3)
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    codes = (rng.normal(size=(4000, 4)) * np.array([5.0, 2.0, 0.5, 0.1])) @ rotation.T + 7.0
    mean, components, ratio = principal_axes(codes)
    np.testing.assert_allclose(mean, codes.mean(0))
    for found, true in zip(components, rotation.T[:2], strict=True):
        assert abs(found @ true) == pytest.approx(1.0, abs=1e-3)  # the two widest directions, in order
        assert found[np.abs(found).argmax()] > 0
    variances = np.array([25.0, 4.0, 0.25, 0.01])
    np.testing.assert_allclose(ratio, (variances / variances.sum())[:2], rtol=0.05)
    _, flipped, _ = principal_axes(-codes)
    np.testing.assert_allclose(flipped, components, atol=1e-9)  # the sign follows the convention, not the data


def test_latent_map_rejects_non_finite_plane_points():
    codes, labels = planar_codes()
    with pytest.raises(ValueError, match="finite"):
        fit_latent_map(codes, labels, labels).to_latent(np.array([[np.nan, 0.0]]))
    codes[5, 2] = np.inf
    with pytest.raises(ValueError, match="must be finite"):
        fit_latent_map(codes, labels, labels)


def test_nearest_excludes_the_point_and_sorts_by_distance():
    codes = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.5, 0.0], [10.0, 1.0]], dtype=np.float32)
    lmap = fit_latent_map(codes, np.zeros(5), np.arange(5))
    assert lmap.nearest(0, 3).tolist() == [3, 1, 2]
    assert len(lmap.nearest(0, 99)) == 4
    with pytest.raises(ValueError):
        lmap.nearest(5)


@pytest.mark.parametrize("kind", ["cgan", "gan", "vae"])
def test_class_strip_starts_and_ends_at_the_class_samples(tiny_checkpoints, kind):
    model = api.load_generator(kind, "mnist", root=tiny_checkpoints, device="cpu")
    strip = interpolation_strip(model, 2, 7, 11, 11, steps=6)
    assert strip.shape == (6, 1, 28, 28)
    assert torch.allclose(strip[0], model.sample(1, 2, seed=11).images[0], atol=1e-5)
    assert torch.allclose(strip[-1], model.sample(1, 7, seed=11).images[0], atol=1e-5)


def test_seed_strip_of_one_class_ends_at_both_seeds(tiny_checkpoints):
    model = api.load_generator("cgan", "mnist", root=tiny_checkpoints, device="cpu")
    strip = interpolation_strip(model, 4, 4, 1, 2, steps=4)
    assert torch.allclose(strip[0], model.sample(1, 4, seed=1).images[0], atol=1e-5)
    assert torch.allclose(strip[-1], model.sample(1, 4, seed=2).images[0], atol=1e-5)


def test_unconditional_strip_and_label_checks(tiny_checkpoints):
    model = api.load_generator("gan", "mnist", root=tiny_checkpoints, device="cpu")
    strip = interpolation_strip(model, None, None, 1, 2, steps=3)
    assert torch.allclose(strip[-1], model.sample(1, None, seed=2).images[0], atol=1e-5)
    with pytest.raises(ValueError, match="both"):
        interpolation_strip(model, 1, None, 1, 2)
    with pytest.raises(ValueError, match="class"):
        interpolation_strip(model, 0, 10, 1, 2)


def test_real_latent_map_encodes_a_summary(tiny_checkpoints):
    vae = api.load_vae("mnist", root=tiny_checkpoints, device="cpu")
    pixels = torch.randint(0, 256, (30, 28, 28), dtype=torch.uint8)
    summary = DataSummary(
        "mnist",
        torch.zeros(10),
        torch.zeros(10),
        torch.zeros(10, 28, 28),
        torch.zeros(256),
        pixels,
        torch.arange(30) % 10,
        torch.arange(30) * 2,
        "bundled summary",
    )
    lmap = real_latent_map(vae, summary_images(summary))
    assert lmap.latents.shape == (30, vae.latent_dim) and lmap.indices[3] == 6
    recon = reconstruct(vae, unit_images(pixels[:2]))
    assert recon.shape == (2, 1, 28, 28) and 0 <= recon.min() and recon.max() <= 1


def test_full_test_images_reads_the_whole_split(synthetic_data):
    images = full_test_images("fashion", synthetic_data)
    assert images.pixels.shape == (200, 28, 28) and images.indices.tolist() == list(range(200))
    assert torch.equal(images.labels.bincount(), torch.full((10,), 20))

"""Your image's models: attribution, GAN inversion, nearest neighbours, the UMAP plane and the confidence map."""

import time

import numpy as np
import pytest
import torch

from genmodels import api
from genmodels.checkpoint import shipped_generators
from genmodels.inversion import gan_kinds, invert, strip_to_class
from genmodels.kinds import KINDS
from genmodels.latent import real_latent_map, summary_images, unit_images
from genmodels.neighbors import build_index, nearest
from genmodels.projection import PROJECTIONS, confidence_grid, encoding_ellipse, load_umap_coords, pca_plane, umap_plane
from genmodels.summary import load_summary
from genmodels.your_image import attribution_overlay, residual_image, vae_view, verdict

pytestmark = pytest.mark.checkpoints


@pytest.fixture(scope="module")
def mnist():
    """(classifier, summary) of MNIST; the summary's test images stand in for a person's drawing."""
    return api.load_classifier("mnist", device="cpu"), load_summary("mnist", prefer_full=False)


def test_verdict_gives_ten_probabilities_and_an_attribution_of_the_image_shape(mnist):
    classifier, summary = mnist
    seven = unit_images(summary.subset_images[summary.subset_labels == 7][:1])[0, 0].numpy()
    result = verdict(classifier, seven)
    assert result.probs.shape == (10,) and result.probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert result.predicted == 7 and result.attribution.shape == (28, 28) and np.isfinite(result.attribution).all()
    # completeness of Integrated Gradients: the attributions add up to logit(image) - logit(black)
    with torch.no_grad():
        logits = classifier(torch.stack([torch.from_numpy(seven), torch.zeros(28, 28)]).reshape(2, 1, 28, 28) * 2 - 1)
    gap = float(logits[0, 7] - logits[1, 7])
    assert result.attribution.sum() == pytest.approx(gap, rel=0.05)
    # where there is no ink the attribution is zero (the input times the path's gradient)
    assert np.abs(result.attribution[seven == 0]).max() == 0.0
    assert attribution_overlay(seven, result.attribution, 2).shape == (56, 56, 3)


@pytest.mark.parametrize("kind", [kind for kind in gan_kinds() if kind in shipped_generators("mnist")])
def test_inversion_lowers_the_distance_within_a_second_of_cpu_time(mnist, kind):
    classifier, summary = mnist
    model = api.load_generator(kind, "mnist", device="cpu")
    target = unit_images(summary.subset_images[summary.subset_labels == 3][:1])
    invert(model, classifier, target, label=3, steps=2)  # warm-up: the first pass allocates
    cpu_started = time.process_time()
    fractions = []
    found = invert(model, classifier, target, label=3, progress=fractions.append)
    cpu = time.process_time() - cpu_started
    assert found.losses[-1] < 0.5 * found.losses[0], found.losses
    assert found.image.shape == (1, 1, 28, 28) and found.latent.shape == (model.latent_dim,)
    start = model.latents(torch.tensor([3]), 1, 0)[0]
    start_image = model.decode(start, torch.tensor([3]) if KINDS[kind].conditional else None)
    start_rmse = float((start_image - target).pow(2).mean().sqrt())
    assert found.pixel_distance < start_rmse
    assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions)
    # one thread's CPU seconds: unlike wall time they hold while the other test worker keeps both cores busy
    assert cpu <= 1.0, cpu
    strip = strip_to_class(model, found, 8, steps=6)
    assert strip.shape == (6, 1, 28, 28)


def test_inversion_refuses_the_vae_and_a_conditional_gan_without_a_label(mnist):
    classifier, summary = mnist
    target = unit_images(summary.subset_images[:1])
    with pytest.raises(ValueError, match="not a GAN"):
        invert(api.load_generator("vae", "mnist", device="cpu"), classifier, target)
    with pytest.raises(ValueError, match="needs a label"):
        invert(api.load_generator("cgan", "mnist", device="cpu"), classifier, target)


def test_nearest_neighbours_match_a_brute_force_search(mnist):
    classifier, summary = mnist
    images, labels = summary.subset_images, summary.subset_labels
    index = build_index(classifier, images, labels, "bundled test images")
    query = unit_images(images[123:124]).flip(-1)  # a mirrored test image: near, but not in the index
    found = nearest(index, classifier, query, k=5)
    brute = torch.cdist(query.reshape(1, -1), unit_images(images).reshape(len(images), -1))[0]
    assert found["pixels"].rows.tolist() == brute.argsort()[:5].tolist()
    assert np.allclose(found["pixels"].distances, brute.sort().values[:5].numpy(), atol=1e-4)
    features = classifier.features(unit_images(images) * 2 - 1).detach()
    brute_features = torch.cdist(classifier.features(query * 2 - 1).detach(), features)[0]
    assert found["features"].rows.tolist() == brute_features.argsort()[:5].tolist()
    assert (found["features"].labels == labels[found["features"].rows].numpy()).all()
    assert index.unit_images(found["pixels"].rows).shape == (5, 1, 28, 28)


def test_the_index_s_inference_copy_folds_batch_norm_and_keeps_the_features(mnist):
    from genmodels.neighbors import _inference_copy

    classifier, summary = mnist
    images = unit_images(summary.subset_images[:64]) * 2 - 1
    fast = _inference_copy(classifier)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in classifier.modules())  # the shared one is untouched
    with torch.no_grad():
        expected = classifier.features(images)
        got = fast.features(images.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, atol=1e-4)


def test_the_index_keeps_its_features_in_the_cache_and_reads_them_back(mnist, tmp_path, monkeypatch):
    from genmodels import neighbors

    classifier, summary = mnist
    images, labels = summary.subset_images[:300], summary.subset_labels[:300]
    first = build_index(classifier, images, labels, "bundled test images", cache=tmp_path)
    stored = list(tmp_path.glob("index-features-*.npy"))
    assert len(stored) == 1 and neighbors.features_key(classifier, images) in stored[0].name

    def not_again(*args):
        raise AssertionError("the features were computed again")

    monkeypatch.setattr(neighbors, "_index_features", not_again)
    again = build_index(classifier, images, labels, "bundled test images", cache=tmp_path)
    query = unit_images(images[7:8]).flip(-1)
    for space in neighbors.SPACES:
        assert (
            nearest(again, classifier, query)[space].rows.tolist()
            == nearest(first, classifier, query)[space].rows.tolist()
        )
    # other images are another key; a damaged file is computed again (and rewritten), not trusted
    assert neighbors.features_key(classifier, images[:299]) != neighbors.features_key(classifier, images)
    monkeypatch.undo()
    stored[0].write_bytes(b"not an array")
    build_index(classifier, images, labels, "bundled test images", cache=tmp_path)
    assert np.load(stored[0]).shape[0] == len(images)


def test_vae_view_and_the_ellipse_on_both_planes():
    vae = api.load_generator("vae", "mnist", device="cpu")
    summary = load_summary("mnist", prefer_full=False)
    lmap = real_latent_map(vae.module, summary_images(summary))
    image = unit_images(summary.subset_images[5:6])[0, 0].numpy()
    view = vae_view(vae, image)
    assert view.reconstruction.shape == (1, 1, 28, 28) and (view.sigma > 0).all()
    assert view.draws.shape == (64, vae.latent_dim) and view.draw_images.shape == (6, 1, 28, 28)
    umap = umap_plane(lmap.latents, load_umap_coords("mnist", "vae", vae.meta["weights_sha256"], len(lmap.latents)))
    for plane in (pca_plane(lmap), umap):
        centre, ellipse = encoding_ellipse(plane, view.mu, view.draws)
        assert centre.shape == (2,) and ellipse.shape == (48, 2) and np.isfinite(ellipse).all()
        # the encoding of a test image lands among the map's points of its class
        own = plane.coords[lmap.labels == int(summary.subset_labels[5])]
        spread = plane.coords.std(0)
        assert (np.abs(np.median(own, 0) - centre) < 2 * spread).all()


def test_umap_plane_places_fitted_points_near_their_fitted_coordinates_and_maps_back():
    vae = api.load_generator("vae", "fashion", device="cpu")
    lmap = real_latent_map(vae.module, summary_images(load_summary("fashion", prefer_full=False)))
    coords = load_umap_coords("fashion", "vae", vae.meta["weights_sha256"], len(lmap.latents))
    plane = umap_plane(lmap.latents, coords)
    placed = plane.project(lmap.latents[:200])
    scale = coords.std(0).mean()
    assert np.median(np.linalg.norm(placed - coords[:200], axis=1)) < 0.2 * scale
    back = plane.to_latent(coords[:200])
    assert np.median(np.linalg.norm(back - lmap.latents[:200], axis=1)) < np.median(
        np.linalg.norm(lmap.latents[:200] - lmap.latents[200:400], axis=1)
    )
    assert PROJECTIONS == ("PCA", "UMAP")


def test_the_umap_map_of_another_vae_is_refused():
    from genmodels.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="another VAE"):
        load_umap_coords("mnist", "vae", "0" * 64, 2000)


def test_confidence_grid_is_high_inside_the_classes_and_lower_between_them(mnist):
    classifier, summary = mnist
    vae = api.load_generator("vae", "mnist", device="cpu")
    lmap = real_latent_map(vae.module, summary_images(summary))
    plane = pca_plane(lmap)
    box = (*np.percentile(plane.coords[:, 0], [1, 99]), *np.percentile(plane.coords[:, 1], [1, 99]))
    grid = confidence_grid(
        plane,
        lambda z: vae.decode(torch.from_numpy(z)),
        lambda x: api.predict(classifier, x),
        box[:2],
        box[2:],
        cells=12,
    )
    assert grid.confidence.shape == grid.predicted.shape == (12, 12)
    assert 0.1 <= grid.confidence.min() < 0.9 < grid.confidence.max() <= 1.0
    assert len(np.unique(grid.predicted)) >= 4


def test_residual_image_colours_added_and_missing_ink():
    target = torch.zeros(1, 1, 28, 28)
    image = torch.zeros(1, 1, 28, 28)
    target[..., 0, 0] = 1.0  # ink the model missed
    image[..., 27, 27] = 1.0  # ink the model added
    rgb = residual_image(target, image, scale=1)
    assert tuple(rgb[0, 0]) == (0, 0, 255) and tuple(rgb[27, 27]) == (255, 0, 0) and rgb[14, 14].sum() == 0


def test_one_thread_holds_only_for_the_calling_thread_and_is_restored():
    import threading

    from genmodels.inversion import one_thread

    before = torch.get_num_threads()
    seen = []
    with one_thread():
        inside = torch.get_num_threads()
        other = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        other.start()
        other.join()
    assert inside == 1 and seen == [before] and torch.get_num_threads() == before


def test_one_thread_holds_for_matmuls_after_torch_set_num_threads():
    """A training run in the same process sets the thread count; MKL's matmuls must still run on one thread."""
    from genmodels.inversion import one_thread

    threads = torch.get_num_threads()
    if threads < 2:
        pytest.skip("one core: nothing to keep off")
    torch.set_num_threads(threads)  # what train/run.py does: from here MKL follows its own count
    a, b = torch.randn(64, 512), torch.randn(512, 1024)
    for _ in range(20):  # warm-up
        a @ b
    with one_thread():
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        for _ in range(400):
            a @ b
        cpu, wall = time.process_time() - cpu_started, time.perf_counter() - wall_started
    # one thread's CPU time cannot exceed the wall time; a second, spinning thread would add up to as much again
    assert cpu <= 1.25 * wall + 0.02, (cpu, wall)

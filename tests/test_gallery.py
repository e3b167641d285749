"""genmodels.gallery: generated batches with the classifier's captions, seed re-rolls, display pixels."""

import numpy as np
import pytest
import torch

from genmodels import api
from genmodels.gallery import MAX_GALLERY, display_pixels, generate_gallery, next_seed, prediction_captions


@pytest.fixture(scope="module")
def tiny(tiny_checkpoints):
    return (
        api.load_generator("cgan", "mnist", root=tiny_checkpoints, device="cpu"),
        api.load_classifier("mnist", root=tiny_checkpoints, device="cpu"),
    )


def test_gallery_of_one_class_and_of_every_class(tiny):
    model, classifier = tiny
    one = generate_gallery(model, classifier, 3, 5, seed=0)
    assert one.images.shape == (5, 1, 28, 28) and one.labels.tolist() == [3] * 5 and one.probs.shape == (5, 10)
    every = generate_gallery(model, classifier, "all", 2, seed=0)
    assert every.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert 0.0 <= every.accuracy <= 1.0


def test_gallery_is_reproducible_by_seed(tiny):
    model, classifier = tiny
    assert torch.equal(
        generate_gallery(model, classifier, 1, 4, seed=9).images,
        generate_gallery(model, classifier, 1, 4, seed=9).images,
    )
    assert not torch.equal(
        generate_gallery(model, classifier, 1, 4, seed=9).images,
        generate_gallery(model, classifier, 1, 4, seed=10).images,
    )


def test_latent_shifts_edit_the_first_image_or_all(tiny):
    model, classifier = tiny
    plain = generate_gallery(model, classifier, 1, 3, seed=0)
    first = generate_gallery(model, classifier, 1, 3, seed=0, offsets=(2.0, 0.0), edit_first_only=True)
    every = generate_gallery(model, classifier, 1, 3, seed=0, offsets=(2.0, 0.0), edit_first_only=False)
    assert first.latents[0, 0] == plain.latents[0, 0] + 2.0 and torch.equal(first.images[1:], plain.images[1:])
    assert torch.allclose(every.latents[:, 0], plain.latents[:, 0] + 2.0)
    assert not torch.equal(first.images[0], plain.images[0])


def test_gallery_without_classifier_and_limits(tiny):
    model, _ = tiny
    gallery = generate_gallery(model, None, 0, 2, seed=0)
    assert gallery.probs is None and gallery.accuracy is None and gallery.captions(("a",) * 10) == ["", ""]
    with pytest.raises(ValueError, match=str(MAX_GALLERY)):
        generate_gallery(model, None, "all", 11, seed=0)
    with pytest.raises(ValueError):
        generate_gallery(model, None, 10, 2, seed=0)


def test_captions_name_the_class_and_flag_disagreements():
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    assert prediction_captions(probs, ("T-shirt/top", "Trouser"), torch.tensor([0, 0])) == [
        "T-shirt/top 90%",
        "✗ Trouser 70%",
    ]
    assert prediction_captions(probs, ("a", "b")) == ["a 90%", "b 70%"]


def test_next_seed_is_deterministic_and_moves():
    assert next_seed(0) == next_seed(0) != 0
    assert next_seed(0) != next_seed(1)
    assert 0 <= next_seed(2**32 - 1) < 2**32
    with pytest.raises(ValueError):
        next_seed(-1)


def test_display_pixels_upscales_without_blurring():
    images = torch.zeros(2, 1, 28, 28)
    images[0, 0, 0, 0] = 1.0
    pixels = display_pixels(images, scale=3)
    assert pixels[0].shape == (84, 84) and pixels[0].dtype == np.uint8
    assert (pixels[0][:3, :3] == 255).all() and pixels[0][3:, 3:].max() == 0

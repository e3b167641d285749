"""Property-based tests of the sampling API on tiny random models: valid requests give images, invalid ones a
ValueError."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genmodels import api
from genmodels.checkpoint import save_model
from genmodels.kinds import build_model

KINDS = ("gan", "cgan", "vae")
DATASETS = ("mnist", "fashion")
PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

seeds = st.integers(0, api.MAX_SEED)
temperatures = st.floats(*api.TEMPERATURE_RANGE, allow_nan=False)
models = st.tuples(st.sampled_from(KINDS), st.sampled_from(DATASETS))
labels = st.one_of(st.none(), st.integers(0, 9), st.just("all"))


@pytest.fixture(scope="module")
def loaded(tiny_checkpoints):
    """Every tiny generator of both datasets, loaded once."""
    return {(k, d): api.load_generator(k, d, root=tiny_checkpoints, device="cpu") for k in KINDS for d in DATASETS}


@PROPERTY_SETTINGS
@given(model=models, label=labels, n=st.integers(1, 12), seed=seeds, temperature=temperatures)
def test_valid_request_gives_finite_unit_images(loaded, model, label, n, seed, temperature):
    """Any valid (model, label, n, seed, temperature) gives finite images in [0, 1] of shape [count, 1, 28, 28]."""
    generator = loaded[model]
    samples = generator.sample(n=n, label=label, seed=seed, temperature=temperature)
    count = n * 10 if label == "all" else n
    assert samples.images.shape == (count, 1, 28, 28)
    assert samples.images.dtype == torch.float32
    assert torch.isfinite(samples.images).all()
    assert samples.images.min() >= 0.0 and samples.images.max() <= 1.0
    assert samples.latents.shape == (count, generator.latent_dim)
    if label is None and generator.kind != "cgan":
        assert samples.labels is None
    elif label == "all":
        assert samples.labels.tolist() == [c for c in range(10) for _ in range(n)]
    elif label is not None:
        assert samples.labels.tolist() == [label] * n


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=models, label=labels, n=st.integers(1, 6), seed=seeds)
def test_same_seed_same_images(loaded, model, label, n, seed):
    """Sampling is a pure function of (model, label, n, seed, temperature)."""
    first = loaded[model].sample(n=n, label=label, seed=seed)
    second = loaded[model].sample(n=n, label=label, seed=seed)
    assert torch.equal(first.images, second.images)


invalid_seeds = st.one_of(
    st.integers(max_value=-1), st.integers(min_value=api.MAX_SEED + 1), st.floats(), st.booleans(), st.text(max_size=3)
)
invalid_counts = st.one_of(
    st.integers(max_value=0), st.integers(min_value=api.MAX_SAMPLES + 1), st.floats(), st.booleans()
)
invalid_temperatures = st.one_of(
    st.floats().filter(lambda t: math.isnan(t) or not api.TEMPERATURE_RANGE[0] <= t <= api.TEMPERATURE_RANGE[1]),
    st.text(max_size=3),
    st.booleans(),
)
invalid_labels = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=10),
    st.floats(),
    st.text(max_size=4).filter(lambda s: s != "all"),
    st.booleans(),
)


@PROPERTY_SETTINGS
@given(model=models, data=st.data())
def test_invalid_request_raises_a_clear_value_error(loaded, model, data):
    """Exactly one invalid argument among valid ones raises ValueError naming that argument."""
    request = {"n": 3, "label": None, "seed": 0, "temperature": 1.0}
    which = data.draw(st.sampled_from(["n", "label", "seed", "temperature"]))
    strategy = {
        "n": invalid_counts,
        "label": invalid_labels,
        "seed": invalid_seeds,
        "temperature": invalid_temperatures,
    }[which]
    request[which] = data.draw(strategy)
    word = {"n": "number of images", "label": "label", "seed": "seed", "temperature": "temperature"}[which]
    with pytest.raises(ValueError, match=word):
        loaded[model].sample(**request)


@PROPERTY_SETTINGS
@given(model=models, rows=st.integers(1, 5), data=st.data())
def test_decode_of_finite_latents_gives_unit_images(loaded, model, rows, data):
    """decode maps any finite latents (even far from the prior) to finite images in [0, 1]."""
    generator = loaded[model]
    values = data.draw(
        st.lists(
            st.floats(-1e4, 1e4, allow_nan=False),
            min_size=rows * generator.latent_dim,
            max_size=rows * generator.latent_dim,
        )
    )
    z = torch.tensor(values, dtype=torch.float32).reshape(rows, generator.latent_dim)
    class_ids = torch.tensor(data.draw(st.lists(st.integers(0, 9), min_size=rows, max_size=rows)))
    images = generator.decode(z, class_ids)
    assert images.shape == (rows, 1, 28, 28)
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1


@PROPERTY_SETTINGS
@given(model=models, rows=st.integers(1, 4), bad=st.sampled_from([math.nan, math.inf, -math.inf]), data=st.data())
def test_decode_refuses_any_non_finite_latent(loaded, model, rows, bad, data):
    """One non-finite entry anywhere in the latents is refused."""
    generator = loaded[model]
    z = torch.zeros(rows, generator.latent_dim)
    z[data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, generator.latent_dim - 1))] = bad
    with pytest.raises(ValueError, match="finite"):
        generator.decode(z, torch.zeros(rows, dtype=torch.int64))


def test_gan_without_mapper_refuses_labels_but_samples_unconditionally(tmp_path):
    """A GAN shipped without its label mapper samples without a label and refuses one with a clear message."""
    save_model(
        tmp_path / "mnist" / "gan.safetensors", build_model("gan", {"latent_dim": 8, "g_hidden": [16]}), "gan", "mnist"
    )
    generator = api.load_generator("gan", "mnist", root=tmp_path, device="cpu")
    assert not generator.supports_labels
    assert generator.sample(n=2, seed=1).images.shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="mapper"):
        generator.sample(n=2, label=3, seed=1)

"""The app's background preload (issue 22): it fills the very caches the pages read, so a first visit finds them."""

import threading

import pytest
import streamlit as st

from genmodels.projection import PROJECTIONS
from views import common, shared

pytestmark = pytest.mark.checkpoints


@pytest.fixture
def empty_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def test_a_model_is_one_cache_entry_however_it_is_called(empty_caches):
    assert common.generator("vae", "mnist") is common.generator("vae", "mnist", None)


def test_after_the_preload_the_pages_defaults_need_no_model_call(empty_caches, monkeypatch):
    thread = threading.Thread(target=shared.preload, args=(("mnist",),))  # its own thread: it lowers that one's nice
    thread.start()
    thread.join()
    calls = []
    for name in ("confidence_grid", "predict", "generate_gallery", "interpolation_strip", "overview"):
        monkeypatch.setattr(shared, name, lambda *args, name=name, **kwargs: calls.append(name))
    vae = shared.shipped_vaes("mnist")[0]  # the Latent space page's first VAE
    for projection in PROJECTIONS:
        plane = shared.plane_of("mnist", vae, shared.SUBSET, projection)
        shared.scatter_spec("mnist", vae, shared.SUBSET, projection, True)
        shared.confidence_map("mnist", vae, shared.SUBSET, projection, shared.plane_box(plane))
    for kind in shared.default_compared("mnist"):  # the GAN vs VAE page's models before anyone picks
        shared.side_by_side(kind, "mnist", 0, 0)
        if common.generator(kind, "mnist").supports_labels:
            shared.strip(kind, "mnist", (0, 1), 0, shared.STRIP_STEPS)
    from genmodels.paths import data_dir

    shared.data_overview("mnist", str(data_dir()))
    assert calls == []


def test_a_failing_step_does_not_stop_the_preload(empty_caches, monkeypatch):
    def broken(dataset):
        raise RuntimeError("no such model")

    done = []
    monkeypatch.setattr(shared, "_latent_page", broken)
    monkeypatch.setattr(shared, "_comparison_page", lambda dataset: done.append(dataset))
    monkeypatch.setattr(shared, "data_overview", lambda *args: None)
    thread = threading.Thread(target=shared.preload, args=(("mnist",),))
    thread.start()
    thread.join()
    assert done == ["mnist"]

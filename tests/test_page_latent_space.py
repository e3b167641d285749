"""Latent space page (AppTest): PCA scatter for both datasets; inspect, decode anywhere and interpolate change the
output."""

import json
import os

import pytest

from genmodels.datasets import dataset_info
from tests import app_pages

pytestmark = pytest.mark.checkpoints


def open_page(dataset="mnist"):
    return app_pages.open_page("latent_space", dataset, timeout=120)


ok = app_pages.rendered_cleanly


def images(at):
    """URLs of the image lists: inspected pair, neighbours, decoded point, interpolation strip."""
    pair, neighbours, decoded, strip = (element.value for element in at.get("image"))
    return {"pair": pair, "neighbours": neighbours, "decoded": decoded, "strip": strip}


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_renders_the_pca_scatter_by_class(dataset):
    at = ok(open_page(dataset))
    spec = json.loads(at.get_by_key("latent_scatter").proto.spec)
    names = dataset_info(dataset).classes
    class_traces = [trace for trace in spec["data"] if trace["name"] in names]
    assert [trace["name"] for trace in class_traces] == list(names)
    assert sum(len(trace["customdata"]) for trace in class_traces) == 2000
    assert "test index" in class_traces[0]["hovertemplate"] and "classifier" in class_traces[0]["hovertemplate"]
    assert "%" in class_traces[9]["customdata"][0][2]  # the classifier's verdict with its confidence
    variance = {m.label: float(m.value.rstrip("%")) for m in at.metric}
    assert 0 < variance["PC2 explains"] <= variance["PC1 explains"] and variance["Together"] <= 100
    shown = images(at)
    assert (
        len(shown["pair"]) == 2
        and len(shown["neighbours"]) == 8
        and len(shown["decoded"]) == 1
        and len(shown["strip"]) == 10
    )


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_every_shipped_vae_has_its_own_map_in_pca_and_umap(dataset):
    """The VAE box offers every shipped VAE (MLP and convolutional); each maps the same 2,000 images its own way."""
    from genmodels.checkpoint import shipped_generators
    from genmodels.kinds import KINDS

    encoders = [k for k in shipped_generators(dataset) if KINDS[k].encodes]
    at = ok(open_page(dataset))
    assert at.selectbox(key="latent_vae").options == [KINDS[k].display_title for k in encoders]
    maps = set()
    for kind in encoders:
        at.selectbox(key="latent_vae").set_value(kind)
        at = ok(at.radio(key="latent_projection").set_value("PCA").run())
        spec = json.loads(at.get_by_key("latent_scatter").proto.spec)
        traces = [trace for trace in spec["data"] if trace["name"] in dataset_info(dataset).classes]
        assert sum(len(trace["customdata"]) for trace in traces) == 2000 and len(images(at)["strip"]) == 10, kind
        maps.add(json.dumps(traces[0]["x"]))
        at = ok(at.radio(key="latent_projection").set_value("UMAP").run())
        assert not at.warning, (kind, [w.value for w in at.warning])  # its own shipped UMAP map, fitted to it
    assert len(maps) == len(encoders)


def test_decode_anywhere_changes_the_decoded_image():
    at = open_page()
    before = images(at)
    at = ok(at.slider(key="latent_pc1_mnist").set_value(2.0).run())
    after = images(at)
    assert after["decoded"] != before["decoded"] and after["pair"] == before["pair"]
    at = ok(at.slider(key="latent_pc2_mnist").set_value(-1.5).run())
    assert images(at)["decoded"] != after["decoded"]
    spec = json.loads(at.get_by_key("latent_scatter").proto.spec)
    star = next(trace for trace in spec["data"] if trace["name"] == "decoded point")
    assert (star["x"], star["y"]) == ([2.0], [-1.5])


def test_inspecting_another_point_shows_its_image_reconstruction_and_neighbours():
    at = open_page("fashion")
    before = images(at)
    at = ok(at.number_input(key="latent_row_fashion").set_value(1900).run())
    after = images(at)
    assert set(after["pair"]).isdisjoint(before["pair"]) and after["neighbours"] != before["neighbours"]
    assert any("Ankle boot" in m.value for m in at.markdown)
    assert sum(c.startswith("Ankle boot") for c in at.get("image")[1].captions) >= 4


def test_interpolation_endpoints_and_steps_change_the_strip():
    at = open_page()
    strip = images(at)["strip"]
    at = ok(at.number_input(key="latent_to_mnist").set_value(1500).run())
    changed = images(at)["strip"]
    assert changed[0] == strip[0] and changed[-1] != strip[-1]
    at = ok(at.slider(key="latent_steps").set_value(5).run())
    assert len(images(at)["strip"]) == 5
    at = ok(at.number_input(key="latent_row_mnist").set_value(42).run())
    at = ok(next(b for b in at.button if b.label == "Start from the inspected point").click().run())
    assert at.session_state["latent_from_mnist"] == 42


def test_a_missing_vae_is_a_clear_message(tmp_path, monkeypatch):
    with app_pages.checkpoints_at(tmp_path, monkeypatch):
        at = open_page()
        assert not at.exception and at.error[0].value.startswith(f"No VAE checkpoint for MNIST in {tmp_path}")


def test_a_broken_vae_is_a_clear_message(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "vae.safetensors").write_bytes(b"not a checkpoint")
    with app_pages.checkpoints_at(tmp_path, monkeypatch):
        at = open_page()
        assert not at.exception and "The vae model for MNIST is unavailable" in at.error[0].value


@pytest.mark.realdata
def test_the_whole_test_split_when_its_files_are_present(monkeypatch):
    monkeypatch.setenv("GENMODELS_DATA", os.environ.get("GENMODELS_DATA") or "/work/shared/datasets")
    at = ok(open_page("fashion"))
    at = ok(at.toggle(key="latent_full_fashion").set_value(True).run())
    spec = json.loads(at.get_by_key("latent_scatter").proto.spec)
    assert sum(len(trace["customdata"]) for trace in spec["data"] if "customdata" in trace) == 10_000
    at = ok(at.number_input(key="latent_row_fashion_full").set_value(9999).run())
    assert any("test index 9999" in m.value for m in at.markdown)
    assert ok(at.slider(key="latent_pc1_fashion_full").set_value(1.0).run())


def test_no_full_split_toggle_without_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_DATA", str(tmp_path))
    assert not ok(open_page()).toggle


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_umap_projection_over_the_confidence_background(dataset):
    at = ok(open_page(dataset))
    spec = json.loads(at.get_by_key("latent_scatter").proto.spec)
    assert spec["data"][0]["type"] == "heatmap" and spec["data"][0]["name"] == "classifier confidence"  # behind
    at = ok(at.radio(key="latent_projection").set_value("UMAP").run())
    spec = json.loads(at.get_by_key("latent_scatter").proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"] == "UMAP 1" and spec["data"][0]["type"] == "heatmap"
    heatmap = spec["data"][0]
    assert heatmap["z"]["shape"] == "40, 40" and "decoded here" in heatmap["hovertemplate"]
    assert sum(len(trace["customdata"]) for trace in spec["data"] if "customdata" in trace) == 2000
    assert not at.metric  # the explained variance belongs to PCA
    before = images(at)["decoded"]
    slider = at.slider(key=f"latent_pc1_{dataset}_umap")
    at = ok(slider.set_value(round((slider.min + slider.max) / 3, 2)).run())
    assert images(at)["decoded"] != before
    at = ok(at.checkbox(key="latent_confidence").uncheck().run())
    spec = json.loads(at.get_by_key("latent_scatter").proto.spec)
    assert all(trace["type"] != "heatmap" for trace in spec["data"])


def test_your_image_is_drawn_with_its_ellipse_and_decoded_on_arrival():
    from genmodels import api
    from genmodels.latent import unit_images
    from genmodels.summary import load_summary
    from genmodels.your_image import vae_view

    summary = load_summary("mnist", prefer_full=False)
    image = unit_images(summary.subset_images[:1])[0, 0].numpy()
    view = vae_view(api.load_generator("vae", "mnist", device="cpu"), image)
    at = ok(
        app_pages.open_page(
            "latent_space", "mnist", your_image_encoding={"mnist": (view.mu, view.draws)}, your_image_select=True
        )
    )
    spec = json.loads(at.get_by_key("latent_scatter").proto.spec)
    star = next(trace for trace in spec["data"] if trace["name"] == "your image")
    assert any(trace["name"] == "1σ of q(z|x)" for trace in spec["data"])
    assert at.slider(key="latent_pc1_mnist").value == pytest.approx(star["x"][0], abs=0.01)
    assert "your_image_select" not in at.session_state

"""GAN vs VAE page (AppTest): both datasets render; class, seed and interpolation classes change the numbers and
images."""

import shutil

import pytest

from genmodels.checkpoint import checkpoint_path, shipped_generators
from genmodels.kinds import KINDS
from tests import app_pages

MODELS = ["Conditional GAN", "GAN + label mapper", "VAE"]
REPORTS = ("cgan", "gan", "vae")  # the reports' three models, which most tests below compare
pytestmark = pytest.mark.checkpoints


def open_page(dataset="mnist", kinds=REPORTS):
    """The page comparing `kinds` (None: the models it starts with, the first four shipped)."""
    at = app_pages.open_page("gan_vs_vae", dataset, timeout=180)
    return at if kinds is None or at.exception else pick(at, dataset, kinds)


ok = app_pages.rendered_cleanly
figures = app_pages.figure_rows


def sources(row):
    return [src for src, _ in row]


def captions(row):
    return [caption for _, caption in row]


def quality(at):
    return at.dataframe[0].value


def pick(at, dataset, kinds):
    """Compare these models."""
    return ok(at.multiselect(key=f"compare_models_{dataset}").set_value(list(kinds)).run())


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_renders_quality_stability_and_stored_metrics(dataset):
    at = ok(open_page(dataset))
    table = quality(at)
    assert list(table.index) == [*MODELS, "Real test images (S0)"]
    assert all(table["S1 / S0 accuracy (100 images)"].str.endswith("%"))
    assert all(table.loc[m, "accuracy, all classes"].endswith("%") for m in MODELS)
    stability = at.dataframe[1].value
    assert list(stability.index) == MODELS and (stability["epochs logged"] > 0).all()
    assert [len(curve) for curve in stability["loss per epoch"]] == list(stability["epochs logged"])
    assert list(stability["loss"]) == ["loss_g", "loss_g", "loss"]
    spreads = table["spread, all classes (real = 1)"]
    assert spreads["Real test images (S0)"] == "1.00" and all(0 < float(spreads[m]) < 2 for m in MODELS)
    assert any(m.value.startswith("Variety: the ") for m in at.markdown)
    stored = at.dataframe[2].value
    assert "classifier confidence, last epoch-end check" in stored.index and list(stored.columns) == MODELS
    assert "FID on classifier features (lower is better)" in stored.index and "evaluation.fid" not in stored.index
    assert not stored.isna().any().any() and "None" not in stored.to_string()
    assert stored.loc["class accuracy", "Conditional GAN"].endswith("%")
    assert stored.loc["test neg-ELBO (nats)", "Conditional GAN"] == "—"
    # three side-by-side galleries and three interpolation strips (+ three rows of memorisation pairs with the data)
    assert len(figures(at)) in (6, 9)


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_an_mlp_model_against_its_convolutional_counterpart(dataset):
    conv = {"cgan": "dcgan", "vae": "conv_vae"}
    pairs = [(mlp, c) for mlp, c in conv.items() if c in shipped_generators(dataset)]
    if not pairs:
        pytest.skip(f"no convolutional model is shipped for {dataset}")
    at = ok(open_page(dataset, kinds=None))
    conditional = [kind for kind in shipped_generators(dataset) if KINDS[kind].conditional]
    assert at.multiselect(key=f"compare_models_{dataset}").value == conditional[:4]  # MLP and conv by default
    for mlp, c in pairs:
        at = pick(at, dataset, [mlp, c])
        titles = [KINDS[mlp].display_title, KINDS[c].display_title]
        assert list(quality(at).index) == [*titles, "Real test images (S0)"]
        assert list(at.dataframe[1].value.index) == titles and list(at.dataframe[2].value.columns) == titles
        assert len(figures(at)) in (4, 6)  # two galleries and two strips (+ two rows of memorisation pairs)


def test_another_class_changes_the_numbers_and_images():
    at = open_page("fashion")
    before, images = quality(at), sources(figures(at)[0])
    at = ok(at.selectbox(key="compare_class").set_value(6).run())
    after = quality(at)
    assert "accuracy on Shirt" in after.columns and "accuracy on T-shirt/top" in before.columns
    assert list(after["accuracy on Shirt"][:3]) != list(before["accuracy on T-shirt/top"][:3])
    assert set(sources(figures(at)[0])).isdisjoint(images)
    assert all(c.endswith("%") for c in captions(figures(at)[0]))


def test_another_seed_changes_the_samples_and_the_interpolation_classes_the_strips():
    at = open_page()
    side = sources(figures(at)[0])
    at = ok(at.number_input(key="compare_seed").set_value(7).run())
    assert set(sources(figures(at)[0])).isdisjoint(side)
    strip = sources(figures(at)[3])
    at = ok(at.selectbox(key="compare_to").set_value(8).run())
    changed = sources(figures(at)[3])
    assert changed[0] == strip[0] and changed[-1] != strip[-1]
    assert any("8" == c.split(" ")[0] for c in captions(figures(at)[3])[-2:])


def test_missing_and_corrupt_generators_leave_the_rest_working(tmp_path, monkeypatch):
    for kind in ("classifier", "vae"):
        (tmp_path / "mnist").mkdir(exist_ok=True)
        shutil.copy(checkpoint_path(kind, "mnist"), tmp_path / "mnist" / f"{kind}.safetensors")
    (tmp_path / "mnist" / "cgan.safetensors").write_bytes(b"not a checkpoint")
    with app_pages.checkpoints_at(tmp_path, monkeypatch):
        at = open_page(kinds=None)
        assert not at.exception
        errors = " ".join(e.value for e in at.error)
        assert "The cgan model for MNIST is unavailable" in errors and "gan model" not in errors.replace("cgan", "")
        assert at.multiselect(key="compare_models_mnist").options == ["Conditional GAN", "VAE"]  # no gan file: absent
        assert list(quality(at).index) == ["VAE", "Real test images (S0)"]


def test_evaluation_tables_per_class_accuracy_and_coverage():
    """The per-class accuracy and class-coverage bars (percent) come from each checkpoint's stored evaluation."""
    from genmodels.checkpoint import read_metadata

    at = ok(open_page("fashion"))
    accuracy, coverage = (frame.value for frame in at.dataframe[-2:])
    assert accuracy.index[-1] == "Ankle boot" and list(accuracy.columns) == MODELS
    assert coverage.columns[0] == "real test split" and coverage["real test split"].sum() == pytest.approx(100.0)
    stored = read_metadata(checkpoint_path("cgan", "fashion"))["evaluation"]
    assert (accuracy["Conditional GAN"] / 100).tolist() == pytest.approx(stored["per_class_accuracy"])
    assert (coverage["GAN + label mapper"] / 100).tolist() == pytest.approx(
        read_metadata(checkpoint_path("gan", "fashion"))["evaluation"]["class_histogram"]
    )


@pytest.mark.realdata
def test_memorisation_shows_samples_beside_their_nearest_training_images():
    from genmodels.datasets import missing_files

    if missing_files("mnist"):
        pytest.skip("the full MNIST training set is absent (set GENMODELS_DATA)")
    at = ok(open_page("mnist"))
    texts = [caption for row in figures(at) for caption in captions(row)]
    assert sum(t.startswith("d=") for t in texts) >= 5
    assert any("Each pair: a generated image above" in c.value for c in at.caption)


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_variety_names_the_model_whose_samples_of_a_class_look_most_alike(dataset):
    at = ok(open_page(dataset))
    spreads = quality(at)["spread, all classes (real = 1)"].map(float)
    narrowest = spreads.idxmin()
    assert any(m.value.startswith(f"Variety: the {narrowest} varies least") for m in at.markdown)
    assert spreads["GAN + label mapper"] >= 0.75  # the matched mapper; unmatched it drew nearly one image a class


def test_the_same_class_at_both_ends_asks_for_two_classes():
    at = open_page()
    strips = sum("largest frame-to-frame change" in m.value for m in at.markdown)
    images = len(figures(at))
    at = ok(at.selectbox(key="compare_to").set_value(0).run())
    assert any("two different classes" in i.value for i in at.info) and strips == 3
    assert (
        not any("largest frame-to-frame change" in m.value for m in at.markdown) and len(figures(at)) == images - strips
    )


def test_the_page_reads_the_shipped_numbers_instead_of_measuring(monkeypatch):
    """Numbers that do not depend on the widgets come from checkpoints/<dataset>/comparison.json, for every position
    of the samples-per-class slider: nothing is sampled, classified or fitted for them on the page."""
    import streamlit as st

    from genmodels import compare

    def refuse(*args, **kwargs):
        raise AssertionError("the page measured what evaluate --write ships")

    monkeypatch.setattr(compare, "model_scores", refuse)
    monkeypatch.setattr(compare, "summary_baseline", refuse)
    st.cache_data.clear()
    shipped = compare.read_comparison(compare.comparison_path("mnist"))
    at = ok(open_page())
    for count in (50, 200):
        at = ok(at.slider(key="compare_n").set_value(count).run())
        table = quality(at)
        assert table.loc["VAE", "accuracy, all classes"] == f"{shipped.scores['vae'][count].accuracy:.1%}"
        assert (
            table.loc["Conditional GAN", "S1 / S0 accuracy (100 images)"]
            == f"{shipped.scores['cgan'][10].accuracy:.1%}"
        )
        assert f"FID to real (real: {shipped.floor:.1f})" in table.columns

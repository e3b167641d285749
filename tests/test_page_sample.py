"""Sample page (AppTest): renders for both datasets; class, seed, latent shifts, presets and checkpoints change the
output."""

import shutil

import pytest

from genmodels.checkpoint import checkpoint_path, shipped_generators
from genmodels.datasets import dataset_info
from genmodels.kinds import KINDS
from tests import app_pages

pytestmark = pytest.mark.checkpoints


def open_page(dataset="mnist"):
    return app_pages.open_page("sample", dataset, timeout=120)


def gallery(at):
    """The generated images (content-addressed URLs) and their captions: every image list but the interpolation
    strip."""
    rows = at.get("image")[:-1]
    return [url for row in rows for url in row.value], [caption for row in rows for caption in row.captions]


ok = app_pages.rendered_cleanly


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_renders_with_class_names(dataset):
    at = ok(open_page(dataset))
    names = dataset_info(dataset).classes
    assert [at.selectbox(key="sample_class").format_func(c) for c in range(10)] == list(names)
    urls, captions = gallery(at)
    assert len(urls) == 10 and sum(c.startswith(names[0]) for c in captions) >= 7
    assert at.get("download_button")[0].label == "Download the grid (PNG)"
    assert len(at.get("image")[-1].value) == 10  # the interpolation strip


@pytest.mark.parametrize("dataset, label", [("mnist", 7), ("fashion", 9)])
def test_another_class_gives_other_images_that_the_classifier_agrees_with(dataset, label):
    at = open_page(dataset)
    before, _ = gallery(at)
    at = ok(at.selectbox(key="sample_class").set_value(label).run())
    after, captions = gallery(at)
    assert set(after).isdisjoint(before)
    name = dataset_info(dataset).classes[label]
    assert sum(c.startswith(name) for c in captions) >= 8
    assert float(at.metric[0].value.rstrip("%")) >= 80


def test_another_seed_and_a_reroll_give_other_images():
    at = open_page()
    first, _ = gallery(at)
    at = ok(at.number_input(key="sample_seed").set_value(5).run())
    second, _ = gallery(at)
    assert set(second).isdisjoint(first)
    roll = next(b for b in at.button if b.help == "Re-roll the seed")
    at = ok(roll.click().run())
    assert at.session_state["sample_seed"] not in (0, 5)
    assert set(gallery(at)[0]).isdisjoint(second)


def test_temperature_and_latent_shift_change_the_images():
    at = open_page()
    plain, _ = gallery(at)
    shifted = gallery(ok(at.slider(key="sample_dz0").set_value(2.5).run()))[0]
    assert shifted[0] != plain[0] and shifted[1:] == plain[1:]
    every = gallery(ok(at.radio(key="sample_edit_scope").set_value("All images").run()))[0]
    assert set(every).isdisjoint(plain)
    cooler = gallery(ok(at.slider(key="sample_temperature").set_value(0.5).run()))[0]
    assert cooler != every


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_other_models_render(kind):
    at = ok(open_page().selectbox(key="sample_kind").set_value(kind).run())
    assert len(gallery(at)[0]) == 10 and at.metric


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_every_shipped_generator_samples_in_every_mode_with_edits_and_a_strip(dataset):
    """MLP and convolutional kinds alike: the Model box offers exactly the kinds shipped for the dataset."""
    at = open_page(dataset)
    assert at.selectbox(key="sample_kind").options == [KINDS[k].display_title for k in shipped_generators(dataset)]
    for kind in shipped_generators(dataset):
        at = ok(at.selectbox(key="sample_kind").set_value(kind).run())
        for mode, count in (("One class", 10), ("Every class", 100), ("Unconditional", 10)):
            at = ok(at.radio(key="sample_mode").set_value(mode).run())
            assert len(gallery(at)[0]) == count, (kind, mode)
        plain = gallery(at)[0]
        at = ok(at.slider(key="sample_dz1").set_value(2.0).run())
        assert gallery(at)[0][0] != plain[0], kind
        assert len(at.get("image")[-1].value) == 10, kind  # the interpolation strip
        at.slider(key="sample_dz1").set_value(0.0)
        at = ok(at.radio(key="sample_mode").set_value("One class").run())


def test_presets():
    at = open_page("fashion")
    at = ok(next(b for b in at.button if b.label.startswith("10×10")).click().run())
    urls, captions = gallery(at)
    assert len(urls) == 100 and len(at.get("image")) == 11  # ten rows of ten, one class per row, and the strip
    assert [c.split(" ")[0] for c in at.get("image")[9].captions].count("Ankle") >= 8
    at = ok(next(b for b in at.button if b.label.startswith("10 images, one per class")).click().run())
    assert len(gallery(at)[0]) == 10
    at.selectbox(key="sample_class").set_value(9)
    at = ok(next(b for b in at.button if b.label.startswith("5 images")).click().run())
    urls, captions = gallery(at)
    assert len(urls) == 5 and sum(c.startswith("Ankle boot") for c in captions) >= 4
    # the disabled Checkpoint box keeps showing "Shipped" (a None option turned into "Choose an option")
    assert at.selectbox(key="sample_checkpoint_cgan_fashion").value == ""
    assert at.selectbox(key="sample_checkpoint_cgan_fashion").options == ["Shipped"]


def test_too_many_images_per_class_is_a_clear_message():
    at = open_page()
    at.radio(key="sample_mode").set_value("Every class")
    at = at.number_input(key="sample_n").set_value(11).run()
    assert not at.exception and "at most 100" in at.error[0].value


def test_interpolation_between_two_seeds():
    at = open_page()
    at = ok(at.radio(key="sample_interp_between").set_value("Two seeds").run())
    strip = at.get("image")[-1].value
    at = ok(at.number_input(key="sample_interp_seed").set_value(3).run())
    changed = at.get("image")[-1].value
    assert strip[0] == changed[0] and strip[-1] != changed[-1]


def test_a_finished_run_checkpoint_can_be_picked(make_run):
    run = make_run("cgan-mnist-mine", "finished", kind="cgan", dataset="mnist")
    shutil.copy(checkpoint_path("cgan", "mnist"), run / "cgan.safetensors")
    at = open_page()
    picker = at.selectbox(key="sample_checkpoint_cgan_mnist")
    assert picker.options == ["Shipped", "Run cgan-mnist-mine"]
    at = ok(picker.set_value("cgan-mnist-mine").run())
    assert len(gallery(at)[0]) == 10


def test_no_generator_checkpoint_is_a_clear_message(tmp_path, monkeypatch):
    with app_pages.checkpoints_at(tmp_path, monkeypatch):
        at = open_page()
        assert not at.exception
        assert at.error[0].value.startswith(f"No generator checkpoint for MNIST in {tmp_path}")


def test_only_kinds_with_a_checkpoint_are_offered_and_a_broken_one_says_why(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    for kind in ("classifier", "vae"):
        shutil.copy(checkpoint_path(kind, "mnist"), tmp_path / "mnist" / f"{kind}.safetensors")
    (tmp_path / "mnist" / "cgan.safetensors").write_bytes(b"not a checkpoint")
    with app_pages.checkpoints_at(tmp_path, monkeypatch):
        at = open_page()
        assert not at.exception
        assert at.selectbox(key="sample_kind").options == ["Conditional GAN", "VAE"]
        assert "The cgan model for MNIST is unavailable" in at.error[0].value
        at = ok(at.selectbox(key="sample_kind").set_value("vae").run())
        assert len(gallery(at)[0]) == 10


@pytest.mark.parametrize("kind", ["dcgan", "conv_vae"])
def test_a_critic_screens_the_draws_until_switched_off(kind):
    """A generator shipped with a sampling critic draws through its rejection sampling by default, at strictness 1;
    a stricter critic keeps other draws; switched off, the page shows the raw draws of the same seed and no
    strictness. Generators without one offer no switch."""
    at = ok(open_page("fashion").selectbox(key="sample_kind").set_value(kind).run())
    assert at.toggle(key="sample_screened").value is True
    screened = gallery(at)[0]
    assert at.select_slider(key="sample_strictness").value == 1.0
    at = ok(at.select_slider(key="sample_strictness").set_value(4.0).run())
    assert gallery(at)[0] != screened and len(gallery(at)[0]) == len(screened)
    at = ok(at.select_slider(key="sample_strictness").set_value(1.0).run())
    assert gallery(at)[0] == screened
    at = ok(at.toggle(key="sample_screened").set_value(False).run())
    assert gallery(at)[0] != screened and len(gallery(at)[0]) == len(screened)
    assert all(slider.key != "sample_strictness" for slider in at.select_slider)
    at = ok(at.selectbox(key="sample_kind").set_value("cgan").run())
    assert all(toggle.key != "sample_screened" for toggle in at.toggle)

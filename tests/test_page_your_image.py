"""Your image page (AppTest): an upload goes through every model on both datasets; bad uploads get their message."""

import io

import pytest
from PIL import Image, ImageDraw

from genmodels.checkpoint import shipped_generators
from genmodels.inversion import gan_kinds
from tests import app_pages

pytestmark = pytest.mark.checkpoints

SECTIONS = [
    "1. The classifier's verdict",
    "2. The VAE's view",
    "3. The GANs' view: inversion",
    "4. The nearest training images",
]


def drawing_png(dataset: str) -> bytes:
    """A dark-on-white picture: a 7 for MNIST, a trouser-like shape for Fashion-MNIST."""
    image = Image.new("RGB", (240, 240), "white")
    draw = ImageDraw.Draw(image)
    if dataset == "mnist":
        draw.line([(50, 40), (190, 40), (100, 210)], fill="black", width=18)
    else:
        draw.polygon([(70, 20), (170, 20), (190, 220), (135, 220), (120, 90), (105, 220), (50, 220)], fill=(40, 40, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(dataset: str, name: str, data: bytes):
    at = app_pages.open_page("your_image", dataset, timeout=300, your_image_mode="Upload")
    assert [i.value for i in at.info] == ["Upload an image to see what the models make of it."]
    return at.file_uploader(key=f"your_image_upload_{dataset}").set_value((name, data, "image/png")).run()


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_an_upload_goes_through_every_model(dataset):
    at = app_pages.rendered_cleanly(upload(dataset, "mine.png", drawing_png(dataset)))
    assert [s.value for s in at.subheader] == SECTIONS
    assert not at.warning
    verdict = at.get_by_key("your_image_verdict")
    assert verdict is not None
    if dataset == "mnist":
        assert '"7 (' in verdict.proto.spec  # the chart's title names the top class
    captions = [c.value for c in at.caption]
    gans = [kind for kind in gan_kinds() if kind in shipped_generators(dataset)]
    assert sum("pixel RMS distance" in c for c in captions) == len(gans)  # one inversion per shipped GAN
    assert any(c.startswith("Among 60,000 training images") or "bundled test images" in c for c in captions)
    image_captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert any("Integrated Gradients" in c for c in image_captions)
    assert "28x28, as the models see it" in image_captions and "reconstruction (decoded mean)" in image_captions
    assert image_captions.count("inverted") == len(gans)
    at = app_pages.rendered_cleanly(at.radio(key="latent_projection").set_value("UMAP").run())
    assert '"UMAP 1"' in at.get_by_key("your_image_map").proto.spec


def test_the_encoding_opens_on_the_latent_space_page():
    at = app_pages.rendered_cleanly(upload("mnist", "mine.png", drawing_png("mnist")))
    at = next(b for b in at.button if b.key == "your_image_to_latent").click().run()
    assert "mnist" in at.session_state["your_image_encoding"] and at.session_state["your_image_select"]


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("notes.png", b"not an image at all", "This file is not an image"),
        ("blank.png", None, "The image is blank"),
    ],
)
def test_a_bad_upload_shows_one_message(name, data, message):
    if data is None:
        buffer = io.BytesIO()
        Image.new("L", (50, 50), 200).save(buffer, format="PNG")
        data = buffer.getvalue()
    at = app_pages.rendered_cleanly(upload("mnist", name, data))
    assert len(at.warning) == 1 and message in at.warning[0].value
    assert not at.subheader


def test_the_untouched_canvas_asks_for_a_drawing():
    at = app_pages.rendered_cleanly(app_pages.open_page("your_image", "mnist"))
    assert [i.value for i in at.info] == ["The canvas is empty: draw something first."]
    assert not at.subheader

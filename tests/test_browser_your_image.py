"""The Your image page in Debian's Chromium: draw a digit with the mouse on the canvas, then upload a file, on both
datasets; each time every section appears with no exception."""

import io
import math

import pytest
from PIL import Image, ImageDraw

from tests import test_browser
from tests.test_browser import choose, go_to, no_exception, settle, shot

pytestmark = pytest.mark.browser
# the browser fixtures of tests/test_browser.py (one app server and one Chromium per module)
app_url, browser, page = test_browser.app_url, test_browser.browser, test_browser.page

SECTIONS = (
    "1. The classifier's verdict",
    "2. The VAE's view",
    "3. The GANs' view: inversion",
    "4. The nearest training images",
)
SLOW = 480_000  # ms: a server's first input loads every model and indexes 60,000 images; 240 s ran out at load 27


def stroke(page, points) -> None:
    """Press, move through `points` (page pixels) in small steps, release: one stroke of a mouse drawing."""
    page.mouse.move(*points[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=False):
        page.mouse.move(x1, y1, steps=max(2, int(math.dist((x0, y0), (x1, y1)) // 8)))
    page.mouse.up()


def draw_on_canvas(page, unit_points) -> None:
    """Draw a polyline given in [0, 1] canvas coordinates on the page's drawing canvas."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    box = canvas.bounding_box()
    stroke(page, [(box["x"] + u * box["width"], box["y"] + v * box["height"]) for u, v in unit_points])


def every_section_shown(page) -> None:
    main = page.locator('[data-testid="stMain"]')
    for title in SECTIONS:
        main.get_by_role("heading", name=title).wait_for(timeout=SLOW)
    main.get_by_text("pixel RMS distance").nth(1).wait_for(timeout=SLOW)  # both GANs inverted
    main.get_by_text("as the models see it").wait_for()
    main.get_by_text("Integrated Gradients").wait_for()
    main.get_by_text("reconstruction (decoded mean)").wait_for()
    main.get_by_text("Among ").wait_for(timeout=SLOW)
    settle(page)
    no_exception(page)
    assert main.locator('[data-testid="stAlertContentWarning"]').count() == 0


def upload_file(page, tmp_path, name: str, image: Image.Image) -> None:
    page.locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
    path = tmp_path / name
    image.save(path)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))


def garment() -> Image.Image:
    image = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(image).polygon(
        [(90, 30), (210, 30), (240, 280), (170, 280), (150, 120), (130, 280), (60, 280)], fill=(30, 30, 50)
    )
    return image


def digit_photo() -> Image.Image:
    image = Image.new("RGB", (300, 300), (235, 235, 230))
    ImageDraw.Draw(image).ellipse((90, 40, 210, 260), outline=(20, 20, 30), width=22)
    return image


@pytest.mark.parametrize("dataset", ["MNIST", "Fashion-MNIST"])
def test_draw_then_upload_through_every_model(page, tmp_path, dataset):
    if dataset != "MNIST":
        choose(page, page.locator('[data-testid="stSidebar"]'), "Dataset", dataset)
    go_to(page, "Your image")
    page.get_by_text("The canvas is empty: draw something first.").wait_for(timeout=SLOW)
    if dataset == "MNIST":  # a 4: down-stroke, across, then the long vertical
        draw_on_canvas(page, [(0.35, 0.15), (0.25, 0.6), (0.75, 0.6)])
        draw_on_canvas(page, [(0.62, 0.2), (0.62, 0.9)])
    else:  # a T-shirt's outline
        draw_on_canvas(
            page,
            [
                (0.2, 0.2),
                (0.4, 0.1),
                (0.6, 0.1),
                (0.8, 0.2),
                (0.9, 0.4),
                (0.75, 0.45),
                (0.72, 0.9),
                (0.28, 0.9),
                (0.25, 0.45),
                (0.1, 0.4),
                (0.2, 0.2),
            ],
        )
    every_section_shown(page)
    shot(page, f"your-image-drawn-{dataset.lower()}")
    upload_file(page, tmp_path, "mine.png", digit_photo() if dataset == "MNIST" else garment())
    page.get_by_text("uploaded (in greyscale)").wait_for(timeout=SLOW)
    every_section_shown(page)
    shot(page, f"your-image-uploaded-{dataset.lower()}")


def test_a_broken_upload_shows_its_message(page, tmp_path):
    go_to(page, "Your image")
    page.locator('[data-testid="stRadio"]').get_by_text("Upload", exact=True).click()
    data = io.BytesIO()
    digit_photo().save(data, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data.getvalue()[:400])
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
    page.get_by_text("The file is truncated or corrupt").wait_for(timeout=SLOW)
    settle(page)
    no_exception(page)

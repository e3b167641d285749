"""Your image input: MNIST- and Fashion-MNIST-style preprocessing, and one clear message for each kind of bad input."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from genmodels.drawing import MAX_PIXELS, ImageInputError, prepare, read_canvas, read_upload


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=options.pop("format", "PNG"), **options)
    return buffer.getvalue()


def paper_with_stroke(size=(300, 200), box=(40, 30, 90, 170), width=12) -> Image.Image:
    """Dark ink on white paper: a slanted stroke inside `box` (left, top, right, bottom)."""
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).line([box[:2], box[2:]], fill="black", width=width)
    return image


def ink_box(pixels: np.ndarray, threshold=0.2):
    rows = np.flatnonzero((pixels > threshold).any(1))
    cols = np.flatnonzero((pixels > threshold).any(0))
    return rows[0], cols[0], rows[-1] + 1, cols[-1] + 1


def centre_of_mass(pixels: np.ndarray):
    rows, cols = np.indices(pixels.shape)
    return (rows * pixels).sum() / pixels.sum(), (cols * pixels).sum() / pixels.sum()


def test_mnist_style_inverts_crops_fits_20_and_centres_the_mass():
    prepared = prepare(read_upload(png(paper_with_stroke())), "mnist")
    pixels = prepared.pixels
    assert pixels.shape == (28, 28) and pixels.dtype == np.float32 and prepared.inverted
    assert pixels.max() == pytest.approx(1.0) and pixels.min() >= 0.0
    assert pixels[0].max() < 0.05 and pixels[:, 0].max() < 0.05, "the paper became the dark background"
    top, left, bottom, right = ink_box(pixels, 0.05)
    assert max(bottom - top, right - left) in (19, 20, 21)  # the 20x20 box, give or take a faint Lanczos fringe
    row, col = centre_of_mass(pixels)
    assert abs(row - 13.5) <= 0.6 and abs(col - 13.5) <= 0.6
    assert prepared.box[0] >= 20 and prepared.box[2] <= 185  # the stroke's box in the input, line caps included


def test_mnist_style_keeps_the_aspect_ratio():
    tall = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(tall).rectangle((190, 50, 210, 350), fill=0)  # 20 x 300: a "1"
    pixels = prepare(read_upload(png(tall)), "mnist").pixels
    top, left, bottom, right = ink_box(pixels, 0.5)
    assert bottom - top == 20 and right - left <= 2


def test_light_ink_on_dark_is_not_inverted():
    dark = Image.new("L", (100, 100), 0)
    ImageDraw.Draw(dark).ellipse((20, 10, 80, 90), outline=255, width=8)
    prepared = prepare(read_upload(png(dark)), "mnist")
    assert not prepared.inverted and prepared.pixels[14, 14] < 0.1 and prepared.pixels.max() == pytest.approx(1.0)


def test_fashion_style_trims_fits_the_longest_side_and_centres():
    photo = Image.new("RGB", (500, 400), (250, 250, 250))
    ImageDraw.Draw(photo).rectangle((100, 150, 400, 250), fill=(60, 40, 30))  # a wide dark garment on white
    prepared = prepare(read_upload(png(photo)), "fashion")
    top, left, bottom, right = ink_box(prepared.pixels, 0.5)
    assert prepared.inverted and (left, right) == (0, 28)
    assert bottom - top in (9, 10, 11) and abs((top + bottom) / 2 - 14) <= 0.5


def test_the_canvas_drawing_reads_as_ink_on_white_paper():
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)  # transparent paper, as a canvas without a background gives
    rgba[60:220, 130:150] = (0, 0, 0, 255)
    grey = read_canvas(rgba)
    assert grey[0, 0] == 1.0 and grey[100, 140] == 0.0
    assert prepare(grey, "mnist").pixels.max() == pytest.approx(1.0)


def test_webp_jpeg_and_bmp_uploads_are_read():
    image = paper_with_stroke()
    for fmt in ("WEBP", "JPEG", "BMP"):
        assert prepare(read_upload(png(image, format=fmt)), "mnist").inverted


@pytest.mark.parametrize("rgba", [None, np.full((280, 280, 4), 255, dtype=np.uint8)], ids=["no-data", "untouched"])
def test_an_empty_canvas_is_refused(rgba):
    with pytest.raises(ImageInputError, match="The canvas is empty: draw something first"):
        read_canvas(rgba)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_a_blank_uniform_image_is_refused(value):
    with pytest.raises(ImageInputError, match="The image is blank"):
        prepare(read_upload(png(Image.new("L", (64, 64), value))), "mnist")


def test_a_non_image_file_is_refused():
    with pytest.raises(ImageInputError, match="This file is not an image"):
        read_upload(b"name,label\nseven,7\n" * 20)


def test_an_unsupported_image_format_is_refused():
    with pytest.raises(ImageInputError, match="GIF images are not supported"):
        read_upload(png(Image.new("L", (32, 32)), format="GIF"))


def test_an_empty_file_is_refused():
    with pytest.raises(ImageInputError, match="The file is empty"):
        read_upload(b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_truncated_file_is_refused(fmt):
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8))
    data = png(noisy, format=fmt)
    with pytest.raises(ImageInputError, match="truncated or corrupt"):
        read_upload(data[: len(data) // 2])


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (8-bit grey) with one tiny data chunk: what a decompression bomb
    looks like before decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize("side", [7_000, 50_000], ids=["over-our-limit", "over-pillows-bomb-limit"])
def test_a_decompression_bomb_is_refused_before_decoding(side):
    assert side * side > MAX_PIXELS
    with pytest.raises(ImageInputError, match="megapixels. Scale it down first"):
        read_upload(png_header_only(side, side))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_an_animated_image_is_refused(fmt):
    frames = [Image.new("L", (32, 32), 0), Image.new("L", (32, 32), 255)]
    data = png(frames[0], format=fmt, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageInputError, match="This image is animated"):
        read_upload(data)


def test_a_16_bit_image_is_refused():
    deep = Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    data = png(deep)
    assert data[24] == 16  # really a 16-bit PNG
    with pytest.raises(ImageInputError, match="This is a 16-bit image"):
        read_upload(data)

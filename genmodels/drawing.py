"""Your own image as a model input: read a canvas drawing or an uploaded file, refuse bad input with one clear
message, and preprocess it the way MNIST (digits) or Fashion-MNIST (garments) made their 28x28 images."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

UPLOAD_FORMATS = ("PNG", "JPEG", "BMP", "WEBP")
MAX_UPLOAD_BYTES = 20 * 2**20
MAX_PIXELS = 40_000_000  # ~6,300 x 6,300: any photo a phone takes; a decompression bomb claims far more
MIN_CONTRAST = 0.08  # a darkest-to-brightest spread below this (of the full range) is a blank or uniform image
INK_THRESHOLD = 0.2  # share of the ink's peak above which a pixel counts as ink for the bounding box
DIGIT_BOX = 20  # MNIST: the ink scaled to fit 20x20, then placed in 28x28 by its centre of mass
SIDE = 28


class ImageInputError(ValueError):
    """An input the page refuses, with the one message people see."""


class EmptyCanvas(ImageInputError):
    """Nothing drawn yet: a hint rather than a fault."""


@dataclass
class Prepared:
    """A 28x28 model input in [0, 1] (light ink on dark, like the datasets) and how it was made from the input."""

    pixels: np.ndarray  # float32 [28, 28]
    inverted: bool  # the input was dark on light and was negated
    box: tuple[int, int, int, int]  # (top, left, bottom, right) of the ink in the input, bottom/right exclusive


def read_upload(data: bytes) -> np.ndarray:
    """Bytes of an uploaded file -> greyscale float32 [H, W] in [0, 1]; ImageInputError with the reason otherwise."""
    if not data:
        raise ImageInputError("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageInputError(f"The file is {len(data) / 2**20:.0f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; the size check below decides instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageInputError(_too_big_message(None)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ImageInputError("This file is not an image: upload a PNG, JPEG, BMP or WebP file.") from None
    with image:
        if image.format not in UPLOAD_FORMATS:
            raise ImageInputError(f"{image.format} images are not supported: upload a PNG, JPEG, BMP or WebP file.")
        width, height = image.size
        if width * height > MAX_PIXELS:  # checked on the header, before a single pixel is decoded
            raise ImageInputError(_too_big_message((width, height)))
        if getattr(image, "n_frames", 1) > 1:
            raise ImageInputError("This image is animated: upload a single still frame.")
        if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F") or _png_bit_depth(data) == 16:
            raise ImageInputError("This is a 16-bit image: save it with 8 bits per channel and upload it again.")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageInputError(f"The file is truncated or corrupt ({exc}).") from None
        return _to_grey(image)


def _too_big_message(size: tuple[int, int] | None) -> str:
    shown = f"{size[0]:,} x {size[1]:,} pixels" if size else "far too many pixels"
    return f"The image has {shown}; the limit is {MAX_PIXELS // 1_000_000} megapixels. Scale it down first."


def _png_bit_depth(data: bytes) -> int | None:
    """The bit depth in a PNG's IHDR (Pillow reads 16-bit colour PNGs as 8-bit RGB without saying so)."""
    return data[24] if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24 else None


def _to_grey(image: Image.Image) -> np.ndarray:
    """A decoded image -> greyscale float32 [H, W] in [0, 1]; transparent parts count as white paper."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def read_canvas(rgba: np.ndarray | None) -> np.ndarray:
    """The canvas's RGBA pixels [H, W, 4] (uint8) -> greyscale [H, W] in [0, 1] on white paper."""
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.size == 0:
        raise EmptyCanvas("The canvas is empty: draw something first.")
    image = Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), mode="RGBA")
    grey = _to_grey(image)
    if grey.max() - grey.min() < MIN_CONTRAST:
        raise EmptyCanvas("The canvas is empty: draw something first.")
    return grey


def prepare(grey: np.ndarray, dataset: str) -> Prepared:
    """Greyscale [H, W] in [0, 1] -> the 28x28 input of `dataset`'s models: MNIST's steps for digits, Fashion-MNIST's
    for garments. ImageInputError for a blank or uniform image."""
    grey = np.asarray(grey, dtype=np.float32)
    if grey.ndim != 2 or min(grey.shape) < 1:
        raise ImageInputError("The image has no pixels.")
    if float(grey.max() - grey.min()) < MIN_CONTRAST:
        raise ImageInputError("The image is blank (one uniform colour): there is nothing in it to recognise.")
    ink, inverted = _ink(grey)
    box = _ink_box(ink)
    top, left, bottom, right = box
    crop = ink[top:bottom, left:right]
    pixels = _fit_digit(crop) if dataset == "mnist" else _fit_garment(crop)
    return Prepared(pixels, inverted, box)


def _ink(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """(ink [H, W] in [0, 1], light on dark, its background at 0; whether the input was negated).

    The background is the border's median: dark-on-light drawings and photos of garments on white are negated.
    """
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    inverted = background > 0.5
    ink = 1.0 - grey if inverted else grey
    ink = np.clip(ink - (1.0 - background if inverted else background), 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageInputError("The image is blank (one uniform colour): there is nothing in it to recognise.")
    return ink / peak, inverted


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the pixels above INK_THRESHOLD."""
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _resize(ink: np.ndarray, longest: int) -> np.ndarray:
    """Scale so the longest side is `longest` pixels, keeping the aspect ratio (Lanczos, as anti-aliased as MNIST's)."""
    height, width = ink.shape
    scale = longest / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.asarray(Image.fromarray(ink, mode="F").resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    resized = np.clip(resized, 0.0, None)  # Lanczos rings slightly below zero beside strokes
    return resized / max(float(resized.max()), 1e-6)


def _fit_digit(crop: np.ndarray) -> np.ndarray:
    """MNIST: fit the ink into 20x20 keeping its aspect, then place it in 28x28 with its centre of mass centred."""
    digit = _resize(crop, DIGIT_BOX)
    height, width = digit.shape
    mass = digit.sum()
    rows, cols = np.indices(digit.shape)
    com_row, com_col = (rows * digit).sum() / mass, (cols * digit).sum() / mass
    # integer shifts keep strokes sharp; the digit stays whole inside the 28x28 frame
    top = int(np.clip(round((SIDE - 1) / 2 - com_row), 0, SIDE - height))
    left = int(np.clip(round((SIDE - 1) / 2 - com_col), 0, SIDE - width))
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + height, left : left + width] = digit
    return out


def _fit_garment(crop: np.ndarray) -> np.ndarray:
    """Fashion-MNIST: the trimmed garment scaled so its longest side is 28, centred by its bounding box."""
    garment = _resize(crop, SIDE)
    height, width = garment.shape
    top, left = (SIDE - height) // 2, (SIDE - width) // 2
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    out[top : top + height, left : left + width] = garment
    return out

"""Image grids and PNG encoding for generated batches."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image


def make_grid(images: torch.Tensor, nrow: int = 10, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """images [N, 1, 28, 28] or [N, 28, 28] in [0, 1] -> uint8 grid [H, W] with `nrow` images per row."""
    pixels = images.detach().reshape(-1, 28, 28).clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    n = len(pixels)
    if n == 0:
        raise ValueError("cannot make a grid of zero images")
    if nrow < 1:
        raise ValueError(f"nrow must be at least 1, got {nrow}")
    cols = min(nrow, n)
    rows = -(-n // cols)
    cell = 28 + padding
    grid = np.full((rows * cell + padding, cols * cell + padding), pad_value, dtype=np.uint8)
    for i, image in enumerate(pixels):
        r, c = divmod(i, cols)
        grid[padding + r * cell : padding + r * cell + 28, padding + c * cell : padding + c * cell + 28] = image
    return grid


def png_bytes(array: np.ndarray, scale: int = 1) -> bytes:
    """A uint8 grayscale array as PNG bytes, optionally upscaled by an integer factor (nearest)."""
    image = Image.fromarray(array, mode="L")
    if scale > 1:
        image = image.resize((array.shape[1] * scale, array.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def grid_png(images: torch.Tensor, nrow: int = 10, padding: int = 2, scale: int = 1) -> bytes:
    """images in [0, 1] -> PNG bytes of their grid."""
    return png_bytes(make_grid(images, nrow, padding), scale)


def png_base64(pixels: np.ndarray, scale: int = 1) -> list[str]:
    """uint8 images [N, H, W] -> the base64 PNG of each, upscaled by an integer factor (nearest)."""
    return [base64.b64encode(png_bytes(image, scale)).decode() for image in pixels]

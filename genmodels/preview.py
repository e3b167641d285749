"""The Sample page's default view, drawn once from the shipped weights and stored beside them, so that a cold start
shows its first images while PyTorch is still loading. Importing this module does not import torch."""

from __future__ import annotations

import base64
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genmodels.kinds import generator_kinds, judge_kind
from genmodels.paths import atomic_write_bytes, checkpoint_file, checkpoints_dir

PREVIEW_FILE = "sample_preview.json"
PREVIEW_VERSION = 1
# The Sample page opens on this request: the first generator kind, one class, these values
DEFAULT_CLASS = 0
DEFAULT_COUNT = 10
DEFAULT_SEED = 0
DEFAULT_TEMPERATURE = 1.0
IMAGE_SIDE = 28


@dataclass(frozen=True)
class Preview:
    """The default request's images [N, 28, 28] as uint8, their classifier captions and the agreement share."""

    kind: str
    pixels: np.ndarray
    captions: list[str]
    accuracy: float | None


def preview_path(dataset: str, root: str | os.PathLike | None = None) -> Path:
    return checkpoints_dir(root) / dataset / PREVIEW_FILE


def default_kind() -> str:
    """The generator kind the Sample page opens on."""
    return generator_kinds()[0]


def _weights(dataset: str, root: str | os.PathLike | None) -> dict[str, str | None]:
    """The weights hash of each checkpoint the default view is drawn from (None where unreadable)."""
    hashes: dict[str, str | None] = {}
    for kind in (default_kind(), judge_kind()):
        try:
            meta = json.loads(checkpoint_file(kind, dataset, root).with_suffix(".json").read_text())
            hashes[kind] = meta.get("weights_sha256")
        except (OSError, ValueError, AttributeError):
            hashes[kind] = None
    return hashes


def read_preview(dataset: str, root: str | os.PathLike | None = None) -> Preview | None:
    """The stored default view; None when it is missing, unreadable, or was drawn from other weights than the
    shipped ones (a stale preview is never shown)."""
    try:
        data = json.loads(preview_path(dataset, root).read_text())
        weights = _weights(dataset, root)
        if data["version"] != PREVIEW_VERSION or data["weights"] != weights or None in weights.values():
            return None
        pixels = np.asarray(data["pixels"], dtype=np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
        captions = [str(c) for c in data["captions"]]
        if len(captions) != len(pixels) or data["kind"] != default_kind():
            return None
        return Preview(data["kind"], pixels, captions, data["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def png_base64(pixels: np.ndarray) -> list[str]:
    """uint8 images [N, H, W] -> base64 PNG of each (Pillow, which the app loads anyway; no torch)."""
    from PIL import Image

    encoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    return encoded


def draw_preview(dataset: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The default view drawn now from the shipped weights, the way the Sample page draws it (imports torch)."""
    from genmodels import api
    from genmodels.datasets import dataset_info
    from genmodels.gallery import display_pixels, generate_gallery

    kind = default_kind()
    model = api.load_generator(kind, dataset, root=root)
    classifier = api.load_classifier(dataset, root=root)
    gallery = generate_gallery(model, classifier, DEFAULT_CLASS, DEFAULT_COUNT, DEFAULT_SEED, DEFAULT_TEMPERATURE)
    pixels = np.stack(display_pixels(gallery.images, scale=1))
    return {
        "version": PREVIEW_VERSION,
        "kind": kind,
        "weights": _weights(dataset, root),
        "pixels": pixels.ravel().tolist(),
        "captions": gallery.captions(dataset_info(dataset).classes),
        "accuracy": gallery.accuracy,
    }


def write_preview(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """Draw the default view and store it beside the checkpoints."""
    path = preview_path(dataset, root)
    atomic_write_bytes(path, (json.dumps(draw_preview(dataset, root)) + "\n").encode())
    return path

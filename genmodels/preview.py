"""The Sample page's default view, drawn once from the shipped weights and stored beside them, so that a cold start
shows its first images while PyTorch is still loading. Importing this module imports neither torch nor numpy: the
page shows the stored PNGs as they are."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genmodels.kinds import generator_kinds, judge_kind
from genmodels.paths import atomic_write_bytes, checkpoint_file, checkpoints_dir

PREVIEW_FILE = "sample_preview.json"
PREVIEW_VERSION = 2
# The Sample page opens on this request: the first generator kind, one class, these values
DEFAULT_CLASS = 0
DEFAULT_COUNT = 10
DEFAULT_SEED = 0
DEFAULT_TEMPERATURE = 1.0
IMAGE_SIDE = 28
DISPLAY_SCALE = 3  # the Sample page draws its images at three times their size, crisp (nearest neighbour)


@dataclass(frozen=True)
class Preview:
    """The default request's images as base64 PNGs at DISPLAY_SCALE, their uint8 pixels (N x 28 x 28, flat), their
    classifier captions and the agreement share."""

    kind: str
    pngs: list[str]
    pixels: list[int]
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
        pngs, pixels = [str(png) for png in data["pngs"]], [int(p) for p in data["pixels"]]
        captions = [str(c) for c in data["captions"]]
        if not len(captions) == len(pngs) == len(pixels) // IMAGE_SIDE**2 or data["kind"] != default_kind():
            return None
        return Preview(data["kind"], pngs, pixels, captions, data["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def draw_preview(dataset: str, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The default view drawn now from the shipped weights, the way the Sample page draws it (imports torch)."""
    import numpy as np

    from genmodels import api
    from genmodels.datasets import dataset_info
    from genmodels.gallery import display_pixels, generate_gallery
    from genmodels.images import png_base64

    kind = default_kind()
    model = api.load_generator(kind, dataset, root=root)
    classifier = api.load_classifier(dataset, root=root)
    gallery = generate_gallery(model, classifier, DEFAULT_CLASS, DEFAULT_COUNT, DEFAULT_SEED, DEFAULT_TEMPERATURE)
    pixels = np.stack(display_pixels(gallery.images, scale=1))
    return {
        "version": PREVIEW_VERSION,
        "kind": kind,
        "weights": _weights(dataset, root),
        "pngs": png_base64(pixels, DISPLAY_SCALE),
        "pixels": pixels.ravel().tolist(),
        "captions": gallery.captions(dataset_info(dataset).classes),
        "accuracy": gallery.accuracy,
    }


def write_preview(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """Draw the default view and store it beside the checkpoints."""
    path = preview_path(dataset, root)
    atomic_write_bytes(path, (json.dumps(draw_preview(dataset, root)) + "\n").encode())
    return path

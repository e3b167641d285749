"""The Sample page's stored default view: it matches what the shipped weights draw now, and is never shown stale."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from genmodels.kinds import judge_kind
from genmodels.paths import checkpoint_file
from genmodels.preview import DISPLAY_SCALE, default_kind, draw_preview, preview_path, read_preview

DATASETS = ("mnist", "fashion")


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_stored_default_view_is_what_the_shipped_weights_draw(dataset):
    stored = read_preview(dataset)
    assert stored is not None, f"{preview_path(dataset)} is missing or stale: python -m genmodels evaluate --write"
    drawn = draw_preview(dataset)
    # other CPUs' kernels may round a pixel the other way; a different image would differ by far more
    assert np.abs(np.asarray(drawn["pixels"], dtype=np.int16) - np.asarray(stored.pixels)).max() <= 1
    assert len(stored.pngs) == len(drawn["pngs"]) == 10 and all(
        Image.open(io.BytesIO(base64.b64decode(png))).size == (28 * DISPLAY_SCALE,) * 2 for png in stored.pngs
    )
    assert stored.kind == default_kind() and len(stored.captions) == len(drawn["captions"])
    assert stored.accuracy == pytest.approx(drawn["accuracy"], abs=0.1)


def _copy_shipped(dataset, tmp_path):
    for kind in (default_kind(), judge_kind()):
        source = checkpoint_file(kind, dataset)
        for path in (source, source.with_suffix(".json")):
            (tmp_path / dataset).mkdir(exist_ok=True)
            shutil.copy(path, tmp_path / dataset / path.name)
    shutil.copy(preview_path(dataset), preview_path(dataset, tmp_path))


def test_a_preview_drawn_from_other_weights_is_not_shown(tmp_path):
    _copy_shipped("mnist", tmp_path)
    assert read_preview("mnist", tmp_path) is not None
    sidecar = checkpoint_file(default_kind(), "mnist", tmp_path).with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "weights_sha256": "0" * 64}))  # the weights were retrained
    assert read_preview("mnist", tmp_path) is None


@pytest.mark.parametrize(
    "content", ["", "not json", '{"version": 1}', '{"version": 99, "pixels": []}', '{"version": 2, "pngs": 3}']
)
def test_a_missing_or_broken_preview_is_not_shown(tmp_path, content):
    _copy_shipped("mnist", tmp_path)
    assert read_preview("fashion", tmp_path) is None  # no files at all
    preview_path("mnist", tmp_path).write_text(content)
    assert read_preview("mnist", tmp_path) is None


def test_reading_the_preview_loads_neither_torch_nor_numpy():
    """The Sample page shows the preview while PyTorch loads; numpy alone would delay it by a quarter second."""
    code = (
        "import sys; from genmodels.preview import read_preview; p = read_preview('mnist'); "
        "print(p is not None, 'torch' in sys.modules, 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False"]

"""How the shipped MNIST classifier takes drawings: digits drawn as mouse-like strokes at several stroke widths, sizes,
slants and offsets on a 280x280 canvas, preprocessed as the Your image page does, against its test accuracy."""

import json
import math
import os
from itertools import product

import numpy as np
import pytest
from PIL import Image, ImageDraw

from genmodels import api
from genmodels.drawing import prepare
from genmodels.paths import REPO_ROOT

pytestmark = pytest.mark.checkpoints

CANVAS = 280
WIDTHS = (6, 12, 20, 30)  # brush pixels on the 280 canvas: thin pen to marker
SCALES = (0.35, 0.6, 0.85)  # digit height as a share of the canvas
SLANTS = (-0.35, 0.0, 0.35)  # horizontal shear per unit of height (italic both ways)
OFFSETS = ((0.0, 0.0), (-0.2, -0.15), (0.18, 0.2))  # of the canvas: centred, up-left, down-right
MIN_DRAWING_ACCURACY = 0.85


def _arc(cx, cy, rx, ry, start, end, n=24):
    """Points of an elliptic arc, angles in degrees (0 = right, 90 = down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a))) for a in np.linspace(start, end, n)
    ]


# each digit as strokes (lists of points) in a unit box, drawn the way people usually draw them
DIGITS = {
    0: [_arc(0.5, 0.5, 0.3, 0.45, -90, 270, 40)],
    1: [[(0.38, 0.2), (0.55, 0.05), (0.55, 0.95)]],
    2: [_arc(0.5, 0.3, 0.3, 0.25, 180, 380, 16) + [(0.2, 0.95), (0.85, 0.95)]],
    3: [_arc(0.48, 0.27, 0.28, 0.22, 200, 450, 16) + _arc(0.48, 0.72, 0.32, 0.23, 270, 520, 16)],
    4: [[(0.55, 0.05), (0.15, 0.65), (0.85, 0.65)], [(0.65, 0.3), (0.65, 0.95)]],
    5: [[(0.8, 0.05), (0.3, 0.05), (0.25, 0.45)] + _arc(0.5, 0.67, 0.3, 0.28, 240, 500, 18)],
    6: [[(0.7, 0.05), (0.45, 0.2)] + _arc(0.5, 0.68, 0.28, 0.27, 200, 560, 24)],
    7: [[(0.15, 0.05), (0.85, 0.05), (0.4, 0.95)]],
    8: [[(0.5 + 0.24 * math.sin(2 * t), 0.5 - 0.45 * math.cos(t)) for t in np.linspace(0, 2 * math.pi, 48)]],
    9: [_arc(0.48, 0.3, 0.27, 0.25, 0, 360, 28) + [(0.75, 0.3), (0.65, 0.95)]],
}


def draw(digit: int, width: int, scale: float, slant: float, offset: tuple[float, float]) -> np.ndarray:
    """A greyscale canvas [280, 280] in [0, 1]: black strokes on white, as the page's canvas returns them."""
    image = Image.new("L", (CANVAS, CANVAS), 255)
    pen = ImageDraw.Draw(image)
    size = scale * CANVAS
    left = CANVAS / 2 - size * 0.4 + offset[0] * CANVAS
    top = CANVAS / 2 - size / 2 + offset[1] * CANVAS
    for stroke in DIGITS[digit]:
        points = [(left + (x + slant * (0.5 - y)) * size * 0.8, top + y * size) for x, y in stroke]
        pen.line(points, fill=0, width=width, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps, as a brush leaves them
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    return np.asarray(image, dtype=np.float32) / 255.0


def drawings():
    """(digit, width, scale, slant, offset, prepared 28x28) for every combination."""
    for digit, width, scale, slant, offset in product(DIGITS, WIDTHS, SCALES, SLANTS, OFFSETS):
        yield digit, width, scale, slant, offset, prepare(draw(digit, width, scale, slant, offset), "mnist").pixels


def test_the_classifier_reads_drawings_nearly_as_well_as_test_digits():
    import torch

    classifier = api.load_classifier("mnist", device="cpu")
    rows = list(drawings())
    images = torch.from_numpy(np.stack([r[-1] for r in rows])).unsqueeze(1)
    predicted = api.predict(classifier, images).argmax(1).numpy()
    digits = np.array([r[0] for r in rows])
    correct = predicted == digits
    breakdown = {"overall": float(correct.mean()), "drawings": len(rows)}
    for name, column in (("width", 1), ("scale", 2), ("slant", 3), ("offset", 4)):
        values = [r[column] for r in rows]
        breakdown[name] = {str(v): float(correct[[x == v for x in values]].mean()) for v in dict.fromkeys(values)}
    breakdown["digit"] = {str(d): float(correct[digits == d].mean()) for d in DIGITS}
    data_root = os.environ.get("GENMODELS_DATA")
    if data_root:
        from genmodels.data import load_split

        test_x, test_y = load_split("mnist", "test", data_root, download=False)
        test_pred = api.predict(classifier, test_x.float().div(255)).argmax(1)
        breakdown["test_split"] = float((test_pred == test_y).float().mean())
    artifacts = REPO_ROOT / "tests" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "drawing_robustness.json").write_text(json.dumps(breakdown, indent=2))
    assert breakdown["overall"] >= MIN_DRAWING_ACCURACY, breakdown

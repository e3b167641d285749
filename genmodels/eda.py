"""Exploratory views of a dataset summary (report 000, part 1): counts per class, preview grids, mean images,
histogram."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genmodels.images import make_grid
from genmodels.summary import DataSummary


@dataclass
class DataOverview:
    """Plain numbers and arrays of a summary, ready for charts (and cheap to cache)."""

    dataset: str
    source: str
    classes: tuple[str, ...]
    train_counts: list[int]
    test_counts: list[int]
    class_means: np.ndarray  # float32 [C, 28, 28] in [0, 1]
    pixel_histogram: list[int]  # 256 counts
    subset_images: np.ndarray  # uint8 [C * per_class, 28, 28], class by class
    subset_labels: np.ndarray  # int64
    subset_indices: np.ndarray  # int64, their indices in the test split

    @property
    def train_total(self) -> int:
        return sum(self.train_counts)

    @property
    def test_total(self) -> int:
        return sum(self.test_counts)

    @property
    def per_class(self) -> int:
        """Real test images per class in the summary subset."""
        return int(np.bincount(self.subset_labels).min()) if len(self.subset_labels) else 0


def overview(summary: DataSummary) -> DataOverview:
    """A summary's tensors as lists and numpy arrays."""
    return DataOverview(
        dataset=summary.dataset,
        source=summary.source,
        classes=summary.classes,
        train_counts=summary.train_counts.tolist(),
        test_counts=summary.test_counts.tolist(),
        class_means=summary.class_means.numpy(),
        pixel_histogram=summary.pixel_histogram.tolist(),
        subset_images=summary.subset_images.numpy(),
        subset_labels=summary.subset_labels.numpy(),
        subset_indices=summary.subset_indices.numpy(),
    )


def preview_grid(data: DataOverview, per_class: int, classes: list[int] | None = None, offset: int = 0) -> np.ndarray:
    """A uint8 grid with one row per class of `per_class` real test images, starting at `offset` within each class."""
    classes = list(range(len(data.classes))) if classes is None else classes
    if not classes:
        raise ValueError("pick at least one class")
    if not 1 <= per_class <= data.per_class:
        raise ValueError(f"images per class must be between 1 and {data.per_class}, got {per_class}")
    rows = []
    for c in classes:
        members = np.flatnonzero(data.subset_labels == c)
        start = offset % max(1, len(members) - per_class + 1)
        rows.append(data.subset_images[members[start : start + per_class]])
    images = np.concatenate(rows).astype(np.float32) / 255.0
    return make_grid(torch.from_numpy(images), nrow=per_class)


def intensity_histogram(data: DataOverview, bins: int = 64) -> tuple[list[float], list[int]]:
    """The pixel-intensity histogram regrouped into `bins` equal bins of [0, 255]: (bin start intensities, counts)."""
    if not 1 <= bins <= 256 or 256 % bins:
        raise ValueError(f"bins must divide 256, got {bins}")
    width = 256 // bins
    counts = np.asarray(data.pixel_histogram, dtype=np.int64).reshape(bins, width).sum(1)
    return [float(i * width) for i in range(bins)], counts.tolist()

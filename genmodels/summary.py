"""A small summary of each dataset, shipped with the project so the app works without the data.

It holds the class counts of both splits, the mean image per class, the pixel-intensity
histogram, and a class-balanced subset of real test images (with their test-set indices).
It is computed from the real files (`python -m genmodels summarize`); when the full dataset
is present the app can compute the same live.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from genmodels.checkpoint import CheckpointError, load_tensors, save_tensors
from genmodels.data import load_split
from genmodels.datasets import dataset_info, missing_files

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
SUBSET_PER_CLASS = 200


@dataclass
class DataSummary:
    """Counts, per-class mean images, pixel histogram and a real test subset of one dataset."""

    dataset: str
    train_counts: torch.Tensor  # int64 [C]
    test_counts: torch.Tensor  # int64 [C]
    class_means: torch.Tensor  # float32 [C, 28, 28] in [0, 1], over the train split
    pixel_histogram: torch.Tensor  # int64 [256], counts of each intensity over the train split
    subset_images: torch.Tensor  # uint8 [C * per_class, 28, 28], real test images, class by class
    subset_labels: torch.Tensor  # int64 [C * per_class]
    subset_indices: torch.Tensor  # int64 [C * per_class], their indices in the test split
    source: str  # "full dataset" or "bundled summary"

    @property
    def classes(self) -> tuple[str, ...]:
        return dataset_info(self.dataset).classes


def summary_path(dataset: str) -> Path:
    """The bundled summary file of a dataset."""
    dataset_info(dataset)
    return ASSETS_DIR / f"{dataset}_summary.safetensors"


def compute_summary(
    dataset: str, root: str | os.PathLike | None = None, per_class: int = SUBSET_PER_CLASS
) -> DataSummary:
    """Summarise the real files (needs the full dataset)."""
    info = dataset_info(dataset)
    train_x, train_y = load_split(dataset, "train", root, download=False)
    test_x, test_y = load_split(dataset, "test", root, download=False)
    means = torch.stack([train_x[train_y == c].float().mean(0) / 255.0 for c in range(info.num_classes)])
    indices = torch.cat([torch.nonzero(test_y == c).squeeze(1)[:per_class] for c in range(info.num_classes)])
    return DataSummary(
        dataset=dataset,
        train_counts=torch.bincount(train_y, minlength=info.num_classes),
        test_counts=torch.bincount(test_y, minlength=info.num_classes),
        class_means=means,
        pixel_histogram=torch.bincount(train_x.flatten(), minlength=256),  # on uint8: no 376 MB int64 copy
        subset_images=test_x[indices].clone(),
        subset_labels=test_y[indices].clone(),
        subset_indices=indices,
        source="full dataset",
    )


def write_summary(summary: DataSummary, path: str | os.PathLike | None = None) -> Path:
    """Save a summary as safetensors (the bundled file by default)."""
    path = Path(path) if path is not None else summary_path(summary.dataset)
    tensors = {
        name: getattr(summary, name)
        for name in (
            "train_counts",
            "test_counts",
            "class_means",
            "pixel_histogram",
            "subset_images",
            "subset_labels",
            "subset_indices",
        )
    }
    save_tensors(path, tensors, {"kind": "data_summary", "dataset": summary.dataset})
    return path


def load_summary(dataset: str, root: str | os.PathLike | None = None, prefer_full: bool = True) -> DataSummary:
    """The live summary when the full dataset is present (and prefer_full), else the bundled one."""
    if prefer_full and not missing_files(dataset, root):
        return compute_summary(dataset, root)
    path = summary_path(dataset)
    try:
        tensors, meta = load_tensors(path)
    except CheckpointError as exc:
        raise CheckpointError(
            path, f"bundled data summary unreadable ({exc.reason}); rebuild it with `python -m genmodels summarize`"
        ) from None
    if meta.get("dataset") != dataset:
        raise CheckpointError(path, f"summarises {meta.get('dataset')!r}, not {dataset!r}")
    return DataSummary(dataset=dataset, source="bundled summary", **tensors)

"""What the two datasets are: names, titles, class names and their raw files in torchvision's layout (no PyTorch)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from genmodels.paths import data_dir

SPLITS = ("train", "test")
RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's short name, display title, torchvision folder and class names."""

    name: str
    title: str
    folder: str
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", "MNIST", "MNIST", tuple(str(d) for d in range(10))),
    "fashion": DatasetInfo(
        "fashion",
        "Fashion-MNIST",
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The DatasetInfo for 'mnist' or 'fashion'; ValueError naming the choices otherwise."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


def raw_file(raw: Path, name: str) -> Path | None:
    """The plain or gzipped copy of the raw file `name` in the folder `raw`, or None."""
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.exists():
            return candidate
    return None


def missing_files(dataset: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The raw files of `dataset` that are absent (neither plain nor .gz) under the data folder."""
    raw = data_dir(root) / dataset_info(dataset).folder / "raw"
    return [raw / name for split in SPLITS for name in RAW_FILES[split] if raw_file(raw, name) is None]

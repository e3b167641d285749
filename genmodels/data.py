"""MNIST and Fashion-MNIST as whole-split tensors, read once through torchvision."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

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
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


class DataMissingError(RuntimeError):
    """The dataset files are absent and could not be downloaded."""


def dataset_info(name: str) -> DatasetInfo:
    """The DatasetInfo for 'mnist' or 'fashion'; ValueError naming the choices otherwise."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None


def missing_files(dataset: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The raw files of `dataset` that are absent (neither plain nor .gz) under the data folder."""
    raw = data_dir(root) / dataset_info(dataset).folder / "raw"
    names = [name for split in SPLITS for name in RAW_FILES[split]]
    return [raw / n for n in names if not (raw / n).exists() and not (raw / f"{n}.gz").exists()]


def _torchvision_class(dataset: str):
    from torchvision import datasets  # deferred: importing torchvision costs ~1 s at app start

    return {"mnist": datasets.MNIST, "fashion": datasets.FashionMNIST}[dataset]


@functools.lru_cache(maxsize=8)
def _load_split_cached(dataset: str, split: str, root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    cls = _torchvision_class(dataset)
    missing = missing_files(dataset, root)
    raw = Path(root) / dataset_info(dataset).folder / "raw"
    # torchvision reads only the uncompressed files; with download on it unpacks local .gz copies first
    needs_fetch = any(not (raw / n).exists() for split_files in RAW_FILES.values() for n in split_files)
    try:
        ds = cls(root, train=(split == "train"), download=download and needs_fetch)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError... on a failed fetch
        names = ", ".join(p.name for p in missing) or "(files present but unreadable)"
        raise DataMissingError(
            f"{dataset_info(dataset).title} is not available: missing {names} in {raw}. "
            f"Download it on a machine with internet, or copy the raw IDX files there "
            f"(or point GENMODELS_DATA at a folder that has {dataset_info(dataset).folder}/raw/). "
            f"Cause: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ) from None
    images = ds.data.to(torch.uint8).contiguous()
    labels = ds.targets.to(torch.int64).contiguous()
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataMissingError(f"{dataset_info(dataset).title} {split} files in {root} are malformed: images {tuple(images.shape)}, labels {tuple(labels.shape)}")
    return images, labels


def load_split(
    dataset: str, split: str = "train", root: str | os.PathLike | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 [N, 28, 28] and labels int64 [N] of one split; read once per process."""
    dataset_info(dataset)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return _load_split_cached(dataset, split, str(data_dir(root)), download)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] in [0, 1]."""
    return images.to(torch.float32).div_(255.0).unsqueeze(1)


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] normalised with mean 0.5, std 0.5, in [-1, 1]."""
    return to_unit(images).mul_(2.0).sub_(1.0)


def signed_to_unit(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> [0, 1] images, any shape."""
    return images.add(1.0).mul_(0.5).clamp_(0.0, 1.0)


def unit_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images [N, 1, 28, 28] or [N, 28, 28] -> uint8 [N, 28, 28] on the CPU."""
    images = images.detach().reshape(-1, 28, 28)
    return images.clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8).cpu()


class TensorBatches:
    """Shuffled mini-batches sliced from whole-split tensors; one fixed permutation per (seed, epoch).

    Like DistributedSampler, call `set_epoch` before each pass: the order then depends only on
    the seed and the epoch, so a resumed run sees exactly the batches an uninterrupted one would.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int = 0):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if not 1 <= batch_size <= len(images):
            raise ValueError(f"batch size {batch_size} must be between 1 and {len(images)}")
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images) // self.batch_size  # the ragged tail batch is dropped

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.images), generator=generator).to(self.images.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.images[idx], self.labels[idx]

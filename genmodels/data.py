"""MNIST and Fashion-MNIST as whole-split tensors, read once from the IDX files in torchvision's layout."""

from __future__ import annotations

import functools
import gzip
import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from genmodels.datasets import RAW_FILES, SPLITS, DatasetInfo, dataset_info, missing_files, raw_file
from genmodels.paths import data_dir


class DataMissingError(RuntimeError):
    """The dataset files are absent and could not be downloaded."""


IDX_UBYTE = 0x08  # the element type of every MNIST and Fashion-MNIST file: unsigned bytes
IDX_MAX_BYTES = 2**30  # a header promising more is corrupt (the largest split is 47 MB), not a reason to allocate it


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """One IDX file (plain or gzipped) -> a uint8 tensor of the shape in its header; ValueError when malformed."""
    path = Path(path)
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        magic = f.read(4)
        if len(magic) != 4 or magic[:2] != b"\0\0" or magic[2] != IDX_UBYTE or not 1 <= magic[3] <= 3:
            raise ValueError(f"{path.name} is not an IDX file of unsigned bytes (header {magic.hex() or 'empty'})")
        header = f.read(4 * magic[3])
        if len(header) != 4 * magic[3]:
            raise ValueError(f"{path.name} ends inside its header")
        shape = [int.from_bytes(header[i : i + 4], "big") for i in range(0, len(header), 4)]
        size = math.prod(shape)
        if size > IDX_MAX_BYTES:
            raise ValueError(f"{path.name} claims a shape of {shape}, more than {IDX_MAX_BYTES} bytes")
        data = torch.empty(size, dtype=torch.uint8)
        # straight into the tensor: no bytes copy of a 47 MB split (torchvision's reader and its import cost ~200 MB)
        read = f.readinto(memoryview(data.numpy()))
        if read != size or f.read(1):
            raise ValueError(
                f"{path.name} holds {'fewer' if read != size else 'more'} bytes than its header's shape {shape}"
            )
    return data.view(shape)


def _download(dataset: str, root: str) -> None:
    """Fetch the raw files of both splits with torchvision."""
    from torchvision import datasets  # deferred: torchvision is needed only to download, and its import costs ~1 s

    cls = {"mnist": datasets.MNIST, "fashion": datasets.FashionMNIST}[dataset]
    cls(root, train=True, download=True)


def _missing_error(info: DatasetInfo, raw: Path, names: list[str], cause: str = "") -> DataMissingError:
    return DataMissingError(
        f"{info.title} is not available: missing {', '.join(names)} in {raw}. "
        f"Download it on a machine with internet, or copy the raw IDX files there "
        f"(or point GENMODELS_DATA at a folder that has {info.folder}/raw/).{cause}"
    )


@functools.lru_cache(maxsize=8)
def _load_split_cached(dataset: str, split: str, root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    info = dataset_info(dataset)
    raw = Path(root) / info.folder / "raw"
    if download and missing_files(dataset, root):
        try:
            _download(dataset, root)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError... on a failed fetch
            cause = f" Cause: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            raise _missing_error(info, raw, [p.name for p in missing_files(dataset, root)], cause) from None
    paths = [raw_file(raw, name) for name in RAW_FILES[split]]
    if None in paths:
        raise _missing_error(
            info, raw, [name for name, path in zip(RAW_FILES[split], paths, strict=True) if path is None]
        )
    try:
        images, labels = (read_idx(path) for path in paths)
    except (OSError, EOFError, ValueError) as exc:  # EOFError: a truncated .gz
        raise DataMissingError(
            f"{info.title} {split} files in {raw} are unreadable: {type(exc).__name__}: {exc}"
        ) from None
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(images) != len(labels):
        raise DataMissingError(
            f"{info.title} {split} files in {raw} are malformed: "
            f"images {tuple(images.shape)}, labels {tuple(labels.shape)}"
        )
    labels = labels.to(torch.int64)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= info.num_classes):
        raise DataMissingError(
            f"{info.title} {split} labels in {raw} are malformed: values {int(labels.min())}..{int(labels.max())}, "
            f"expected 0..{info.num_classes - 1}"
        )
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
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.images[idx], self.labels[idx]

"""genmodels.data: reading the IDX files, clear errors for missing or broken files, batch order."""

import gzip
import os
import struct

import pytest
import torch

from genmodels.data import DataMissingError, TensorBatches, load_split, read_idx, signed_to_unit, to_signed, to_unit
from genmodels.datasets import DATASETS, dataset_info, missing_files

REAL_DATA = os.environ.get("GENMODELS_DATA")
needs_real_data = pytest.mark.skipif(
    not REAL_DATA or missing_files("mnist", REAL_DATA) or missing_files("fashion", REAL_DATA),
    reason="the full MNIST / Fashion-MNIST files are absent (set GENMODELS_DATA)",
)


def test_class_names():
    assert dataset_info("mnist").classes == tuple("0123456789")
    assert dataset_info("fashion").classes[9] == "Ankle boot"
    assert all(info.num_classes == 10 for info in DATASETS.values())
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        dataset_info("cifar")


def test_synthetic_idx_files_load_as_whole_split_tensors(synthetic_data):
    images, labels = load_split("mnist", "train", synthetic_data, download=False)
    assert images.dtype == torch.uint8 and images.shape == (600, 28, 28)
    assert labels.dtype == torch.int64 and labels.shape == (600,)
    assert set(labels.tolist()) == set(range(10))
    test_images, _ = load_split("fashion", "test", synthetic_data, download=False)
    assert test_images.shape == (200, 28, 28)


def test_missing_files_give_one_clear_error(tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    assert len(missing_files("mnist", tmp_path)) == 4
    with pytest.raises(DataMissingError) as info:
        load_split("mnist", "train", tmp_path, download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "MNIST" / "raw") in message
    with pytest.raises(ValueError, match="unknown split"):
        load_split("mnist", "validation", tmp_path)


def test_gzipped_files_read_the_same_as_plain_ones(synthetic_data):
    plain_images, plain_labels = load_split("mnist", "test", synthetic_data, download=False)
    raw = synthetic_data / "MNIST" / "raw"
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes()))
        (raw / name).unlink()
    assert torch.equal(read_idx(raw / "t10k-images-idx3-ubyte.gz"), plain_images)
    assert torch.equal(read_idx(raw / "t10k-labels-idx1-ubyte.gz"), plain_labels.to(torch.uint8))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not an IDX file"),
        (struct.pack(">i", 2051), "ends inside its header"),
        (struct.pack(">iiii", 0x0D03, 2, 28, 28) + bytes(8 * 784), "not an IDX file of unsigned bytes"),  # floats
        (struct.pack(">iiii", 2051, 2, 28, 28) + bytes(784), "fewer bytes"),
        (struct.pack(">iiii", 2051, 2, 28, 28) + bytes(3 * 784), "more bytes"),
        (struct.pack(">iiii", 2051, 2**31 - 1, 2**31 - 1, 28), "more than"),
    ],
)
def test_broken_idx_files_are_refused_with_the_reason(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_idx(path)


def test_a_broken_split_file_gives_one_clear_error(synthetic_data):
    raw = synthetic_data / "FashionMNIST" / "raw"
    (raw / "train-images-idx3-ubyte").write_bytes((raw / "train-images-idx3-ubyte").read_bytes()[:5000])
    with pytest.raises(DataMissingError, match=r"Fashion-MNIST train files in .* are unreadable: .*fewer bytes"):
        load_split("fashion", "train", synthetic_data, download=False)
    (raw / "train-labels-idx1-ubyte").write_bytes(struct.pack(">ii", 2049, 7) + bytes(7))
    (raw / "train-images-idx3-ubyte").write_bytes(struct.pack(">iiii", 2051, 5, 28, 28) + bytes(5 * 784))
    with pytest.raises(DataMissingError, match=r"malformed: images \(5, 28, 28\), labels \(7,\)"):
        load_split("fashion", "train", synthetic_data, download=False)


def test_labels_outside_the_classes_are_refused(synthetic_data):
    raw = synthetic_data / "MNIST" / "raw"
    labels = bytearray((raw / "t10k-labels-idx1-ubyte").read_bytes())
    labels[8 + 3] = 200  # one label of the 200 test images
    (raw / "t10k-labels-idx1-ubyte").write_bytes(bytes(labels))
    with pytest.raises(
        DataMissingError, match=r"MNIST test labels in .* are malformed: values 0\.\.200, expected 0\.\.9"
    ):
        load_split("mnist", "test", synthetic_data, download=False)


def test_normalisation_matches_the_reports():
    pixels = torch.tensor([[[0, 255] + [128] * 782]], dtype=torch.uint8).reshape(1, 28, 28)
    signed = to_signed(pixels)
    assert signed.shape == (1, 1, 28, 28)
    assert signed.min() == -1.0 and signed.max() == 1.0
    assert torch.allclose(signed_to_unit(signed), to_unit(pixels))


def test_batches_are_a_fixed_permutation_per_epoch():
    images = torch.arange(100).reshape(100, 1).float()
    labels = torch.arange(100)
    batches = TensorBatches(images, labels, batch_size=32, seed=3)
    assert len(batches) == 3  # the ragged tail is dropped
    first = [b[1].tolist() for b in batches]
    assert first == [b[1].tolist() for b in batches]
    seen = sum(first, [])
    assert len(set(seen)) == 96
    batches.set_epoch(1)
    assert [b[1].tolist() for b in batches] != first
    with pytest.raises(ValueError, match="batch size"):
        TensorBatches(images, labels, batch_size=0)


@pytest.mark.realdata
@needs_real_data
def test_real_files():
    images, labels = load_split("mnist", "train", REAL_DATA)
    assert images.shape == (60000, 28, 28)
    assert torch.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert abs(images.float().mean().item() / 255 - 0.1307) < 1e-3
    test_images, test_labels = load_split("fashion", "test", REAL_DATA)
    assert test_images.shape == (10000, 28, 28) and torch.bincount(test_labels).tolist() == [1000] * 10

"""genmodels.data: loading through torchvision, clear errors for missing files, batch order."""
import os

import pytest
import torch

from genmodels.data import (
    DATASETS, DataMissingError, TensorBatches, dataset_info, load_split, missing_files, signed_to_unit, to_signed, to_unit,
)

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

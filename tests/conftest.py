# --- reliability fixtures (issue #6): synthetic IDX datasets and tiny random checkpoints ---
import struct as _struct

import pytest as _pytest


def write_idx_dataset(root, folder="MNIST", n_train=600, n_test=200, seed=0):
    """Write small synthetic MNIST-layout IDX files (every class present) under root/folder/raw."""
    import numpy as _np

    rng = _np.random.default_rng(seed)
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (_np.arange(n) % 10).astype(_np.uint8)
        rng.shuffle(labels)
        images = (rng.random((n, 28, 28)) * 255 * (labels[:, None, None] + 1) / 10).astype(_np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_struct.pack(">iiii", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_struct.pack(">ii", 2049, n) + labels.tobytes())
    return root


@_pytest.fixture
def synthetic_data(tmp_path):
    """A GENMODELS_DATA folder with small synthetic MNIST and Fashion-MNIST IDX files."""
    root = tmp_path / "data"
    write_idx_dataset(root, "MNIST")
    write_idx_dataset(root, "FashionMNIST", seed=1)
    return root


TINY_CONFIGS = {
    "gan": {"latent_dim": 8, "g_hidden": [16], "d_hidden": [16]},
    "mapper": {"latent_dim": 8, "embed_dim": 4, "hidden": [16]},
    "cgan": {"latent_dim": 8, "embed_dim": 4, "g_hidden": [16], "d_hidden": [16]},
    "vae": {"latent_dim": 4, "hidden": [16]},
    "classifier": {"channels": [2, 4], "hidden": 8},
}


@_pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """A checkpoints folder with tiny randomly initialised models of every kind for both datasets."""
    import torch as _torch

    from genmodels.checkpoint import save_model
    from genmodels.models import build_model

    root = tmp_path_factory.mktemp("tiny_checkpoints")
    _torch.manual_seed(0)
    for dataset in ("mnist", "fashion"):
        for kind, config in TINY_CONFIGS.items():
            extra = {}
            if kind == "mapper":
                from genmodels.checkpoint import read_metadata

                extra["generator_sha256"] = read_metadata(root / dataset / "gan.safetensors")["weights_sha256"]
            save_model(root / dataset / f"{kind}.safetensors", build_model(kind, config), kind, dataset, **extra)
    return root

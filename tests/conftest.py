# --- reliability fixtures (issue #6): synthetic IDX datasets and tiny random checkpoints ---
import atexit as _atexit
import json as _json
import os as _os
import shutil as _shutil
import struct as _struct
import tempfile as _tempfile
import time as _time

import pytest as _pytest

# The app's background preload (views.shared.preload) would race the page tests that swap checkpoint folders and
# clear the caches, and eat the CPU they time; the load test turns it back on for the server it starts.
_os.environ.setdefault("GENMODELS_PRELOAD", "0")
# One cache of derived data (the neighbour index's features) for the whole run and the servers and benchmarks it
# starts: built once per dataset instead of once per process, empty at the start so every run starts cold
if "GENMODELS_CACHE" not in _os.environ:
    _os.environ["GENMODELS_CACHE"] = _tempfile.mkdtemp(prefix="genmodels-test-cache-")
    _atexit.register(_shutil.rmtree, _os.environ["GENMODELS_CACHE"], ignore_errors=True)


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
    "dcgan": {"latent_dim": 8, "embed_dim": 4, "g_channels": [4, 2], "d_channels": [2, 4], "refine_channels": 2},
    "conv_vae": {"latent_dim": 4, "channels": [2, 4], "hidden": 8, "refine_channels": 2},
    "classifier": {"channels": [2, 4], "hidden": 8},
    "dcgan_critic": {"channels": [2, 4]},
    "conv_vae_critic": {"channels": [2, 4]},
}


@_pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """A checkpoints folder with tiny randomly initialised models of every kind for both datasets."""
    import torch as _torch

    from genmodels.checkpoint import read_metadata, save_model
    from genmodels.kinds import build_model, labelling_kinds, screening_kinds

    root = tmp_path_factory.mktemp("tiny_checkpoints")
    _torch.manual_seed(0)
    for dataset in ("mnist", "fashion"):
        for kind, config in TINY_CONFIGS.items():
            extra = {}
            companion_of = {**labelling_kinds(), **screening_kinds()}
            if kind in companion_of:  # saved after its generator (dict order): it records which weights it serves
                generator = root / dataset / f"{companion_of[kind]}.safetensors"
                extra["generator_sha256"] = read_metadata(generator)["weights_sha256"]
            save_model(root / dataset / f"{kind}.safetensors", build_model(kind, config), kind, dataset, **extra)
    return root


# --- app frame / Data / Training page fixtures (issue #3) ---


@_pytest.fixture
def shipped_logs_dir():
    """The shipped checkpoints folder with its training logs; skips when they are absent."""
    from genmodels.paths import checkpoints_dir

    root = checkpoints_dir()
    if not all((root / ds / "logs" / "gan.jsonl").is_file() for ds in ("mnist", "fashion")):
        _pytest.skip(f"the shipped training logs are not in {root}")
    return root


@_pytest.fixture
def runs_root(tmp_path, monkeypatch):
    """An empty runs folder used through GENMODELS_RUNS."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("GENMODELS_RUNS", str(root))
    return root


@_pytest.fixture
def make_run(runs_root):
    """Write a fake run folder: make_run(name, state, kind=, dataset=, pid=, reason=, records=, stderr=) -> its path."""

    def make(name, state, kind="gan", dataset="mnist", pid=None, reason="", records=None, stderr="", **status):
        path = runs_root / name
        path.mkdir()
        (path / "config.json").write_text(
            _json.dumps({"kind": kind, "dataset": dataset, "model": {}, "recipe": {"epochs": 2}})
        )
        (path / "status.json").write_text(
            _json.dumps({"state": state, "pid": pid, "reason": reason, "epochs": 2, "updated": _time.time(), **status})
        )
        (path / "metrics.jsonl").write_text("".join(_json.dumps(r) + "\n" for r in records or []))
        (path / "stderr.log").write_text(stderr)
        _os.utime(path)
        return path

    return make

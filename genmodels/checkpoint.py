"""Checkpoints: safetensors weights with JSON metadata, written atomically, verified on load.

A model file holds the module's tensors and, in its safetensors header, a JSON document
(kind, dataset, config, recipe, metrics, sha256 of the weights); a `<name>.json` sidecar
repeats it for people and tools. Nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.overrides import TorchFunctionMode

from genmodels.datasets import dataset_info
from genmodels.kinds import build_model, generator_kinds
from genmodels.kinds import kind as model_kind
from genmodels.models.config import config_to_dict
from genmodels.paths import atomic_write_bytes, checkpoint_file

FORMAT_VERSION = 1
META_KEY = "genmodels"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or not the model that was asked for."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"checkpoint {self.path}: {reason}")


def checkpoint_path(kind: str, dataset: str, root: str | os.PathLike | None = None) -> Path:
    """Where the shipped checkpoint of (kind, dataset) lives: <checkpoints>/<dataset>/<kind>.safetensors."""
    model_kind(kind)
    dataset_info(dataset)
    return checkpoint_file(kind, dataset, root)


def shipped_generators(dataset: str, root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The generator kinds with a checkpoint file for `dataset`, in page order: a kind not trained for it yet is left
    out of every choice, while a shipped file that is broken stays in and fails with its own message."""
    return tuple(kind for kind in generator_kinds() if checkpoint_path(kind, dataset, root).is_file())


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar beside a .safetensors file."""
    return Path(path).with_suffix(".json")


def weights_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Atomically write tensors plus JSON metadata (with their sha256 added) and the sidecar; returns the metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = json.loads(json.dumps({**meta, "format_version": FORMAT_VERSION, "weights_sha256": weights_sha256(tensors)}))
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata={META_KEY: json.dumps(meta)}))
    atomic_write_bytes(sidecar_path(path), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    return meta


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors and metadata from a safetensors file, verifying the weights' sha256."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty (0 bytes)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # safetensors raises SafetensorError/OSError on anything malformed
        raise CheckpointError(path, f"not a readable safetensors file (truncated or another format?): {exc}") from None
    try:
        meta = json.loads(header[META_KEY])
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
    except (KeyError, ValueError) as exc:
        raise CheckpointError(path, f"missing or malformed genmodels metadata: {exc}") from None
    expected = meta.get("weights_sha256")
    if expected != weights_sha256(tensors):
        raise CheckpointError(path, "weights do not match their sha256 (file corrupted or edited)")
    return tensors, meta


def save_model(path: str | os.PathLike, module: nn.Module, kind: str, dataset: str, **meta: Any) -> dict[str, Any]:
    """Save a model's state dict with kind, dataset, config and any extra metadata (recipe, metrics...)."""
    model_kind(kind)
    dataset_info(dataset)
    header = {"kind": kind, "dataset": dataset, "config": config_to_dict(module.config), **meta}
    state = module.state_dict()
    bad = [name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:  # a diverged model must never replace the last good file
        raise CheckpointError(
            path, f"refusing to save: tensor {bad[0]} holds non-finite values (NaN/inf), training diverged"
        )
    return save_tensors(path, state, header)


_RANDOM_INIT = {
    "normal_",
    "uniform_",
    "trunc_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
}


class _SkipRandomInit(TorchFunctionMode):
    """In-place random initialisation becomes a no-op: a meta-device model is built for its shapes only,
    and meta `normal_` would otherwise import torch._dynamo (~1.7 s of the app's first page)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in _RANDOM_INIT:  # torch.nn.init.* and the Tensor methods they call
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


def load_model(
    path: str | os.PathLike, kind: str | None = None, dataset: str | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from its file, in eval mode on `device`; checks kind, dataset, shapes and hash."""
    tensors, meta = load_tensors(path)
    if kind is not None and meta.get("kind") != kind:
        found = f"a {meta['kind']!r} model" if isinstance(meta.get("kind"), str) else "no model kind in its metadata"
        raise CheckpointError(path, f"holds {found}, not {kind!r}")
    if dataset is not None and meta.get("dataset") != dataset:
        found = f"on {meta['dataset']!r}" if isinstance(meta.get("dataset"), str) else "on no recorded dataset"
        raise CheckpointError(path, f"was trained {found}, not {dataset!r}")
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(path, "cannot rebuild the model from its metadata: no config object")
    try:  # on the meta device first: a hostile config cannot make us allocate a huge model before the shape check
        with torch.device("meta"), _SkipRandomInit():
            module = build_model(meta.get("kind"), meta.get("config"))
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(path, f"cannot rebuild the model from its metadata: {exc}") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            path,
            f"tensor names do not match the {meta['kind']} model (missing {missing[:3]}, unexpected {unexpected[:3]})",
        )
    for name, tensor in expected.items():
        if tensors[name].shape != tensor.shape or tensors[name].dtype != tensor.dtype:
            raise CheckpointError(
                path,
                f"tensor {name} is {tuple(tensors[name].shape)} {tensors[name].dtype}, "
                f"the model needs {tuple(tensor.shape)} {tensor.dtype}",
            )
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(
            path, f"tensor {bad[0]} holds non-finite values (NaN/inf): the run that wrote it diverged"
        )
    module = build_model(meta["kind"], meta["config"])
    module.load_state_dict(tensors)
    return module.to(device).eval(), meta


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a checkpoint file (verified like a load)."""
    return load_tensors(path)[1]


def update_metadata(path: str | os.PathLike, **updates: Any) -> dict[str, Any]:
    """Merge `updates` into a checkpoint's metadata (e.g. new metrics), rewriting file and sidecar atomically."""
    tensors, meta = load_tensors(path)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(meta.get(key), dict):
            meta[key] = {**meta[key], **value}
        else:
            meta[key] = value
    return save_tensors(path, tensors, meta)


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors (for safetensors) and JSON-able rest."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for slot, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{slot}"] = value
            else:
                scalars[f"{index}.{slot}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor], rest: dict[str, Any]
) -> None:
    """Inverse of `optimizer_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, slot = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(index), {})[slot] = value
    for key, value in rest["scalars"].items():
        index, slot = key.split(".", 1)
        state.setdefault(int(index), {})[slot] = value
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
    # the saved moments are contiguous: a channels-last parameter's take its layout again, or the optimiser's
    # update rounds differently from the uninterrupted run's
    for param, slots in optimizer.state.items():
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                slots[slot] = torch.empty_like(param, dtype=value.dtype).copy_(value)

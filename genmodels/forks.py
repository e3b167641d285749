"""Forks: a new run that starts from the weights of a checkpoint or of another run, with changed settings.

A run folder (or its `state.safetensors`) gives every network of the parent run (a GAN's generator, its
averaged copy and its discriminator); a model checkpoint (a shipped one, or a run's `<kind>.safetensors`) gives the
network it serves only, so the other networks of the task start fresh. Optimisers, learning-rate schedule and step
count always start anew: a fork's log begins at step 0.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genmodels.checkpoint import CheckpointError, load_tensors
from genmodels.kinds import KINDS
from genmodels.models.config import config_to_dict
from genmodels.runs import RunFolder, read_json

STATE_PREFIX = "module."  # a state file names each network's tensors module.<network>.<tensor>


@dataclass(frozen=True)
class ForkSource:
    """Where a fork's weights come from, and what the parent was."""

    path: Path  # the safetensors file read
    whole_state: bool  # a run's resumable state (every network) rather than a model checkpoint (the served one)
    kind: str
    dataset: str
    model: dict[str, Any]  # the parent's model config

    def record(self) -> dict[str, Any]:
        """What the fork's config.json keeps of its parent."""
        parent = self.path.parent if self.whole_state else self.path
        return {"path": str(parent), "kind": self.kind, "dataset": self.dataset, "whole_state": self.whole_state}


def fork_source(path: str | Path) -> ForkSource:
    """The parent a path names: a run folder, its state file, or a model checkpoint; ValueError saying why not."""
    path = Path(path)
    if path.is_dir() or path.name == RunFolder(path.parent).state_file.name:
        folder = RunFolder(path if path.is_dir() else path.parent)
        config = read_json(folder.config_file) or {}
        if not folder.state_file.is_file() or not isinstance(config.get("model"), dict):
            raise ValueError(f"{folder.path} holds no finished run to start from (no saved state or config)")
        return ForkSource(folder.state_file, True, str(config.get("kind")), str(config.get("dataset")), config["model"])
    if path.suffix != ".safetensors" or not path.is_file():
        raise ValueError(f"{path}: not a run folder nor a .safetensors checkpoint")
    try:
        _, meta = load_tensors(path)
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None
    if meta.get("kind") is None or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{path} is a training state without its run folder's config; name the run folder")
    return ForkSource(path, False, str(meta["kind"]), str(meta.get("dataset")), meta["config"])


def check_compatible(source: ForkSource, kind: str, dataset: str, model: dict[str, Any] | None = None) -> None:
    """Refuse a parent of another kind, dataset or architecture, in one message naming each difference."""
    differences = []
    if source.kind != kind:
        differences.append(f"it is a {source.kind}, not a {kind}")
    if source.dataset != dataset:
        differences.append(f"it was trained on {source.dataset}, not {dataset}")
    if model is not None and source.kind == kind:
        model = _as_stored(model)
        parent = _with_defaults(kind, source.model)
        changed = sorted(k for k in {*model, *parent} if model.get(k) != parent.get(k))
        if changed:
            shown = ", ".join(f"{k} {parent.get(k)!r} -> {model.get(k)!r}" for k in changed)
            differences.append(f"its architecture differs ({shown})")
    if differences:
        raise ValueError(
            f"cannot start from {source.path}: {'; '.join(differences)}. A fork keeps its parent's kind, dataset "
            "and architecture and changes only how it trains (objective, learning rates, beta, ...)"
        )


def _with_defaults(kind: str, model: dict[str, Any]) -> dict[str, Any]:
    """A parent's stored model config with the fields it predates at their defaults: what its module was built with
    (a checkpoint saved before a field existed loads with that field's default)."""
    return {**_as_stored(config_to_dict(KINDS[kind].config_cls())), **model}


def _as_stored(model: dict[str, Any]) -> dict[str, Any]:
    """A model config as a run's config.json stores it (tuples become lists), so it compares with a parent's."""
    return json.loads(json.dumps(model))


def network_tensors(source: ForkSource) -> dict[str | None, dict[str, Any]]:
    """The parent's tensors by network name (a state file), or under None: the served network's, for every network
    of the fork they fit (a GAN checkpoint's generator fits the generator and its averaged copy)."""
    tensors, _ = load_tensors(source.path)
    if not source.whole_state:
        return {None: tensors}
    networks: dict[str | None, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        if name.startswith(STATE_PREFIX):
            network, _, key = name[len(STATE_PREFIX) :].partition(".")
            networks.setdefault(network, {})[key] = tensor
    return networks

"""Checked training requests from the app's launcher: ranges, defaults from the shipped recipes, and the launch
itself."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from genmodels.datasets import DATASETS, dataset_info
from genmodels.kinds import KINDS
from genmodels.runs import RunInfo, launch_run

LAUNCH_KINDS = tuple(KINDS)
EPOCH_RANGE = (1, 500)
BATCH_RANGE = (8, 4096)
LR_RANGE = (1e-6, 1.0)
SEED_RANGE = (0, 2**31 - 1)
MAX_STEPS_RANGE = (1, 10_000_000)


@dataclass(frozen=True)
class TrainingRequest:
    """A validated training launch: what `python -m train` will be started with."""

    kind: str
    dataset: str
    epochs: int
    batch_size: int
    lr: float | None  # None: the shipped recipe's learning rate
    seed: int
    max_steps: int | None = None
    nproc: int = 1  # processes of one run (torchrun); offered only where max_processes() > 1


def recipe_lr(kind: str, dataset: str) -> float:
    """The learning rate of the shipped recipe of (kind, dataset)."""
    return KINDS[kind].recipe(dataset).lr


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number between {low} and {high}, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {int(value)}")
    return int(value)


def parse_lr(text: str | float | None) -> float | None:
    """A learning rate typed by the user ('' or None: the recipe's default); ValueError with the allowed range."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    low, high = LR_RANGE
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"learning rate must be a number like 0.0002 or 2e-4, got {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"learning rate must be between {low:g} and {high:g}, got {value:g}")
    return value


def gpu_count() -> int:
    """NVIDIA GPUs here, from the driver's /proc entries: never through torch, which a page may be importing in
    another thread at this moment (a half-initialised module has no `cuda` yet), and which the first page must not
    wait for."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def max_processes() -> int:
    """The most processes the launcher offers for one run: the GPUs where there are several, else the CPU cores
    where there are more than two; 1 (the count is not offered) elsewhere."""
    gpus = gpu_count()
    if gpus:
        return gpus
    cores = os.cpu_count() or 1
    return cores if cores > 2 else 1


def check_request(
    kind: Any, dataset: Any, epochs: Any, batch_size: Any, lr: Any, seed: Any, max_steps: Any = None, nproc: Any = 1
) -> TrainingRequest:
    """Validate every launcher field; ValueError naming the first bad one and its allowed range."""
    if kind not in LAUNCH_KINDS:
        raise ValueError(f"model kind must be one of {', '.join(LAUNCH_KINDS)}, got {kind!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return TrainingRequest(
        kind=kind,
        dataset=dataset_info(dataset).name,
        epochs=_integer("epochs", epochs, *EPOCH_RANGE),
        batch_size=_integer("batch size", batch_size, *BATCH_RANGE),
        lr=parse_lr(lr),
        seed=_integer("seed", seed, *SEED_RANGE),
        max_steps=None if max_steps in (None, 0) else _integer("max steps", max_steps, *MAX_STEPS_RANGE),
        nproc=_checked_processes(nproc, batch_size),
    )


def _checked_processes(nproc: Any, batch_size: Any) -> int:
    count = _integer("processes", nproc, 1, max_processes())
    if int(batch_size) % count:
        raise ValueError(f"batch size {int(batch_size)} must be a multiple of the {count} processes that share it")
    return count


def start(request: TrainingRequest) -> RunInfo:
    """Launch the request as a separate training process (raises genmodels.runs.LaunchError when refused)."""
    lr = request.lr if request.lr is not None else recipe_lr(request.kind, request.dataset)
    extra = ["--max-steps", str(request.max_steps)] if request.max_steps else []
    if request.nproc > 1:
        extra += ["--nproc", str(request.nproc)]
    return launch_run(
        request.kind,
        request.dataset,
        epochs=request.epochs,
        batch_size=request.batch_size,
        lr=lr,
        seed=request.seed,
        extra=extra,
    )

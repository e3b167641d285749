"""A model-agnostic training loop: epochs of steps, periodic logging, graceful stop on signals.

The loop knows nothing of GANs or VAEs: a task supplies `step(images, labels) -> losses`,
the caller supplies callbacks that log, draw grids and save checkpoints.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import torch

from train.distributed import SOLO, Distributed


class Task(Protocol):
    """What the trainer drives: one optimisation step on a batch, returning detached loss tensors."""

    def train_mode(self) -> None: ...

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]: ...


class EpochBatches(Protocol):
    """Batches of (images, labels) whose order is fixed by the epoch number."""

    def set_epoch(self, epoch: int) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor | None, torch.Tensor]]: ...


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass
class Progress:
    """Where the loop is: epoch (0-based, current), step within the epoch, global step and timings."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    images_seen: int = 0
    started: float = field(default_factory=time.perf_counter)
    wall_offset: float = 0.0  # wall time of earlier (resumed) segments

    @property
    def wall_time(self) -> float:
        return self.wall_offset + time.perf_counter() - self.started


class StopFlag:
    """Set by SIGTERM / SIGINT so the loop finishes its step and stops cleanly."""

    def __init__(self) -> None:
        self.requested: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = signal.Signals(signum).name


@dataclass
class Callbacks:
    """Caller hooks: on_log and on_epoch_end, each called with (progress, mean losses, images per second)."""

    on_log: Callable[[Progress, dict[str, float], float], None] = lambda p, losses, rate: None
    on_epoch_end: Callable[[Progress, dict[str, float], float], None] = lambda p, losses, rate: None


@dataclass
class _Window:
    """Summed step losses, steps and images since `start`: one logging window, or a whole epoch."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    steps: int = 0
    images: int = 0
    start: float = field(default_factory=time.perf_counter)

    def add(self, losses: dict[str, torch.Tensor], steps: int, images: int) -> None:
        for name, value in losses.items():
            self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.steps += steps
        self.images += images

    def means(self) -> dict[str, float]:
        """Each loss averaged over the steps."""
        return {name: float(value) / max(self.steps, 1) for name, value in self.sums.items()}

    def rate(self) -> float:
        """Images per second since the window opened."""
        return self.images / max(time.perf_counter() - self.start, 1e-9)


def run_epochs(
    task: Task,
    batches: EpochBatches,
    epochs: int,
    progress: Progress,
    callbacks: Callbacks,
    stop: StopFlag,
    log_every: int = 100,
    max_steps: int | None = None,
    skip_batches: int = 0,
    dist: Distributed = SOLO,
) -> str:
    """Train from `progress` to `epochs`; returns 'finished', 'max_steps' or the stopping signal's name.

    Under torchrun (`dist`) each rank trains on its shard of every global batch and all ranks stop after the same step.
    """
    while progress.epoch < epochs:
        task.train_mode()
        batches.set_epoch(progress.epoch)
        epoch, window = _Window(), _Window()
        for i, (images, labels) in enumerate(batches):
            if i < skip_batches:
                continue  # resuming mid-epoch: the same permutation, minus the batches already trained
            if max_steps is not None and progress.global_step >= max_steps:
                return "max_steps"  # a resumed run that had already reached the limit trains no further step
            dist.seed_step(task, progress.global_step)  # distributed: each rank's noise, fixed by (seed, rank, step)
            window.add(task.step(*dist.shard(images, labels)), 1, len(labels))
            progress.step_in_epoch = i + 1
            progress.global_step += 1
            progress.images_seen += len(labels)
            at_limit = max_steps is not None and progress.global_step >= max_steps
            # read once: a signal landing after this is handled at the next step; distributed: by every rank at once
            stopping = dist.agree_stop(stop.requested)
            # multiples of log_every, not log_every steps into the window: after a resume or an epoch's shorter
            # last window the records stay where an unbroken run puts them
            if progress.global_step % log_every == 0 or at_limit or stopping:
                window = _close_window(window, epoch, progress, callbacks, dist)
            if at_limit:
                return "max_steps"
            if stopping:
                return stopping
        skip_batches = 0
        if window.steps:  # the epoch's last, shorter window: logged too, so step records cover every step
            _close_window(window, epoch, progress, callbacks, dist)
        progress.epoch += 1
        progress.step_in_epoch = 0
        callbacks.on_epoch_end(progress, epoch.means(), epoch.rate())
        stopping = dist.agree_stop(stop.requested)
        if stopping:
            return stopping
    return "finished"


def _close_window(
    window: _Window, epoch: _Window, progress: Progress, callbacks: Callbacks, dist: Distributed = SOLO
) -> _Window:
    """Log a window, add it to the epoch's totals, and open the next one."""
    dist.average_(window.sums)  # distributed: the global batch's losses, the same on every rank (a NaN stops them all)
    means = window.means()
    callbacks.on_log(progress, means, window.rate())  # logged before stopping, so the log names the divergence
    bad = [name for name, value in means.items() if not math.isfinite(value)]
    if bad:
        raise TrainingDiverged(f"non-finite {', '.join(bad)}: training diverged")
    epoch.add(window.sums, window.steps, window.images)
    return _Window()

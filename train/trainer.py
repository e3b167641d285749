"""A model-agnostic training loop: epochs of steps, periodic logging, graceful stop on signals.

The loop knows nothing of GANs or VAEs: a task supplies `step(images, labels) -> losses`,
the caller supplies callbacks that log, draw grids and save checkpoints.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import torch


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
    """Caller hooks: on_log(progress, mean losses), on_epoch_end(progress, mean losses), on_stop(progress)."""

    on_log: Callable[[Progress, dict[str, float], float], None] = lambda p, losses, rate: None
    on_epoch_end: Callable[[Progress, dict[str, float], float], None] = lambda p, losses, rate: None


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
) -> str:
    """Train from `progress` to `epochs`; returns 'finished', 'max_steps' or the stopping signal's name."""
    while progress.epoch < epochs:
        task.train_mode()
        batches.set_epoch(progress.epoch)
        window: dict[str, torch.Tensor] = {}
        epoch_sums: dict[str, torch.Tensor] = {}
        window_steps = epoch_steps = 0
        window_images = epoch_images = 0
        window_start = epoch_start = time.perf_counter()
        for i, (images, labels) in enumerate(batches):
            if i < skip_batches:
                continue  # resuming mid-epoch: the same permutation, minus the batches already trained
            losses = task.step(images, labels)
            for name, value in losses.items():
                window[name] = window[name] + value if name in window else value.clone()
            window_steps += 1
            window_images += len(labels)
            progress.step_in_epoch = i + 1
            progress.global_step += 1
            progress.images_seen += len(labels)
            at_limit = max_steps is not None and progress.global_step >= max_steps
            stopping = stop.requested  # read once: a signal landing after this is handled at the next step
            if window_steps == log_every or at_limit or stopping:
                means = _means(window, window_steps)
                rate = window_images / max(time.perf_counter() - window_start, 1e-9)
                callbacks.on_log(progress, means, rate)
                for name, value in window.items():
                    epoch_sums[name] = epoch_sums[name] + value if name in epoch_sums else value
                epoch_steps += window_steps
                epoch_images += window_images
                window, window_steps, window_images = {}, 0, 0
                window_start = time.perf_counter()
            if at_limit:
                return "max_steps"
            if stopping:
                return stopping
        skip_batches = 0
        if window_steps:  # the epoch's last, shorter window: logged too, so step records cover every step
            callbacks.on_log(progress, _means(window, window_steps), window_images / max(time.perf_counter() - window_start, 1e-9))
        for name, value in window.items():
            epoch_sums[name] = epoch_sums[name] + value if name in epoch_sums else value
        epoch_steps += window_steps
        epoch_images += window_images
        progress.epoch += 1
        progress.step_in_epoch = 0
        rate = epoch_images / max(time.perf_counter() - epoch_start, 1e-9)
        callbacks.on_epoch_end(progress, _means(epoch_sums, max(epoch_steps, 1)), rate)
        if stop.requested:
            return stop.requested
    return "finished"


def _means(sums: dict[str, torch.Tensor], steps: int) -> dict[str, float]:
    means = {name: float(value) / steps for name, value in sums.items()}
    bad = [name for name, value in means.items() if not math.isfinite(value)]
    if bad:
        raise TrainingDiverged(f"non-finite {', '.join(bad)}: training diverged")
    return means

"""Training throughput per model kind: the project's loop vs the reference loop, interleaved, median of repetitions."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import reference
from bench.timing import matmul_gflops, median, sync
from genmodels.data import TensorBatches, load_split
from train.recipes import default_recipe
from train.run import RunRequest
from train.run import build_task as build_run_task
from train.trainer import Callbacks, Progress, StopFlag, run_epochs

COMPARE_BATCH = 64
MNIST_TRAIN_IMAGES = 60_000


@dataclass
class ProjectLoop:
    """The project's task driven by the project's own epoch loop (train.trainer.run_epochs)."""

    task: Any
    batches: TensorBatches
    progress: Progress

    def run(self, steps: int) -> int:
        """Train `steps` steps; returns the number of images seen."""
        before = self.progress.images_seen
        run_epochs(
            self.task,
            self.batches,
            self.progress.epoch + 10**6,
            self.progress,
            Callbacks(),
            StopFlag(),
            max_steps=self.progress.global_step + steps,
        )
        return self.progress.images_seen - before


@dataclass
class ReferenceLoop:
    """A reference trainer fed by its torchvision DataLoader, epoch after epoch."""

    step: Callable[[torch.Tensor, torch.Tensor], float]
    loader: torch.utils.data.DataLoader
    device: torch.device

    def __post_init__(self) -> None:
        self.batches = self._forever()

    def _forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from self.loader

    def run(self, steps: int) -> int:
        seen = 0
        for _ in range(steps):
            images, labels = next(self.batches)
            self.step(images.to(self.device), labels.to(self.device))
            seen += len(labels)
        return seen


def build_task(kind: str, dataset: str, device: torch.device, **overrides: Any):
    """The project's task for (kind, dataset) with the shipped recipe, fields replaced by `overrides`."""
    recipe = default_recipe(kind, dataset, **overrides)
    request = RunRequest(kind=kind, dataset=dataset, recipe=recipe, run_dir=Path("."), device=device)
    steps = MNIST_TRAIN_IMAGES // recipe.batch_size * recipe.epochs
    return build_run_task(request, steps), recipe


def project_loop(kind: str, dataset: str, device: torch.device, **overrides: Any) -> ProjectLoop:
    """The project's task and batches, exactly as `python -m train` builds them."""
    task, recipe = build_task(kind, dataset, device, **overrides)
    images, labels = load_split(dataset, "train")
    batches = TensorBatches(task.prepare(images), labels.to(device), recipe.batch_size, recipe.seed)
    return ProjectLoop(task, batches, Progress())


def reference_loop(
    kind: str, dataset: str, batch_size: int, device: torch.device, data_root: str, twin: ProjectLoop
) -> ReferenceLoop:
    """The usual-way trainer of the same model (a copy of the project's freshly initialised modules)."""
    loader = reference.reference_loader(dataset, data_root, batch_size, kind)
    return ReferenceLoop(reference.reference_trainer(twin.task).step, loader, device)


def flops_per_image(loop: ProjectLoop) -> float:
    """FLOPs of one training step per image, counted from the matmul and convolution shapes (forward + backward)."""
    images, labels = next(iter(loop.batches))
    # eagerly: a compiled step (the vae's) would otherwise be compiled under the counter and keep that slower graph
    with torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter:
        loop.task.step(images, labels)
    return counter.get_total_flops() / len(labels)


def measure(
    device: torch.device, data_root: str, dataset: str, repeats: int, seconds: float, log: Callable[[str], None]
) -> dict[str, Any]:
    """Per kind: images/s of both loops at batch 64 and of the project at its default batch, with achieved GFLOP/s
    as a fraction of the matmul peak (fp32, and bf16 where the project's loop runs in bf16) measured alongside."""
    peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}
    out: dict[str, Any] = {}
    for kind in reference.compared_kinds():
        default_batch = default_recipe(kind, dataset).batch_size
        loops = {
            "project": project_loop(kind, dataset, device, batch_size=COMPARE_BATCH),
            "project_default": project_loop(kind, dataset, device),
        }
        loops["reference"] = reference_loop(kind, dataset, COMPARE_BATCH, device, data_root, loops["project"])
        flops = flops_per_image(loops["project_default"])
        steps = {name: calibrate(loop, device, seconds) for name, loop in loops.items()}
        rates: dict[str, list[float]] = {name: [] for name in loops}
        precision = loops["project_default"].task.precision
        for rep in range(repeats):
            peaks["fp32"].append(matmul_gflops(device))
            if precision == "bf16":
                peaks["bf16"].append(matmul_gflops(device, dtype=torch.bfloat16))
            order = list(loops) if rep % 2 == 0 else list(reversed(loops))
            for name in order:
                rates[name].append(images_per_s(loops[name], steps[name], device))
        project, reference_rate, default = (median(rates[n]) for n in ("project", "reference", "project_default"))
        out[kind] = {
            "batch_size": COMPARE_BATCH,
            "project_images_per_s": round(project),
            "reference_images_per_s": round(reference_rate),
            "speedup": round(project / reference_rate, 2),
            "project_s_per_epoch": round(MNIST_TRAIN_IMAGES / project, 1),
            "reference_s_per_epoch": round(MNIST_TRAIN_IMAGES / reference_rate, 1),
            "default_batch_size": default_batch,
            "default_images_per_s": round(default),
            "default_s_per_epoch": round(MNIST_TRAIN_IMAGES / default, 1),
            "precision": precision,
            "compiled": loops["project"].task.compiled,
            "gflop_per_image": round(flops / 1e9, 5),
            "achieved_gflops": round(default * flops / 1e9, 1),
            "repeats": repeats,
            "steps_per_repeat": steps,
        }
        log(
            f"train {kind}: project {project:.0f} img/s vs reference {reference_rate:.0f} img/s "
            f"at batch {COMPARE_BATCH} (x{project / reference_rate:.2f}); "
            f"batch {default_batch}: {default:.0f} img/s, {default * flops / 1e9:.1f} GFLOP/s"
        )
        del loops
    peak = {name: median(values) for name, values in peaks.items() if values}
    for kind in reference.compared_kinds():
        # against the peak of the precision the loop multiplies in: a bf16 loop is not credited with beating fp32
        out[kind]["fraction_of_peak"] = round(out[kind]["achieved_gflops"] / peak[out[kind]["precision"]], 3)
        out[kind]["fraction_of_fp32_peak"] = round(out[kind]["achieved_gflops"] / peak["fp32"], 3)
    out["matmul_peak_gflops"] = round(peak["fp32"], 1)
    if "bf16" in peak:
        out["matmul_peak_bf16_gflops"] = round(peak["bf16"], 1)
    return out


def calibrate(loop, device: torch.device, seconds: float) -> int:
    """Warm the loop up and pick a step count that takes about `seconds`."""
    loop.run(2)
    sync(device)
    start = time.perf_counter()
    loop.run(3)
    sync(device)
    per_step = (time.perf_counter() - start) / 3
    return max(3, int(seconds / max(per_step, 1e-6)))


def images_per_s(loop, steps: int, device: torch.device) -> float:
    """Images per second of `steps` steps of the loop, timed from a synchronised start to a synchronised end."""
    sync(device)
    start = time.perf_counter()
    seen = loop.run(steps)
    sync(device)
    return seen / (time.perf_counter() - start)

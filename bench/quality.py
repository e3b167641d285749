"""Time to quality: wall time from scratch until 1,000 samples of a conditional GAN reach a class accuracy under
the shipped classifier."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from bench import reference
from bench.throughput import project_loop
from bench.timing import sync
from genmodels import api, metrics
from genmodels.kinds import KINDS, generator_kinds
from genmodels.recipes import Recipe
from train.recipes import default_recipe
from train.trainer import Callbacks, Progress, StopFlag, run_epochs

TARGET_ACCURACY = 0.95
SAMPLES_PER_CLASS = 100
EVAL_SEED = 4321
REFERENCE_SETTINGS = {"batch_size": 64, "lr": 2e-4}  # the reports' settings


@dataclass
class QualityRun:
    """How one loop got (or failed to get) to the target accuracy."""

    reached: bool
    train_s: float  # training wall time, quality checks excluded
    steps: int
    images: int
    accuracy: float
    history: list[tuple[int, float, float]]  # (step, train seconds, accuracy) at each check


class Judge:
    """1,000 fixed (noise, label) pairs and the shipped classifier that scores a generator's images of them."""

    def __init__(self, dataset: str, latent_dim: int, num_classes: int, device: torch.device):
        self.classifier = api.load_classifier(dataset, device=device)
        self.labels = torch.arange(num_classes).repeat_interleave(SAMPLES_PER_CLASS)
        self.z = torch.randn(len(self.labels), latent_dim, generator=torch.Generator().manual_seed(EVAL_SEED))
        self.device = device

    @torch.no_grad()
    def accuracy(self, generator: torch.nn.Module) -> float:
        """Class accuracy of the generator's images (eval mode; train mode restored)."""
        was_training = generator.training
        images = generator.eval().decode(self.z.to(self.device), self.labels.to(self.device))
        generator.train(was_training)
        return metrics.class_accuracy(api.predict(self.classifier, images), self.labels)


def quality_kinds() -> list[str]:
    """The kinds timed to quality: the generators trained against a discriminator that take class labels."""
    return [kind for kind in generator_kinds() if KINDS[kind].adversarial and KINDS[kind].conditional]


def run_project(
    kind: str, dataset: str, device: torch.device, check_every: int, budget_s: float, log: Callable[[str], None]
) -> tuple[QualityRun, Recipe, str]:
    """The project's task and loop for `kind` with its shipped (default) recipe, checked every `check_every` steps."""
    loop = project_loop(kind, dataset, device)
    task = loop.task
    judge = Judge(dataset, task.config.latent_dim, task.config.num_classes, device)
    check_every = min(check_every, len(loop.batches))  # the loop logs within an epoch, never across two
    history: list[tuple[int, float, float]] = []
    paused = [0.0]

    def on_log(progress: Progress, losses: dict[str, float], rate: float) -> None:
        sync(device)
        start = time.perf_counter()
        accuracy = judge.accuracy(task.model())
        paused[0] += time.perf_counter() - start
        train_s = time.perf_counter() - started - paused[0]
        history.append((progress.global_step, round(train_s, 2), accuracy))
        if accuracy >= TARGET_ACCURACY or train_s > budget_s:
            stop.requested = "quality"

    stop = StopFlag()
    started = time.perf_counter()
    run_epochs(task, loop.batches, 10**6, loop.progress, Callbacks(on_log=on_log), stop, log_every=check_every)
    result = _result(history, loop.progress.images_seen // max(loop.progress.global_step, 1))
    log(
        f"quality {kind} project (batch {task.recipe.batch_size}, lr {task.recipe.lr:g}, {task.precision}): "
        f"{_outcome(result)}"
    )
    return result, task.recipe, task.precision


def run_reference(
    kind: str,
    dataset: str,
    device: torch.device,
    data_root: str,
    check_every: int,
    budget_s: float,
    log: Callable[[str], None],
) -> QualityRun:
    """The usual-way loop (torchvision DataLoader, tutorial step) at the reports' settings, checked like the
    project's."""
    twin = project_loop(kind, dataset, device, **REFERENCE_SETTINGS)
    task = twin.task
    trainer = reference.reference_trainer(task)
    loader = reference.reference_loader(dataset, data_root, REFERENCE_SETTINGS["batch_size"], kind)
    judge = Judge(dataset, task.config.latent_dim, task.config.num_classes, device)
    del twin, task
    history: list[tuple[int, float, float]] = []
    steps = 0
    train_s = 0.0
    start = time.perf_counter()
    while True:
        for images, labels in loader:
            trainer.step(images.to(device), labels.to(device))
            steps += 1
            if steps % check_every:
                continue
            sync(device)
            train_s += time.perf_counter() - start
            accuracy = judge.accuracy(trainer.generator)
            history.append((steps, round(train_s, 2), accuracy))
            if accuracy >= TARGET_ACCURACY or train_s > budget_s:
                result = _result(history, REFERENCE_SETTINGS["batch_size"])
                log(f"quality {kind} reference (batch 64, lr 2e-4): {_outcome(result)}")
                return result
            start = time.perf_counter()


def measure(
    kind: str,
    dataset: str,
    device: torch.device,
    data_root: str,
    budget_s: float,
    check_images: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Both loops of `kind` from scratch to TARGET_ACCURACY; speedup = reference seconds / project seconds."""
    batch_size = default_recipe(kind, dataset).batch_size
    project, recipe, precision = run_project(kind, dataset, device, max(1, check_images // batch_size), budget_s, log)
    ref = run_reference(
        kind, dataset, device, data_root, max(1, check_images // REFERENCE_SETTINGS["batch_size"]), budget_s, log
    )
    speedup = ref.train_s / project.train_s if project.reached else 0.0
    return {
        "target_accuracy": TARGET_ACCURACY,
        "samples_per_class": SAMPLES_PER_CLASS,
        "dataset": dataset,
        "check_every_images": check_images,
        "budget_s": budget_s,
        "project_recipe": {
            **{
                k: v
                for k, v in asdict(recipe).items()
                if k in ("batch_size", "lr", "betas", "ema_decay", "label_smoothing", "schedule")
            },
            "precision": precision,
        },
        "reference_settings": REFERENCE_SETTINGS,
        "project": asdict(project),
        "reference": asdict(ref),
        "speedup": round(speedup, 2),
        "speedup_is_lower_bound": project.reached and not ref.reached,
    }


def _result(history: list[tuple[int, float, float]], batch_size: int) -> QualityRun:
    step, train_s, accuracy = history[-1]
    return QualityRun(accuracy >= TARGET_ACCURACY, train_s, step, step * batch_size, accuracy, history)


def _outcome(run: QualityRun) -> str:
    verb = "reached" if run.reached else "did not reach"
    return f"{verb} {TARGET_ACCURACY:.0%} ({run.accuracy:.1%}) after {run.steps} steps, {run.train_s:.1f} s of training"

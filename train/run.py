"""Train one model into a run folder: config, metrics log, per-epoch grids, checkpoints, status.

The driver knows nothing of particular kinds: it builds the task that the kind's registry entry names
(`genmodels.kinds`) and drives it through the `train.tasks.base.BaseTask` interface.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genmodels import api, health, metrics
from genmodels.checkpoint import CheckpointError, load_tensors, save_model, save_tensors
from genmodels.data import DataMissingError, load_split
from genmodels.forks import ForkSource, check_compatible, network_tensors
from genmodels.images import grid_png
from genmodels.kinds import KINDS, resolve
from genmodels.recipes import Recipe
from genmodels.runs import MetricsLog, RunFolder, read_json, read_metrics, write_json
from train import distributed
from train.tasks.base import BaseTask
from train.trainer import Callbacks, EpochBatches, Progress, StopFlag, TrainingDiverged, run_epochs

SAVED_PROGRESS = ("epoch", "step_in_epoch", "global_step", "images_seen", "wall_time")  # in a state file's metadata


@dataclass
class RunRequest:
    """Everything one training run needs, validated by the CLI."""

    kind: str
    dataset: str
    recipe: Recipe
    run_dir: Path
    device: torch.device
    max_steps: int | None = None
    resume: bool = False
    needs: dict[str, Path] = field(default_factory=dict)  # checkpoints of needed kinds (default: the shipped ones)
    log_every: int = 100
    data_root: str | None = None
    fork: ForkSource | None = None  # the parent whose weights a fork starts from

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.run_dir)


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present else CPU; 'cuda' without a GPU is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def task_class(kind: str) -> type[BaseTask]:
    """The training task class that the kind's registry entry names."""
    return resolve(KINDS[kind].task)


def build_task(req: RunRequest, total_steps: int) -> BaseTask:
    """The task of a run, built as `python -m train` builds it."""
    return task_class(req.kind).build(req, total_steps)


def _log(message: str) -> None:
    if distributed.current().is_rank0:  # distributed: one copy of each line
        print(message, flush=True)


def resume_recipe(run_dir: Path, kind: str, dataset: str) -> Recipe:
    """The recipe the run in `run_dir` was started with; ValueError when there is no such run of (kind, dataset)."""
    folder = RunFolder(run_dir)
    if not folder.state_file.is_file():
        raise ValueError(
            f"--resume: {run_dir} holds no saved training state ({folder.state_file.name}); nothing to continue"
        )
    config = read_json(folder.config_file)
    if config is None or not isinstance(config.get("recipe"), dict):
        raise ValueError(f"--resume: {folder.config_file} is missing, unreadable or has no recipe")
    if config.get("kind") != kind or config.get("dataset") != dataset:
        raise ValueError(
            f"--resume: {run_dir} holds a {config.get('kind')} run on {config.get('dataset')}, not {kind} on {dataset}"
        )
    fields = {f.name for f in dataclasses.fields(Recipe)}
    try:
        recipe = Recipe(**{k: v for k, v in config["recipe"].items() if k in fields})
        recipe.betas = tuple(recipe.betas)
        recipe.model = dict(recipe.model)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--resume: the recipe in {folder.config_file} is malformed: {exc}") from None
    return recipe


def train_model(req: RunRequest) -> int:
    """Run one training job; returns the process exit code (0 finished or cancelled, 1 failed)."""
    if not distributed.current().is_rank0:  # distributed: rank 0 alone creates, locks and writes the run folder
        return _train_locked(req)
    req.run_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_run(req.run_dir)
    if lock is None:
        print(
            f"error: another training is using {req.run_dir}; wait for it to end or choose another --run-dir",
            file=sys.stderr,
        )
        return 2
    with lock:
        return _train_locked(req)


def _lock_run(run_dir: Path):
    """An exclusive lock on the run folder, held while the returned file stays open; None when another holds it."""
    import fcntl

    handle = open(RunFolder(run_dir).lock_file, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class RunStatus:
    """A run's status.json, rewritten on every change: the app and `train all` read the run's state from it."""

    def __init__(self, path: Path, **fields: Any):
        self.path = path
        self.fields: dict[str, Any] = {}
        self.set(**fields)

    def set(self, **fields: Any) -> None:
        """Update fields and rewrite the file."""
        self.fields.update(fields, updated=time.time())
        if distributed.current().is_rank0:  # distributed: rank 0 writes the run folder
            write_json(self.path, self.fields)

    def drop(self, name: str) -> None:
        """Forget a field; written with the next `set`."""
        self.fields.pop(name, None)


def _train_locked(req: RunRequest) -> int:
    if distributed.current().is_rank0:
        req.folder.grids_dir.mkdir(exist_ok=True)
    status = RunStatus(
        req.folder.status_file,
        state="running",
        pid=os.getpid(),
        kind=req.kind,
        dataset=req.dataset,
        epochs=req.recipe.epochs,
        epoch=0,
        step=0,
        started=time.time(),
        **distributed.current().facts(),
    )
    stop = StopFlag()
    stop.install()
    run = None
    try:
        run = TrainingRun.start(req, status)
        run.finish(run.train(stop))
        return 0
    except TrainingDiverged as exc:
        status.set(state="failed", reason=str(exc))
        print(f"error: {exc}; the last good checkpoint is kept", file=sys.stderr)
        return 1
    except (CheckpointError, DataMissingError, ValueError, OSError) as exc:
        status.set(state="failed", reason=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except torch.cuda.OutOfMemoryError as exc:
        status.set(state="failed", reason=f"out of GPU memory: {exc}")
        print("error: out of GPU memory; use a smaller --batch-size", file=sys.stderr)
        return 1
    except Exception as exc:  # anything unforeseen: record it for the app, keep the traceback in stderr.log
        traceback.print_exc()
        status.set(state="failed", reason=f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        if run is not None:
            run.close()


class TrainingRun:
    """One run under way: its task, batches and test split, progress, config and metrics log, and the callbacks
    the trainer calls at each log window and epoch end."""

    def __init__(
        self,
        req: RunRequest,
        status: RunStatus,
        task: BaseTask,
        batches: EpochBatches,
        test_split: tuple[torch.Tensor, torch.Tensor],
        steps_per_epoch: int,
        total_steps: int,
    ):
        self.req, self.status, self.task, self.batches = req, status, task, batches
        self.dist = distributed.current()
        self.folder = req.folder
        self.test_split = test_split
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.progress = Progress()
        self.skip_batches = 0
        self.last_eval: dict[str, float] = {}
        self.config = self._config()
        self.log: MetricsLog | None = None
        self.records: list[dict[str, Any]] = []  # the log so far, for the health rules
        self.alerted: set[tuple[str, int]] = set()  # (alert, step) already printed
        self.last_grid: torch.Tensor | None = None  # the previous epoch's fixed-noise samples
        self.bar = EpochBar(f"{req.kind} {req.dataset}", req.recipe.epochs, steps_per_epoch)

    @classmethod
    def start(cls, req: RunRequest, status: RunStatus) -> TrainingRun:
        """Load the data, build and prepare the task, resume when asked, then write the config and open the log."""
        if req.device.type == "cpu":
            torch.set_num_threads(distributed.current().threads())
        train_images, train_labels = load_split(req.dataset, "train", req.data_root)
        test_images, test_labels = load_split(req.dataset, "test", req.data_root)
        tasks = task_class(req.kind)
        steps_per_epoch = tasks.steps_per_epoch(req.recipe, len(train_images))
        total_steps = steps_per_epoch * req.recipe.epochs
        if req.max_steps is not None:
            total_steps = min(total_steps, req.max_steps)
        task = tasks.build(req, total_steps)
        batches = task.batches(train_images, train_labels)
        distributed.current().check_batch(req.recipe.batch_size)
        test_split = task.prepare(test_images), test_labels.to(req.device)
        preparation = task.preparation()
        if preparation:
            status.set(preparing=preparation)
        task.before_training(train_images, train_labels)
        run = cls(req, status, task, batches, test_split, steps_per_epoch, total_steps)
        if req.fork is not None:
            run.start_from(req.fork)
        if req.resume:
            run.resume()
        run.dist.wrap(task)  # distributed: after resuming, DDP starts every rank from rank 0's weights
        run.open_log()
        return run

    def _config(self) -> dict[str, Any]:
        req, task = self.req, self.task
        return {
            "kind": req.kind,
            "dataset": req.dataset,
            "recipe": dataclasses.asdict(req.recipe),
            "model": dataclasses.asdict(task.model().config),
            "device": str(req.device),
            "precision": task.precision,
            "compiled": task.compiled,
            "max_steps": req.max_steps,
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "torch": torch.__version__,
            "argv": sys.argv,
            **self.dist.facts(),
        }

    def start_from(self, fork: ForkSource) -> None:
        """A fork: the parent's weights in every network they fit, after checking the architectures match."""
        config = dataclasses.asdict(distributed.unwrap(self.task.model()).config)
        check_compatible(fork, self.req.kind, self.req.dataset, config)
        fresh = self.task.start_from(network_tensors(fork))
        self.config["forked_from"] = {**fork.record(), "fresh_networks": fresh}
        _log(
            f"forked from {fork.record()['path']}"
            + (f"; {', '.join(fresh)} start fresh (the parent's do not fit)" if fresh else "")
        )

    def resume(self) -> None:
        """Continue from the folder's saved state: the task's, the global generators' and the place in the epoch."""
        req, state_file = self.req, self.folder.state_file
        if resume_recipe(req.run_dir, req.kind, req.dataset).seed != req.recipe.seed:
            raise ValueError(f"--resume: {req.run_dir} was started with another seed than {req.recipe.seed}")
        tensors, meta = load_tensors(state_file)
        try:
            self.task.load_state(
                {k: v if k.startswith("rng.") else v.to(req.device) for k, v in tensors.items()}, meta["task"]
            )
            epoch, step_in_epoch, global_step, images_seen, wall_time = (meta[k] for k in SAVED_PROGRESS)
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:  # another kind's or config's state, or damaged
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"--resume: {state_file} does not hold this run's {req.kind} state ({first_line[:200]})"
            ) from None
        if "rng.torch" in tensors:  # dropout draws from the global generators: resume them too
            torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and req.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], req.device)
        self.progress = Progress(
            epoch=epoch,
            step_in_epoch=step_in_epoch,
            global_step=global_step,
            images_seen=images_seen,
            wall_offset=wall_time,
        )
        self.skip_batches = step_in_epoch
        _log(f"resuming {req.run_dir} at epoch {epoch + 1}, step {global_step}")

    def open_log(self) -> None:
        """Write the run's config, open its metrics log and mark it as training."""
        if self.dist.is_rank0:
            write_json(self.folder.config_file, self.config)
            self.records = read_metrics(self.folder.metrics_file)  # a resumed run's earlier records
            self.alerted = {(alert.name, alert.step) for alert in health.alerts(self.records)}
            self.log = MetricsLog(self.folder.metrics_file)
        self.status.drop("preparing")
        self.status.set(total_steps=self.total_steps, epoch=self.progress.epoch, step=self.progress.global_step)
        if self.task.compiled:
            # the PyPI build looks for a CUDA toolkit whenever it compiles, and warns on a CPU that needs none
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            _log(f"compiling the {self.req.kind} step on its first batch (seconds; --compile off skips it)")

    def train(self, stop: StopFlag) -> str:
        """Train to the recipe's last epoch (or --max-steps, or a stop signal); returns how it ended."""
        req = self.req
        return run_epochs(
            self.task,
            self.batches,
            req.recipe.epochs,
            self.progress,
            Callbacks(self.on_log, self.on_epoch_end),
            stop,
            log_every=req.log_every,
            max_steps=req.max_steps,
            skip_batches=self.skip_batches,
            dist=self.dist,
        )

    def on_log(self, p: Progress, losses: dict[str, float], rate: float) -> None:
        """A log window closed: record its mean losses."""
        if not self.dist.is_rank0:  # distributed: rank 0 logs (the losses are already averaged over the ranks)
            return
        task = self.task
        if task.compile_failure and not self.config.get("compile_failure"):
            self.config.update(compiled=False, compile_failure=task.compile_failure)
            write_json(self.folder.config_file, self.config)
            _log(f"note: torch.compile failed, training goes on uncompiled ({task.compile_failure})")
        epoch = p.epoch + p.step_in_epoch / self.steps_per_epoch
        self.record(
            {
                "type": "step",
                "step": p.global_step,
                "epoch": epoch,
                **losses,
                "wall_time": round(p.wall_time, 3),
                "images_per_s": round(rate, 1),
            }
        )
        self.status.set(epoch=p.epoch, step=p.global_step)
        self.bar.update(p, losses)

    def record(self, record: dict[str, Any]) -> None:
        """Write a metrics record, then print each health alert the log raises for the first time."""
        self.log.write(record)
        self.records.append(record)
        for alert in health.alerts(self.records):
            if (alert.name, alert.step) not in self.alerted:
                self.alerted.add((alert.name, alert.step))
                self.bar.close()
                _log(f"alert: {alert.name} at step {alert.step}: {alert.message}. Try: {alert.fix}.")

    def on_epoch_end(self, p: Progress, losses: dict[str, float], rate: float) -> None:
        """An epoch ended: evaluate, draw its grid, record it and save the checkpoints."""
        if not self.dist.is_rank0:  # distributed: the checks, the grid and the checkpoint once, on rank 0
            return
        epochs = self.req.recipe.epochs
        self.last_eval = self.task.evaluate(*self.test_split)
        signals = self.draw_grid(p.epoch)
        self.record(
            {
                "type": "epoch",
                "step": p.global_step,
                "epoch": p.epoch,
                **losses,
                **self.last_eval,
                **signals,
                "wall_time": round(p.wall_time, 3),
                "images_per_s": round(rate, 1),
            }
        )
        if p.epoch == epochs:
            self.task.finalize()
        self.save_checkpoints()
        self.status.set(epoch=p.epoch, step=p.global_step)
        shown = ", ".join(f"{k}: {v:.4f}" for k, v in {**losses, **self.last_eval}.items())
        self.bar.close()
        _log(f"Epoch [{p.epoch}/{epochs}] {shown} ({p.wall_time:.1f} s, {rate:.0f} img/s)")

    def draw_grid(self, epoch: int) -> dict[str, float]:
        """Save the fixed-noise grid under `epoch`'s number; returns its health signals (none for a kind without
        samples)."""
        images = self.task.grid_images()
        if images is None:
            return {}
        self.folder.grid_file(epoch).write_bytes(grid_png(images, nrow=10))
        judge = self.task.judge
        signals = metrics.sample_health(images, self.last_grid, api.predict(judge, images) if judge else None)
        self.last_grid = images
        return signals

    def save_checkpoints(self) -> None:
        """The model file (with the last epoch-end measures), then the resumable state."""
        req, task, progress = self.req, self.task, self.progress
        save_model(
            self.folder.model_file(req.kind),
            distributed.unwrap(task.model()),
            req.kind,
            req.dataset,
            recipe=dataclasses.asdict(req.recipe),
            epochs_trained=progress.epoch,
            steps_trained=progress.global_step,
            device=str(req.device),
            precision=task.precision,
            compiled=task.compiled,
            metrics=self.last_eval,
            training_wall_time_s=round(progress.wall_time, 1),
            **task.checkpoint_metadata(),
        )
        tensors, task_meta = task.state()
        tensors["rng.torch"] = torch.get_rng_state()
        if req.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(req.device)
        saved = dict(
            zip(
                SAVED_PROGRESS,
                (
                    progress.epoch,
                    progress.step_in_epoch,
                    progress.global_step,
                    progress.images_seen,
                    progress.wall_time,
                ),
                strict=True,
            )
        )
        save_tensors(
            self.folder.state_file, tensors, {"task": task_meta, **saved, "kind": req.kind, "dataset": req.dataset}
        )

    def finish(self, outcome: str) -> None:
        """Save a run stopped mid-epoch, then record how it ended."""
        req, progress = self.req, self.progress
        self.bar.close()
        # stopped mid-epoch: save that state too (distributed: rank 0 does)
        if outcome != "finished" and progress.step_in_epoch and self.dist.is_rank0:
            self.task.finalize()
            if outcome == "max_steps":
                self.last_eval = self.task.evaluate(*self.test_split)
                # a short run (a break-it preset) gets the grid and health signals of the epoch it stopped in
                signals = self.draw_grid(progress.epoch + 1)
                self.record(
                    {
                        "type": "final",
                        "step": progress.global_step,
                        "epoch": progress.epoch + progress.step_in_epoch / self.steps_per_epoch,
                        **self.last_eval,
                        **signals,
                        "wall_time": round(progress.wall_time, 3),
                    }
                )
            self.save_checkpoints()
        state = {"finished": "finished", "max_steps": "finished"}.get(outcome, "cancelled")
        reason = {"max_steps": f"reached --max-steps {req.max_steps}"}.get(
            outcome, f"stopped by {outcome}" if state == "cancelled" else ""
        )
        self.status.set(state=state, reason=reason, epoch=progress.epoch, step=progress.global_step)
        _log(
            f"{state}: {req.run_dir} ({progress.global_step} steps, {progress.wall_time:.1f} s)"
            f"{' - ' + reason if reason else ''}"
        )

    def close(self) -> None:
        """Close the metrics log."""
        if self.log is not None:
            self.log.close()


class EpochBar:
    """A tqdm bar per epoch when stderr is a terminal; silent when output goes to a file (app-launched runs)."""

    def __init__(self, name: str, epochs: int, steps_per_epoch: int):
        self.name, self.epochs, self.steps_per_epoch = name, epochs, steps_per_epoch
        self.enabled = sys.stderr.isatty()
        self._bar = None

    def update(self, progress: Progress, losses: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.steps_per_epoch,
                desc=f"{self.name} epoch {progress.epoch + 1}/{self.epochs}",
                leave=False,
                unit="step",
            )
        self._bar.set_postfix({k: f"{v:.3f}" for k, v in list(losses.items())[:4]}, refresh=False)
        self._bar.update(progress.step_in_epoch - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

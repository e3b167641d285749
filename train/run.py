"""Train one model into a run folder: config, metrics log, per-epoch grids, checkpoints, status."""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genmodels.checkpoint import CheckpointError, checkpoint_path, load_model, load_tensors, save_model, save_tensors
from genmodels.data import DataMissingError, TensorBatches, load_split
from genmodels.datasets import dataset_info
from genmodels.images import grid_png
from genmodels.models import CGANConfig, ClassifierConfig, GANConfig, MapperConfig, VAEConfig, config_from_dict
from genmodels.runs import MetricsLog, read_json, write_json
from genmodels.recipes import Recipe
from train.tasks import CGANTask, ClassifierTask, GANTask, LabelBatches, MapperTask, VAETask
from train.trainer import Callbacks, Progress, StopFlag, TrainingDiverged, run_epochs

STATE_FILE = "state.safetensors"
LOCK_FILE = ".train.lock"  # flock'ed by the training process, so two cannot write one run folder


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
    classifier: Path | None = None  # judge of sample quality; the shipped one by default
    gan: Path | None = None  # mapper only: the frozen generator
    log_every: int = 100
    data_root: str | None = None


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present else CPU; 'cuda' without a GPU is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is available on this machine")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def _log(message: str) -> None:
    print(message, flush=True)


def _model_config(config_cls: type, req: RunRequest, **fixed: Any):
    return config_from_dict(config_cls, {**req.recipe.model, **fixed})


def _build_task(req: RunRequest, total_steps: int):
    num_classes = dataset_info(req.dataset).num_classes
    if req.kind == "classifier":
        return ClassifierTask(_model_config(ClassifierConfig, req, num_classes=num_classes), req.recipe, req.device, total_steps)
    if req.kind == "gan":
        return GANTask(_model_config(GANConfig, req), req.recipe, req.device, total_steps)
    if req.kind == "cgan":
        return CGANTask(_model_config(CGANConfig, req, num_classes=num_classes), req.recipe, req.device, total_steps)
    if req.kind == "vae":
        return VAETask(_model_config(VAEConfig, req, num_classes=num_classes), req.recipe, req.device, total_steps)
    gan_path = req.gan or checkpoint_path("gan", req.dataset)
    generator, gan_meta = load_model(gan_path, kind="gan", dataset=req.dataset, device=req.device)
    judge = _load_judge(req)
    if judge is None:
        raise CheckpointError(req.classifier or checkpoint_path("classifier", req.dataset), "the mapper trains against the classifier, which is missing")
    config = _model_config(MapperConfig, req, num_classes=num_classes, latent_dim=generator.latent_dim)
    task = MapperTask(config, req.recipe, req.device, total_steps, generator, judge)
    task.generator_sha256 = gan_meta["weights_sha256"]
    return task


def resume_recipe(run_dir: Path, kind: str, dataset: str) -> Recipe:
    """The recipe the run in `run_dir` was started with; ValueError when there is no such run of (kind, dataset) to continue."""
    if not (run_dir / STATE_FILE).is_file():
        raise ValueError(f"--resume: {run_dir} holds no saved training state ({STATE_FILE}); nothing to continue")
    config = read_json(run_dir / "config.json")
    if config is None or not isinstance(config.get("recipe"), dict):
        raise ValueError(f"--resume: {run_dir / 'config.json'} is missing, unreadable or has no recipe")
    if config.get("kind") != kind or config.get("dataset") != dataset:
        raise ValueError(f"--resume: {run_dir} holds a {config.get('kind')} run on {config.get('dataset')}, not {kind} on {dataset}")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    try:
        recipe = Recipe(**{k: v for k, v in config["recipe"].items() if k in fields})
        recipe.betas = tuple(recipe.betas)
        recipe.model = dict(recipe.model)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--resume: the recipe in {run_dir / 'config.json'} is malformed: {exc}") from None
    return recipe


def _load_judge(req: RunRequest):
    path = req.classifier or checkpoint_path("classifier", req.dataset)
    if not path.exists():
        return None
    return load_model(path, kind="classifier", dataset=req.dataset, device=req.device)[0]


def train_model(req: RunRequest) -> int:
    """Run one training job; returns the process exit code (0 finished or cancelled, 1 failed)."""
    run_dir = req.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock_run(run_dir)
    if lock is None:
        print(f"error: another training is using {run_dir}; wait for it to end or choose another --run-dir", file=sys.stderr)
        return 2
    with lock:
        return _train_locked(req)


def _lock_run(run_dir: Path):
    """An exclusive lock on the run folder, held while the returned file stays open; None when another process holds it."""
    import fcntl

    handle = open(run_dir / LOCK_FILE, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _train_locked(req: RunRequest) -> int:
    run_dir = req.run_dir
    (run_dir / "grids").mkdir(exist_ok=True)
    status: dict[str, Any] = {"state": "running", "pid": os.getpid(), "kind": req.kind, "dataset": req.dataset,
                              "epochs": req.recipe.epochs, "epoch": 0, "step": 0, "started": time.time()}

    def set_status(**fields: Any) -> None:
        status.update(fields, updated=time.time())
        write_json(run_dir / "status.json", status)

    set_status()
    stop = StopFlag()
    stop.install()
    log = None
    try:
        if req.device.type == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        train_images, train_labels = load_split(req.dataset, "train", req.data_root)
        test_images, test_labels = load_split(req.dataset, "test", req.data_root)
        if req.kind == "mapper":
            steps_per_epoch = req.recipe.steps_per_epoch
        else:
            steps_per_epoch = len(train_images) // req.recipe.batch_size
        total_steps = steps_per_epoch * req.recipe.epochs
        if req.max_steps is not None:
            total_steps = min(total_steps, req.max_steps)
        task = _build_task(req, total_steps)
        if task.needs_judge and task.judge is None:
            task.judge = _load_judge(req)
            if task.judge is None:
                _log("note: no classifier checkpoint, so no per-epoch class accuracy (train the classifier first)")
        if req.kind == "mapper":
            batches = LabelBatches(dataset_info(req.dataset).num_classes, req.recipe.batch_size, steps_per_epoch, req.recipe.seed, req.device)
        else:
            batches = TensorBatches(task.prepare(train_images), train_labels.to(req.device), req.recipe.batch_size, req.recipe.seed)
        test_x, test_y = task.prepare(test_images), test_labels.to(req.device)
        preparation = task.preparation()
        if preparation:
            set_status(preparing=preparation)
        task.before_training(train_images, train_labels)
        if req.kind == "vae":
            task.train_images, task.train_labels = batches.images, batches.labels

        config = {
            "kind": req.kind, "dataset": req.dataset, "recipe": dataclasses.asdict(req.recipe),
            "model": dataclasses.asdict(task.model().config), "device": str(req.device), "precision": task.precision, "compiled": task.compiled,
            "max_steps": req.max_steps,
            "total_steps": total_steps, "steps_per_epoch": steps_per_epoch, "torch": torch.__version__,
            "argv": sys.argv,
        }
        progress = Progress()
        skip = 0
        state_path = run_dir / STATE_FILE
        if req.resume:
            if resume_recipe(run_dir, req.kind, req.dataset).seed != req.recipe.seed:
                raise ValueError(f"--resume: {run_dir} was started with another seed than {req.recipe.seed}")
            tensors, meta = load_tensors(state_path)
            try:
                task.load_state({k: v.to(req.device) if not k.startswith("rng.") else v for k, v in tensors.items()}, meta["task"])
                epoch_facts = [meta[k] for k in ("epoch", "step_in_epoch", "global_step", "images_seen", "wall_time")]
            except (KeyError, TypeError, RuntimeError, ValueError) as exc:  # another kind's or config's state, or a damaged one
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"--resume: {state_path} does not hold this run's {req.kind} state ({first_line[:200]})") from None
            if "rng.torch" in tensors:  # dropout draws from the global generators: resume them too
                torch.set_rng_state(tensors["rng.torch"])
            if "rng.cuda" in tensors and req.device.type == "cuda":
                torch.cuda.set_rng_state(tensors["rng.cuda"], req.device)
            epoch, step_in_epoch, global_step, images_seen, wall_time = epoch_facts
            progress = Progress(epoch=epoch, step_in_epoch=step_in_epoch, global_step=global_step,
                                images_seen=images_seen, wall_offset=wall_time)
            skip = progress.step_in_epoch
            _log(f"resuming {run_dir} at epoch {progress.epoch + 1}, step {progress.global_step}")
        write_json(run_dir / "config.json", config)
        log = MetricsLog(run_dir / "metrics.jsonl")
        status.pop("preparing", None)
        set_status(total_steps=total_steps, epoch=progress.epoch, step=progress.global_step)
        last_eval: dict[str, float] = {}
        bar = EpochBar(f"{req.kind} {req.dataset}", req.recipe.epochs, steps_per_epoch)

        def save_checkpoints(final_metrics: dict[str, float]) -> None:
            extra = {"generator_sha256": task.generator_sha256} if req.kind == "mapper" else {}
            save_model(run_dir / f"{req.kind}.safetensors", task.model(), req.kind, req.dataset,
                       recipe=dataclasses.asdict(req.recipe), epochs_trained=progress.epoch,
                       steps_trained=progress.global_step, device=str(req.device), precision=task.precision, compiled=task.compiled,
                       metrics=final_metrics,
                       training_wall_time_s=round(progress.wall_time, 1), **extra)
            tensors, task_meta = task.state()
            tensors["rng.torch"] = torch.get_rng_state()
            if req.device.type == "cuda":
                tensors["rng.cuda"] = torch.cuda.get_rng_state(req.device)
            save_tensors(state_path, tensors, {"task": task_meta, "epoch": progress.epoch, "step_in_epoch": progress.step_in_epoch,
                                               "global_step": progress.global_step, "images_seen": progress.images_seen,
                                               "wall_time": progress.wall_time, "kind": req.kind, "dataset": req.dataset})

        if task.compiled:
            # the PyPI build looks for a CUDA toolkit whenever it compiles, and warns on a CPU that needs none
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            _log(f"compiling the {req.kind} step on its first batch (seconds; --compile off skips it)")

        def on_log(p: Progress, losses: dict[str, float], rate: float) -> None:
            if task.compile_failure and not config.get("compile_failure"):
                config.update(compiled=False, compile_failure=task.compile_failure)
                write_json(run_dir / "config.json", config)
                _log(f"note: torch.compile failed, training goes on uncompiled ({task.compile_failure})")
            log.write({"type": "step", "step": p.global_step, "epoch": p.epoch + p.step_in_epoch / steps_per_epoch,
                       **losses, "wall_time": round(p.wall_time, 3), "images_per_s": round(rate, 1)})
            set_status(epoch=p.epoch, step=p.global_step)
            bar.update(p, losses)

        def on_epoch_end(p: Progress, losses: dict[str, float], rate: float) -> None:
            nonlocal last_eval
            last_eval = task.evaluate(test_x, test_y)
            images = task.grid_images()
            if images is not None:
                (run_dir / "grids" / f"epoch_{p.epoch:03d}.png").write_bytes(grid_png(images, nrow=10))
            record = {"type": "epoch", "step": p.global_step, "epoch": p.epoch, **losses, **last_eval,
                      "wall_time": round(p.wall_time, 3), "images_per_s": round(rate, 1)}
            log.write(record)
            if p.epoch == req.recipe.epochs:
                task.finalize(train_images, train_labels)
            save_checkpoints(last_eval)
            set_status(epoch=p.epoch, step=p.global_step)
            shown = ", ".join(f"{k}: {v:.4f}" for k, v in {**losses, **last_eval}.items())
            bar.close()
            _log(f"Epoch [{p.epoch}/{req.recipe.epochs}] {shown} ({p.wall_time:.1f} s, {rate:.0f} img/s)")

        outcome = run_epochs(task, batches, req.recipe.epochs, progress, Callbacks(on_log, on_epoch_end), stop,
                             log_every=req.log_every, max_steps=req.max_steps, skip_batches=skip)
        bar.close()
        if outcome != "finished" and progress.step_in_epoch:  # stopped mid-epoch: save that state too
            task.finalize(train_images, train_labels)
            if outcome == "max_steps":
                last_eval = task.evaluate(test_x, test_y)
                log.write({"type": "final", "step": progress.global_step, "epoch": progress.epoch + progress.step_in_epoch / steps_per_epoch,
                           **last_eval, "wall_time": round(progress.wall_time, 3)})
            save_checkpoints(last_eval)
        state = {"finished": "finished", "max_steps": "finished"}.get(outcome, "cancelled")
        reason = {"max_steps": f"reached --max-steps {req.max_steps}"}.get(outcome, f"stopped by {outcome}" if state == "cancelled" else "")
        set_status(state=state, reason=reason, epoch=progress.epoch, step=progress.global_step)
        _log(f"{state}: {run_dir} ({progress.global_step} steps, {progress.wall_time:.1f} s){' - ' + reason if reason else ''}")
        return 0
    except TrainingDiverged as exc:
        set_status(state="failed", reason=str(exc))
        print(f"error: {exc}; the last good checkpoint is kept", file=sys.stderr)
        return 1
    except (CheckpointError, DataMissingError, ValueError, OSError) as exc:
        set_status(state="failed", reason=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except torch.cuda.OutOfMemoryError as exc:
        set_status(state="failed", reason=f"out of GPU memory: {exc}")
        print("error: out of GPU memory; use a smaller --batch-size", file=sys.stderr)
        return 1
    except Exception as exc:  # anything unforeseen: record it for the app, keep the traceback in stderr.log
        traceback.print_exc()
        set_status(state="failed", reason=f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        if log is not None:
            log.close()


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

            self._bar = tqdm(total=self.steps_per_epoch, desc=f"{self.name} epoch {progress.epoch + 1}/{self.epochs}", leave=False, unit="step")
        self._bar.set_postfix({k: f"{v:.3f}" for k, v in list(losses.items())[:4]}, refresh=False)
        self._bar.update(progress.step_in_epoch - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

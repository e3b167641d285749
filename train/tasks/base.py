"""What every training task shares: building from a run request, device, generators, lr schedule, state."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from genmodels.checkpoint import CheckpointError, checkpoint_path, load_model, optimizer_tensors, restore_optimizer
from genmodels.data import TensorBatches, to_signed
from genmodels.datasets import dataset_info
from genmodels.kinds import KINDS, judge_kind
from genmodels.models import config_from_dict
from genmodels.models.layers import gaussian_noise
from genmodels.recipes import Recipe
from train.optim import lr_factor
from train.recipes import resolve_precision
from train.trainer import EpochBatches

if TYPE_CHECKING:
    from train.run import RunRequest

JUDGE_KIND = judge_kind()  # the kind whose network scores generated samples at each epoch's end
EVAL_SAMPLES_PER_CLASS = 100  # 1,000 images per epoch-end quality check
GRID_SIZE = 100  # 10 x 10 fixed-noise grid per epoch
GRID_SEED = 1234
EVAL_SEED = 4321


def grid_noise(latent_dim: int, device: torch.device) -> torch.Tensor:
    """The latents of every epoch's grid: the same for each run, so grids compare across epochs and runs."""
    return gaussian_noise(GRID_SIZE, latent_dim, torch.Generator().manual_seed(GRID_SEED), device)


def grid_labels(num_classes: int, device: torch.device) -> torch.Tensor:
    """The classes of a labelled grid: one row of every class per row of the grid."""
    return torch.arange(num_classes).repeat(GRID_SIZE // num_classes).to(device)


def model_config(req: RunRequest, **fixed: Any):
    """The run's model config: the kind's defaults, the recipe's overrides, then `fixed` and the dataset's class
    count (for configs that take one)."""
    config_cls = KINDS[req.kind].config_cls
    if "num_classes" in {field.name for field in dataclasses.fields(config_cls)}:
        fixed = {"num_classes": dataset_info(req.dataset).num_classes, **fixed}
    return config_from_dict(config_cls, {**req.recipe.model, **fixed})


def needed_path(req: RunRequest, kind: str) -> Path:
    """The checkpoint of a needed kind that a run reads: the one its command line names, else the shipped one."""
    return req.needs.get(kind) or checkpoint_path(kind, req.dataset)


def load_needed(req: RunRequest, kind: str) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen network of a kind the run's training reads, with its metadata; CheckpointError when missing."""
    path = needed_path(req, kind)
    if not path.exists():
        raise CheckpointError(path, f"the {req.kind} trains against the {kind}, which is missing")
    return load_model(path, kind=kind, dataset=req.dataset, device=req.device)


class BaseTask:
    """Shared plumbing: device, generators, learning-rate schedule and resumable state."""

    def __init__(self, kind: str, config: Any, recipe: Recipe, device: torch.device, total_steps: int):
        self.kind = kind
        self.config = config
        self.recipe = recipe
        self.device = device
        self.total_steps = total_steps
        self.step_count = 0
        self.rng = torch.Generator(device=device).manual_seed(recipe.seed + 1)
        self.precision = resolve_precision(recipe.precision, device)
        self.compiled = False  # whether the step runs torch.compile'd (see VAETask)
        self.compile_failure: str | None = None  # why compiling failed, when it did and the run went on uncompiled
        self.judge: nn.Module | None = None
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lr: dict[str, float] = {}  # an optimiser's own learning rate, where it is not the recipe's lr
        torch.manual_seed(recipe.seed)  # the networks a subclass builds next start from the seed's weights

    # -- building from a run request
    @classmethod
    def build(cls, req: RunRequest, total_steps: int) -> BaseTask:
        """The task of a run; a kind that needs the judge gets it, when its checkpoint exists."""
        task = cls(req.kind, model_config(req), req.recipe, req.device, total_steps)
        for module in task.modules.values():
            # convolution weights in channels-last order, oneDNN's native layout: faster conv steps and test passes
            # (docs/model_zoo.md); a module without 4-d weights is unchanged, and the parameters stay the objects the
            # optimisers hold
            module.to(memory_format=torch.channels_last)
        # loaded after the seeded init: building it draws from the global generator that dropout continues from
        if JUDGE_KIND in KINDS[req.kind].needs:
            task.judge = task.load_judge(req)
        return task

    @staticmethod
    def load_judge(req: RunRequest) -> nn.Module | None:
        """The judge network of a run (None, with a note, when its checkpoint is absent)."""
        path = needed_path(req, JUDGE_KIND)
        if not path.exists():
            print(
                f"note: no {JUDGE_KIND} checkpoint, so no per-epoch class accuracy (train the {JUDGE_KIND} first)",
                flush=True,
            )
            return None
        return load_model(path, kind=JUDGE_KIND, dataset=req.dataset, device=req.device)[0]

    @classmethod
    def steps_per_epoch(cls, recipe: Recipe, train_images: int) -> int:
        """Optimisation steps in one epoch over a train split of `train_images` images."""
        return train_images // recipe.batch_size

    # -- data
    def prepare(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Whole-split uint8 images -> the float tensor this task trains on (on its device)."""
        return to_signed(images_uint8).to(self.device)

    def batches(self, train_images: torch.Tensor, train_labels: torch.Tensor) -> EpochBatches:
        """The epochs' batches, from the uint8 train split."""
        return TensorBatches(
            self.prepare(train_images), train_labels.to(self.device), self.recipe.batch_size, self.recipe.seed
        )

    def autocast(self) -> torch.autocast:
        """Context for training forward passes: bf16 matmuls when the run's precision is bf16."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    # -- loop hooks
    def train_mode(self) -> None:
        """Put the trained networks in training mode (the trainer calls it before each epoch)."""
        for module in self.trainable():
            module.train()

    def trainable(self) -> list[nn.Module]:
        """The networks that have an optimiser."""
        return [m for name, m in self.modules.items() if name in self.optimizers]

    def _schedule(self) -> None:
        factor = lr_factor(self.recipe, self.step_count, self.total_steps)
        for name, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.base_lr.get(name, self.recipe.lr) * factor
        self.step_count += 1

    def step(self, images: torch.Tensor | None, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch; detached loss tensors by name."""
        raise NotImplementedError

    # -- outputs
    def model(self) -> nn.Module:
        """The network the run's checkpoint holds."""
        raise NotImplementedError

    def checkpoint_metadata(self) -> dict[str, Any]:
        """Extra metadata of the run's checkpoint, e.g. which generator a mapper maps into."""
        return {}

    def grid_images(self) -> torch.Tensor | None:
        """The epoch's fixed-noise grid, [GRID_SIZE, 1, 28, 28] in [0, 1] (None: the kind draws no images)."""
        return None

    def evaluate(self, test_images: torch.Tensor, test_labels: torch.Tensor) -> dict[str, float]:
        """Epoch-end measures on the prepared test split."""
        return {}

    def finalize(self) -> None:
        """Work after the last epoch (and before any checkpoint), e.g. the VAE's class Gaussians."""

    def before_training(self, train_images: torch.Tensor, train_labels: torch.Tensor) -> None:
        """Work on the uint8 train split before the first step (and again on resume), e.g. the mapper's judge."""

    def preparation(self) -> str | None:
        """What `before_training` does, for a run's status while it works (None: nothing worth a note)."""
        return None

    # -- forks
    def start_from(self, networks: dict[str | None, dict[str, torch.Tensor]]) -> list[str]:
        """Load a parent's weights (genmodels.forks.network_tensors) into each network they fit; optimisers and step
        count stay fresh. Returns the networks left fresh; ValueError when none fits."""
        fresh = []
        for name, module in self.modules.items():
            tensors = networks.get(name, networks.get(None))
            own = module.state_dict()
            if tensors is None or set(tensors) != set(own) or any(tensors[k].shape != v.shape for k, v in own.items()):
                fresh.append(name)  # e.g. a discriminator whose spectral norm the fork switched on or off
                continue
            module.load_state_dict(tensors)
        if len(fresh) == len(self.modules):
            raise ValueError("none of the parent's networks fits this run's: nothing to start from")
        return fresh

    # -- resumable state
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON metadata from which `load_state` continues the run exactly."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"step_count": self.step_count, "optimizers": {}}
        for name, module in self.modules.items():
            tensors.update({f"module.{name}.{k}": v for k, v in module.state_dict().items()})
        for name, opt in self.optimizers.items():
            opt_tensors, rest = optimizer_tensors(opt, f"optim.{name}")
            tensors.update(opt_tensors)
            meta["optimizers"][name] = rest
        tensors["rng.task"] = self.rng.get_state()
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Continue from a `state`."""
        for name, module in self.modules.items():
            prefix = f"module.{name}."
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        on_device = {k: v.to(self.device) for k, v in tensors.items()}
        for name, opt in self.optimizers.items():
            restore_optimizer(opt, f"optim.{name}", on_device, meta["optimizers"][name])
        self.rng.set_state(tensors["rng.task"])
        self.step_count = meta["step_count"]

    # -- quality checks with the judge
    def _eval_labels(self, num_classes: int) -> torch.Tensor:
        return torch.arange(num_classes).repeat_interleave(EVAL_SAMPLES_PER_CLASS)

"""One run across several processes (torchrun + DistributedDataParallel): the process group, rank shards of the
global batch, DDP (and synchronised batch norm) around a task's networks, one stop step for all ranks, per-rank seeds.

A process not started by torchrun gets `SOLO`, a world of one whose every method leaves the run as it was, so the
single-process path runs exactly the code it ran before.
"""

from __future__ import annotations

import datetime
import os
import signal
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_MASK64 = (1 << 64) - 1


def launched_by_torchrun() -> bool:
    """Whether torchrun (torch.distributed.run) started this process as one rank of a group."""
    return all(name in os.environ for name in TORCHRUN_VARS)


def backend_for(device: torch.device) -> str:
    """nccl between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def rank_seed(seed: int, rank: int, step: int, stream: int) -> int:
    """A 63-bit seed for one stream of one rank at one global step (SplitMix64: nearby inputs, unrelated streams)."""
    x = _splitmix64(seed)
    for part in (rank, step, stream):
        x = _splitmix64(x ^ part)
    return x >> 1


class Distributed:
    """This process's place in the run: rank, world size, and the collective steps the trainer takes."""

    def __init__(
        self,
        rank: int = 0,
        world_size: int = 1,
        local_rank: int = 0,
        local_world_size: int = 1,
        backend: str | None = None,
        device: torch.device | None = None,
    ):
        self.rank, self.world_size = rank, world_size
        self.local_rank, self.local_world_size = local_rank, local_world_size
        self.backend = backend
        self.device = device or torch.device("cpu")  # where collective tensors live: nccl reduces CUDA tensors only

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0

    def facts(self) -> dict[str, Any]:
        """What a run's config and status record about its processes (nothing for a single process)."""
        return {"world_size": self.world_size, "backend": self.backend} if self.active else {}

    def threads(self) -> int:
        """CPU threads of this process: OMP_NUM_THREADS when set, else the machine's cores shared by its ranks."""
        told = os.environ.get("OMP_NUM_THREADS", "")
        if told.isdigit() and int(told) > 0:
            return int(told)
        return max(1, (os.cpu_count() or 1) // self.local_world_size)

    def check_batch(self, batch_size: int) -> None:
        """ValueError unless the global batch splits evenly over the ranks."""
        if batch_size % self.world_size:
            raise ValueError(
                f"the batch of {batch_size} does not split over {self.world_size} processes; "
                f"choose a --batch-size that is a multiple of {self.world_size}"
            )

    # -- the trainer's hooks, each a no-op for a single process
    def shard(self, images: torch.Tensor | None, labels: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """This rank's contiguous slice of a global batch (the mapper's batches have labels only)."""
        if not self.active:
            return images, labels
        size = len(labels) // self.world_size
        part = slice(self.rank * size, (self.rank + 1) * size)
        return (images[part] if images is not None else None), labels[part]

    def seed_step(self, task, step: int) -> None:
        """Reseed the task's generator and the device's default one (dropout) for this rank and step."""
        if not self.active:
            return
        # ranks draw other noise for their other images, fixed by (run seed, rank, step) alone: a run is reproducible
        # for a given world size and resumes exactly at any step, with no generator states of other ranks to save
        task.rng.manual_seed(rank_seed(task.recipe.seed, self.rank, step, 0))
        # the default generators of this rank's device only: torch.manual_seed would also queue a seeding of every
        # CUDA device, with a stack trace, each step of a CPU run
        dropout_seed = rank_seed(task.recipe.seed, self.rank, step, 1)
        torch.default_generator.manual_seed(dropout_seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(dropout_seed)

    def agree_stop(self, requested: str | None) -> str | None:
        """The stop signal any rank received (one all-reduce a step), so every rank stops after the same step."""
        if not self.active:
            return requested
        flag = torch.tensor([signal.Signals[requested].value if requested else 0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return signal.Signals(int(flag)).name if int(flag) else None

    def average_(self, sums: dict[str, torch.Tensor]) -> None:
        """Replace per-rank loss sums by their mean over the ranks: the logged losses are the global batch's."""
        if not self.active or not sums:
            return
        names = sorted(sums)
        packed = torch.stack([sums[name].detach().float().to(self.device) for name in names])
        torch.distributed.all_reduce(packed)
        for name, value in zip(names, (packed / self.world_size).to(sums[names[0]].device).unbind(), strict=True):
            sums[name] = value

    # -- the run's hooks
    def wrap(self, task) -> None:
        """Wrap each network the task trains in DDP, its batch norm synchronised over the ranks."""
        if not self.active:
            return
        # the task keeps calling its networks by attribute (`self.vae(...)`, `self.generator.decode(...)`): each such
        # attribute is pointed at the network's DDP wrapper, whose other attributes fall through to the network;
        # `task.modules` keeps the bare networks, so the saved state and checkpoints have the usual keys
        # a conv weight with one input channel gets its gradient with a stride that differs only along that size-1
        # dimension: the same memory layout, which DDP still reports (once per process) as a possible slowdown
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        for module in task.trainable():
            _sync_batch_norm(module, self.device.type == "cuda")
            ids = [self.device.index] if self.device.type == "cuda" else None
            # ranks start from rank 0's weights and buffers (init sync); afterwards the synchronised batch norm
            # keeps buffers equal, and a forward must not broadcast them: rank 0 alone runs the epoch-end checks
            replica = _Replica(module, device_ids=ids, forward_sync_buffers=False)
            for name, value in list(vars(task).items()):
                if value is module:
                    setattr(task, name, replica)

    def close(self, together: bool) -> None:
        """Leave the process group; `together`: after every rank has got here (the run ended well on this one)."""
        if self.active and torch.distributed.is_initialized():
            if together:
                # rank 0 saves last: a rank that tore its connections down and exited before then sometimes died
                # in gloo's shutdown (SIGABRT), which fails a finished run
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()


SOLO = Distributed()
_current = SOLO


def current() -> Distributed:
    """The running process's Distributed: set by `setup` under torchrun, else `SOLO`."""
    return _current


def setup(device: torch.device) -> Distributed:
    """Join torchrun's process group (nccl for CUDA, gloo for the CPU); the device becomes this rank's GPU."""
    global _current
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = backend_for(device)
    if not torch.distributed.is_initialized():
        # a rank that dies is noticed by its peers' broken connections at once; the timeout bounds a hung one
        torch.distributed.init_process_group(
            backend, timeout=datetime.timedelta(minutes=30), device_id=device if device.type == "cuda" else None
        )
    _current = Distributed(rank, world, local_rank, local_world, backend, device)
    return _current


def teardown(together: bool = True) -> None:
    """Leave the process group and go back to a single process (`together`: wait for every rank first)."""
    global _current
    try:
        _current.close(together)
    finally:
        _current = SOLO


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (itself otherwise)."""
    return module.module if isinstance(module, _Replica) else module


class _Replica(nn.parallel.DistributedDataParallel):
    """DDP whose unknown attributes fall through to the wrapped network (`latent_dim`, `decode`, `config`...)."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not set yet, inside DDP's own __init__
                raise
            return getattr(self.module, name)


class _SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm with the whole global batch's statistics on CPU processes (torch's SyncBatchNorm needs GPUs)."""

    # per-channel sums and sums of squares are all-reduced with gradients, so each rank normalises, and its gradient
    # flows, as in one process holding the whole batch; parameters and buffers are the replaced layer's own

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        dims = [0, *range(2, x.dim())]
        channels = x.shape[1]
        dtype, x = x.dtype, x.float()  # fp32 statistics under bf16 autocast too, as torch's CPU batch norm does
        stats = _SumOverRanks.apply(torch.cat([x.sum(dims), x.pow(2).sum(dims)]))
        count = x.numel() // channels * torch.distributed.get_world_size()
        mean = stats[:channels] / count
        var = (stats[channels:] / count - mean.pow(2)).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * count / max(count - 1, 1), factor)
        shape = [1, channels] + [1] * (x.dim() - 2)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        out = (x - mean.view(shape)) * scale.view(shape)
        return (out + self.bias.view(shape) if self.bias is not None else out).to(dtype)


class _SumOverRanks(torch.autograd.Function):
    """Sum a tensor over the ranks; its gradient is summed too, as each rank's loss depends on every rank's input."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        torch.distributed.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        torch.distributed.all_reduce(total)
        return total


def _sync_batch_norm(module: nn.Module, on_gpu: bool) -> None:
    """Replace, in place, every batch norm layer below `module` by one that uses the global batch's statistics."""
    for name, child in module.named_children():
        synced_already = isinstance(child, (nn.SyncBatchNorm, _SyncedBatchNorm))
        if not isinstance(child, nn.modules.batchnorm._BatchNorm) or synced_already:
            _sync_batch_norm(child, on_gpu)
            continue
        cls = nn.SyncBatchNorm if on_gpu else _SyncedBatchNorm
        synced = cls(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
        synced.weight, synced.bias = child.weight, child.bias  # the same Parameters: the optimiser keeps them
        if child.track_running_stats:
            synced.running_mean, synced.running_var = child.running_mean, child.running_var
            synced.num_batches_tracked = child.num_batches_tracked
        synced.train(child.training)
        setattr(module, name, synced)

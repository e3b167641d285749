"""GAN inversion: the latent (and, for a conditional GAN, the label) whose image is closest to a given image.

Adam on a batch of restarts at once, minimising pixel distance + classifier-feature distance + a Gaussian prior term
that keeps each latent where the generator was trained; the best restart wins.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from genmodels.api import GenerativeModel, check_seed, seeded_generator
from genmodels.kinds import KINDS, generator_kinds
from genmodels.latent import decode_class_blend, interpolate
from genmodels.models import Classifier

RESTARTS = 8
STEPS = 40
LEARNING_RATE = 0.1
FEATURE_WEIGHT = 0.5  # the classifier's view keeps the shape of the digit when pixels alone would settle for a blur
PRIOR_WEIGHT = 0.002  # small: enough to keep latents off the tails where the generator makes noise
PROGRESS_EVERY = 5
TORCH_LIBRARIES = Path(torch.__file__).parent / "lib"  # the shared libraries PyTorch's wheel ships


@dataclass
class Inversion:
    """The best latent [L] found, its label (conditional GANs) or None, image [1, 1, 28, 28], distances and time."""

    kind: str
    latent: torch.Tensor
    label: int | None
    image: torch.Tensor
    pixel_distance: float  # root mean squared pixel difference, pixels in [0, 1]
    feature_distance: float  # classifier-feature distance relative to the target's feature norm
    losses: list[float]  # the best restart's objective at each step (it decreases)
    seconds: float


@functools.cache
def _openmp() -> ctypes.CDLL | None:
    """The OpenMP runtime PyTorch runs its CPU ops on (the libgomp its wheel ships), or None where there is none."""
    libraries = sorted(TORCH_LIBRARIES.glob("libgomp*.so*"))
    return ctypes.CDLL(str(libraries[0])) if libraries else None


@functools.cache
def _mkl() -> ctypes.CDLL | None:
    """The MKL linked into PyTorch's CPU library (it runs fp32 matmuls), or None where the build has none."""
    library = TORCH_LIBRARIES / "libtorch_cpu.so"
    if not torch.backends.mkl.is_available() or not library.exists():
        return None
    runtime = ctypes.CDLL(str(library))  # already loaded by `import torch`: this returns the same copy
    # MKL_Set_Num_Threads_Local takes the count by value; the lower-case symbol is the Fortran one (a pointer)
    return runtime if hasattr(runtime, "MKL_Set_Num_Threads_Local") else None


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block's PyTorch CPU ops on the calling thread alone; other threads (sessions) keep their setting.

    An inversion is ~2,000 small ops. Splitting each across two cores gains little, and while the cores are busy
    (a training run, other sessions) every hand-off waits for a descheduled thread: on the shared 2-core machine an
    inversion took 20-26 s with two threads and 1.7-2.0 s with one (0.28 s of CPU against 4.6-5.0 s).
    OpenMP and MKL keep a thread count per thread, unlike torch.set_num_threads, which changes the process default.
    MKL needs its own call: once torch.set_num_threads has run (a training run in the same process does), MKL's
    matmuls follow that count and no longer the OpenMP one.
    """
    openmp, mkl = _openmp(), _mkl()
    with contextlib.ExitStack() as restore:
        if openmp is not None:
            restore.callback(openmp.omp_set_num_threads, openmp.omp_get_max_threads())
            openmp.omp_set_num_threads(1)
        if mkl is not None:  # it returns the previous thread-local count (0: the process-wide one)
            restore.callback(mkl.MKL_Set_Num_Threads_Local, mkl.MKL_Set_Num_Threads_Local(1))
        yield


def gan_kinds() -> tuple[str, ...]:
    """The generator kinds trained adversarially, in page order: the ones to invert (the VAE has an encoder)."""
    return tuple(kind for kind in generator_kinds() if KINDS[kind].critic is not None)


def _generate(model: GenerativeModel, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Differentiable images [N, 1, 28, 28] in [0, 1] (GenerativeModel.decode runs without gradients)."""
    out = model.module(z, labels) if KINDS[model.kind].conditional else model.module(z)
    return out.add(1.0).mul(0.5)


def invert(
    model: GenerativeModel,
    classifier: Classifier,
    target: torch.Tensor,
    label: int | None = None,
    seed: int = 0,
    restarts: int = RESTARTS,
    steps: int = STEPS,
    progress: Callable[[float], None] | None = None,
) -> Inversion:
    """Invert `model` at image target [1, 1, 28, 28] in [0, 1]; `label` conditions the cgan (and seeds the gan's start
    through its mapper). `progress(fraction)` is called as the steps go."""
    if KINDS[model.kind].critic is None:
        raise ValueError(f"{model.kind} is not a GAN; invert one of: {', '.join(gan_kinds())}")
    if target.shape != (1, 1, 28, 28) or not torch.isfinite(target).all():
        raise ValueError(f"need one finite image [1, 1, 28, 28], got {tuple(target.shape)}")
    if KINDS[model.kind].conditional and label is None:
        raise ValueError(f"the {model.kind} needs a label to invert with")
    if label is not None and not 0 <= label < model.num_classes:
        raise ValueError(f"label must be between 0 and {model.num_classes - 1}, got {label}")
    check_seed(seed)
    started = time.perf_counter()
    device = model.device
    labels = None if label is None else torch.full((restarts,), label, dtype=torch.int64)
    if labels is not None and model.supports_labels:
        start, _ = model.latents(labels, restarts, seed)  # the class's own region: a closer start than the prior's
    else:
        start = torch.randn(restarts, model.latent_dim, generator=seeded_generator(seed)).to(device)
    z = start.detach().clone().requires_grad_(True)
    conditional_labels = labels.to(device) if KINDS[model.kind].conditional else None
    target = target.to(device, torch.float32)
    with torch.no_grad():
        target_features = classifier.features(target * 2.0 - 1.0)
    feature_scale = target_features.pow(2).mean().clamp_min(1e-6)
    optimiser = torch.optim.Adam([z], lr=LEARNING_RATE)
    losses: list[float] = []
    with torch.enable_grad(), one_thread():
        for step in range(steps + 1):
            images = _generate(model, z, conditional_labels)
            pixel = (images - target).pow(2).mean(dim=(1, 2, 3))
            feature = (classifier.features(images * 2.0 - 1.0) - target_features).pow(2).mean(1) / feature_scale
            prior = z.pow(2).mean(1)
            loss = pixel + FEATURE_WEIGHT * feature + PRIOR_WEIGHT * prior
            losses.append(float(loss.detach().min()))
            if step == steps:  # the last pass only scores the final latents
                break
            (grad,) = torch.autograd.grad(loss.sum(), z)  # gradients for z alone: the shared weights stay untouched
            z.grad = grad
            optimiser.step()
            if progress is not None and (step + 1) % PROGRESS_EVERY == 0:
                progress((step + 1) / steps)
    best = int(loss.detach().argmin())
    pixel, feature = pixel.detach(), feature.detach()
    return Inversion(
        kind=model.kind,
        latent=z[best].detach().cpu(),
        label=label if KINDS[model.kind].conditional else None,
        image=images[best : best + 1].detach().cpu(),
        pixel_distance=float(pixel[best].sqrt()),
        feature_distance=float(feature[best].sqrt()),
        losses=losses,
        seconds=time.perf_counter() - started,
    )


def strip_to_class(
    model: GenerativeModel, inversion: Inversion, label: int, steps: int = 8, seed: int = 0
) -> torch.Tensor:
    """Images [steps, 1, 28, 28] from the inverted latent to a draw of class `label` (the cgan's label blends too)."""
    if not model.supports_labels:
        raise ValueError(f"the {model.dataset} {model.kind} cannot draw a chosen class (no label mapper)")
    end, _ = model.latents(torch.tensor([label]), 1, seed)
    path = interpolate(inversion.latent, end[0].cpu(), steps)
    if inversion.label is None:
        return model.decode(path)
    return decode_class_blend(model, path, inversion.label, label)

"""Load models by (kind, dataset) and sample them by label and seed: the library's front door."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genmodels.checkpoint import CheckpointError, checkpoint_path, load_model
from genmodels.datasets import dataset_info
from genmodels.kinds import KINDS, generator_kinds
from genmodels.kinds import kind as kind_spec
from genmodels.models import Classifier, CondGenerator, Generator, Mapper
from genmodels.models.conv_vae import ConvVAE
from genmodels.models.critic import SampleCritic
from genmodels.models.dcgan import DCGenerator
from genmodels.models.vae import GaussianVAE

MAX_SAMPLES = 10_000
MAX_SEED = 2**63 - 1
TEMPERATURE_RANGE = (0.05, 3.0)
STRICTNESS_RANGE = (0.25, 8.0)  # the power of the critic's density ratio in rejection sampling (1: the exact rule)
PREDICT_BATCH = 500  # images per classifier / encoder pass: its conv activations stay near 100 MB, not 400


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_seed(seed: Any) -> int:
    """A seed as an int in [0, 2^63 - 1]; ValueError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer between 0 and {MAX_SEED}, got {seed!r}")
    return seed


def check_count(n: Any, limit: int = MAX_SAMPLES) -> int:
    """A sample count as an int in [1, limit]; ValueError otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"number of images must be an integer between 1 and {limit}, got {n!r}")
    return n


def check_strictness(strictness: Any) -> float:
    """A rejection-sampling strictness in STRICTNESS_RANGE; ValueError otherwise."""
    return _number_in(strictness, "strictness", STRICTNESS_RANGE)


def check_temperature(temperature: Any) -> float:
    """A truncation / temperature factor in TEMPERATURE_RANGE; ValueError otherwise."""
    return _number_in(temperature, "temperature", TEMPERATURE_RANGE)


def _number_in(value: Any, name: str, bounds: tuple[float, float]) -> float:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number between {low} and {high}, got {value!r}")
    return float(value)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with `seed` (noise drawn on the CPU is the same on every device)."""
    return torch.Generator(device="cpu").manual_seed(check_seed(seed))


def resolve_labels(label: int | str | None, n: int, num_classes: int) -> torch.Tensor | None:
    """None -> None (unconditional); K -> n copies of K; 'all' -> n of each class in class order."""
    if label is None:
        check_count(n)
        return None
    if label == "all":
        check_count(n, MAX_SAMPLES // num_classes)
        return torch.arange(num_classes).repeat_interleave(n)
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_classes:
        raise ValueError(f"label must be an integer between 0 and {num_classes - 1}, 'all', or omitted; got {label!r}")
    check_count(n)
    return torch.full((n,), label, dtype=torch.int64)


@dataclass
class Samples:
    """Generated images [N, 1, 28, 28] in [0, 1] on the CPU, the labels requested (or None) and latents [N, L]."""

    images: torch.Tensor
    labels: torch.Tensor | None
    latents: torch.Tensor


@dataclass
class GenerativeModel:
    """A loaded generator ready to sample, with the label mapper of a kind that is labelled by one and the sampling
    critic of a kind that is screened by one (each when shipped)."""

    kind: str
    dataset: str
    module: nn.Module
    meta: dict[str, Any]
    mapper: Mapper | None = None
    mapper_meta: dict[str, Any] | None = field(default=None)
    critic: SampleCritic | None = None
    critic_meta: dict[str, Any] | None = field(default=None)
    strictness: float = 1.0  # the power of the critic's density ratio in its rejection sampling

    @property
    def latent_dim(self) -> int:
        return self.module.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def num_classes(self) -> int:
        return len(dataset_info(self.dataset).classes)

    @property
    def supports_labels(self) -> bool:
        return KINDS[self.kind].labelled_by is None or self.mapper is not None

    def without_mapper(self) -> GenerativeModel:
        """The same generator without its label mapper: a new object sharing the module; this one is unchanged."""
        return dataclasses.replace(self, mapper=None, mapper_meta=None)

    def without_critic(self) -> GenerativeModel:
        """The same generator drawing without its critic's rejection sampling; this one is unchanged."""
        return dataclasses.replace(self, critic=None, critic_meta=None)

    def with_strictness(self, strictness: float) -> GenerativeModel:
        """The same generator whose critic keeps each draw with probability (density ratio) ** strictness, capped at
        1; this one is unchanged. ValueError outside STRICTNESS_RANGE or for a generator without a critic."""
        strictness = check_strictness(strictness)
        if self.critic is None:
            raise ValueError(f"the {self.dataset} {self.kind} has no sampling critic to make stricter")
        return dataclasses.replace(self, strictness=strictness)

    @torch.no_grad()
    def latents(
        self, labels: torch.Tensor | None, n: int, seed: int, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(latents [n, L] on the model's device, labels [n] or None); same seed, same latents.

        A generator whose decoder takes labels gets labels drawn from the seed when none are asked for. With a
        critic, every latent is one its rejection sampling kept (`screened_latents`).
        """
        generator = seeded_generator(seed)
        temperature = check_temperature(temperature)
        if labels is not None and not self.supports_labels:
            raise ValueError(
                f"the {self.dataset} {self.kind} has no label mapper checkpoint; sample it without a label"
            )
        if self.critic is not None:
            drawn = labels is None
            if drawn:  # the critic judges each draw as a member of its class: every draw gets one
                labels = torch.randint(0, self.num_classes, (n,), generator=generator)
            z = screened_latents(
                self.module, self.critic, labels.to(self.device), generator, temperature, self.strictness
            )
            return z, (None if drawn and not self.module.takes_labels else labels)
        source = self.mapper if labels is not None and self.mapper is not None else self.module
        z = source.latents(n, None if labels is None else labels.to(self.device), generator, temperature)
        if labels is None and self.module.takes_labels:
            labels = torch.randint(0, self.num_classes, (n,), generator=generator)
        return z, labels

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """latents [N, L] (+ labels [N] where the decoder takes them) -> images [N, 1, 28, 28] in [0, 1] on the CPU."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"latents must have shape [N, {self.latent_dim}], got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("latents must be finite")
        labels = labels.to(self.device) if labels is not None and self.module.takes_labels else None
        return self.module.decode(z.to(self.device, torch.float32), labels).cpu()

    def sample(self, n: int = 10, label: int | str | None = None, seed: int = 0, temperature: float = 1.0) -> Samples:
        """n images (of class `label`, of every class for 'all', or unconditional for None)."""
        labels = resolve_labels(label, n, self.num_classes)
        count = n if labels is None else len(labels)
        z, labels = self.latents(labels, count, seed, temperature)
        return Samples(self.decode(z, labels), labels, z.cpu())


SCREEN_CANDIDATES = 2  # draws per latent still wanted in each round of rejection sampling
SCREEN_ROUNDS = 8  # after this many rounds a latent still without a kept draw takes its class's likeliest candidate


@torch.no_grad()
def screened_latents(
    module: nn.Module,
    critic: SampleCritic,
    labels: torch.Tensor,
    generator: torch.Generator,
    temperature: float,
    strictness: float = 1.0,
) -> torch.Tensor:
    """Latents [N, L] of classes `labels` [N] by discriminator rejection sampling: each round draws
    SCREEN_CANDIDATES candidates per latent still wanted, keeps each with the critic's `acceptance` of its image
    (at `strictness`), and hands each class's kept candidates, in order, to the latents of that class still
    wanted."""
    device, labels = labels.device, labels.cpu()  # the bookkeeping runs on the CPU, where the uniforms are drawn
    wanted = torch.arange(len(labels))
    out = torch.empty(len(labels), module.latent_dim)
    for round_ in range(SCREEN_ROUNDS):
        tried = labels[wanted].repeat(SCREEN_CANDIDATES)
        z = module.latents(len(tried), tried.to(device), generator, temperature)
        accept = critic.acceptance(module.decode(z, tried.to(device)), tried, strictness).cpu()
        z = z.cpu()
        kept = torch.rand(len(tried), generator=generator) < accept
        last = round_ == SCREEN_ROUNDS - 1
        filled = torch.zeros(len(wanted), dtype=torch.bool)
        for c in labels[wanted].unique():
            slots = (labels[wanted] == c).nonzero().squeeze(1)
            of_class = (tried == c).nonzero().squeeze(1)
            # the kept ones in draw order; in the last round, the likeliest ones rather than loop on
            picks = (
                of_class[accept[of_class].argsort(descending=True, stable=True)] if last else of_class[kept[of_class]]
            )
            picks = picks[: len(slots)]
            out[wanted[slots[: len(picks)]]] = z[picks]
            filled[slots[: len(picks)]] = True
        wanted = wanted[~filled]
        if not len(wanted):
            break
    return out.to(device)


def load_generator(
    kind: str,
    dataset: str,
    checkpoint: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> GenerativeModel:
    """Load a generator: the shipped one of (kind, dataset), or the file `checkpoint` (a mapper beside it is used for
    'gan')."""
    if kind not in generator_kinds():
        raise ValueError(f"unknown generator {kind!r}; choose one of: {', '.join(generator_kinds())}")
    dataset_info(dataset)
    device = torch.device(device) if device is not None else default_device()
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path(kind, dataset, root)
    module, meta = load_model(path, kind=kind, dataset=dataset, device=device)
    # an older mapper may not name its generator; a critic always does
    mapper, mapper_meta = _companion(path, KINDS[kind].labelled_by, dataset, device, meta, unrecorded_ok=True)
    critic, critic_meta = _companion(path, KINDS[kind].screened_by, dataset, device, meta, unrecorded_ok=False)
    return GenerativeModel(kind, dataset, module, meta, mapper, mapper_meta, critic, critic_meta)


def _companion(
    path: Path, kind: str | None, dataset: str, device: torch.device, meta: dict[str, Any], unrecorded_ok: bool
) -> tuple[nn.Module | None, dict[str, Any] | None]:
    """The network of kind `kind` beside the generator file `path` (its mapper or critic) and its metadata, or
    (None, None) when there is none; CheckpointError when it was trained for other generator weights."""
    companion_file = path.with_name(f"{kind}.safetensors") if kind is not None else None
    if companion_file is None or not companion_file.exists():
        return None, None
    module, companion_meta = load_model(companion_file, kind=kind, dataset=dataset, device=device)
    recorded = companion_meta.get("generator_sha256")
    if recorded != meta["weights_sha256"] and not (recorded is None and unrecorded_ok):
        raise CheckpointError(companion_file, f"was trained for another generator than {path}")
    return module, companion_meta


def load_classifier(
    dataset: str,
    checkpoint: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
) -> Classifier:
    """Load the project classifier of `dataset` (eval mode)."""
    device = torch.device(device) if device is not None else default_device()
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path("classifier", dataset, root)
    return load_model(path, kind="classifier", dataset=dataset, device=device)[0]


def load_vae(
    dataset: str,
    checkpoint: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    kind: str = "vae",
) -> GaussianVAE:
    """Load a VAE of `dataset` (`kind`: any kind with an encoder, e.g. the convolutional one) for encoding and decoding
    (eval mode)."""
    if not kind_spec(kind).encodes:
        raise ValueError(f"{kind} has no encoder; choose one of: {', '.join(k for k in KINDS if KINDS[k].encodes)}")
    return load_generator(kind, dataset, checkpoint, root, device).module


@torch.no_grad()
def predict(classifier: Classifier, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, C] (CPU) for images [N, 1, 28, 28] or [N, 28, 28] in [0, 1]."""
    device = next(classifier.parameters()).device
    images = images.reshape(-1, 1, 28, 28)
    out = [classifier.predict_unit(chunk.to(device, torch.float32)).cpu() for chunk in images.split(PREDICT_BATCH)]
    return torch.cat(out) if out else torch.empty(0, classifier.config.num_classes)


@torch.no_grad()
def encode(vae: GaussianVAE, images: torch.Tensor) -> torch.Tensor:
    """Latent means [N, L] (CPU) of images [N, 1, 28, 28] or [N, 28, 28] in [0, 1]."""
    device = next(vae.parameters()).device
    images = images.reshape(-1, 1, 28, 28)
    out = [vae.encode(chunk.to(device, torch.float32))[0].cpu() for chunk in images.split(PREDICT_BATCH)]
    return torch.cat(out) if out else torch.empty(0, vae.latent_dim)


__all__ = [
    "CheckpointError",
    "GenerativeModel",
    "Samples",
    "default_device",
    "encode",
    "load_classifier",
    "load_generator",
    "load_vae",
    "predict",
    "seeded_generator",
    "Generator",
    "CondGenerator",
    "DCGenerator",
    "ConvVAE",
]

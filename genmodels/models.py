"""The networks: MLP GAN, label-to-latent mapper, conditional GAN, MLP VAE and the CNN classifier.

Each model has a typed config that travels with its weights (see genmodels.checkpoint),
so a checkpoint rebuilds its own module. Generators take and return tensors; their
`sample` methods are the no-grad entry points and return images in [0, 1].
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
IMAGE_PIXELS = 28 * 28


def mlp(sizes: list[int], negative_slope: float, dropout: float = 0.0) -> nn.Sequential:
    """Linear + LeakyReLU (+ Dropout) for each consecutive pair in `sizes`."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        # in place: Linear's backward does not need its output, and LeakyReLU's backward can use its own
        layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(negative_slope, inplace=True)]
        if dropout > 0:
            layers.append(Dropout(dropout))
    return nn.Sequential(*layers)


class Dropout(nn.Module):
    """Inverted dropout; on the CPU it draws 16 random bits per unit from 64-bit integers.

    PyTorch's CPU `bernoulli_` makes one generator call per element and was 15% of a GAN
    training step; four units per call are ~4x faster, with the drop rate exact to 1/65536.
    The comparison writes the float mask directly: CPU kernels that store bools are ~5x slower.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {p}")
        self.p = p
        self._threshold = round(p * 65536) - 32768  # keep a unit when its int16 draw is at or above this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64)
        keep = torch.ge(words.view(torch.int16)[:n].view(x.shape), self._threshold, out=torch.empty_like(x))
        return x * keep.mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _noise(n: int, dim: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.randn(n, dim, generator=generator, device=generator.device if generator is not None else device).to(device)


def _check_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    return labels.long()


# ----------------------------------------------------------------------------- GAN (report 001)

@dataclass
class GANConfig:
    """Unconditional MLP GAN of report 001: fc layers, LeakyReLU 0.2, dropout 0.3 in D, tanh output."""

    latent_dim: int = 100
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    negative_slope: float = 0.2
    dropout: float = 0.3


class Generator(nn.Module):
    """z [N, latent_dim] -> image [N, 1, 28, 28] in [-1, 1]."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.body = mlp([config.latent_dim, *config.g_hidden], config.negative_slope)
        self.to_pixels = nn.Linear(config.g_hidden[-1], IMAGE_PIXELS)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_pixels(self.body(z))).view(-1, *IMAGE_SHAPE)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """n images [n, 1, 28, 28] in [0, 1] from z ~ N(0, temperature^2 I)."""
        z = _noise(n, self.latent_dim, generator, self.to_pixels.weight.device) * temperature
        return self.decode(z)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [N, latent_dim] -> images [N, 1, 28, 28] in [0, 1]."""
        return self(z).add_(1.0).mul_(0.5)


class Discriminator(nn.Module):
    """image [N, 1, 28, 28] in [-1, 1] -> real/fake logit [N]."""

    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.body = mlp([IMAGE_PIXELS, *config.d_hidden], config.negative_slope, config.dropout)
        self.to_logit = nn.Linear(config.d_hidden[-1], 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_logit(self.body(images.reshape(len(images), -1))).squeeze(1)


# ----------------------------------------------------------------------------- mapper (report 001, Q10)

@dataclass
class MapperConfig:
    """Class + noise -> latent of a frozen unconditional generator (report 001, question 10)."""

    num_classes: int = 10
    latent_dim: int = 100
    embed_dim: int = 32
    hidden: tuple[int, ...] = (256, 256)
    negative_slope: float = 0.2


class Mapper(nn.Module):
    """(labels [N], noise [N, latent_dim]) -> latent z [N, latent_dim] = noise + offset(label, noise).

    The residual form keeps samples varied (the noise passes through) while the learned
    offset moves them into the requested class's region of the generator's latent space.
    """

    def __init__(self, config: MapperConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.num_classes, config.embed_dim)
        self.body = mlp([config.embed_dim + config.latent_dim, *config.hidden], config.negative_slope)
        self.to_offset = nn.Linear(config.hidden[-1], config.latent_dim)

    def forward(self, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        h = self.body(torch.cat([self.embed(labels), noise], dim=1))
        return noise + self.to_offset(h)

    @torch.no_grad()
    def latents(self, labels: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """labels [N] -> latents [N, latent_dim] for the frozen generator."""
        labels = _check_labels(labels, self.config.num_classes).to(self.embed.weight.device)
        noise = _noise(len(labels), self.config.latent_dim, generator, self.embed.weight.device) * temperature
        return self(labels, noise)


# ----------------------------------------------------------------------------- conditional GAN (report 000)

@dataclass
class CGANConfig:
    """Conditional MLP GAN of report 000 (label embedding, Linear, LeakyReLU 0.2, dropout in D).

    Beyond the report: D is a projection discriminator with an auxiliary class head
    (AC-GAN term, weight `aux_weight`), which makes the requested class come out reliably.
    """

    num_classes: int = 10
    latent_dim: int = 100
    embed_dim: int = 32
    g_hidden: tuple[int, ...] = (256, 512, 1024)
    d_hidden: tuple[int, ...] = (1024, 512, 256)
    negative_slope: float = 0.2
    dropout: float = 0.3
    aux_weight: float = 1.0


class CondGenerator(nn.Module):
    """(z [N, latent_dim], labels [N]) -> image [N, 1, 28, 28] in [-1, 1]."""

    def __init__(self, config: CGANConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.num_classes, config.embed_dim)
        self.body = mlp([config.latent_dim + config.embed_dim, *config.g_hidden], config.negative_slope)
        self.to_pixels = nn.Linear(config.g_hidden[-1], IMAGE_PIXELS)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(torch.cat([z, self.embed(labels)], dim=1))
        return torch.tanh(self.to_pixels(h)).view(-1, *IMAGE_SHAPE)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """labels [N] -> images [N, 1, 28, 28] in [0, 1], z ~ N(0, temperature^2 I)."""
        labels = _check_labels(labels, self.config.num_classes).to(self.embed.weight.device)
        z = _noise(len(labels), self.latent_dim, generator, self.embed.weight.device) * temperature
        return self.decode(z, labels)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(latents [N, latent_dim], labels [N]) -> images [N, 1, 28, 28] in [0, 1]."""
        labels = _check_labels(labels, self.config.num_classes).to(self.embed.weight.device)
        return self(z, labels).add_(1.0).mul_(0.5)


class CondDiscriminator(nn.Module):
    """(image [N, 1, 28, 28], labels [N]) -> (real/fake logit [N], class logits [N, num_classes])."""

    def __init__(self, config: CGANConfig):
        super().__init__()
        self.config = config
        self.body = mlp([IMAGE_PIXELS, *config.d_hidden], config.negative_slope, config.dropout)
        self.to_logit = nn.Linear(config.d_hidden[-1], 1)
        self.projection = nn.Embedding(config.num_classes, config.d_hidden[-1])
        self.to_class = nn.Linear(config.d_hidden[-1], config.num_classes)
        nn.init.normal_(self.projection.weight, std=0.02)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(images.reshape(len(images), -1))
        logit = self.to_logit(h).squeeze(1) + (self.projection(labels) * h).sum(dim=1)
        return logit, self.to_class(h)


# ----------------------------------------------------------------------------- VAE (report 000)

@dataclass
class VAEConfig:
    """MLP VAE of report 000 (Linear + LeakyReLU 0.2), Bernoulli decoder on [0, 1] pixels.

    Beyond the report: an optional linear class head on the latent code (training only),
    which separates the classes in latent space so the per-class Gaussians decode to their class.
    """

    latent_dim: int = 32
    hidden: tuple[int, ...] = (512, 512)
    negative_slope: float = 0.2
    num_classes: int = 10
    class_weight: float = 0.0  # > 0: a linear class head on z shapes the latent space into class clusters


class VAE(nn.Module):
    """image [N, 1, 28, 28] in [0, 1] -> (pixel logits [N, 1, 28, 28], mu [N, L], logvar [N, L]).

    Buffers `class_means` [C, L] and `class_scale_tril` [C, L, L] hold a Gaussian per class
    fitted to the encoded training set (see `fit_class_gaussians`), for class-conditional sampling.
    """

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        self.encoder = mlp([IMAGE_PIXELS, *config.hidden], config.negative_slope)
        self.to_stats = nn.Linear(config.hidden[-1], 2 * config.latent_dim)
        self.decoder = mlp([config.latent_dim, *reversed(config.hidden)], config.negative_slope)
        self.to_pixels = nn.Linear(config.hidden[0], IMAGE_PIXELS)
        self.to_class = nn.Linear(config.latent_dim, config.num_classes) if config.class_weight > 0 else None
        eye = torch.zeros(config.num_classes, config.latent_dim, config.latent_dim)
        eye.diagonal(dim1=1, dim2=2).fill_(1.0)  # not torch.eye: on the meta device it would import torch._dynamo
        self.register_buffer("class_means", torch.zeros(config.num_classes, config.latent_dim))
        self.register_buffer("class_scale_tril", eye)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [N, 1, 28, 28] in [0, 1] -> (mu, logvar), each [N, latent_dim]."""
        mu, logvar = self.to_stats(self.encoder(images.reshape(len(images), -1))).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """latents [N, latent_dim] -> pixel logits [N, 1, 28, 28]."""
        return self.to_pixels(self.decoder(z)).view(-1, *IMAGE_SHAPE)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """images -> (pixel logits, mu, logvar, the sampled z = mu + noise * sigma); noise [N, L] is drawn when not given."""
        mu, logvar = (stat.float() for stat in self.encode(images))  # fp32 even under bf16 autocast: exp(logvar)
        if noise is not None:
            eps = noise
        elif generator is not None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        else:
            eps = torch.randn_like(mu)
        z = mu + eps * torch.exp(0.5 * logvar)
        return self.decode_logits(z), mu, logvar, z

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latents [N, latent_dim] -> images [N, 1, 28, 28] in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    @torch.no_grad()
    def latents(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Latents [n, L]: from the prior N(0, I), or from each label's fitted Gaussian; scaled by temperature."""
        device = self.class_means.device
        eps = _noise(n, self.latent_dim, generator, device) * temperature
        if labels is None:
            return eps
        labels = _check_labels(labels, self.config.num_classes).to(device)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} samples")
        return self.class_means[labels] + torch.einsum("nij,nj->ni", self.class_scale_tril[labels], eps)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """n images [n, 1, 28, 28] in [0, 1], unconditional or of the given labels [n]."""
        return self.decode(self.latents(n, labels, generator, temperature))

    @torch.no_grad()
    def fit_class_gaussians(self, mu: torch.Tensor, labels: torch.Tensor) -> None:
        """Fit a full-covariance Gaussian per class to encoded means mu [N, L] with labels [N]."""
        means, trils = [], []
        jitter = 1e-4 * torch.eye(self.latent_dim, device=mu.device)
        for c in range(self.config.num_classes):
            members = mu[labels == c]
            if len(members) < 2:
                raise ValueError(f"class {c} has {len(members)} encoded images; need at least 2 to fit a Gaussian")
            means.append(members.mean(0))
            trils.append(torch.linalg.cholesky(torch.cov(members.T) + jitter))
        self.class_means.copy_(torch.stack(means))
        self.class_scale_tril.copy_(torch.stack(trils))


def vae_loss(pixel_logits: torch.Tensor, images: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, KL), each in nats per image: BCE summed over pixels, KL to N(0, I)."""
    recon = F.binary_cross_entropy_with_logits(pixel_logits, images, reduction="sum") / len(images)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(images)
    return recon, kl


# ----------------------------------------------------------------------------- classifier (report 001)

@dataclass
class ClassifierConfig:
    """CNN of report 001: two 3x3 convs (stride 1, padding 1) with ReLU and max-pool, one hidden FC layer.

    Beyond the report: batch norm after each conv and dropout before the output layer.
    """

    num_classes: int = 10
    channels: tuple[int, ...] = (32, 64)
    hidden: int = 256
    dropout: float = 0.3


class Classifier(nn.Module):
    """image [N, 1, 28, 28] in [-1, 1] -> class logits [N, num_classes]."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        # ReLU after the max-pool: the same function (both are monotone), on a quarter of the values
        self.convs = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=1, padding=1), nn.BatchNorm2d(c1), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=1, padding=1), nn.BatchNorm2d(c2), nn.MaxPool2d(2), nn.ReLU(),
        )
        self.fc = nn.Linear(c2 * 7 * 7, config.hidden)
        self.dropout = Dropout(config.dropout)
        self.to_logits = nn.Linear(config.hidden, config.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 1, 28, 28] in [-1, 1] -> hidden FC activations [N, hidden] (the FID feature space)."""
        return F.relu(self.fc(self.convs(images).flatten(1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.to_logits(self.dropout(self.features(images)))

    @torch.no_grad()
    def predict_unit(self, images: torch.Tensor) -> torch.Tensor:
        """images in [0, 1] [N, 1, 28, 28] -> class probabilities [N, num_classes] (call in eval mode)."""
        return F.softmax(self(images.reshape(-1, *IMAGE_SHAPE) * 2.0 - 1.0), dim=1)


# ----------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class ModelKind:
    """What a checkpoint kind is: its config class and the module it rebuilds."""

    name: str
    config_cls: type
    module_cls: type


MODEL_KINDS: dict[str, ModelKind] = {
    "gan": ModelKind("gan", GANConfig, Generator),
    "mapper": ModelKind("mapper", MapperConfig, Mapper),
    "cgan": ModelKind("cgan", CGANConfig, CondGenerator),
    "vae": ModelKind("vae", VAEConfig, VAE),
    "classifier": ModelKind("classifier", ClassifierConfig, Classifier),
}
GENERATOR_KINDS = ("cgan", "gan", "vae")


def model_kind(name: str) -> ModelKind:
    """The ModelKind for a kind name; ValueError naming the choices otherwise."""
    try:
        return MODEL_KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model kind {name!r}; choose one of: {', '.join(MODEL_KINDS)}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as a JSON-ready dict."""
    return dataclasses.asdict(config)


MAX_WIDTH = 65_536  # any size field above this is a typo, and would fail later as an allocation of terabytes
FLOAT_RANGES = {"negative_slope": (0.0, 1.0), "dropout": (0.0, 0.99)}  # other float fields are loss weights: >= 0


def _check_range(name: str, key: str, value: Any) -> None:
    """Sizes lie in 1..MAX_WIDTH; slopes and rates in FLOAT_RANGES; loss weights are not negative."""
    if isinstance(value, tuple):
        if not value or any(v > MAX_WIDTH for v in value):
            raise ValueError(f"{name}.{key} must list one or more sizes of at most {MAX_WIDTH:,}, got {list(value)}")
    elif isinstance(value, int):
        if not 1 <= value <= MAX_WIDTH:
            raise ValueError(f"{name}.{key} must be between 1 and {MAX_WIDTH:,}, got {value}")
    else:
        low, high = FLOAT_RANGES.get(key, (0.0, math.inf))
        if not low <= value <= high:
            raise ValueError(f"{name}.{key} must be between {low:g} and {high:g}, got {value:g}")


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from JSON; unknown, ill-typed or out-of-range fields raise ValueError."""
    if not isinstance(values, dict):
        raise ValueError(f"config must be a JSON object, got {type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} fields: {', '.join(sorted(unknown))}")
    kwargs = {}
    for key, value in values.items():
        default = getattr(config_cls(), key)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and v > 0 for v in value):
                raise ValueError(f"{config_cls.__name__}.{key} must be a list of positive integers")
            value = tuple(value)
        elif isinstance(default, bool) or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{config_cls.__name__}.{key} must be a number, got {value!r}")
        elif isinstance(default, int) and not float(value).is_integer():
            raise ValueError(f"{config_cls.__name__}.{key} must be an integer, got {value!r}")
        kwargs[key] = type(default)(value)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not math.isfinite(kwargs[key]):
            raise ValueError(f"{config_cls.__name__}.{key} must be finite")
        _check_range(config_cls.__name__, key, kwargs[key])
    return config_cls(**kwargs)


def build_model(kind: str, config: Any = None) -> nn.Module:
    """A freshly initialised module of `kind`, from a config object or dict (defaults if None)."""
    spec = model_kind(kind)
    if config is None:
        config = spec.config_cls()
    elif isinstance(config, dict):
        config = config_from_dict(spec.config_cls, config)
    return spec.module_cls(config)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

"""Checked training requests from the app's launcher: ranges, defaults from the shipped recipes, and the launch
itself."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genmodels.datasets import DATASETS, dataset_info
from genmodels.kinds import KINDS
from genmodels.paths import checkpoint_file
from genmodels.recipes import OBJECTIVES
from genmodels.runs import RunInfo, launch_run, list_runs

LAUNCH_KINDS = tuple(KINDS)
EPOCH_RANGE = (1, 500)
BATCH_RANGE = (8, 4096)
LR_RANGE = (1e-6, 1.0)
SEED_RANGE = (0, 2**31 - 1)
MAX_STEPS_RANGE = (1, 10_000_000)
D_STEPS_RANGE = (1, 10)
LABEL_SMOOTHING_RANGE = (0.0, 0.5)  # the upper end excluded: a target of 0.5 for real images teaches D nothing
MODE_SEEKING_RANGE = (0.0, 10.0)
BETA_RANGE = (0.0, 100.0)
KL_WARMUP_RANGE = (0, 10_000_000)
LATENT_RANGE = (1, 512)
GAN_HELP = {
    "objective": "The loss D and G play: " + "; ".join(f"{name}: {text}" for name, text in OBJECTIVES.items()) + ".",
    "spectral_norm": "Spectral normalisation on every layer of D: caps how sharply D can change, a common GAN fix.",
    "d_steps": "How many times D is updated for each update of G (WGAN-GP usually takes 5).",
    "lr_d": "D's own learning rate (empty: the same as G's); a much faster D wins and starves G of gradients.",
    "label_smoothing": "D's target for real images is 1 minus this (one-sided smoothing keeps D from over-confidence).",
    "mode_seeking": "Weight of a term that pays G for different images from different latents (against collapse).",
}
VAE_HELP = {
    "beta": "Weight of the KL term (a beta-VAE): above 1 trades sharpness for a smoother latent space.",
    "kl_warmup": "Ramp the KL weight from 0 up to beta over this many steps, so the encoder learns to use z first.",
}


@dataclass(frozen=True)
class TrainingOptions:
    """Settings beyond the recipe's basics (None: the recipe's own): the GAN objective flags for adversarial
    kinds, the KL weight for kinds with an encoder, model-config overrides, and the weights a fork starts from."""

    objective: str | None = None
    spectral_norm: bool | None = None
    d_steps: int | None = None
    lr_d: float | None = None
    label_smoothing: float | None = None
    mode_seeking: float | None = None
    beta: float | None = None
    kl_warmup: int | None = None
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the model config, e.g. {"latent_dim": 2}
    init_from: str | None = None  # a checkpoint file or run folder whose weights the run starts from

    def flags(self) -> list[str]:
        """The `python -m train` flags of these options."""
        out: list[str] = []
        for name in ("objective", "d_steps", "lr_d", "label_smoothing", "mode_seeking", "beta", "kl_warmup"):
            value = getattr(self, name)
            if value is not None:
                out += [f"--{name.replace('_', '-')}", repr(value) if isinstance(value, float) else str(value)]
        if self.spectral_norm:
            out.append("--spectral-norm")
        if self.model:
            out += ["--model-config", json.dumps(self.model, sort_keys=True)]
        if self.init_from:
            out += ["--init-from", self.init_from]
        return out


@dataclass(frozen=True)
class TrainingRequest:
    """A validated training launch: what `python -m train` will be started with."""

    kind: str
    dataset: str
    epochs: int
    batch_size: int
    lr: float | None  # None: the shipped recipe's learning rate
    seed: int
    max_steps: int | None = None
    nproc: int = 1  # processes of one run (torchrun); offered only where max_processes() > 1
    options: TrainingOptions = field(default_factory=TrainingOptions)


def recipe_lr(kind: str, dataset: str) -> float:
    """The learning rate of the shipped recipe of (kind, dataset)."""
    return KINDS[kind].recipe(dataset).lr


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number between {low} and {high}, got {value!r}")
    if not low <= int(value) <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {int(value)}")
    return int(value)


def parse_lr(text: str | float | None, name: str = "learning rate") -> float | None:
    """A learning rate typed by the user ('' or None: the recipe's default); ValueError with the allowed range."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    low, high = LR_RANGE
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number like 0.0002 or 2e-4, got {text!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


def gpu_count() -> int:
    """NVIDIA GPUs here, from the driver's /proc entries: never through torch, which a page may be importing in
    another thread at this moment (a half-initialised module has no `cuda` yet), and which the first page must not
    wait for."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def max_processes() -> int:
    """The most processes the launcher offers for one run: the GPUs where there are several, else the CPU cores
    where there are more than two; 1 (the count is not offered) elsewhere."""
    gpus = gpu_count()
    if gpus:
        return gpus
    cores = os.cpu_count() or 1
    return cores if cores > 2 else 1


def _number(name: str, value: Any, low: float, high: float, *, high_open: bool = False) -> float | None:
    """An optional number typed or picked by the user ('' or None: the recipe's); ValueError with the range."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    inside = low <= number < high if high_open else low <= number <= high
    if isinstance(value, bool) or not math.isfinite(number) or not inside:
        closing = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{closing}, got {value!r}")
    return number


def check_options(kind: str, options: dict[str, Any] | None) -> TrainingOptions:
    """The GAN and VAE fields, model overrides and fork source of a launch, each checked against its range and
    against the kind (a GAN field for a kind without a discriminator, or beta for one without an encoder, is
    refused); ValueError naming the first bad one."""
    given = {k: v for k, v in (options or {}).items() if v is not None and v != "" and v is not False}
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(TrainingOptions)})
    if unknown:
        raise ValueError(f"unknown training option {unknown[0]!r}")
    spec = KINDS[kind]
    for names, applies, family in ((GAN_HELP, spec.adversarial, "GANs"), (VAE_HELP, spec.encodes, "VAEs")):
        extra = [name for name in names if name in given]
        if extra and not applies:
            kinds = ", ".join(k for k, v in KINDS.items() if (v.adversarial if family == "GANs" else v.encodes))
            raise ValueError(f"{extra[0].replace('_', ' ')} is for the {family} ({kinds}) only, not {kind}")
    objective = given.get("objective")
    if objective is not None and objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    d_steps = given.get("d_steps")
    warmup = given.get("kl_warmup")
    return TrainingOptions(
        objective=objective,
        spectral_norm=True if given.get("spectral_norm") is True else None,
        d_steps=None if d_steps is None else _integer("D steps per G step", d_steps, *D_STEPS_RANGE),
        lr_d=None if given.get("lr_d") is None else parse_lr(given["lr_d"], "D's learning rate"),
        label_smoothing=_number(
            "label smoothing", given.get("label_smoothing"), *LABEL_SMOOTHING_RANGE, high_open=True
        ),
        mode_seeking=_number("mode-seeking weight", given.get("mode_seeking"), *MODE_SEEKING_RANGE),
        beta=_number("beta", given.get("beta"), *BETA_RANGE),
        kl_warmup=None if warmup is None else _integer("KL warm-up steps", warmup, *KL_WARMUP_RANGE),
        model=_model_overrides(given.get("model")),
        init_from=_init_source(given.get("init_from")),
    )


def recipe_options(kind: str, dataset: str) -> dict[str, Any]:
    """The recipe's value of each launcher option that applies to the kind (the fields' defaults)."""
    recipe = KINDS[kind].recipe(dataset)
    values: dict[str, Any] = {}
    if KINDS[kind].adversarial:
        values.update(
            objective=recipe.objective,
            spectral_norm=recipe.spectral_norm,
            d_steps=recipe.d_steps,
            lr_d="" if recipe.lr_d is None else repr(recipe.lr_d),
            label_smoothing=recipe.label_smoothing,
            mode_seeking=recipe.mode_seeking,
        )
    if KINDS[kind].encodes:
        values.update(beta=recipe.beta, kl_warmup=recipe.kl_warmup_steps)
    return values


def changed_options(kind: str, dataset: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that differ from the recipe's values: a launch with untouched fields trains as the recipe."""
    defaults = recipe_options(kind, dataset)
    return {name: value for name, value in fields.items() if name not in defaults or value != defaults[name]}


def _model_overrides(model: Any) -> dict[str, Any]:
    if model is None:
        return {}
    if not isinstance(model, dict):
        raise ValueError(f"model overrides must be a mapping of config fields, got {model!r}")
    if "latent_dim" in model:
        _integer("latent size", model["latent_dim"], *LATENT_RANGE)
    return dict(model)


def _init_source(path: Any) -> str | None:
    if path is None:
        return None
    if not isinstance(path, (str, Path)) or not Path(path).exists():
        raise ValueError(f"the run or checkpoint to start from is gone: {path}")
    return str(path)


def check_request(
    kind: Any,
    dataset: Any,
    epochs: Any,
    batch_size: Any,
    lr: Any,
    seed: Any,
    max_steps: Any = None,
    nproc: Any = 1,
    options: dict[str, Any] | None = None,
) -> TrainingRequest:
    """Validate every launcher field; ValueError naming the first bad one and its allowed range."""
    if kind not in LAUNCH_KINDS:
        raise ValueError(f"model kind must be one of {', '.join(LAUNCH_KINDS)}, got {kind!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return TrainingRequest(
        kind=kind,
        dataset=dataset_info(dataset).name,
        epochs=_integer("epochs", epochs, *EPOCH_RANGE),
        batch_size=_integer("batch size", batch_size, *BATCH_RANGE),
        lr=parse_lr(lr),
        seed=_integer("seed", seed, *SEED_RANGE),
        max_steps=None if max_steps in (None, 0) else _integer("max steps", max_steps, *MAX_STEPS_RANGE),
        nproc=_checked_processes(nproc, batch_size),
        options=check_options(kind, options),
    )


def _checked_processes(nproc: Any, batch_size: Any) -> int:
    count = _integer("processes", nproc, 1, max_processes())
    if int(batch_size) % count:
        raise ValueError(f"batch size {int(batch_size)} must be a multiple of the {count} processes that share it")
    return count


FRESH = "fresh weights"


def start_sources(kind: str, dataset: str, runs_root: str | os.PathLike | None = None) -> dict[str, str | None]:
    """{label: path} of what a launch can start from: fresh weights (None), the shipped checkpoint (the network
    it serves), or an ended run of the same kind and dataset (every network of its saved state)."""
    sources: dict[str, str | None] = {FRESH: None}
    shipped = checkpoint_file(kind, dataset)
    if shipped.is_file():
        sources[f"the shipped {kind} checkpoint"] = str(shipped)
    try:
        runs = list_runs(runs_root)
    except OSError:  # an unreadable runs folder leaves fresh weights and the shipped checkpoint
        runs = []
    for run in runs:
        if run.kind == kind and run.dataset == dataset and not run.active and run.folder.state_file.is_file():
            sources[f"your run {run.name} ({run.state})"] = str(run.path)
    return sources


def start(request: TrainingRequest) -> RunInfo:
    """Launch the request as a separate training process (raises genmodels.runs.LaunchError when refused)."""
    lr = request.lr if request.lr is not None else recipe_lr(request.kind, request.dataset)
    return launch_run(
        request.kind,
        request.dataset,
        epochs=request.epochs,
        batch_size=request.batch_size,
        lr=lr,
        seed=request.seed,
        extra=extra_flags(request),
    )


def extra_flags(request: TrainingRequest) -> list[str]:
    """The `python -m train` flags of a request beyond kind, dataset, epochs, batch, lr and seed."""
    extra = ["--max-steps", str(request.max_steps)] if request.max_steps else []
    if request.nproc > 1:
        extra += ["--nproc", str(request.nproc)]
    return extra + request.options.flags()

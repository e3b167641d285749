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
LATENT_RANGE = (1, 512)


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


def _number(name: str, value: Any, low: float, high: float, *, high_open: bool = False) -> float:
    """A number in [low, high] (or [low, high) with high_open); ValueError with the range."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    inside = low <= number < high if high_open else low <= number <= high
    if isinstance(value, bool) or not math.isfinite(number) or not inside:
        allowed = f"in [{low:g}, {high:g})" if high_open else f"between {low:g} and {high:g}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


@dataclass(frozen=True)
class Option:
    """A training setting beyond the recipe's basics that both the launcher and `python -m train` offer.

    `name` is the TrainingOptions field and the launcher's key; dashed, the CLI flag. `kind` picks the widget, the
    CLI type and the check: "choice" (one of `choices`), "switch", "int" or "float" (in [low, high], or [low, high)
    where high_open) or "lr" (a learning rate in LR_RANGE, typed as text).
    """

    name: str
    title: str  # the launcher field's label
    family: str  # "adversarial" (GANs) or "encodes" (VAEs): the KindSpec flag of the kinds it changes
    help: str
    kind: str
    low: float = 0
    high: float = 0
    high_open: bool = False
    choices: tuple[str, ...] = ()
    step: float = 1  # the launcher field's step
    placeholder: str = ""  # what the launcher's empty text field means
    recipe_field: str = ""  # the Recipe field it sets, where its name differs

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def field(self) -> str:
        return self.recipe_field or self.name

    def check(self, label: str, value: Any) -> Any:
        """The value checked against this option's range; ValueError naming it as `label` (a flag or a title)."""
        if self.kind == "int":
            return _integer(label, value, int(self.low), int(self.high))
        if self.kind == "float":
            return _number(label, value, self.low, self.high, high_open=self.high_open)
        if self.kind == "lr":
            return parse_lr(value, label)
        if self.kind == "switch":
            if not isinstance(value, bool):
                raise ValueError(f"{label} must be on or off, got {value!r}")
            return value
        if value not in self.choices:
            raise ValueError(f"{label} must be one of {', '.join(self.choices)}, got {value!r}")
        return value


OPTIONS = (
    Option(
        "objective",
        "GAN objective",
        "adversarial",
        "The loss D and G play: " + "; ".join(f"{name}: {text}" for name, text in OBJECTIVES.items()) + ".",
        "choice",
        choices=tuple(OBJECTIVES),
    ),
    Option(
        "spectral_norm",
        "Spectral norm in D",
        "adversarial",
        "Spectral normalisation on every layer of D: caps how sharply D can change, a common GAN fix.",
        "switch",
    ),
    Option(
        "d_steps",
        "D steps per G step",
        "adversarial",
        "How many times D is updated for each update of G (WGAN-GP usually takes 5).",
        "int",
        low=1,
        high=10,
    ),
    Option(
        "lr_d",
        "D learning rate",
        "adversarial",
        "D's own learning rate (empty: the same as G's); a much faster D wins and starves G of gradients.",
        "lr",
        placeholder="same as G's",
    ),
    Option(
        "label_smoothing",
        "Label smoothing",
        "adversarial",
        "D's target for real images is 1 minus this (one-sided smoothing keeps D from over-confidence).",
        "float",
        low=0.0,
        high=0.5,
        high_open=True,  # a target of 0.5 for real images teaches D nothing
        step=0.05,
    ),
    Option(
        "r1",
        "R1 penalty",
        "adversarial",
        "Weight of a penalty on D's slope at real images (R1): a steadier D, so training settles instead of circling.",
        "float",
        low=0.0,
        high=100.0,
        step=0.5,
        recipe_field="r1_weight",
    ),
    Option(
        "mode_seeking",
        "Mode-seeking weight",
        "adversarial",
        "Weight of a term that pays G for different images from different latents (against collapse).",
        "float",
        low=0.0,
        high=10.0,
        step=0.5,
    ),
    Option(
        "coverage",
        "Coverage weight",
        "adversarial",
        "Weight of a term that pulls, for each real image, G's nearest fake (of its class, in a conditional GAN) "
        "towards it: G pays for the images it draws nothing near (against collapse).",
        "float",
        low=0.0,
        high=100.0,
        step=1.0,
    ),
    Option(
        "beta",
        "Beta (KL weight)",
        "encodes",
        "Weight of the KL term (a beta-VAE): above 1 trades sharpness for a smoother latent space.",
        "float",
        low=0.0,
        high=100.0,
        step=0.5,
    ),
    Option(
        "kl_warmup",
        "KL warm-up steps",
        "encodes",
        "Ramp the KL weight from 0 up to beta over this many steps, so the encoder learns to use z first.",
        "int",
        low=0,
        high=10_000_000,
        step=100,
        recipe_field="kl_warmup_steps",
    ),
)
OPTION = {option.name: option for option in OPTIONS}
FAMILIES = {"adversarial": "GANs", "encodes": "VAEs"}


def family_kinds(family: str) -> list[str]:
    """The kinds an option of `family` ("adversarial" or "encodes") applies to."""
    return [name for name, spec in KINDS.items() if getattr(spec, family)]


@dataclass(frozen=True)
class TrainingOptions:
    """Settings beyond the recipe's basics (None: the recipe's own): the GAN objective flags for adversarial
    kinds, the KL weight for kinds with an encoder, model-config overrides, and the weights a fork starts from."""

    objective: str | None = None
    spectral_norm: bool | None = None
    d_steps: int | None = None
    lr_d: float | None = None
    label_smoothing: float | None = None
    r1: float | None = None
    mode_seeking: float | None = None
    coverage: float | None = None
    beta: float | None = None
    kl_warmup: int | None = None
    model: dict[str, Any] = field(default_factory=dict)  # overrides of the model config, e.g. {"latent_dim": 2}
    init_from: str | None = None  # a checkpoint file or run folder whose weights the run starts from

    def flags(self) -> list[str]:
        """The `python -m train` flags of these options."""
        out: list[str] = []
        for option in OPTIONS:
            value = getattr(self, option.name)
            if option.kind == "switch":
                out += [option.flag] if value else []
            elif value is not None:
                out += [option.flag, repr(value) if isinstance(value, float) else str(value)]
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


def check_option(kind: str, option: Option, value: Any, label: str) -> Any:
    """One option's value checked for the kind (refused for a kind outside its family) and against its range;
    ValueError naming it as `label`."""
    kinds = family_kinds(option.family)
    if kind not in kinds:  # also `python -m train all`, which is no kind
        raise ValueError(f"{label} is for the {FAMILIES[option.family]} ({', '.join(kinds)}) only, not {kind!r}")
    return option.check(label, value)


def check_options(kind: str, options: dict[str, Any] | None) -> TrainingOptions:
    """The GAN and VAE fields, model overrides and fork source of a launch, each checked against its range and
    against the kind (a GAN field for a kind without a discriminator, or beta for one without an encoder, is
    refused); ValueError naming the first bad one."""
    given = {k: v for k, v in (options or {}).items() if v is not None and v != "" and v is not False}
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(TrainingOptions)})
    if unknown:
        raise ValueError(f"unknown training option {unknown[0]!r}")
    checked = {
        option.name: check_option(kind, option, given[option.name], option.title)
        for option in OPTIONS
        if option.name in given
    }
    return TrainingOptions(
        **checked, model=_model_overrides(given.get("model")), init_from=_init_source(given.get("init_from"))
    )


def recipe_options(kind: str, dataset: str) -> dict[str, Any]:
    """The recipe's value of each launcher option that applies to the kind (the fields' defaults; a learning rate
    as the text its field shows, empty for none)."""
    recipe = KINDS[kind].recipe(dataset)
    values = {option.name: getattr(recipe, option.field) for option in OPTIONS if getattr(KINDS[kind], option.family)}
    if "lr_d" in values:
        values["lr_d"] = "" if values["lr_d"] is None else repr(values["lr_d"])
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

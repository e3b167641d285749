"""Training recipes: the hyper-parameters of each shipped checkpoint, per model kind and dataset."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

KINDS = ("classifier", "gan", "mapper", "cgan", "vae")


@dataclass
class Recipe:
    """How one model is trained; recorded in its run's config.json and its checkpoint."""

    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"  # or "cosine": decays to 5% of lr over the run
    weight_decay: float = 0.0
    label_smoothing: float = 0.0  # one-sided, on D's real targets
    augment: str = "none"  # classifier / mapper input jitter: "shift" or "shift_flip"
    steps_per_epoch: int = 0  # mapper only: it trains on sampled labels, not on the dataset
    prior_weight: float = 0.0  # mapper only: pull of its latents towards the generator's prior
    pixel_judge_epochs: int = 0  # mapper only: train a pixel-MLP second judge for this many epochs (0 = CNN only)
    match_weight: float = 0.0  # mapper only: weight of matching, per class, the images the generator itself draws of it
    match_draws: int = 100_000  # mapper only: prior draws sorted by the judges into those per-class latents
    ema_decay: float = 0.0  # GANs: sample from an exponential moving average of G's weights (0 = off)
    precision: str = "auto"  # matmuls in "fp32" or "bf16" (weights, optimiser and losses stay fp32); see resolve_precision
    compile: str = "off"  # torch.compile the step's forward and loss: "auto" (long CPU runs), "on" or "off"; see resolve_compile
    model: dict = dataclasses.field(default_factory=dict)  # overrides of the model config's defaults


MAPPER_MATCH_WEIGHT = 0.5
_GAN = dict(lr=2e-4, betas=(0.5, 0.999), label_smoothing=0.1)

DEFAULTS: dict[str, dict[str, Recipe]] = {
    "classifier": {
        "mnist": Recipe(epochs=20, batch_size=128, lr=2e-3, schedule="cosine", weight_decay=1e-4, augment="shift"),
        "fashion": Recipe(epochs=40, batch_size=128, lr=2e-3, schedule="cosine", weight_decay=1e-4, augment="shift_flip_blur",
                          model={"channels": [64, 128]}),
    },
    "gan": {
        # batch 256 keeps the CPU's matmul units busy (~25% more images/s than 128); 2x lr, averaged weights, cosine decay
        "mnist": Recipe(epochs=60, batch_size=256, lr=4e-4, betas=(0.5, 0.999), label_smoothing=0.1, schedule="cosine", ema_decay=0.999),
        "fashion": Recipe(epochs=100, batch_size=128, **_GAN),
    },
    "mapper": {
        # the match keeps each class as varied as the generator's own draws of it; the judges alone collapse it
        "mnist": Recipe(epochs=8, batch_size=256, lr=1e-3, steps_per_epoch=250, match_weight=MAPPER_MATCH_WEIGHT, augment="shift",
                        schedule="cosine", pixel_judge_epochs=3),
        "fashion": Recipe(epochs=8, batch_size=256, lr=1e-3, steps_per_epoch=250, match_weight=MAPPER_MATCH_WEIGHT, augment="shift",
                          schedule="cosine"),
    },
    "cgan": {
        # batch 256 at 4x the reports' lr, averaged weights, cosine decay: 95% class accuracy in ~1,000 steps
        "mnist": Recipe(epochs=60, batch_size=256, lr=8e-4, betas=(0.5, 0.999), label_smoothing=0.1, schedule="cosine", ema_decay=0.999),
        "fashion": Recipe(epochs=60, batch_size=128, ema_decay=0.999, model={"aux_weight": 2.0}, **_GAN),
    },
    "vae": {
        # compiled: its small matmuls leave a step bound by per-op overhead, which fusing removes (~20% faster steps)
        "mnist": Recipe(epochs=100, batch_size=128, lr=1e-3, schedule="cosine", compile="auto", model={"class_weight": 30.0}),
        "fashion": Recipe(epochs=100, batch_size=128, lr=1e-3, schedule="cosine", compile="auto", model={"class_weight": 100.0}),
    },
}


PRECISIONS = ("auto", "fp32", "bf16")


def resolve_precision(choice: str, device) -> str:
    """'auto' -> 'bf16' on a CPU with native bf16 matmuls (AVX512-BF16 or AMX, ~2x fp32 there), else 'fp32'."""
    import torch

    if choice not in PRECISIONS:
        raise ValueError(f"unknown precision {choice!r}; choose one of {', '.join(PRECISIONS)}")
    on_cpu = torch.device(device).type == "cpu"
    native_bf16 = on_cpu and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if choice == "auto":
        return "bf16" if native_bf16 else "fp32"
    if choice == "bf16" and on_cpu and not native_bf16:
        raise ValueError("precision bf16: this CPU has no native bf16 matmuls; use fp32")
    return choice


COMPILE_CHOICES = ("auto", "on", "off")
COMPILE_KINDS = ("vae",)  # the GAN steps measured no faster compiled (slower with dropout), so they stay eager
COMPILE_MIN_STEPS = 2_000  # ~10 s of compiling pays back after a few hundred steps; short runs and tests skip it


def resolve_compile(choice: str, kind: str, device, total_steps: int) -> bool:
    """Whether a run compiles its step: 'auto' -> on the CPU for runs of at least COMPILE_MIN_STEPS steps."""
    import torch

    if choice not in COMPILE_CHOICES:
        raise ValueError(f"unknown compile choice {choice!r}; choose one of {', '.join(COMPILE_CHOICES)}")
    if choice != "off" and kind not in COMPILE_KINDS:
        if choice == "on":
            raise ValueError(f"compile on: only {', '.join(COMPILE_KINDS)} compiles its step; {kind} trains uncompiled")
        return False
    if choice == "auto":
        return torch.device(device).type == "cpu" and total_steps >= COMPILE_MIN_STEPS
    return choice == "on"


def default_recipe(kind: str, dataset: str, **overrides) -> Recipe:
    """The shipped recipe of (kind, dataset) with the given fields replaced (None values ignored)."""
    return dataclasses.replace(DEFAULTS[kind][dataset], **{k: v for k, v in overrides.items() if v is not None})

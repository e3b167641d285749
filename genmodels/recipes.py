"""Training recipes: the hyper-parameters each shipped checkpoint was trained with, per dataset.

Each kind's recipes are one constant here, named in its genmodels.kinds entry; torch-free, so the app's
launcher reads them before PyTorch loads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


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
    objective: str = "bce"  # GANs: one of OBJECTIVES
    d_steps: int = 1  # GANs: discriminator updates per generator update (each on fresh fakes)
    lr_d: float | None = None  # GANs: the discriminator's own learning rate (None: lr)
    spectral_norm: bool = False  # GANs: spectral normalisation on every layer of the discriminator
    r1_weight: float = 0.0  # GANs: weight (gamma) of the R1 penalty on D's gradient at real images (0 = off)
    mode_seeking: float = 0.0  # conditional GANs: weight of the mode-seeking term (pairs of fakes of one class)
    coverage: float = 0.0  # GANs: weight of the coverage term (each real image pulls G's nearest fake of its class)
    beta: float = 1.0  # VAEs: weight of the KL term (beta-VAE)
    kl_warmup_steps: int = 0  # VAEs: ramp the KL weight linearly from 0 to beta over this many steps
    precision: str = (
        "auto"  # matmuls in "fp32" or "bf16" (weights, optimiser and losses stay fp32); see resolve_precision
    )
    compile: str = (
        "off"  # torch.compile the step's forward and loss: "auto" (long CPU runs), "on" or "off"; see resolve_compile
    )
    model: dict = dataclasses.field(default_factory=dict)  # overrides of the model config's defaults


OBJECTIVES = {
    "bce": "the reports' loss: binary cross-entropy, non-saturating for G",
    "lsgan": "least squares: D regresses real to 1 and fake to 0, G pulls fakes to 1",
    "hinge": "hinge: D wants real logits above +1 and fake below -1; G raises fake logits",
    "wgan-gp": "Wasserstein critic with a gradient penalty (weight 10) instead of weight clipping",
}


def with_overrides(recipe: Recipe, **overrides) -> Recipe:
    """`recipe` with the given fields replaced (None values ignored)."""
    return dataclasses.replace(recipe, **{k: v for k, v in overrides.items() if v is not None})


MAPPER_MATCH_WEIGHT = 0.5
_GAN = dict(lr=2e-4, betas=(0.5, 0.999), label_smoothing=0.1)

CLASSIFIER = {
    "mnist": Recipe(epochs=20, batch_size=128, lr=2e-3, schedule="cosine", weight_decay=1e-4, augment="shift"),
    "fashion": Recipe(
        epochs=40,
        batch_size=128,
        lr=2e-3,
        schedule="cosine",
        weight_decay=1e-4,
        augment="shift_flip_blur",
        model={"channels": [64, 128]},
    ),
}
GAN = {
    # batch 256 keeps the CPU's matmul units busy (~25% more images/s than 128); 2x lr, averaged weights, cosine decay
    "mnist": Recipe(
        epochs=60, batch_size=256, lr=4e-4, betas=(0.5, 0.999), label_smoothing=0.1, schedule="cosine", ema_decay=0.999
    ),
    "fashion": Recipe(epochs=100, batch_size=128, **_GAN),
}
MAPPER = {
    # the match keeps each class as varied as the generator's own draws of it; the judges alone collapse it
    "mnist": Recipe(
        epochs=8,
        batch_size=256,
        lr=1e-3,
        steps_per_epoch=250,
        match_weight=MAPPER_MATCH_WEIGHT,
        augment="shift",
        schedule="cosine",
        pixel_judge_epochs=3,
    ),
    "fashion": Recipe(
        epochs=8,
        batch_size=256,
        lr=1e-3,
        steps_per_epoch=250,
        match_weight=MAPPER_MATCH_WEIGHT,
        augment="shift",
        schedule="cosine",
    ),
}
CGAN = {
    # batch 256 at 4x the reports' lr, averaged weights, cosine decay: 95% class accuracy in ~1,000 steps
    "mnist": Recipe(
        epochs=60, batch_size=256, lr=8e-4, betas=(0.5, 0.999), label_smoothing=0.1, schedule="cosine", ema_decay=0.999
    ),
    # a light class head, batch norm in G and InfoGAN's read-back of 32 latent dims: each class drawn with variety;
    # the coverage term and twice the epochs keep every class's garments recognisable (weakest class 67% -> 90%)
    "fashion": Recipe(
        epochs=120,
        batch_size=128,
        ema_decay=0.999,
        coverage=20.0,
        model={"aux_weight": 0.5, "g_batch_norm": True, "info_dims": 32},
        **_GAN,
    ),
}
VAE = {
    # compiled: its small matmuls leave a step bound by per-op overhead, which fusing removes (~20% faster steps)
    "mnist": Recipe(
        epochs=100, batch_size=128, lr=1e-3, schedule="cosine", compile="auto", model={"class_weight": 30.0}
    ),
    "fashion": Recipe(
        epochs=100, batch_size=128, lr=1e-3, schedule="cosine", compile="auto", model={"class_weight": 100.0}
    ),
}
# BCE with one-sided smoothing against a projection D with an auxiliary class head (weight 2), both at 4x the
# reports' lr, averaged weights, cosine decay. Measured on MNIST over 3 epochs: spectral norm in D (the zoo's first
# recipe, with hinge or BCE) held class accuracy at 64-83% while this reached 96%
_DCGAN = dict(
    epochs=30,
    batch_size=256,
    lr=4e-4,
    betas=(0.5, 0.999),
    label_smoothing=0.1,
    schedule="cosine",
    ema_decay=0.999,
    model={"g_channels": (128, 64), "d_channels": (64, 128), "aux_weight": 2.0},
)
# MNIST: 50 epochs (FID 13.9 after 30). Fashion: the mode-seeking term, G refines at 28x28, 44 epochs fill the
# 45-minute budget, and a class head of weight 0.5 pulls each class less towards its core; each of these measured
# better than without (docs/model_zoo.md)
DCGAN = {
    "mnist": Recipe(**{**_DCGAN, "epochs": 50}),
    "fashion": Recipe(
        **{**_DCGAN, "epochs": 44, "model": {**_DCGAN["model"], "refine_channels": 32, "aux_weight": 0.5}},
        mode_seeking=1.0,
    ),
}
# a wider network whose decoder refines at full resolution: test neg-ELBO 113.4 after one epoch against 118.7 for
# the first conv VAE (channels 32, 64; hidden 256)
_CONV_VAE = dict(channels=(64, 128), hidden=512, refine_channels=32)
CONV_VAE = {
    "mnist": Recipe(epochs=52, batch_size=256, lr=2e-3, schedule="cosine", model={**_CONV_VAE, "class_weight": 30.0}),
    "fashion": Recipe(
        epochs=48, batch_size=256, lr=2e-3, schedule="cosine", model={**_CONV_VAE, "class_weight": 100.0}
    ),
}
# two epochs of real images against as many fresh draws of the frozen generator: its logit then estimates the density
# ratio that rejection sampling needs (docs/model_zoo.md)
_CRITIC = Recipe(epochs=2, batch_size=256, lr=2e-4, betas=(0.5, 0.999))
CRITIC = {"mnist": _CRITIC, "fashion": _CRITIC}

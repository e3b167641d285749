"""The model kinds, each declared once: every list of kinds in the project derives from this registry.

Adding a kind is its model module (genmodels/models/), its training task (train/tasks/), its recipe
(genmodels/recipes.py) and one `Kind(...)` line in `KINDS` below. Nothing here imports PyTorch: classes
are named as "module:Class" and imported on first use, so the app's frame lists kinds before torch loads.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genmodels import recipes
from genmodels.recipes import Recipe


@dataclass(frozen=True)
class Chart:
    """One chart of a training log: a title, the metric keys it plots, the y-axis label, and whether the
    values are shares (drawn on a fixed 0-1 axis, so a tiny wobble does not look like a big swing)."""

    title: str
    keys: tuple[str, ...]
    y_label: str
    share: bool = False


_GAN_OUTPUTS = Chart(
    "Discriminator outputs: D(x) on real, D(G(z)) on fake", ("d_real", "d_fake"), "mean probability", share=True
)
_SAMPLE_ACCURACY = Chart(
    "Class accuracy of the samples (per epoch)",
    ("class_accuracy", "classifier_confidence"),
    "fraction",
    share=True,
)

# every loss and penalty a GAN step can log, in the order logs print them; a log charts the ones it holds
GAN_LOSS_KEYS = (
    "loss_d",
    "loss_g",
    "loss_d_class",
    "loss_g_class",
    "loss_d_twin",
    "loss_g_twin",
    "loss_d_info",
    "loss_g_info",
    "loss_mode_seeking",
    "loss_coverage",
    "gradient_penalty",
    "r1_penalty",
)
_GAN_LOSSES = Chart("Losses: discriminator vs generator", GAN_LOSS_KEYS, "loss")
_CONDITIONAL_GAN_CHARTS = (
    _GAN_LOSSES,
    _GAN_OUTPUTS,
    _SAMPLE_ACCURACY,
)
_VAE_CHARTS = (
    Chart("Loss = reconstruction + KL (nats per image)", ("loss", "recon", "kl"), "nats"),
    Chart("Test negative ELBO (per epoch)", ("test_neg_elbo", "test_recon", "test_kl"), "nats"),
    _SAMPLE_ACCURACY,
)
_SAMPLING_CRITIC_CHARTS = (
    Chart("Loss (binary cross-entropy, real vs drawn)", ("loss",), "loss"),
    Chart(
        "Critic's verdicts and the share of draws rejection sampling keeps (per epoch)",
        ("p_real", "p_drawn", "test_accuracy", "acceptance_rate"),
        "fraction",
        share=True,
    ),
)


@dataclass(frozen=True)
class Kind:
    """What a model kind is: its networks, its training, how people see it and how the pages use it."""

    name: str
    title: str  # for people, e.g. "Conditional GAN"
    network_title: str  # heading of its shipped network in the architecture view
    config: str  # "module:Class" of its config dataclass (travels with the weights)
    module: str  # "module:Class" of the network its checkpoint rebuilds
    task: str  # "module:Class" of its training task; resolved by `train` only (genmodels never imports train)
    recipes: Mapping[str, Recipe]  # the shipped recipe per dataset
    charts: tuple[Chart, ...]  # what its training log shows
    critic: str | None = None  # "module:Class" of the discriminator it trains against (GANs)
    generates: bool = False  # served as a generator on the pages, the API and `evaluate`
    conditional: bool = False  # its generator takes class labels itself
    labelled_by: str | None = None  # the kind that maps labels to its latents (the gan's mapper)
    screened_by: str | None = None  # the kind whose critic screens its draws (rejection sampling)
    needs: tuple[str, ...] = ()  # kinds whose checkpoints its training reads, so they train first
    loss_key: str | None = None  # the generator's loss in its log, compared across generators
    compiles: bool = False  # its step is torch.compile'd (measured faster; the GAN steps were not)
    compare_title: str | None = None  # its title where generators are compared, when it differs
    encodes: bool = False  # it has an encoder (a VAE): its latent space can be mapped and images encoded

    @property
    def adversarial(self) -> bool:
        """Trained against a discriminator: the GAN objectives and their flags apply."""
        return self.critic is not None

    judges: bool = False  # its network scores generated samples (the epoch-end judge of the kinds that need it)

    @property
    def display_title(self) -> str:
        return self.compare_title or self.title

    @property
    def config_cls(self) -> type:
        return resolve(self.config)

    @property
    def module_cls(self) -> type:
        return resolve(self.module)

    @property
    def critic_cls(self) -> type | None:
        return resolve(self.critic) if self.critic else None

    def recipe(self, dataset: str) -> Recipe:
        return self.recipes[dataset]


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "cgan", "Conditional GAN", "Generator",
            config="genmodels.models.cgan:CGANConfig",
            module="genmodels.models.cgan:CondGenerator",
            critic="genmodels.models.cgan:CondDiscriminator",
            task="train.tasks.adversarial:AdversarialTask",
            recipes=recipes.CGAN,
            charts=_CONDITIONAL_GAN_CHARTS,
            generates=True, conditional=True, needs=("classifier",), loss_key="loss_g",
        ),
        Kind(
            "gan", "GAN", "Generator",
            config="genmodels.models.gan:GANConfig",
            module="genmodels.models.gan:Generator",
            critic="genmodels.models.gan:Discriminator",
            task="train.tasks.adversarial:AdversarialTask",
            recipes=recipes.GAN,
            charts=(
                _GAN_LOSSES,
                _GAN_OUTPUTS,
                Chart(
                    "Sample quality judged by the classifier (per epoch)",
                    ("classifier_confidence",),
                    "mean top-class probability",
                    share=True,
                ),
            ),
            generates=True, labelled_by="mapper", needs=("classifier",), loss_key="loss_g",
            compare_title="GAN + label mapper",
        ),
        Kind(
            "vae", "VAE", "VAE (encoder + decoder)",
            config="genmodels.models.vae:VAEConfig",
            module="genmodels.models.vae:VAE",
            task="train.tasks.vae:VAETask",
            recipes=recipes.VAE,
            charts=_VAE_CHARTS,
            generates=True, conditional=True, needs=("classifier",), loss_key="loss", compiles=True, encodes=True,
        ),
        Kind(
            "dcgan", "Conditional DCGAN", "Generator (convolutional)",
            config="genmodels.models.dcgan:DCGANConfig",
            module="genmodels.models.dcgan:DCGenerator",
            critic="genmodels.models.dcgan:DCDiscriminator",
            task="train.tasks.adversarial:AdversarialTask",
            recipes=recipes.DCGAN,
            charts=_CONDITIONAL_GAN_CHARTS,
            generates=True, conditional=True, needs=("classifier",), loss_key="loss_g", screened_by="dcgan_critic",
        ),
        Kind(
            "conv_vae", "Convolutional VAE", "Convolutional VAE (encoder + decoder)",
            config="genmodels.models.conv_vae:ConvVAEConfig",
            module="genmodels.models.conv_vae:ConvVAE",
            task="train.tasks.vae:VAETask",
            recipes=recipes.CONV_VAE,
            charts=_VAE_CHARTS,
            generates=True, conditional=True, needs=("classifier",), loss_key="loss", encodes=True,
            screened_by="conv_vae_critic",
        ),
        *(
            Kind(
                f"{screened}_critic", f"Sampling critic of the {title}", "Critic (rejection sampling)",
                config="genmodels.models.critic:SampleCriticConfig",
                module="genmodels.models.critic:SampleCritic",
                task="train.tasks.critic:CriticTask",
                recipes=recipes.CRITIC,
                charts=_SAMPLING_CRITIC_CHARTS,
                needs=(screened,),
            )
            for screened, title in (("dcgan", "conv GAN"), ("conv_vae", "conv VAE"))
        ),
        Kind(
            "mapper", "Label mapper for the GAN", "Label-to-latent mapper",
            config="genmodels.models.mapper:MapperConfig",
            module="genmodels.models.mapper:Mapper",
            task="train.tasks.mapper:MapperTask",
            recipes=recipes.MAPPER,
            charts=(
                Chart(
                    "Losses: judges' cross-entropy + match to the generator's own images of each class",
                    ("loss", "loss_class", "loss_match", "loss_prior"),
                    "loss",
                ),
                Chart(
                    "Class accuracy of the mapped samples",
                    ("accuracy", "class_accuracy", "classifier_confidence"),
                    "fraction",
                    share=True,
                ),
                Chart(
                    "Variety within a class, against the generator's own draws of it (1 = as varied; per epoch)",
                    ("spread_vs_generator",),
                    "spread ratio",
                ),
            ),
            needs=("classifier", "gan"),
        ),
        Kind(
            "classifier", "Classifier (CNN)", "Classifier",
            config="genmodels.models.classifier:ClassifierConfig",
            module="genmodels.models.classifier:Classifier",
            task="train.tasks.classifier:ClassifierTask",
            recipes=recipes.CLASSIFIER,
            charts=(
                Chart("Loss (cross-entropy)", ("loss", "test_loss"), "loss"),
                Chart("Accuracy", ("accuracy", "test_accuracy"), "accuracy", share=True),
            ),
            judges=True,
        ),
    )
}  # fmt: skip


def resolve(reference: str) -> Any:
    """The object a "module:Name" reference names, imported on first use."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def kind(name: Any) -> Kind:
    """The registered kind of that name; ValueError naming the choices otherwise."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model kind {name!r}; choose one of: {', '.join(KINDS)}") from None


def generator_kinds() -> tuple[str, ...]:
    """The kinds served as generators, in page order."""
    return tuple(name for name, k in KINDS.items() if k.generates)


def judge_kind() -> str:
    """The kind whose network judges generated samples."""
    return next(name for name, k in KINDS.items() if k.judges)


def labelling_kinds() -> dict[str, str]:
    """{labeller kind: the generator kind it labels}, e.g. the mapper of the gan."""
    return {k.labelled_by: name for name, k in KINDS.items() if k.labelled_by}


def screening_kinds() -> dict[str, str]:
    """{critic kind: the generator kind whose draws it screens}, e.g. the dcgan's sampling critic."""
    return {k.screened_by: name for name, k in KINDS.items() if k.screened_by}


def draws_samples(name: str) -> bool:
    """Whether a kind's training draws fixed-noise sample grids: the generators and their label mappers."""
    return name in KINDS and (KINDS[name].generates or name in labelling_kinds())


def training_order() -> tuple[str, ...]:
    """Every kind, each after the kinds its training needs (registry order otherwise)."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for needed in KINDS[name].needs:
                visit(needed)
            ordered.append(name)

    for name in KINDS:
        visit(name)
    return tuple(ordered)


def build_model(name: str, config: Any = None):
    """A freshly initialised module of kind `name`, from a config object or dict (defaults if None)."""
    from genmodels.models.config import config_from_dict

    spec = kind(name)
    if config is None:
        config = spec.config_cls()
    elif isinstance(config, dict):
        config = config_from_dict(spec.config_cls, config)
    return spec.module_cls(config)

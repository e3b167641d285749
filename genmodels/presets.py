"""Break-it presets: one-click short MNIST runs that reproduce a well-known training failure, and its fix.

Each failing preset names the alert of `genmodels.health` its run should raise; its fixed counterpart changes the
one setting that caused it and should raise none. Every run is bounded (`max_steps`) to finish in under three
minutes on a 2-core CPU; docs/failure_modes.md has the measured times and alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genmodels.launch import TrainingOptions, TrainingRequest

DATASET = "mnist"


@dataclass(frozen=True)
class Preset:
    """A short run with a prediction: which setting breaks (or fixes) it and which alert should fire."""

    key: str
    title: str
    kind: str
    prediction: str  # one sentence, shown before the run starts
    alert: str | None  # the health rule's name its run should raise; None: a fixed counterpart, no alert
    max_steps: int
    batch_size: int
    lr: float | None = None  # None: the recipe's
    options: TrainingOptions = field(default_factory=TrainingOptions)
    fixes: str | None = None  # the key of the failing preset this one fixes
    epochs: int = 1
    seed: int = 0

    def request(self) -> TrainingRequest:
        """The launch of this preset, through the same path as the launcher's form."""
        return TrainingRequest(
            kind=self.kind,
            dataset=DATASET,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            max_steps=self.max_steps,
            options=self.options,
        )


# the VAE presets drop the class head: its loss makes z carry the digit's class, which keeps KL up whatever beta is
NO_CLASS_HEAD = {"class_weight": 0.0}

PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in (
        Preset(
            "no-smoothing-high-lr",
            "No label smoothing at a high learning rate",
            "gan",
            "At 50x the recipe's learning rate and with hard 0/1 targets, D becomes certain within a few dozen steps: "
            "D(G(z)) drops under 0.01, stays there, and G's gradients vanish.",
            alert="discriminator wins",
            max_steps=360,
            batch_size=32,
            lr=2e-2,
            options=TrainingOptions(label_smoothing=0.0),
        ),
        Preset(
            "no-smoothing-high-lr-fixed",
            "Fixed: the recipe's learning rate and label smoothing",
            "gan",
            "At the recipe's learning rate (4e-4) with one-sided label smoothing 0.1, D(G(z)) stays around 0.3 and "
            "no alert fires.",
            alert=None,
            max_steps=360,
            batch_size=32,
            fixes="no-smoothing-high-lr",
        ),
        Preset(
            "lr-0.1",
            "A learning rate 250x too high (0.1)",
            "gan",
            "At 0.1, 250 times the recipe's Adam learning rate, the first steps throw both networks so far off that "
            "D's loss passes 10,000 within 20 steps.",
            alert="diverged",
            max_steps=100,
            batch_size=32,
            lr=0.1,
        ),
        Preset(
            "lr-0.1-fixed",
            "Fixed: the recipe's learning rate",
            "gan",
            "With only the learning rate back at the recipe's 4e-4, both losses stay around 1 and no alert fires.",
            alert=None,
            max_steps=100,
            batch_size=32,
            fixes="lr-0.1",
        ),
        Preset(
            "beta-50",
            "A beta = 50 VAE",
            "vae",
            "The KL term weighs 50 times the reconstruction's share, so the encoder gives up on z (KL near 0 nats) "
            "and every sample is the same blurry average digit.",
            alert="posterior collapse",
            max_steps=300,
            batch_size=128,
            options=TrainingOptions(beta=50.0, model=NO_CLASS_HEAD),
        ),
        Preset(
            "beta-50-fixed",
            "Fixed: the same VAE at beta = 1",
            "vae",
            "At the ELBO's own weight of 1 the encoder keeps about a dozen nats in z, and the samples differ.",
            alert=None,
            max_steps=300,
            batch_size=128,
            options=TrainingOptions(model=NO_CLASS_HEAD),
            fixes="beta-50",
        ),
    )
}

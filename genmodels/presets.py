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


PRESETS: dict[str, Preset] = {
    preset.key: preset
    for preset in (
        Preset(
            "d-too-fast",
            "D learns 100x faster than G",
            "gan",
            "D separates G's noise from real digits long before G can catch up: D(G(z)) sinks towards 0 and stays "
            "there, so G's gradients vanish.",
            alert="discriminator wins",
            max_steps=800,
            batch_size=32,
            lr=2e-5,
            options=TrainingOptions(lr_d=2e-3, label_smoothing=0.0),
        ),
        Preset(
            "d-too-fast-fixed",
            "Fixed: D and G at the same rate",
            "gan",
            "With D no faster than G (and label smoothing back), D(G(z)) hovers around 0.3-0.5: no alert.",
            alert=None,
            max_steps=800,
            batch_size=32,
            lr=2e-4,
            options=TrainingOptions(label_smoothing=0.1),
            fixes="d-too-fast",
        ),
    )
}

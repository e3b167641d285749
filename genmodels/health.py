"""Training health: rules that read a run's log and name what is going wrong, with a suggested fix.

Each rule looks at the metrics records a run writes (step and epoch records of `metrics.jsonl`) and fires
at most once, at the first record where its condition has held long enough. The same rules serve the
trainer (which prints and logs alerts as they fire), the sidebar and the Training page (markers on curves).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

Record = dict[str, Any]

D_WINNING_PROBABILITY = 0.05  # D(G(z)) below this: D rejects nearly every fake, G's gradients vanish
# ... for this many steps in a row before it counts: a D that has won holds D(G(z)) under 0.01 (the break-it preset,
# docs/failure_modes.md), healthy logs never go under 0.15 (the shipped ones); 300 steps fit a 3-minute preset
D_WINNING_STEPS = 300
COLLAPSE_SHARE = 0.5  # one class holds at least this share of the fixed-noise samples
COLLAPSE_EPOCHS = 2  # ... at this many epoch checks in a row
# mean absolute pixel change of the fixed-noise samples between epochs: the last epochs of a long cosine schedule
# still move them by ~1e-3 (the MNIST dcgan's epochs 48-49 of 50: 0.0009), a generator with a learning rate of ~0
# by less than 1e-6
FROZEN_CHANGE = 1e-4
FROZEN_EPOCHS = 2
BLANK_SPREAD = 0.02  # pixel standard deviation of the samples: a flat image
EXPLODING_LOSS = 1e4
POSTERIOR_COLLAPSE_KL = 0.5  # nats per image: the encoder tells the decoder next to nothing


@dataclass(frozen=True)
class Alert:
    """A named failure at the step where it fired, with what it means and what to try."""

    name: str
    step: int
    epoch: float
    message: str
    fix: str

    def to_record(self) -> Record:
        """The alert as a metrics-log record (type 'alert')."""
        return {"type": "alert", **asdict(self)}


def _number(record: Record, key: str) -> float | None:
    value = record.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _where(record: Record) -> tuple[int, float]:
    return int(record.get("step") or 0), float(record.get("epoch") or 0.0)


def _alert(record: Record, name: str, message: str, fix: str) -> Alert:
    step, epoch = _where(record)
    return Alert(name, step, epoch, message, fix)


def diverged(records: list[Record]) -> Alert | None:
    """A loss that is NaN, infinite or exploding."""
    for record in records:
        for key, value in record.items():
            if not key.startswith("loss") or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value) or abs(value) > EXPLODING_LOSS:
                return _alert(
                    record,
                    "diverged",
                    f"{key} is {value:g} at step {_where(record)[0]}",
                    "lower the learning rate, or clip gradients; a GAN may need the hinge or wgan-gp objective",
                )
    return None


def discriminator_wins(records: list[Record]) -> Alert | None:
    """D(G(z)) stays near 0: D rejects every fake, so G's gradients vanish and it stops learning."""
    start: Record | None = None
    for record in records:
        d_fake = _number(record, "d_fake") if record.get("type") == "step" else None
        if d_fake is None:
            continue
        if d_fake >= D_WINNING_PROBABILITY:
            start = None
            continue
        start = start or record
        if _where(record)[0] - _where(start)[0] >= D_WINNING_STEPS:
            return _alert(
                record,
                "discriminator wins",
                f"D(G(z)) < {D_WINNING_PROBABILITY} for {D_WINNING_STEPS} steps since step {_where(start)[0]}: "
                "G's gradients vanish",
                "lower D's learning rate, use one-sided label smoothing, or the hinge objective",
            )
    return None


def _run_of_epochs(records: list[Record], holds: Callable[[Record], bool | None], length: int) -> list[Record]:
    """The first `length` consecutive epoch records where `holds` is true (None: the record does not tell)."""
    run: list[Record] = []
    for record in records:
        if record.get("type") not in ("epoch", "final"):
            continue
        verdict = holds(record)
        if verdict is None:
            continue
        run = [*run, record] if verdict else []
        if len(run) >= length:
            return run
    return []


def mode_collapse(records: list[Record]) -> Alert | None:
    """One class dominates the fixed-noise samples epoch after epoch."""

    def dominated(record: Record) -> bool | None:
        share = _number(record, "dominant_class_share")
        return None if share is None else share >= COLLAPSE_SHARE

    run = _run_of_epochs(records, dominated, COLLAPSE_EPOCHS)
    if not run:
        return None
    first, last = run[0], run[-1]
    return _alert(
        last,
        "mode collapse",
        f"{_number(last, 'dominant_class_share'):.0%} of the samples are class {last.get('dominant_class')} "
        f"since epoch {_where(first)[1]:g}",
        "label smoothing, a lower D learning rate or the hinge objective",
    )


def output_frozen(records: list[Record]) -> Alert | None:
    """The fixed-noise samples stopped changing: G no longer learns (or its output saturated)."""

    def frozen(record: Record) -> bool | None:
        change = _number(record, "sample_change")
        return None if change is None else change < FROZEN_CHANGE

    run = _run_of_epochs(records, frozen, FROZEN_EPOCHS)
    if not run:
        return None
    return _alert(
        run[-1],
        "output frozen",
        f"the samples have not changed for {FROZEN_EPOCHS} epochs (since epoch {_where(run[0])[1]:g})",
        "G's gradients may vanish: lower D's learning rate, or raise G's",
    )


def blank_output(records: list[Record]) -> Alert | None:
    """The samples are flat images: all black, all white or one grey."""
    for record in records:
        spread = _number(record, "pixel_std")
        if record.get("type") in ("epoch", "final") and spread is not None and spread < BLANK_SPREAD:
            mean = _number(record, "pixel_mean") or 0.0
            shade = "black" if mean < 0.1 else "white" if mean > 0.9 else "one grey"
            return _alert(
                record,
                "blank output",
                f"the samples are all {shade} (pixel spread {spread:.3f})",
                "the generator collapsed to a constant: restart with a lower learning rate",
            )
    return None


def posterior_collapse(records: list[Record]) -> Alert | None:
    """A VAE whose KL term fell to ~0: the decoder ignores the latent code."""
    for record in records:
        # a run stopped by --max-steps ends on a record of test measures only
        kl = _number(record, "kl") if "kl" in record else _number(record, "test_kl")
        if record.get("type") in ("epoch", "final") and kl is not None and kl < POSTERIOR_COLLAPSE_KL:
            return _alert(
                record,
                "posterior collapse",
                f"KL is {kl:.2f} nats per image: the decoder ignores the latent code",
                "lower beta (the KL weight) or warm it up over the first epochs",
            )
    return None


RULES: tuple[Callable[[list[Record]], Alert | None], ...] = (
    diverged,
    discriminator_wins,
    mode_collapse,
    output_frozen,
    blank_output,
    posterior_collapse,
)


def alerts(records: Iterable[Record]) -> list[Alert]:
    """Every rule's alert on this log, in the order they fired."""
    records = [r for r in records if isinstance(r, dict) and r.get("type") != "alert"]
    fired = [alert for rule in RULES if (alert := rule(records)) is not None]
    return sorted(fired, key=lambda a: a.step)

"""Training logs for display: the shipped runs' logs and the user's runs, their metric series, smoothing, grids and
CSV."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from genmodels.cards import ExperimentCard, make_card
from genmodels.datasets import dataset_info
from genmodels.kinds import KINDS, Chart
from genmodels.launch import OPTIONS
from genmodels.paths import checkpoint_file
from genmodels.recipes import Recipe
from genmodels.runs import GRID_PATTERN, RunFolder, RunInfo, ShippedLogs, list_runs, read_json, studies_dir

SUMMARY_RECORD_TYPES = ("epoch", "final")  # once per epoch (or at a --max-steps stop)
# the recipe fields every run shows, before the launcher's options for its kind (launch.OPTIONS)
BASIC_SETTINGS = {
    "epochs": "Epochs",
    "batch_size": "Batch size",
    "lr": "Learning rate",
    "schedule": "Schedule",
    "seed": "Seed",
    "ema_decay": "EMA of G's weights",
}


@dataclass
class TrainingLog:
    """A training log to show: shipped (the run behind a shipped checkpoint) or one of the user's runs."""

    label: str
    kind: str
    dataset: str
    metrics_file: Path
    config: dict[str, Any]
    grids_dir: Path
    model_file: Path | None
    run: RunInfo | None = None  # None for the shipped logs and opened cards
    card: str | None = None  # the run name inside an opened experiment card
    study: str | None = None  # the variant folder of a shipped study (checkpoints/<dataset>/studies/<study>/)

    @property
    def key(self) -> str:
        """A stable identifier: 'shipped/<dataset>/<kind>', 'study/<dataset>/<variant>/<kind>', 'run/<name>' or
        'card/<name>'."""
        if self.card is not None:
            return f"card/{self.card}"
        if self.study is not None:
            return f"study/{self.dataset}/{self.study}/{self.kind}"
        return f"shipped/{self.dataset}/{self.kind}" if self.run is None else f"run/{self.run.name}"

    @property
    def shipped(self) -> bool:
        """The log behind a shipped checkpoint (a study's runs ship their logs only)."""
        return self.run is None and self.card is None and self.study is None

    @property
    def active(self) -> bool:
        return self.run is not None and self.run.active


@dataclass
class Series:
    """One metric over training: x in epochs (fractional for step records), y values."""

    key: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    per_epoch: bool = False  # True when only the per-epoch records carry this metric


def shipped_logs(dataset: str, root: str | None = None) -> list[TrainingLog]:
    """The training logs of the shipped checkpoints of `dataset` that are present."""
    from genmodels.checkpoint import checkpoint_path  # deferred: the sidebar imports this module before PyTorch loads

    info = dataset_info(dataset)
    logs = ShippedLogs.of(dataset, root)
    found = []
    for kind in KINDS:
        metrics_file = logs.metrics_file(kind)
        if metrics_file.is_file():
            found.append(
                TrainingLog(
                    label=f"Shipped {KINDS[kind].title} ({info.title})",
                    kind=kind,
                    dataset=dataset,
                    metrics_file=metrics_file,
                    config=read_json(logs.config_file(kind)) or {},
                    grids_dir=logs.grids_dir(kind),
                    model_file=checkpoint_path(kind, dataset, root),
                )
            )
    return found


def study_logs(dataset: str, root: str | None = None) -> list[TrainingLog]:
    """The logs of the shipped studies of `dataset` (one per variant folder and kind), by folder name."""
    info = dataset_info(dataset)
    folder = studies_dir(dataset, root)
    variants = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    found = []
    for variant in variants:
        logs = ShippedLogs(variant)
        for kind in KINDS:
            if logs.metrics_file(kind).is_file():
                found.append(
                    TrainingLog(
                        label=f"Study {variant.name}: {KINDS[kind].title} ({info.title})",
                        kind=kind,
                        dataset=dataset,
                        metrics_file=logs.metrics_file(kind),
                        config=read_json(logs.config_file(kind)) or {},
                        grids_dir=logs.grids_dir(kind),
                        model_file=None,
                        study=variant.name,
                    )
                )
    return found


def run_log(run: RunInfo) -> TrainingLog:
    """The training log of one of the user's runs."""
    return TrainingLog(
        label=f"Your run {run.name}",  # no state: a label drawn once would go stale while the run moves on
        kind=run.kind or "unknown",
        dataset=run.dataset or "unknown",
        metrics_file=run.folder.metrics_file,
        config=run.config,
        grids_dir=run.folder.grids_dir,
        model_file=run.folder.model_file(run.kind) if run.kind else None,
        run=run,
    )


def card_log(card: ExperimentCard, folder: RunFolder) -> TrainingLog:
    """The training log inside an experiment card, unpacked into `folder` (see genmodels.cards.unpack)."""
    return TrainingLog(
        label=f"Card {card.name}",
        kind=card.kind,
        dataset=card.dataset,
        metrics_file=folder.metrics_file,
        config=card.config,
        grids_dir=folder.grids_dir,
        model_file=None,
        card=card.name,
    )


def log_card(log: TrainingLog, records: list[dict[str, Any]]) -> ExperimentCard:
    """An experiment card of a log with its metrics `records` (already read): config, environment, newest grid."""
    grids = {epoch: path.read_bytes() for epoch, path in list(grid_images(log.grids_dir).items())[-1:]}
    name = log.run.name if log.run is not None else log.card or f"shipped-{log.dataset}-{log.kind}"
    return make_card(name, log.kind, log.dataset, log.config, records, grids)


def parent_key(log: TrainingLog) -> str | None:
    """The key of the log a forked run started from (its config's `forked_from`): the parent run's, or the shipped
    log of the checkpoint it forked; None for a run that is no fork."""
    parent = log.config.get("forked_from")
    if not isinstance(parent, dict) or not isinstance(parent.get("path"), str):
        return None
    path = Path(parent["path"])
    if parent.get("whole_state"):
        return f"run/{path.name}"
    if path == checkpoint_file(log.kind, log.dataset):
        return f"shipped/{log.dataset}/{log.kind}"
    return f"run/{path.parent.name}"  # a run's own model file


def user_logs(dataset: str | None = None, root: str | None = None) -> list[TrainingLog]:
    """The user's runs (newest first), optionally only those on `dataset`."""
    return [run_log(r) for r in list_runs(root) if dataset is None or r.dataset == dataset]


def metric_series(records: list[dict[str, Any]], key: str) -> Series:
    """The values of `key`: from the step records when they carry it (finer), else from the per-epoch records."""
    for types, per_epoch in ((("step",), False), (SUMMARY_RECORD_TYPES, True)):
        series = Series(key, per_epoch=per_epoch)
        for record in records:
            x, y = record.get("epoch"), record.get(key)
            if record.get("type") in types and _finite(x) and _finite(y):
                series.x.append(float(x))
                series.y.append(float(y))
        if series.x:
            return series
    return Series(key)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing); weight in [0, 1).

    pandas' adjusted EWM with alpha = 1 - weight is that average: early points are not pulled towards 0.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    return pd.Series(values, dtype="float64").ewm(alpha=1.0 - weight, adjust=True).mean().tolist()


def charts_for(kind: str, records: list[dict[str, Any]]) -> list[tuple[Chart, list[Series]]]:
    """The charts of a kind with the series the log actually holds; charts with no data are left out."""
    charts = []
    for chart in KINDS[kind].charts if kind in KINDS else ():
        series = [s for s in (metric_series(records, key) for key in chart.keys) if s.x]
        if series:
            charts.append((chart, series))
    return charts


def grid_images(grids_dir: str | Path) -> dict[int, Path]:
    """The fixed-noise sample grids of a run by epoch number, in epoch order."""
    try:
        files = [(int(m.group(1)), p) for p in Path(grids_dir).iterdir() if (m := GRID_PATTERN.match(p.name))]
    except OSError:
        return {}
    return dict(sorted(files))


def metrics_csv(records: list[dict[str, Any]]) -> str:
    """The records as CSV: one row per record, one column per key seen (type, step, epoch first)."""
    leading = ["type", "step", "epoch"]
    columns = leading + sorted({k for r in records for k in r} - set(leading))
    return pd.DataFrame.from_records(records, columns=columns).to_csv(index=False, lineterminator="\n")


def _shown(value: Any) -> str:
    """A recipe value as the settings table shows it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def run_settings(log: TrainingLog) -> dict[str, str]:
    """What a log's run was trained with, from its recorded recipe: the basics, then each launcher option that
    applies to its kind (objective, D steps, penalties... for a GAN; beta and KL warm-up for a VAE), title -> value.
    An option a log predates is shown at the Recipe default, which is how such runs trained; a basic field it lacks
    is left out; EMA only where the run used one."""
    recipe = log.config.get("recipe") if isinstance(log.config.get("recipe"), dict) else {}
    spec = KINDS.get(log.kind)
    shown = {title: _shown(recipe[name]) for name, title in BASIC_SETTINGS.items() if name in recipe}
    if not recipe.get("ema_decay"):
        shown.pop(BASIC_SETTINGS["ema_decay"], None)
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe)}
    for option in OPTIONS if spec is not None else ():
        if getattr(spec, option.family):
            value = recipe.get(option.field, defaults[option.field])
            shown[option.title] = option.placeholder if value is None else _shown(value)  # None: lr_d, "same as G's"
    return shown

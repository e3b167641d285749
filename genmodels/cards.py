"""Experiment cards: a training log as one JSON file (config, seed, environment, metrics, alerts, last grid).

A card is what a student hands in or a teacher shares: it opens again on the Training page, checked field
by field, so a foreign or damaged file gets one clear message instead of a half-drawn page.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genmodels import health
from genmodels.datasets import DATASETS
from genmodels.kinds import KINDS
from genmodels.paths import atomic_write_bytes
from genmodels.runs import RunFolder

CARD_FORMAT = "genmodels-experiment-card"
CARD_VERSION = 1
MAX_CARD_BYTES = 20_000_000  # a 100-epoch log with its grid is ~0.5 MB; anything this big is not a card
MAX_RECORDS = 200_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class CardError(ValueError):
    """A file that is not a readable experiment card; the message says what is wrong with it."""


@dataclass
class ExperimentCard:
    """One training run, self-contained: what was trained, how, what it logged and what it drew last."""

    name: str
    kind: str
    dataset: str
    config: dict[str, Any]
    records: list[dict[str, Any]]
    environment: dict[str, str] = field(default_factory=dict)
    grid_png: bytes | None = None
    grid_epoch: int | None = None

    @property
    def seed(self) -> int | None:
        return (self.config.get("recipe") or {}).get("seed")

    @property
    def final_metrics(self) -> dict[str, Any]:
        """The last epoch-end (or final) record: the run's closing numbers."""
        summaries = [r for r in self.records if r.get("type") in ("epoch", "final")]
        return summaries[-1] if summaries else {}

    @property
    def alerts(self) -> list[health.Alert]:
        return health.alerts(self.records)

    def to_json(self) -> bytes:
        """The card as a JSON document (the grid PNG in base64)."""
        payload = {
            "format": CARD_FORMAT,
            "version": CARD_VERSION,
            "name": self.name,
            "kind": self.kind,
            "dataset": self.dataset,
            "seed": self.seed,
            "config": self.config,
            "environment": self.environment,
            "final_metrics": self.final_metrics,
            "alerts": [alert.to_record() for alert in self.alerts],
            "records": self.records,
            "grid_epoch": self.grid_epoch,
            "grid_png": base64.b64encode(self.grid_png).decode("ascii") if self.grid_png else None,
        }
        return json.dumps(payload, indent=1, allow_nan=True).encode()


def environment() -> dict[str, str]:
    """Where a card was made: Python, the platform and, when loaded, PyTorch."""
    torch = sys.modules.get("torch")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        **({"torch": torch.__version__} if torch is not None else {}),
    }


def make_card(
    name: str,
    kind: str,
    dataset: str,
    config: dict[str, Any],
    records: list[dict[str, Any]],
    grids: dict[int, bytes],
) -> ExperimentCard:
    """A card of a run from its parts; `grids` maps epochs to PNG bytes (the newest is kept)."""
    epoch = max(grids) if grids else None
    return ExperimentCard(name, kind, dataset, config, records, environment(), grids.get(epoch), epoch)


def unpack(card: ExperimentCard, folder: str | os.PathLike) -> RunFolder:
    """Write the card out as a run folder (metrics log, config, last grid) for the Training page's views."""
    run = RunFolder(Path(folder))
    run.grids_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(record, allow_nan=True) + "\n" for record in card.records)
    atomic_write_bytes(run.metrics_file, lines.encode())
    atomic_write_bytes(run.config_file, json.dumps(card.config).encode())
    if card.grid_png is not None:
        atomic_write_bytes(run.grid_file(card.grid_epoch), card.grid_png)
    return run


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise CardError(message)


def read_card(data: bytes) -> ExperimentCard:
    """Parse and check a card file's bytes; CardError saying what is wrong otherwise."""
    _require(len(data) <= MAX_CARD_BYTES, f"the file is {len(data) / 1e6:.0f} MB; a card is at most 20 MB")
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise CardError(
            "the file is not JSON: an experiment card is the .json file the Training page downloads"
        ) from None
    _require(isinstance(payload, dict) and payload.get("format") == CARD_FORMAT, "the JSON is not an experiment card")
    _require(payload.get("version") == CARD_VERSION, f"card version {payload.get('version')!r} is not {CARD_VERSION}")
    kind, dataset = payload.get("kind"), payload.get("dataset")
    _require(kind in KINDS, f"unknown model kind {kind!r}; cards hold one of: {', '.join(KINDS)}")
    _require(dataset in DATASETS, f"unknown dataset {dataset!r}")
    name, config, records = payload.get("name"), payload.get("config"), payload.get("records")
    _require(isinstance(name, str) and 0 < len(name) <= 200, "the card has no run name")
    _require(isinstance(config, dict), "the card's config is not a JSON object")
    _require(
        isinstance(records, list) and len(records) <= MAX_RECORDS and all(isinstance(r, dict) for r in records),
        "the card's metrics log is not a list of records",
    )
    grid_png, grid_epoch = payload.get("grid_png"), payload.get("grid_epoch")
    if grid_png is not None:
        try:
            grid_png = base64.b64decode(grid_png, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise CardError("the card's sample grid is not base64") from None
        _require(grid_png.startswith(PNG_SIGNATURE), "the card's sample grid is not a PNG image")
        _require(isinstance(grid_epoch, int), "the card's sample grid has no epoch")
    env = payload.get("environment") or {}
    _require(isinstance(env, dict), "the card's environment is not a JSON object")
    return ExperimentCard(
        name, kind, dataset, config, records, {str(k): str(v) for k, v in env.items()}, grid_png, grid_epoch
    )

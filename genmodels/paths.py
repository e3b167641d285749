"""Where the data, the shipped checkpoints and the user's training runs live."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """The dataset folder in torchvision's layout: argument, else $GENMODELS_DATA, else ./data."""
    if root is not None:
        return Path(root)
    env = os.environ.get("GENMODELS_DATA")
    return Path(env) if env else Path("data")


def checkpoints_dir(root: str | os.PathLike | None = None) -> Path:
    """The checkpoint folder: argument, else $GENMODELS_CHECKPOINTS, else the repo's checkpoints/."""
    if root is not None:
        return Path(root)
    env = os.environ.get("GENMODELS_CHECKPOINTS")
    return Path(env) if env else REPO_ROOT / "checkpoints"


def runs_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder of user training runs: argument, else $GENMODELS_RUNS, else the repo's runs/."""
    if root is not None:
        return Path(root)
    env = os.environ.get("GENMODELS_RUNS")
    return Path(env) if env else REPO_ROOT / "runs"

"""Where the data, the shipped checkpoints and the user's training runs live, and how files there are written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _configured(root: str | os.PathLike | None, variable: str, default: Path) -> Path:
    """A folder the caller names, else the one the environment variable names, else the default."""
    if root is not None:
        return Path(root)
    env = os.environ.get(variable)
    return Path(env) if env else default


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """The dataset folder in torchvision's layout: argument, else $GENMODELS_DATA, else ./data."""
    return _configured(root, "GENMODELS_DATA", Path("data"))


def checkpoints_dir(root: str | os.PathLike | None = None) -> Path:
    """The checkpoint folder: argument, else $GENMODELS_CHECKPOINTS, else the repo's checkpoints/."""
    return _configured(root, "GENMODELS_CHECKPOINTS", REPO_ROOT / "checkpoints")


def checkpoint_file(kind: str, dataset: str, root: str | os.PathLike | None = None) -> Path:
    """Where the shipped checkpoint of (kind, dataset) lives: <checkpoints>/<dataset>/<kind>.safetensors."""
    return checkpoints_dir(root) / dataset / f"{kind}.safetensors"


def runs_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder of user training runs: argument, else $GENMODELS_RUNS, else the repo's runs/."""
    return _configured(root, "GENMODELS_RUNS", REPO_ROOT / "runs")


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Data derived from the datasets and checkpoints, kept between server starts: argument, else $GENMODELS_CACHE,
    else the repo's .cache/."""
    return _configured(root, "GENMODELS_CACHE", REPO_ROOT / ".cache")


def _umask() -> int:
    """The process's file-creation mask, read without setting it (os.umask would, racing other threads' files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022  # the usual default where /proc is absent


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write `payload` to `path` via a temp file in the same folder and a rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make a published checkpoint unreadable to others
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

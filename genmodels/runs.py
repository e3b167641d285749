"""Training run folders: their layout, names, status, metrics logs, and launching `python -m train` as a process.

`RunFolder` names the files of a run folder and `ShippedLogs` those of the runs behind the shipped checkpoints;
the training process writes them, the app and the CLIs read them, all through these two types.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from genmodels.paths import REPO_ROOT, atomic_write_bytes, checkpoints_dir, runs_dir

RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")  # \Z: "$" would accept a trailing newline
ACTIVE_STATES = ("starting", "running")
MIN_FREE_BYTES = 200_000_000  # what a run needs for checkpoints, grids and logs
GRID_PATTERN = re.compile(r"^epoch_(\d+)\.png$")  # a fixed-noise grid, named by its epoch
RUN_NICENESS = 10  # app-launched runs yield the CPU to page renders: training still gets every idle cycle
LAUNCH_LOG_EVERY = 20  # steps between a launched run's records: its progress bar moves at least this often


@dataclass(frozen=True)
class RunFolder:
    """The files of one training run's folder: config, status, metrics log, grids, model, resumable state."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def status_file(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def state_file(self) -> Path:
        return self.path / "state.safetensors"

    @property
    def lock_file(self) -> Path:
        """flock'ed by the training process, so two cannot write one run folder."""
        return self.path / ".train.lock"

    @property
    def stdout_file(self) -> Path:
        return self.path / "stdout.log"

    @property
    def stderr_file(self) -> Path:
        return self.path / "stderr.log"

    @property
    def grids_dir(self) -> Path:
        return self.path / "grids"

    def grid_file(self, epoch: int) -> Path:
        """The fixed-noise grid drawn after `epoch`."""
        return self.grids_dir / f"epoch_{epoch:03d}.png"

    def model_file(self, kind: str) -> Path:
        return self.path / f"{kind}.safetensors"


@dataclass(frozen=True)
class ShippedLogs:
    """The logs of the runs behind a dataset's shipped checkpoints: <checkpoints>/<dataset>/logs/."""

    path: Path

    @classmethod
    def of(cls, dataset: str, root: str | os.PathLike | None = None) -> ShippedLogs:
        """The shipped logs folder of `dataset` in the checkpoints folder `root` (default: the configured one)."""
        return cls(checkpoints_dir(root) / dataset / "logs")

    def metrics_file(self, kind: str) -> Path:
        return self.path / f"{kind}.jsonl"

    def config_file(self, kind: str) -> Path:
        return self.path / f"{kind}.config.json"

    def grids_dir(self, kind: str) -> Path:
        return self.path / f"{kind}_grids"


def studies_dir(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """The shipped studies of `dataset`: <checkpoints>/<dataset>/studies/<variant>/, each laid out like ShippedLogs."""
    return checkpoints_dir(root) / dataset / "studies"


def check_run_name(name: Any) -> str:
    """A run folder name: letters, digits, '_', '.', '-', at most 100 characters, no path parts."""
    if not isinstance(name, str) or "\x00" in name or not RUN_NAME_PATTERN.match(name) or name in (".", ".."):
        raise ValueError(
            f"invalid run name {name!r}: use 1-100 letters, digits, '_', '.', '-' (starting with a letter or digit)"
        )
    return name


def run_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of run `name` inside the runs folder; never outside it."""
    base = runs_dir(root).resolve()
    path = (base / check_run_name(name)).resolve()
    if path.parent != base:
        raise ValueError(f"run name {name!r} escapes the runs folder")
    return path


def new_run_name(kind: str, dataset: str) -> str:
    """A fresh, collision-free run name: <kind>-<dataset>-<UTC time>-<random>."""
    return f"{kind}-{dataset}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Atomically write a JSON document."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON document, or None when absent or unreadable."""
    try:
        value = json.loads(Path(path).read_text())
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl file; torn or malformed lines (a killed writer) are skipped.

    A run resumed from a state older than its log (killed between saves) logs the replayed steps again:
    a record whose step goes back replaces the earlier records from that step on, so no step shows twice.
    """
    records: list[dict[str, Any]] = []
    last_step = None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                step = _step(record)
                if step is not None:
                    if last_step is not None and step < last_step:
                        records = [r for r in records if _step(r) is None or _step(r) < step]
                    last_step = step
                records.append(record)
    except OSError:
        return []
    return records


def _step(record: dict[str, Any]) -> float | None:
    """A record's step, when it has a numeric one."""
    step = record.get("step")
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else None


class MetricsLog:
    """Append-only JSONL writer; each record is one flushed line."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = open(self.path, "a+", encoding="utf-8")
        if self._file.tell() > 0:  # a line torn by a crash: end it, so the next record starts on a line of its own
            self._file.seek(self._file.tell() - 1)
            if self._file.read(1) != "\n":
                self._file.write("\n")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, allow_nan=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists (and is not a zombie: a finished child nobody reaped yet)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


@dataclass
class RunInfo:
    """What the app shows of a run: its folder, config, status (with stale-process detection) and progress."""

    name: str
    path: Path
    config: dict[str, Any]
    status: dict[str, Any]

    @property
    def state(self) -> str:
        return self.status.get("state", "unknown")

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def kind(self) -> str | None:
        # a starting run's status names it before its config.json is written
        return self.config.get("kind") or self.status.get("kind")

    @property
    def dataset(self) -> str | None:
        return self.config.get("dataset") or self.status.get("dataset")

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.path)

    @property
    def model_file(self) -> Path | None:
        if not self.kind:
            return None
        path = self.folder.model_file(self.kind)
        return path if path.exists() else None

    @property
    def progress(self) -> float:
        total = self.status.get("total_steps") or 0
        return min(1.0, self.status.get("step", 0) / total) if total else 0.0

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.folder.stderr_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def run_info(path: str | os.PathLike) -> RunInfo:
    """Read a run folder; an active status whose process is gone becomes 'crashed'."""
    path = Path(path)
    folder = RunFolder(path)
    config = read_json(folder.config_file) or {}
    status = read_json(folder.status_file) or {"state": "unknown"}
    if status.get("state") in ACTIVE_STATES and not pid_alive(status.get("pid")):
        status = {**status, "state": "crashed", "reason": status.get("reason") or "the training process is gone"}
    return RunInfo(path.name, path, config, status)


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """All run folders under the runs folder, newest first."""
    base = runs_dir(root)
    if not base.is_dir():
        return []
    # status.json counts too: a just-launched run has no config.json until its process has loaded the data
    folders = [
        p
        for p in base.iterdir()
        if p.is_dir()
        and RUN_NAME_PATTERN.match(p.name)
        and (RunFolder(p).config_file.exists() or RunFolder(p).status_file.exists())
    ]
    return [run_info(p) for p in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True)]


def iter_active_runs(root: str | os.PathLike | None = None) -> Iterator[RunInfo]:
    """The runs whose process is still going."""
    return (r for r in list_runs(root) if r.active)


class LaunchError(RuntimeError):
    """A training run could not be started."""


def max_concurrent_runs() -> int:
    """At most one training process per CPU core."""
    return max(1, os.cpu_count() or 1)


def launch_run(
    kind: str,
    dataset: str,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    root: str | os.PathLike | None = None,
    device: str = "auto",
    extra: list[str] | None = None,
) -> RunInfo:
    """Start `python -m train KIND ...` as a detached process writing to a new run folder."""
    base = runs_dir(root)
    try:
        base.mkdir(parents=True, exist_ok=True)
        probe = base / f".write-probe-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise LaunchError(f"the runs folder {base} is not writable: {exc.strerror or exc}") from None
    free = shutil.disk_usage(base).free
    if free < MIN_FREE_BYTES:
        raise LaunchError(
            f"only {free // 1_000_000} MB free on the disk of {base}; "
            f"a training run needs about {MIN_FREE_BYTES // 1_000_000} MB"
        )
    lock = base / ".launch.lock"
    import fcntl  # serialises launches from concurrent app sessions so the run limit holds

    with open(lock, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        active = list(iter_active_runs(base))
        if len(active) >= max_concurrent_runs():
            raise LaunchError(
                f"{len(active)} runs are already going (at most {max_concurrent_runs()} on this machine); "
                "wait for one to finish or cancel it"
            )
        for _ in range(20):  # a name drawn twice in the same second gets a fresh one, never a shared folder
            path = run_path(new_run_name(kind, dataset), base)
            try:
                path.mkdir(parents=False, exist_ok=False)
                break
            except FileExistsError:
                continue
        else:
            raise LaunchError(f"could not find a free run folder name in {base}")
        command = [
            sys.executable,
            "-m",
            "train",
            kind,
            "--dataset",
            dataset,
            "--epochs",
            str(epochs),
            "--batch-size",
            str(batch_size),
            "--lr",
            repr(float(lr)),
            "--seed",
            str(seed),
            "--device",
            device,
            "--run-dir",
            str(path),
            "--nice",
            str(RUN_NICENESS),
            "--log-every",
            str(LAUNCH_LOG_EVERY),
            *(extra or []),
        ]
        folder = RunFolder(path)
        write_json(folder.status_file, {"state": "starting", "pid": None, "updated": time.time()})
        # replaced by the run's own
        write_json(folder.config_file, {"kind": kind, "dataset": dataset, "launched": time.time()})
        try:
            with open(folder.stderr_file, "wb") as stderr, open(folder.stdout_file, "wb") as stdout:
                process = subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    stdout=stdout,
                    stderr=stderr,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
        except OSError as exc:
            write_json(
                folder.status_file,
                {"state": "failed", "pid": None, "reason": f"could not start: {exc}", "updated": time.time()},
            )
            raise LaunchError(f"could not start the training process: {exc.strerror or exc}") from None
        write_json(folder.status_file, {"state": "starting", "pid": process.pid, "updated": time.time()})
    return run_info(path)


def cancel_run(info: RunInfo) -> bool:
    """Ask a run to stop (SIGTERM: it finishes the step, saves and exits); False when it is not running."""
    pid = info.status.get("pid")
    if not info.active or not pid_alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True

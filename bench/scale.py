"""Scaling over processes: images/s of `python -m train KIND --nproc N` for N = 1, 2, ... and the efficiency.

Each run is the real command (torchrun, DDP, the global batch of the recipe split over the ranks). On the CPU each
process gets one thread, so N processes use N cores; on a GPU machine N counts GPUs. The rate is the median of the
logged windows after the first (start-up, first steps), read from the run's own metrics log.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench import reference
from genmodels.paths import REPO_ROOT
from genmodels.runs import read_metrics
from train.recipes import default_recipe

WINDOWS = 6  # logged windows per run; the first is dropped


def process_counts(device: torch.device) -> list[int]:
    """1 and 2 on the CPU (no more than its cores); 1..n on a machine with n GPUs."""
    if device.type == "cuda":
        return list(range(1, torch.cuda.device_count() + 1))
    return [n for n in (1, 2) if n <= (os.cpu_count() or 1)]


def measure(
    device: torch.device,
    dataset: str,
    root: str,
    steps: int,
    log: Callable[[str], None],
    kinds: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Per kind: images/s at each process count and the efficiency rate_N / (N rate_1)."""
    counts = process_counts(device)
    out: dict[str, Any] = {
        "process_counts": counts,
        "threads_per_process": 1 if device.type == "cpu" else None,
        "steps": steps,
    }
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for kind in kinds or reference.compared_kinds():  # the kinds the throughput section compares
            batch = default_recipe(kind, dataset).batch_size
            rates = {}
            for n in counts:
                rates[n] = run_rate(kind, dataset, device, root, n, steps, Path(tmp) / f"{kind}-{n}")
                log(f"scale {kind}: {n} process(es), global batch {batch}: {rates[n]:.0f} img/s")
            out[kind] = {
                "batch_size": batch,
                "images_per_s": {str(n): round(r) for n, r in rates.items()},
                "efficiency": {str(n): round(r / (n * rates[1]), 3) for n, r in rates.items()},
            }
    return out


def run_rate(kind: str, dataset: str, device: torch.device, root: str, nproc: int, steps: int, run_dir: Path) -> float:
    """Images/s of one `python -m train` run of `steps` steps on `nproc` processes (median of the later windows)."""
    command = [
        sys.executable,
        "-m",
        "train",
        kind,
        "--dataset",
        dataset,
        "--data",
        root,
        "--device",
        device.type,
        "--max-steps",
        str(steps),
        "--log-every",
        str(max(1, steps // WINDOWS)),
        "--run-dir",
        str(run_dir),
        "--compile",
        "off",
    ] + (["--nproc", str(nproc)] if nproc > 1 else [])
    # one thread a process: N processes on N cores, nothing shared between them but the gradients
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if device.type == "cpu" else dict(os.environ)
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    windows = [r["images_per_s"] for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "step"]
    return statistics.median(windows[1:] or windows)

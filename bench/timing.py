"""Timing helpers: device synchronisation, percentiles and the matmul peak."""

from __future__ import annotations

import statistics
import time

import torch

PEAK_SIZE = {"cpu": 1024, "cuda": 8192}  # a square matmul big enough to run at the device's full rate


def sync(device: torch.device) -> None:
    """Wait for queued device work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, linearly interpolated."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values)


def matmul_gflops(device: torch.device, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Achieved GFLOP/s of a square matmul in `dtype` (1024 on the CPU, 8192 on a GPU), median of `repeats`."""
    n = PEAK_SIZE[device.type]
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    for _ in range(2):
        torch.mm(a, b, out=out)
    sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return median(rates)


def cpu_load() -> float:
    """The 1-minute load average (how busy the machine's other users keep it)."""
    try:
        return round(float(open("/proc/loadavg").read().split()[0]), 2)
    except OSError:
        return float("nan")

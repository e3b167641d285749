"""Sampling latency: 100 images from each shipped generator, and the same rendered to a PNG grid."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from bench.timing import percentile
from genmodels import api
from genmodels.checkpoint import shipped_generators
from genmodels.datasets import DATASETS
from genmodels.images import grid_png
from genmodels.kinds import generator_kinds

SAMPLES = 100


def measure(device: torch.device, repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Per generator kind, p50 / p95 ms of `sample(100)` and of sample + grid_png, worst dataset reported."""
    out: dict[str, Any] = {}
    for kind in generator_kinds():
        per_dataset = {}
        for dataset in (d for d in DATASETS if kind in shipped_generators(d)):
            model = api.load_generator(kind, dataset, device=device)
            label = 3 if model.supports_labels else None
            sample_ms = _times(
                lambda seed, model=model, label=label: model.sample(SAMPLES, label=label, seed=seed), repeats
            )
            png_ms = _times(
                lambda seed, model=model, label=label: grid_png(
                    model.sample(SAMPLES, label=label, seed=seed).images, nrow=10
                ),
                repeats,
            )
            per_dataset[dataset] = {
                "p50_ms": round(percentile(sample_ms, 50), 2),
                "p95_ms": round(percentile(sample_ms, 95), 2),
                "png_p50_ms": round(percentile(png_ms, 50), 2),
                "png_p95_ms": round(percentile(png_ms, 95), 2),
            }
        if not per_dataset:  # not shipped for either dataset yet
            continue
        out[kind] = {
            key: max(d[key] for d in per_dataset.values()) for key in ("p50_ms", "p95_ms", "png_p50_ms", "png_p95_ms")
        }
        out[kind]["by_dataset"] = per_dataset
        log(f"sample {kind}: p50 {out[kind]['p50_ms']} ms, PNG grid p50 {out[kind]['png_p50_ms']} ms (worst dataset)")
    return out


def _times(call: Callable[[int], Any], repeats: int) -> list[float]:
    """Milliseconds of `call(seed)` over `repeats` fresh seeds, after two warm-up calls."""
    call(0)
    call(1)
    times = []
    for seed in range(2, repeats + 2):
        start = time.perf_counter()
        call(seed)
        times.append((time.perf_counter() - start) * 1e3)
    return times

"""Where the gan / cgan step tops out: achieved GFLOP/s against the matmul peak over batch sizes, with and without D's
dropout.

The train section measures the shipped recipes; this section varies only the batch size and the
discriminator's dropout, so it shows how much of the gap to the peak is per-image work that a
bigger batch does not amortise (dropout's random numbers, element-wise ops) and how much is per-step
work that it does (Adam, the weight casts, dispatch). Opt-in (`--only ceiling`): it takes minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bench import reference
from bench.throughput import calibrate, flops_per_image, images_per_s, project_loop
from bench.timing import matmul_gflops, median
from train.recipes import default_recipe

NO_DROPOUT = 0.0


def measure(
    device: torch.device,
    dataset: str,
    batch_sizes: tuple[int, ...],
    repeats: int,
    seconds: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Per kind and batch size, with the model's dropout and without: images/s, GFLOP/s and the fraction of the
    peak of the precision the loop multiplies in (measured alongside, median)."""
    peaks: dict[str, list[float]] = {"fp32": [], "bf16": []}
    rows: dict[str, list[dict[str, Any]]] = {}
    for kind in reference.dropout_gan_kinds():
        recipe = default_recipe(kind, dataset)
        rows[kind] = []
        for batch_size in batch_sizes:
            for dropout in (None, NO_DROPOUT):
                model = recipe.model if dropout is None else {**recipe.model, "dropout": dropout}
                loop = project_loop(kind, dataset, device, batch_size=batch_size, model=model)
                precision = loop.task.precision
                flops = flops_per_image(loop)
                steps = calibrate(loop, device, seconds)
                rates = []
                for _ in range(repeats):
                    peaks[precision].append(
                        matmul_gflops(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float32)
                    )
                    rates.append(images_per_s(loop, steps, device))
                rate, trained_dropout = median(rates), loop.task.discriminator.config.dropout
                rows[kind].append(
                    {
                        "batch_size": batch_size,
                        "dropout": trained_dropout,
                        "precision": precision,
                        "images_per_s": round(rate),
                        "step_ms": round(batch_size / rate * 1e3, 1),
                        "achieved_gflops": round(rate * flops / 1e9, 1),
                    }
                )
                log(
                    f"ceiling {kind}: batch {batch_size}, dropout {trained_dropout}: {rate:.0f} img/s, "
                    f"{rate * flops / 1e9:.1f} GFLOP/s"
                )
                del loop
    peak = {name: median(values) for name, values in peaks.items() if values}
    for kind_rows in rows.values():
        for row in kind_rows:
            row["fraction_of_peak"] = round(row["achieved_gflops"] / peak[row["precision"]], 3)
    return {**rows, "matmul_peak_gflops": {name: round(value, 1) for name, value in peak.items()}}

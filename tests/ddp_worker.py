"""Test helper: train the runs of a JSON spec through train.run, alone or as one rank of a torchrun group.

`python tests/ddp_worker.py SPEC` trains them in one process; under `torch.distributed.run` every rank trains them
together. One process start (and one process group) serves all the runs, which keeps the distributed tests short.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train import distributed
from train.recipes import default_recipe
from train.run import RunRequest, train_model


def main(spec_path: str) -> int:
    """Train every run of the spec; the first non-zero exit code, else 0."""
    spec = json.loads(Path(spec_path).read_text())
    device = torch.device("cpu")
    if distributed.launched_by_torchrun():
        distributed.setup(device)
    code = 0
    try:
        for run in spec["runs"]:
            recipe = default_recipe(run["kind"], "mnist", **run.get("recipe", {}))
            recipe = dataclasses.replace(recipe, model={**recipe.model, **run.get("model", {})})
            code = train_model(
                RunRequest(
                    run["kind"],
                    "mnist",
                    recipe,
                    Path(run["run_dir"]),
                    device,
                    max_steps=run.get("max_steps"),
                    resume=run.get("resume", False),
                    log_every=1,
                )
            )
            if code:
                return code
            if torch.distributed.is_initialized():
                torch.distributed.barrier()  # the next run may resume this one: rank 0 must have saved it first
    finally:
        distributed.teardown(together=code == 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

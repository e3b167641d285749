"""python -m bench.study: the objective study. One GAN kind trained with each objective under the same budget and
seed, every run scored through the project's one scoring path, its logs shipped and its table written to the docs.

    python -m bench.study --dataset mnist             # train what is missing, score, ship the logs, write the table
    python -m bench.study --dataset fashion --objectives bce,hinge
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from genmodels.datasets import DATASETS, dataset_info
from genmodels.evaluation import DEFAULT_SAMPLES, MIN_SAMPLES
from genmodels.logs import SUMMARY_RECORD_TYPES
from genmodels.paths import REPO_ROOT, checkpoints_dir, runs_dir
from genmodels.recipes import OBJECTIVES
from genmodels.runs import RunFolder, ShippedLogs, read_json, read_metrics, studies_dir, write_json

STUDY_KIND = "cgan"  # the reports' conditional GAN: the issue's study
# the budget: the first steps of the shipped recipe (its schedule unchanged), 10 MNIST epochs and 6 Fashion ones,
# past where the cgan settles above 90% class accuracy, and what 8 runs afford on a shared 2-core CPU
STUDY_STEPS = {"mnist": 2340, "fashion": 2808}
STUDY_SEED = 0
RESULTS_FILE = "objectives.json"
VARIANT_PREFIX = "objective-"  # studies/objective-<name>/ holds one objective's log, config and grids
DOCS_FILE = REPO_ROOT / "docs" / "objective_study.md"
BEGIN, END = "<!-- BEGIN objective-study tables -->", "<!-- END objective-study tables -->"
DOC_HEADER = f"""# The GAN objective study

Each row is one run of the same model, recipe, step budget and seed; only the objective differs (`--objective`). The
scores are `python -m genmodels evaluate`'s (10,000 samples, the project classifier, the pixel-MLP cross-check,
seed 0), measured on the run's checkpoint.

**Wobble** is the standard deviation of the epoch-to-epoch changes of the trainer's class accuracy (its epoch-end
check: 1,000 samples judged by the shipped classifier) over the second half of the run (the changes into the epochs
above half the epoch count), in percentage points: how much a run swings around its trend.

{BEGIN}
{END}
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit code 2, like the other commands
        print(f"error: {message} (see python -m bench.study --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m bench.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma-separated (default: all)")
    parser.add_argument("--seed", type=int, default=STUDY_SEED)
    parser.add_argument(
        "--steps",
        type=int,
        help="optimisation steps of each run (default: "
        + ", ".join(f"{d} {n}" for d, n in STUDY_STEPS.items())
        + "); the recipe's epochs and schedule stay",
    )
    parser.add_argument("--model-config", help="JSON overrides of the model config (smoke tests)")
    parser.add_argument("--samples", type=int, default=10_000, help="samples per scored run (default 10,000)")
    parser.add_argument("--runs", type=Path, help="folder of the study's runs (default: <runs>/study/<dataset>)")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        help="checkpoints folder: its classifier judges, its studies/ receives the logs (default: the repo's)",
    )
    parser.add_argument("--docs", type=Path, default=DOCS_FILE, help="the markdown file whose tables are rewritten")
    parser.add_argument("--data", help="dataset folder (default: $GENMODELS_DATA or ./data)")
    args = parser.parse_args(argv)
    args.objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    unknown = [o for o in args.objectives if o not in OBJECTIVES]
    if unknown or not args.objectives:
        parser.error(f"--objectives: choose among {', '.join(OBJECTIVES)}, got {', '.join(unknown) or 'none'}")
    args.steps = STUDY_STEPS[args.dataset] if args.steps is None else args.steps
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    if not MIN_SAMPLES <= args.samples <= DEFAULT_SAMPLES:
        parser.error(f"--samples must be between {MIN_SAMPLES} and {DEFAULT_SAMPLES}, got {args.samples}")
    return args


def wobble(records: list[dict[str, Any]]) -> float | None:
    """Std of the epoch-to-epoch class-accuracy changes into the second half's epochs, in points (None: < 2 of them).

    A run stopped by its step budget at an epoch's end logs that epoch as its "final" record."""
    accuracy = {
        r["epoch"]: r["class_accuracy"]
        for r in records
        if r.get("type") in SUMMARY_RECORD_TYPES and "class_accuracy" in r
    }
    epochs = sorted(accuracy)
    changes = [accuracy[b] - accuracy[a] for a, b in zip(epochs, epochs[1:], strict=False) if b > len(epochs) / 2]
    if len(changes) < 2:
        return None
    return 100.0 * statistics.pstdev(changes)


def train_command(args: argparse.Namespace, objective: str, run_dir: Path, resume: bool) -> list[str]:
    """The `python -m train` command of one variant; every variant differs from the others in --objective only."""
    command = [sys.executable, "-m", "train", STUDY_KIND, "--dataset", args.dataset, "--objective", objective]
    command += ["--max-steps", str(args.steps), "--seed", str(args.seed), "--run-dir", str(run_dir)]
    for flag, value in (("--model-config", args.model_config), ("--data", args.data)):
        if value is not None:
            command += [flag, str(value)]
    return command + (["--resume"] if resume else [])


def train_variant(args: argparse.Namespace, objective: str, run_dir: Path) -> None:
    """Train one variant unless its run already finished (an interrupted one is resumed)."""
    run = RunFolder(run_dir)
    if (read_json(run.status_file) or {}).get("state") == "finished" and run.model_file(STUDY_KIND).is_file():
        config = read_json(run.config_file) or {}
        recipe = config.get("recipe", {})
        if (config.get("max_steps"), recipe.get("objective"), recipe.get("seed")) != (args.steps, objective, args.seed):
            raise RuntimeError(f"{run_dir} holds another study's run (steps, objective or seed differ); remove it")
        print(f"{objective}: reusing the finished run in {run_dir}", file=sys.stderr, flush=True)
        return
    command = train_command(args, objective, run_dir, resume=run.state_file.is_file())
    print("$ " + " ".join(command[1:]), file=sys.stderr, flush=True)
    env = {**os.environ, "GENMODELS_CHECKPOINTS": str(checkpoints_dir(args.checkpoints))}
    if subprocess.run(command, env=env, cwd=REPO_ROOT).returncode != 0:
        raise RuntimeError(f"training the {objective} variant failed; see {run_dir}")


def variant_row(model_scores: dict[str, Any], records: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """The study's numbers of one variant: evaluate's scores, the per-class minimum, wobble, and training time."""
    per_class = [a for a in model_scores.get("per_class_accuracy", []) if a is not None]
    timed = [r["wall_time"] for r in records if "wall_time" in r]
    return {
        "class_accuracy": model_scores.get("class_accuracy"),
        "class_accuracy_crosscheck": model_scores.get("class_accuracy_crosscheck"),
        "min_class_accuracy": min(per_class) if per_class else None,
        "fid": model_scores["fid"],
        "precision": model_scores["precision"],
        "recall": model_scores["recall"],
        "wobble_points": wobble(records),
        "train_seconds": max(timed) if timed else None,
        "recipe": config.get("recipe", {}),
    }


def score_variants(args: argparse.Namespace, run_root: Path) -> dict[str, Any]:
    """Score every variant's checkpoint with `evaluate`'s measures against one reference of real data."""
    from genmodels import evaluation
    from genmodels.api import load_generator

    real = evaluation.build_reference(
        args.dataset, args.samples, evaluation.EVAL_SEED, args.data, args.checkpoints, device="cpu"
    )
    rows = {}
    for objective in args.objectives:
        run = RunFolder(run_root / objective)
        print(f"{objective}: scoring {args.samples:,} samples", file=sys.stderr, flush=True)
        model = load_generator(STUDY_KIND, args.dataset, checkpoint=run.model_file(STUDY_KIND), device="cpu")
        model_scores = evaluation.evaluate_generator(model, real, args.samples)
        rows[objective] = variant_row(model_scores, read_metrics(run.metrics_file), read_json(run.config_file) or {})
    return {"real_fid_floor": real.real["real_fid_floor"], "real_recall": real.real["real_recall"], "rows": rows}


def _number(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def dataset_table(result: dict[str, Any]) -> str:
    """One dataset's markdown section: the command, the machine, and a row per objective."""
    info = dataset_info(result["dataset"])
    lines = [
        f"## {info.title}",
        "",
        f"`{result['command']}`: {result['steps']:,} steps of the shipped recipe, seed {result['seed']}, "
        f"{result['samples']:,} samples scored; trained on {result['machine']}. Real data: FID floor "
        f"{result['real_fid_floor']:.1f}, recall {result['real_recall']:.2f}.",
        "",
        "| objective | settings | class acc. | cross-check | worst class | FID | precision | recall | wobble (pts) "
        "| train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for objective in [o for o in OBJECTIVES if o in result["rows"]]:  # the results file's keys come sorted
        row = result["rows"][objective]
        recipe = row["recipe"]
        settings = f"batch {recipe.get('batch_size')}, lr {recipe.get('lr')}, d-steps {recipe.get('d_steps', 1)}"
        lines.append(
            f"| {objective} | {settings} | {_number(row['class_accuracy'], '.1%')} "
            f"| {_number(row['class_accuracy_crosscheck'], '.1%')} | {_number(row['min_class_accuracy'], '.1%')} "
            f"| {row['fid']:.1f} | {row['precision']:.2f} | {row['recall']:.3f} "
            f"| {_number(row['wobble_points'], '.2f')} | {_number(row['train_seconds'], '.0f')} |"
        )
    return "\n".join(lines)


def write_docs(path: Path, root: Path | None) -> None:
    """Rewrite the tables between the markers of `path` from every dataset's results file; the prose around stays."""
    sections = []
    for dataset in DATASETS:
        result = read_json(studies_dir(dataset, root) / RESULTS_FILE)
        if result is not None:
            sections.append(dataset_table(result))
    text = path.read_text() if path.is_file() else DOC_HEADER
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + BEGIN + "\n" + "\n\n".join(sections) + "\n" + END + tail)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.__main__ import machine

    run_root = args.runs or runs_dir() / "study" / args.dataset
    started = time.perf_counter()
    try:
        for objective in args.objectives:
            train_variant(args, objective, run_root / objective)
        scored = score_variants(args, run_root)
    except (RuntimeError, OSError, ValueError) as exc:  # a failed run, missing data or a broken checkpoint
        print(f"error: {exc}", file=sys.stderr)
        return 1
    folder = studies_dir(args.dataset, args.checkpoints)
    from train.cli import publish_logs

    for objective in args.objectives:
        publish_logs(RunFolder(run_root / objective), STUDY_KIND, ShippedLogs(folder / f"{VARIANT_PREFIX}{objective}"))
    import torch

    cpu = machine(torch.device("cpu"))
    command = f"python -m bench.study --dataset {args.dataset} --steps {args.steps}"
    fresh = scored.pop("rows")
    previous = read_json(folder / RESULTS_FILE) or {}
    same_budget = all(previous.get(k) == getattr(args, k) for k in ("steps", "seed", "samples"))
    merged = {**(previous.get("rows", {}) if same_budget else {}), **fresh}  # a rerun of some objectives keeps the rest
    write_json(
        folder / RESULTS_FILE,
        {
            "dataset": args.dataset,
            "kind": STUDY_KIND,
            "steps": args.steps,
            "seed": args.seed,
            "samples": args.samples,
            "command": command,
            "machine": f"{cpu['cpu']}, {cpu['cores']} cores, torch {cpu['torch']}",
            **scored,
            "rows": {objective: merged[objective] for objective in OBJECTIVES if objective in merged},
        },
    )
    write_docs(args.docs, args.checkpoints)
    print(f"study of {args.dataset} done in {time.perf_counter() - started:.0f} s; table in {args.docs}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

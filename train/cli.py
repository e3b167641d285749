"""The training command line: validates every flag before any work, then trains one model or all."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from genmodels.api import MAX_SEED
from genmodels.datasets import DATASETS
from genmodels.kinds import KINDS, training_order
from genmodels.launch import FAMILIES, OPTIONS, Option, check_option, family_kinds
from genmodels.memory import keep_freed_memory_for_reuse
from genmodels.paths import checkpoints_dir, runs_dir
from genmodels.recipes import Recipe
from genmodels.runs import MIN_FREE_BYTES, RunFolder, ShippedLogs, new_run_name, read_json, read_metrics
from train import distributed
from train.recipes import (
    COMPILE_CHOICES,
    COMPILE_KINDS,
    COMPILE_MIN_STEPS,
    PRECISIONS,
    default_recipe,
    resolve_compile,
    resolve_precision,
)

MAX_EPOCHS = 10_000
MAX_BATCH = 8_192
USAGE_EXIT = 2


class UsageError(ValueError):
    """A flag value that is refused before any work."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2, no usage dump
        print(f"error: {message} (see python -m train --help)", file=sys.stderr)
        sys.exit(USAGE_EXIT)


def needed_kinds() -> dict[str, list[str]]:
    """{kind whose checkpoint some training reads: the kinds whose training reads it}, in training order."""
    users = {name: [k for k in training_order() if name in KINDS[k].needs] for name in training_order()}
    return {name: kinds for name, kinds in users.items() if kinds}


def _listed(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _folder(value: str) -> Path:
    if not value.strip():
        raise argparse.ArgumentTypeError("--run-dir must name a folder")
    return Path(value)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m train", description="Train genmodels models on MNIST / Fashion-MNIST.")
    parser.add_argument(
        "kind",
        choices=[*KINDS, "all"],
        help="model to train; 'all' trains every model and publishes them as the shipped checkpoints",
    )
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    parser.add_argument("--epochs", type=int, help="epochs (default: the shipped recipe's)")
    parser.add_argument("--max-steps", type=int, help="stop after this many optimisation steps")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int, help="random seed (default: 0; on --resume, the run's own)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help="matmul precision (default: the recipe's 'auto': bf16 on a CPU with native bf16, else fp32)",
    )
    parser.add_argument(
        "--compile",
        choices=list(COMPILE_CHOICES),
        help=f"torch.compile the step ({', '.join(COMPILE_KINDS)} only; default: the recipe's 'auto': "
        f"on the CPU, for runs of {COMPILE_MIN_STEPS:,} steps or more)",
    )
    parser.add_argument("--run-dir", type=_folder, help="run folder (for 'all': the parent of one folder per model)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    for name, users in needed_kinds().items():
        parser.add_argument(
            f"--{name}",
            type=Path,
            help=f"the {name} checkpoint that training the {_listed(users)} reads (default: the shipped one)",
        )
    parser.add_argument(
        "--checkpoints",
        type=Path,
        help="'all' only: where to publish the checkpoints (default: the repo's checkpoints/)",
    )
    parser.add_argument(
        "--model-config", type=json.loads, help="JSON overrides of the model config, e.g. '{\"d_hidden\": [512, 256]}'"
    )
    for option in OPTIONS:
        parser.add_argument(option.flag, **_argument(option))
    parser.add_argument(
        "--init-from",
        type=Path,
        help="fork: start a new run from the weights of a run folder (every network) or a .safetensors checkpoint "
        "(the network it serves), with this command's settings; the run's config.json records the parent",
    )
    parser.add_argument("--log-every", type=int, default=100, help="steps between metric records")
    parser.add_argument("--data", help="dataset folder (default: $GENMODELS_DATA or ./data)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="lower this process's CPU priority by N (0-19); the app launches runs with 10 so its "
        "pages stay responsive",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        help="train on N processes of this machine through torchrun (DDP; gloo on the CPU, nccl on "
        "GPUs); the batch stays the global one, split over the processes",
    )
    parser.add_argument(
        "--force-nproc", action="store_true", help="allow --nproc above this machine's CPU cores or GPUs"
    )
    return parser


def validate(args: argparse.Namespace) -> None:
    """Range checks that argparse cannot express; raises UsageError."""
    if args.epochs is not None and not 1 <= args.epochs <= MAX_EPOCHS:
        raise UsageError(f"--epochs must be between 1 and {MAX_EPOCHS}, got {args.epochs}")
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, got {args.max_steps}")
    if args.batch_size is not None and not 1 <= args.batch_size <= MAX_BATCH:
        raise UsageError(f"--batch-size must be between 1 and {MAX_BATCH}, got {args.batch_size}")
    if args.lr is not None and not (math.isfinite(args.lr) and 0 < args.lr <= 1):
        raise UsageError(f"--lr must be a number in (0, 1], got {args.lr}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed must be between 0 and {MAX_SEED}, got {args.seed}")
    if not 1 <= args.log_every <= 100_000:
        raise UsageError(f"--log-every must be between 1 and 100000, got {args.log_every}")
    if args.model_config is not None and not isinstance(args.model_config, dict):
        raise UsageError("--model-config must be a JSON object")
    if not 0 <= args.nice <= 19:
        raise UsageError(f"--nice must be between 0 and 19, got {args.nice}")
    if args.resume and args.run_dir is None:
        raise UsageError("--resume needs --run-dir of the run to continue")
    if args.resume and args.kind == "all":
        raise UsageError("--resume works on a single model's run, not on 'all'")
    for name, users in needed_kinds().items():
        path = getattr(args, name)
        if path is None:
            continue
        if args.kind == "all":
            raise UsageError(f"--{name} does nothing for 'all': each model uses the {name} trained in the same run")
        if args.kind not in users:
            raise UsageError(f"--{name} is for the {_listed(users)} only: it names the {name} their training reads")
        if not path.is_file():
            raise UsageError(f"--{name} {path}: no such file")
    check_objective_flags(args)
    if args.init_from is not None:
        if args.resume or args.kind == "all":
            raise UsageError("--init-from starts one new model's run; it goes with neither --resume nor 'all'")
        from genmodels.forks import check_compatible, fork_source

        args.fork = fork_source(args.init_from)
        check_compatible(args.fork, args.kind, args.dataset)  # the architecture is compared once the model is built
    if args.checkpoints is not None and args.kind != "all":
        raise UsageError("--checkpoints is for 'all' only: a single model stays in its --run-dir")


def _argument(option: Option) -> dict:
    """argparse settings of one of launch.OPTIONS: its type and its help, with the kinds it is for."""
    kinds = f"{FAMILIES[option.family]}: {_listed(family_kinds(option.family))}"
    settings: dict = {"help": f"{option.help} ({kinds}; default: the recipe's)"}
    if option.kind == "switch":
        return settings | {"action": "store_true", "default": None}
    if option.kind == "choice":
        return settings | {"choices": list(option.choices)}
    return settings | {"type": int if option.kind == "int" else float}


def check_objective_flags(args: argparse.Namespace) -> None:
    """The GAN and VAE flags: in range, and only for the kinds they change; raises UsageError."""
    for option in OPTIONS:
        value = getattr(args, option.name)
        if value is None:
            continue
        try:
            check_option(args.kind, option, value, option.flag)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


def check_writable(folder: Path, need_bytes: int = MIN_FREE_BYTES) -> None:
    """Refuse an unwritable folder or a nearly full disk before training starts."""
    target = folder
    try:
        while not target.exists():
            target = target.parent
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise UsageError(f"{folder}: {exc.strerror or exc}") from None
    if not target.is_dir():  # e.g. a path below a regular file: mkdir would fail with a traceback later
        raise UsageError(f"{folder} cannot be created: {target} is a file, not a folder")
    if not os.access(target, os.W_OK):
        raise UsageError(f"{folder} is not writable")
    free = shutil.disk_usage(target).free
    if free < need_bytes:
        raise UsageError(
            f"only {free // 1_000_000} MB free on the disk of {folder}; training needs about "
            f"{need_bytes // 1_000_000} MB"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        validate(args)
        from train.run import resolve_device

        device = resolve_device(args.device)
        if args.compile is not None and args.kind != "all":
            # refuse 'on' for a kind that never compiles
            resolve_compile(args.compile, args.kind, device, total_steps=0)
        if args.precision is not None:
            resolve_precision(args.precision, device)  # refuse bf16 where this machine cannot do it, before any work
        run_dir = args.run_dir or runs_dir() / new_run_name(args.kind, args.dataset)
        check_writable(run_dir)
        if args.kind == "all":
            check_writable(args.checkpoints or checkpoints_dir())
        if args.run_dir is not None and not args.resume:
            for folder in [run_dir / kind for kind in training_order()] if args.kind == "all" else [run_dir]:
                if holds_training_files(folder):
                    raise UsageError(
                        f"{folder} already holds a run or model files; pass --resume to continue a "
                        "run there or choose another --run-dir"
                    )
        resumed = saved_recipe(run_dir, args) if args.resume else None
        check_model_config(args)
        check_processes(args, device, run_dir, resumed)
    except (UsageError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_EXIT
    if args.nice:
        os.nice(args.nice)
    if args.nproc and args.nproc > 1:  # distributed: this process becomes torchrun's launcher of N ranks
        from train.launch_nproc import launch

        return launch(args.nproc, sys.argv[1:] if argv is None else argv, run_dir)
    keep_freed_memory_for_reuse()
    if args.kind == "all":
        return train_all(args, device, run_dir)
    if distributed.launched_by_torchrun():  # distributed: one rank of a torchrun group
        device = distributed.setup(device).device
        code = 1
        try:
            code = train_one(args, args.kind, device, run_dir, recipe=resumed)
            return code
        finally:
            # a rank that failed leaves at once: its peers, perhaps still in a step, must see it gone, not wait
            distributed.teardown(together=code == 0)
    return train_one(args, args.kind, device, run_dir, recipe=resumed)


def check_processes(args: argparse.Namespace, device, run_dir: Path, resumed: Recipe | None) -> None:
    """Refuse a process count this machine or run cannot take (--nproc, or torchrun's world size), before any work."""
    world = int(os.environ["WORLD_SIZE"]) if distributed.launched_by_torchrun() else (args.nproc or 1)
    if args.nproc is not None:
        if distributed.launched_by_torchrun():
            raise UsageError("--nproc starts torchrun itself; under torchrun, pass --nproc-per-node to torchrun")
        if args.nproc < 1:
            raise UsageError(f"--nproc must be at least 1, got {args.nproc}")
        import torch

        on_gpus = device.type == "cuda"
        have, what = (torch.cuda.device_count(), "CUDA GPUs") if on_gpus else (os.cpu_count() or 1, "CPU cores")
        if args.nproc > have and not args.force_nproc:
            raise UsageError(
                f"--nproc {args.nproc}: this machine has {have} {what}; pass --force-nproc to start more "
                "processes than that"
            )
    if args.resume:
        saved = (read_json(RunFolder(run_dir).config_file) or {}).get("world_size", 1)
        if saved != world:
            raise UsageError(
                f"--resume continues {run_dir} on the {saved} process(es) it was trained on, not {world}; "
                f"pass --nproc {saved}"
            )
    if world == 1:
        return
    if args.kind == "all":
        raise UsageError("a run on several processes trains one model; train the models of 'all' one by one")
    if args.kind in COMPILE_KINDS:
        # a rank whose compile fails would go on eagerly alone, and the ranks of a DDP run must run the same graph
        if args.compile == "on":
            raise UsageError("--compile on: a run on several processes trains uncompiled; drop --compile")
        args.compile = "off"
    batch = (resumed or default_recipe(args.kind, args.dataset, batch_size=args.batch_size)).batch_size
    if batch % world:
        raise UsageError(
            f"the batch of {batch} does not split over {world} processes; choose a --batch-size that is a "
            f"multiple of {world}"
        )


def check_model_config(args: argparse.Namespace) -> None:
    """Build each model config the run will use (for 'all': every kind's): a bad --model-config is refused up front."""
    from genmodels.kinds import kind as model_kind
    from genmodels.models import config_from_dict

    if not args.model_config:
        return
    for kind in training_order() if args.kind == "all" else [args.kind]:
        try:
            overrides = {**default_recipe(kind, args.dataset).model, **args.model_config}
            config_from_dict(model_kind(kind).config_cls, overrides)
        except ValueError as exc:
            raise UsageError(
                f"--model-config: {exc}"
                + (f" (for 'all' it applies to every model; {kind} refused it)" if args.kind == "all" else "")
            ) from None


def holds_training_files(folder: Path) -> bool:
    """Whether a folder holds a run's log or any checkpoint file (the app's launcher pre-creates only status, logs)."""
    try:
        metrics_name = RunFolder(folder).metrics_file.name
        return folder.is_dir() and any(p.name == metrics_name or p.suffix == ".safetensors" for p in folder.iterdir())
    except OSError:
        return False


def saved_recipe(run_dir: Path, args: argparse.Namespace) -> Recipe:
    """The recipe a run was started with, for --resume: --epochs may extend it; flags that would change it are
    refused."""
    from train.run import resume_recipe

    # its ValueError is a usage error here: nothing is written yet
    recipe = resume_recipe(run_dir, args.kind, args.dataset)
    changed = [
        flag
        for flag, given, saved in (
            ("--batch-size", args.batch_size, recipe.batch_size),
            ("--lr", args.lr, recipe.lr),
            ("--seed", args.seed, recipe.seed),
            ("--precision", args.precision, recipe.precision),
            ("--compile", args.compile, recipe.compile),
            *((option.flag, getattr(args, option.name), getattr(recipe, option.field)) for option in OPTIONS),
        )
        if given is not None and given != saved
    ]
    if args.model_config and {**recipe.model, **args.model_config} != recipe.model:
        changed.append("--model-config")
    if changed:
        raise UsageError(
            f"--resume continues the run as it was started, and {', '.join(changed)} would change it; "
            "drop the flag or start a new run"
        )
    if args.epochs is not None:
        recipe.epochs = args.epochs
    return recipe


def train_one(
    args: argparse.Namespace,
    kind: str,
    device,
    run_dir: Path,
    needs: dict[str, Path] | None = None,
    recipe: Recipe | None = None,
) -> int:
    """Train one model; `needs` names the checkpoints of the kinds its training reads (default: the flags' or the
    shipped ones)."""
    from train.run import RunRequest, train_model

    if recipe is None:
        recipe = default_recipe(
            kind,
            args.dataset,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed if args.seed is not None else 0,
            precision=args.precision,
            compile=args.compile if kind in COMPILE_KINDS else None,
            **{option.field: getattr(args, option.name) for option in OPTIONS},
        )
        if args.model_config:
            recipe.model = {**recipe.model, **args.model_config}
    if needs is None:
        needs = {name: getattr(args, name) for name in KINDS[kind].needs if getattr(args, name) is not None}
    request = RunRequest(
        kind,
        args.dataset,
        recipe,
        run_dir,
        device,
        max_steps=args.max_steps,
        resume=args.resume,
        needs=needs,
        log_every=args.log_every,
        data_root=args.data,
        fork=getattr(args, "fork", None),
    )
    return train_model(request)


def train_all(args: argparse.Namespace, device, run_root: Path) -> int:
    """Train every kind, each after the kinds it needs, then publish them together into the checkpoints folder.

    Each model's training reads the models of this same run (its judge, the generator a mapper maps into), and
    nothing is published unless all of them finished: a stopped or failed run leaves the checkpoints folder as it was.
    """
    root = checkpoints_dir(args.checkpoints)
    target = root / args.dataset
    started = time.perf_counter()
    for kind in training_order():
        run_dir = run_root / kind
        needs = {name: RunFolder(run_root / name).model_file(name) for name in KINDS[kind].needs}
        print(f"== {kind} on {args.dataset} -> {run_dir}", flush=True)
        code = train_one(args, kind, device, run_dir, needs=needs)
        if code != 0:
            print(
                f"error: training {kind} failed (exit {code}); see {run_dir}. Nothing was published.", file=sys.stderr
            )
            return code
        state = (read_json(RunFolder(run_dir).status_file) or {}).get("state")
        if state != "finished":
            print(
                f"error: training {kind} ended {state or 'without a status'}; the later models were not trained and "
                "nothing was published",
                file=sys.stderr,
            )
            return 1
    target.mkdir(parents=True, exist_ok=True)
    for kind in training_order():
        publish(run_root / kind, kind, args.dataset, root)
    print(
        f"all models of {args.dataset} trained and published to {target} in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return 0


def publish(run_dir: Path, kind: str, dataset: str, root: Path) -> None:
    """Copy a finished run's model, metrics log, config and grids into the checkpoints folder `root`."""
    from genmodels.checkpoint import checkpoint_path, load_tensors, save_tensors

    run = RunFolder(run_dir)
    tensors, meta = load_tensors(run.model_file(kind))
    save_tensors(checkpoint_path(kind, dataset, root), tensors, meta)
    publish_logs(run, kind, ShippedLogs.of(dataset, root))


def publish_logs(run: RunFolder, kind: str, logs: ShippedLogs) -> None:
    """Copy a finished run's metrics log, config and (a thinned set of) grids into a shipped logs folder."""
    from genmodels.logs import grid_images

    logs.path.mkdir(parents=True, exist_ok=True)
    metrics_file = logs.metrics_file(kind)
    partial = metrics_file.with_name(f".{metrics_file.name}.tmp")
    with open(partial, "w") as f:
        for record in read_metrics(run.metrics_file):
            f.write(json.dumps(record) + "\n")
    os.replace(partial, metrics_file)
    shutil.copyfile(run.config_file, logs.config_file(kind))
    grids = list(grid_images(run.grids_dir).values())
    grids = [g for i, g in enumerate(grids, 1) if i <= 10 or i % 5 == 0 or i == len(grids)]  # keeps the repo small
    if grids:
        shutil.rmtree(logs.grids_dir(kind), ignore_errors=True)
        logs.grids_dir(kind).mkdir()
        for grid in grids:
            shutil.copyfile(grid, logs.grids_dir(kind) / grid.name)

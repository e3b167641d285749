"""The `python -m genmodels` command line: sample images, evaluate the shipped checkpoints, rebuild data summaries and
the shipped UMAP maps."""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

USAGE_EXIT = 2
RUNTIME_EXIT = 1
OUT_SUFFIXES = (".png", ".npy")


class UsageError(ValueError):
    """A flag value refused before any work (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2, no usage dump
        print(f"error: {message} (see python -m genmodels --help)", file=sys.stderr)
        sys.exit(USAGE_EXIT)


def _label(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a class index or 'all', got {text!r}") from None


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the sample, evaluate, summarize and umap subcommands."""
    from genmodels.datasets import DATASETS
    from genmodels.kinds import KINDS, generator_kinds

    parser = _Parser(prog="python -m genmodels", description="Sample and evaluate the genmodels GANs and VAEs.")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{sample,evaluate,summarize,umap}", parser_class=_Parser
    )

    sample = commands.add_parser("sample", help="generate images to a .png grid or a .npy array")
    sample.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    sample.add_argument("--model", required=True, choices=generator_kinds())
    sample.add_argument(
        "--label",
        type=_label,
        help="class index K, or 'all' for N images of every class in class order (default: unconditional)",
    )
    sample.add_argument("--n", type=int, default=10, help="images (per class with --label all); default 10")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--temperature", type=_finite_float, default=1.0, help="scale of the latent noise; default 1.0")
    sample.add_argument(
        "--out",
        type=Path,
        help="output file, .png (grid) or .npy (uint8 [count, 28, 28]); default samples_<dataset>_<model>.png",
    )
    sample.add_argument(
        "--checkpoint", type=Path, help="sample from this model file (e.g. a training run's) instead of the shipped one"
    )
    sample.add_argument(
        "--nrow",
        type=int,
        help="images per row of the .png grid; default 10, or N (one class per row) with --label all",
    )
    sample.add_argument(
        "--without-critic",
        action="store_true",
        help="draw without the sampling critic's rejection sampling (dcgan, conv_vae: the raw generator)",
    )
    sample.add_argument(
        "--strictness",
        type=_finite_float,
        help="power of the critic's density ratio in rejection sampling (dcgan, conv_vae); default 1, the exact "
        "rule; 2 or 4 keep more typical, less varied images",
    )
    sample.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])

    evaluate = commands.add_parser(
        "evaluate", help="measure the shipped checkpoints of a dataset (needs the real data)"
    )
    evaluate.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    evaluate.add_argument(
        "--n", type=int, default=10_000, help="generated (and real) images per measure; default 10000"
    )
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument(
        "--temperature",
        type=_finite_float,
        default=1.0,
        help="scale of every generator's latent noise (the Sample page's temperature); default 1.0, what --write "
        "stores",
    )
    evaluate.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="store the numbers in each checkpoint's metadata under 'evaluation' and the GAN vs "
        "VAE page's numbers in checkpoints/<dataset>/comparison.json, where they differ beyond "
        "float noise (default: no, measuring changes no file)",
    )
    evaluate.add_argument(
        "--report", type=Path, help="also write the numbers as JSON to this file (outside checkpoints/)"
    )
    evaluate.add_argument("--data", help="dataset folder (default: $GENMODELS_DATA or ./data)")
    evaluate.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])

    summarize = commands.add_parser(
        "summarize", help="rebuild the bundled data summary of a dataset from the real files"
    )
    summarize.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    summarize.add_argument("--data", help="dataset folder (default: $GENMODELS_DATA or ./data)")
    summarize.add_argument(
        "--out", type=Path, help="output file (default: genmodels/assets/<dataset>_summary.safetensors)"
    )
    umap = commands.add_parser("umap", help="refit the shipped UMAP map of the VAE latents of the bundled test images")
    umap.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    umap.add_argument("--seed", type=int, default=0)
    encoders = [kind for kind in generator_kinds() if KINDS[kind].encodes]
    umap.add_argument("--model", choices=encoders, default=encoders[0], help="the VAE whose latent space is mapped")
    return parser


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return choice


def _check_writable(out: Path, suffixes: Sequence[str], flag: str = "--out") -> None:
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {out}: unknown extension {out.suffix or '(none)'!r}; use {' or '.join(suffixes)}")
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise UsageError(f"{flag} {out}: is a folder")
    if not parent.is_dir():
        raise UsageError(f"{flag} {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"{flag} {out}: not writable")


def run_sample(args: argparse.Namespace) -> int:
    """Generate images and write them as a .png grid or a .npy uint8 array."""
    from genmodels.api import check_seed, check_strictness, check_temperature, load_generator, resolve_labels
    from genmodels.data import unit_to_uint8
    from genmodels.datasets import dataset_info
    from genmodels.images import grid_png

    out = args.out if args.out is not None else Path(f"samples_{args.dataset}_{args.model}.png")
    num_classes = dataset_info(args.dataset).num_classes
    try:
        check_seed(args.seed)
        check_temperature(args.temperature)
        if args.strictness is not None:
            check_strictness(args.strictness)
            if args.without_critic:
                raise ValueError("--strictness sets the critic's rejection sampling; --without-critic switches it off")
        resolve_labels(args.label, args.n, num_classes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    nrow = args.nrow if args.nrow is not None else (args.n if args.label == "all" and args.n > 1 else 10)
    if not 1 <= nrow <= 1000:
        raise UsageError(f"--nrow must be between 1 and 1000, got {nrow}")
    _check_writable(out, OUT_SUFFIXES)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise UsageError(f"--checkpoint {args.checkpoint}: no such file")

    model = load_generator(args.model, args.dataset, checkpoint=args.checkpoint, device=_device(args.device))
    if args.label is not None and not model.supports_labels:
        raise UsageError(f"the {args.dataset} {args.model} has no label mapper; sample it without --label")
    if (args.without_critic or args.strictness is not None) and model.critic is None:
        raise UsageError(f"the {args.dataset} {args.model} has no sampling critic to draw without or make stricter")
    if args.without_critic:
        model = model.without_critic()
    elif args.strictness is not None:
        model = model.with_strictness(args.strictness)
    samples = model.sample(args.n, label=args.label, seed=args.seed, temperature=args.temperature)
    if out.suffix.lower() == ".npy":
        buffer = npy_bytes(unit_to_uint8(samples.images).numpy())
    else:
        buffer = grid_png(samples.images, nrow=nrow)
    try:
        out.write_bytes(buffer)
    except OSError as exc:
        raise OSError(f"cannot write {out}: {exc.strerror or exc}") from None
    what = "unconditional" if args.label is None else ("every class" if args.label == "all" else f"class {args.label}")
    screened = ""
    if model.critic is not None:
        screened = ", screened by its critic" + (
            "" if model.strictness == 1 else f" at strictness {model.strictness:g}"
        )
    print(
        f"wrote {len(samples.images)} {args.dataset} {args.model} images ({what}, seed {args.seed}{screened}) to {out}"
    )
    return 0


def npy_bytes(array: Any) -> bytes:
    """An array in .npy format (no pickles)."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


LOWEST_CLASS = "per_class_accuracy"  # a list: its row shows the lowest class and its share
TABLE_ROWS = (
    ("class accuracy", "class_accuracy", "{:.2%}"),
    ("  lowest class", LOWEST_CLASS, "{:.2%}"),
    ("  cross-check (pixel MLP)", "class_accuracy_crosscheck", "{:.2%}"),
    ("class confidence", "class_confidence", "{:.3f}"),
    ("S1 accuracy (100 images)", "s1_accuracy", "{:.0%}"),
    ("FID (classifier features)", "fid", "{:.2f}"),
    ("classifier score", "classifier_score", "{:.2f}"),
    ("coverage KL (nats)", "coverage_kl", "{:.4f}"),
    ("precision", "precision", "{:.3f}"),
    ("recall", "recall", "{:.3f}"),
    ("density", "density", "{:.3f}"),
    ("coverage", "coverage", "{:.3f}"),
    ("memorisation distance ratio", "memorisation_distance_ratio", "{:.3f}"),
    ("memorisation copy share", "memorisation_copy_share", "{:.2%}"),
    ("latent step (features)", "latent_step_mean", "{:.2f}"),
    ("latent path length (PPL)", "latent_ppl", "{:.0f}"),
    ("latent jump ratio", "latent_jump_ratio", "{:.2f}"),
    ("test -ELBO (nats/image)", "test_neg_elbo", "{:.2f}"),
    ("seconds (wall)", "seconds", "{:.1f}"),
    ("seconds (CPU, all threads)", "cpu_seconds", "{:.1f}"),
)
REAL_ROWS = (
    ("classifier test accuracy", "classifier_test_accuracy", "{:.2%}"),
    ("  lowest class", f"classifier_test_{LOWEST_CLASS}", "{:.2%}"),
    ("cross-check test accuracy", "crosscheck_test_accuracy", "{:.2%}"),
    ("S0 accuracy (100 real test images)", "s0_accuracy", "{:.0%}"),
    ("real FID floor (train vs test)", "real_fid_floor", "{:.2f}"),
    ("real classifier score", "real_classifier_score", "{:.2f}"),
    ("real precision / recall", None, None),
)


def format_table(result: dict[str, Any], kinds: Sequence[str]) -> str:
    """A readable table of an evaluate_dataset result: real-data numbers, then one column per generator."""
    from genmodels.datasets import dataset_info
    from genmodels.evaluation import WITHOUT_CRITIC

    classes = dataset_info(result["dataset"]).classes
    lines = [f"{result['dataset']}: {result['samples']} samples per measure, seed {result['seed']}"]
    if result.get("temperature", 1.0) != 1.0:
        lines[0] += f", generators drawn at temperature {result['temperature']}"
    lines.append("")
    for title, key, fmt in REAL_ROWS:
        if key is None:
            value = f"{result['real_precision']:.3f} / {result['real_recall']:.3f}"
        else:
            value = _cell(result.get(key), key, fmt, classes)
        if value is not None:
            lines.append(f"{title:<36}{value}")
    columns = {}  # header -> key prefix: each generator, then its draws without its critic where measured
    for kind in kinds:
        columns[kind] = kind
        if any(key.startswith(f"{kind}_{WITHOUT_CRITIC}_") for key in result):
            columns[f"{kind} raw"] = f"{kind}_{WITHOUT_CRITIC}"
    lines += ["", f"{'':<30}" + "".join(f"{header:>14}" for header in columns)]
    for title, key, fmt in TABLE_ROWS:
        cells = [_cell(result.get(f"{prefix}_{key}"), key, fmt) for prefix in columns.values()]
        if any(cell is not None for cell in cells):
            lines.append(f"{title:<30}" + "".join(f"{'-' if cell is None else cell:>14}" for cell in cells))
    if len(columns) > len(kinds):
        lines += ["", "raw: the same generator drawn without its critic's rejection sampling"]
    return "\n".join(lines)


def _cell(value: Any, key: str, fmt: str, classes: Sequence[str] | None = None) -> str | None:
    """One formatted number (None for a missing one); a per-class list as its lowest share, named from `classes`."""
    if key.endswith(LOWEST_CLASS):
        shares = [(share, c) for c, share in enumerate(value or []) if share is not None]
        if not shares:
            return None
        share, c = min(shares)
        return f"{fmt.format(share)} ({classes[c]})" if classes else fmt.format(share)
    return None if value is None else fmt.format(value)


def _check_report(path: Path) -> None:
    """--report may write any .json file outside the checkpoints folder, which only --write changes."""
    from genmodels.paths import checkpoints_dir

    _check_writable(path, (".json",), "--report")
    if path.resolve().is_relative_to(checkpoints_dir().resolve()):
        raise UsageError(f"--report {path}: inside the checkpoints folder, which only --write changes")


def run_evaluate(args: argparse.Namespace) -> int:
    """Measure the shipped checkpoints and print them; store them in the checkpoints only with --write."""
    from genmodels import compare, evaluation
    from genmodels.api import check_seed, check_temperature
    from genmodels.kinds import generator_kinds
    from genmodels.preview import read_preview, write_preview

    try:
        evaluation.check_samples(args.n)
        check_seed(args.seed)
        check_temperature(args.temperature)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.write and args.temperature != 1.0:
        raise UsageError(
            "--write stores the numbers every page shows, drawn at temperature 1.0; measure other temperatures "
            "without it"
        )
    if args.report is not None:
        _check_report(args.report)
    evaluation.require_data(args.dataset, args.data)
    progress = None if args.json else (lambda message: print(f"... {message}", file=sys.stderr, flush=True))
    result = evaluation.evaluate_dataset(
        args.dataset,
        n=args.n,
        seed=args.seed,
        data_root=args.data,
        device=_device(args.device),
        progress=progress,
        temperature=args.temperature,
    )
    failed = [kind for kind in generator_kinds() if f"{kind}_error" in result]
    if args.write:
        for path in evaluation.write_evaluation(result):
            print(f"... wrote evaluation into {path}", file=sys.stderr)
        path = compare.comparison_path(args.dataset)
        if failed:  # the page compares every generator: its numbers wait until all of them load
            print(f"... left {path} as it was: not every generator was measured", file=sys.stderr)
        elif compare.write_comparison(compare.measure_comparison(args.dataset, device=_device(args.device)), path):
            print(f"... wrote the GAN vs VAE page's numbers into {path}", file=sys.stderr)
        if not failed and read_preview(args.dataset) is None:  # drawn again only when missing or stale
            print(f"... wrote the Sample page's default view into {write_preview(args.dataset)}", file=sys.stderr)
    text = json.dumps(result, indent=2)
    if args.report is not None:
        args.report.write_text(text + "\n")
    print(text if args.json else format_table(result, generator_kinds()))
    for kind in failed:
        print(f"error: {kind} not measured: {result[f'{kind}_error']}", file=sys.stderr)
    return 1 if failed else 0


def _refuse_overwriting_a_model(path: Path) -> None:
    """--out may replace an earlier summary, never another file (a checkpoint, say)."""
    from genmodels.checkpoint import CheckpointError, read_metadata

    if not path.exists():
        return
    try:
        kind = read_metadata(path).get("kind")
    except CheckpointError:
        kind = None
    if kind != "data_summary":
        raise UsageError(f"--out {path} exists and is not a data summary; choose another file")


def run_summarize(args: argparse.Namespace) -> int:
    """Rebuild the bundled summary file of a dataset from the real files."""
    from genmodels.evaluation import require_data
    from genmodels.summary import compute_summary, write_summary

    if args.out is not None:
        _check_writable(args.out, (".safetensors",))
        _refuse_overwriting_a_model(args.out)
    require_data(args.dataset, args.data)
    path = write_summary(compute_summary(args.dataset, args.data), args.out)
    print(f"wrote the {args.dataset} summary to {path}")
    return 0


def run_umap(args: argparse.Namespace) -> int:
    """Fit UMAP to the VAE latents of the bundled test subset (umap-learn) and ship its coordinates."""
    from genmodels import api
    from genmodels.latent import real_latent_map, summary_images
    from genmodels.projection import fit_umap, write_umap
    from genmodels.summary import load_summary

    vae = api.load_generator(args.model, args.dataset, device="cpu")
    lmap = real_latent_map(vae.module, summary_images(load_summary(args.dataset, prefer_full=False)))
    coords = fit_umap(lmap.latents, args.seed)
    path = write_umap(args.dataset, args.model, coords, vae.meta["weights_sha256"], args.seed)
    print(f"wrote the {args.dataset} UMAP map of the {args.model} to {path}")
    return 0


COMMANDS = {"sample": run_sample, "evaluate": run_evaluate, "summarize": run_summarize, "umap": run_umap}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the command; errors become one `error: ...` line on stderr and exit code 2 or 1."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, ValueError) as exc:  # CheckpointError, DataMissingError, failed writes
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return RUNTIME_EXIT

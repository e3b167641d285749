"""python -m bench [--json] [--quick] [--only SECTION[,SECTION]] [--device cpu|cuda]: measure, then print a table or
JSON."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from bench import report
from bench.timing import cpu_load
from genmodels.checkpoint import CheckpointError
from genmodels.data import DataMissingError
from genmodels.memory import keep_freed_memory_for_reuse
from genmodels.paths import data_dir

SECTIONS = ("train", "quality", "sample", "app", "invert")  # the default run
# minutes more, only with --only: where the GAN step tops out; images/s on 1, 2 (.. n GPUs) processes
OPT_IN_SECTIONS = ("ceiling", "scale")
FULL = {
    "repeats": 5,
    "seconds": 3.0,
    "quality_budget_s": 480.0,
    "check_images": 12_800,
    "sample_repeats": 50,
    "page_repeats": 5,
    "first_visit_pages": None,  # every page
    "app_datasets": None,  # both datasets: first visits and warm renders
    "app_preload": True,  # each first visit waits for its fresh server's background preload (about 30 s on 2 cores)
    "ceiling_batches": (256, 1024, 4096),
    "ceiling_repeats": 3,
    "invert_repeats": 10,
    "scale_steps": 240,
}
GPU = {**FULL, "seconds": 1.5, "quality_budget_s": 300.0}  # keeps a --device cuda run within about 8 minutes
QUICK = {
    "repeats": 1,
    "seconds": 0.2,
    "quality_budget_s": 1.0,
    "check_images": 1_280,
    "sample_repeats": 2,
    "page_repeats": 1,
    "first_visit_pages": ("data",),
    "app_datasets": ("mnist",),
    "app_preload": False,  # a smoke test: the visit's server and the render probe load what the pages need, no more
    "ceiling_batches": (32, 64),
    "ceiling_repeats": 1,
    "invert_repeats": 1,
    "scale_steps": 12,
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit code 2, like the other two commands
        print(f"error: {message} (see python -m bench --help)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m bench", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument(
        "--quick", action="store_true", help="tiny repetitions and budgets: checks that everything runs, not how fast"
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated sections among {', '.join(SECTIONS + OPT_IN_SECTIONS)} (default: {', '.join(SECTIONS)})",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's, one per core); 1 is steadier on a machine others keep busy",
    )
    parser.add_argument(
        "--dataset",
        default="mnist",
        choices=["mnist", "fashion"],
        help="training data of the train and quality sections",
    )
    args = parser.parse_args(argv)
    args.sections = SECTIONS if args.only is None else tuple(s.strip() for s in args.only.split(",") if s.strip())
    if not args.sections:
        parser.error("--only: name at least one section")
    unknown = [s for s in args.sections if s not in SECTIONS + OPT_IN_SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose among {', '.join(SECTIONS + OPT_IN_SECTIONS)}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU here")
    return args


def machine(device: torch.device) -> dict[str, Any]:
    """What ran the benchmark: CPU model, cores, threads, torch version and GPU."""
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def measure(
    args: argparse.Namespace, settings: dict[str, Any], device: torch.device, root: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """The requested sections' results, keyed as in the JSON."""
    results: dict[str, Any] = {}
    if "train" in args.sections:
        from bench import throughput

        results["train"] = throughput.measure(device, root, args.dataset, settings["repeats"], settings["seconds"], log)
    if "ceiling" in args.sections:
        from bench import ceiling

        results["ceiling"] = ceiling.measure(
            device, args.dataset, settings["ceiling_batches"], settings["ceiling_repeats"], settings["seconds"], log
        )
    if "scale" in args.sections:
        from bench import scale

        results["scale"] = scale.measure(device, args.dataset, root, settings["scale_steps"], log)
    if "quality" in args.sections:
        from bench import quality

        results["time_to_quality"] = {
            kind: quality.measure(
                kind, args.dataset, device, root, settings["quality_budget_s"], settings["check_images"], log
            )
            for kind in quality.quality_kinds()
        }
    if "sample" in args.sections:
        from bench import sampling

        results["sample"] = sampling.measure(device, settings["sample_repeats"], log)
    if "app" in args.sections:
        if device.type != "cpu":
            results["app"] = {"skipped": "the app is measured on the CPU runs only"}
        elif importlib.util.find_spec("streamlit") is None:
            results["app"] = {"skipped": "streamlit is not installed"}
        else:
            from bench import app

            results["app"] = app.measure(
                settings["page_repeats"],
                log,
                settings["first_visit_pages"],
                settings["app_datasets"],
                preload=settings["app_preload"],
            )
    if "invert" in args.sections:
        if device.type != "cpu":
            results["invert"] = {"skipped": "inversion is measured on the CPU runs only"}
        else:
            from bench import invert

            results["invert"] = invert.measure(settings["invert_repeats"], log)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else GPU if args.device == "cuda" else FULL
    device = torch.device(args.device)
    threads = (
        1 if args.quick and args.threads is None else args.threads
    )  # quick: a smoke test, steady on a busy machine
    if threads is not None:
        torch.set_num_threads(threads)
    keep_freed_memory_for_reuse()  # as `python -m train` does; the reference loops share this process and gain alike
    root = str(data_dir())
    log = lambda message: print(message, file=sys.stderr, flush=True)
    results: dict[str, Any] = {"machine": machine(device), "quick": args.quick, "load_before": cpu_load()}
    started = time.perf_counter()
    try:
        results.update(measure(args, settings, device, root, log))
    except (DataMissingError, CheckpointError) as exc:  # no dataset here and none to download, or a shipped model gone
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results["load_after"] = cpu_load()
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(results, indent=2) if args.json else report.table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

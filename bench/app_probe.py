"""Run in its own process by bench.app: warm AppTest renders of every page on each dataset, an upload through the
Your image page on each, the server's background preload (unless --no-preload), then the peak RSS.

Prints one JSON object: {"pages": {page: {dataset: [seconds, ...]}}, "errors": [...], "peak_rss_mb": float}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINT = REPO_ROOT / "app.py"
TIMEOUT_S = 300


def page_files() -> list[str]:
    """The app's pages that exist, in navigation order."""
    from views import PAGES

    return [str(view.path.relative_to(REPO_ROOT)) for view in PAGES]


def render_times(repeats: int, datasets: list[str]) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    """Seconds per warm render of each page on each of `datasets` (the first render of each is the cold one, not
    kept)."""
    from streamlit.testing.v1 import AppTest

    # as in a server, app.py runs before anything has loaded PyTorch (it sets the process's malloc thresholds first)
    AppTest.from_file(str(ENTRY_POINT), default_timeout=TIMEOUT_S).run()
    times: dict[str, dict[str, list[float]]] = {}
    errors: list[str] = []
    for page in page_files():
        times[page] = {}
        for dataset in datasets:
            app = AppTest.from_file(str(ENTRY_POINT), default_timeout=TIMEOUT_S)
            app.session_state["dataset"] = dataset
            app.switch_page(page)
            app.run()
            if app.exception:
                errors.append(f"{page} ({dataset}): {app.exception[0].message}")
            runs = []
            for _ in range(repeats):
                start = time.perf_counter()
                app.run()
                runs.append(time.perf_counter() - start)
            times[page][dataset] = runs
    return times, errors


def your_image_inputs(errors: list[str], datasets: list[str]) -> None:
    """One upload through the Your image page per dataset: its models, UMAP map and neighbour index stay loaded."""
    from streamlit.testing.v1 import AppTest

    from bench.invert import _targets, _upload_png

    for dataset in datasets:
        app = AppTest.from_file(str(ENTRY_POINT), default_timeout=TIMEOUT_S)
        app.session_state["dataset"] = dataset
        app.session_state["your_image_mode"] = "Upload"
        app.switch_page("views/your_image.py")
        app.run()
        (target,), _ = _targets(dataset, 1)
        app.file_uploader(key=f"your_image_upload_{dataset}").set_value(("probe.png", _upload_png(target), "image/png"))
        app.run()
        if app.exception:
            errors.append(f"views/your_image.py with an upload ({dataset}): {app.exception[0].message}")


def run_preload() -> None:
    """What a server's background preload holds (views.shared.preload: every model of both datasets, in the app's
    own caches, and what the pages show by default), run to its end after the timed renders."""
    from views.shared import preload

    thread = threading.Thread(target=preload)  # its own thread: it lowers that thread's priority
    thread.start()
    thread.join()


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: the kernel's high-water mark of its own address space.

    Not `ru_maxrss`: Linux carries that over `exec` from the process that spawned this one, so under
    `python -m bench` it reported the benchmark's own ~1.6 GB instead of the app's.
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.app_probe")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--datasets", default=None, help="comma-separated dataset names (default: all)")
    parser.add_argument("--no-preload", action="store_true", help="peak RSS of the pages alone, without the preload")
    args = parser.parse_args()
    from genmodels.datasets import DATASETS

    datasets = args.datasets.split(",") if args.datasets else list(DATASETS)
    from views.common import PRELOAD_ENV

    os.environ[PRELOAD_ENV] = "0"  # the renders are timed without the preload running beside them; it runs below
    times, errors = render_times(args.repeats, datasets)
    your_image_inputs(errors, datasets)
    if not args.no_preload:
        run_preload()
    json.dump({"pages": times, "errors": errors, "peak_rss_mb": round(peak_rss_mb(), 1)}, sys.stdout)


if __name__ == "__main__":
    main()

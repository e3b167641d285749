"""The app: seconds from `streamlit run` to the first page, warm page renders under AppTest, peak RSS."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.timing import percentile

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 60
PROBE_TIMEOUT_S = 900


def measure(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """First page served (HTTP, and rendered in Chromium when Playwright is there), warm page p50s and peak RSS."""
    out: dict[str, Any] = first_page()
    log(
        f"app first page: {out['first_page_s']} s, its samples {out.get('first_samples_s', '-')} s "
        f"({out['first_page_measure']})"
    )
    probe = subprocess.run(
        [sys.executable, "-m", "bench.app_probe", "--repeats", str(repeats)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
    )
    if probe.returncode != 0:
        raise RuntimeError(f"bench.app_probe failed: {probe.stderr[-2000:]}")
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    pages = {
        Path(page).stem: round(percentile([t for runs in by_dataset.values() for t in runs], 50), 3)
        for page, by_dataset in result["pages"].items()
    }
    out.update(
        pages_p50_s=pages,
        page_p50_s=max(pages.values()),
        slowest_page=max(pages, key=pages.get),
        page_errors=result["errors"],
        peak_rss_mb=result["peak_rss_mb"],
        render_repeats=repeats,
    )
    log(f"app pages warm p50: {pages}; peak RSS {result['peak_rss_mb']} MB")
    return out


def first_page() -> dict[str, Any]:
    """Seconds from launching `streamlit run app.py` until GET / answers, and until Chromium (started beforehand) shows
    the first page's heading and then its first generated images."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with _browser_page() as page:
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            served = _wait_for_http(url, started) - started
            out: dict[str, Any] = {
                "first_page_s": round(served, 2),
                "first_page_measure": "GET / answered after streamlit run",
            }
            if page is not None:
                page.goto(url)
                page.wait_for_selector(
                    '[data-testid="stMain"] [data-testid="stHeading"]', timeout=START_TIMEOUT_S * 1000
                )
                rendered = time.perf_counter() - started
                page.wait_for_selector('[data-testid="stMain"] [data-testid="stImage"]', timeout=START_TIMEOUT_S * 1000)
                samples = time.perf_counter() - started
                out.update(
                    served_s=out["first_page_s"],
                    first_page_s=round(rendered, 2),
                    first_samples_s=round(samples, 2),
                    first_page_measure="first page's heading visible in headless Chromium after streamlit run; "
                    "first_samples_s: its first generated images visible",
                )
            return out
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_http(url: str, started: float) -> float:
    while time.perf_counter() - started < START_TIMEOUT_S:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter()
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"streamlit did not answer {url} within {START_TIMEOUT_S} s")


@contextlib.contextmanager
def _browser_page() -> Iterator[Any]:
    """A headless Chromium page (Playwright), or None when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        yield None
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser.new_page()
        finally:
            browser.close()

"""The app: seconds from `streamlit run` to the first page, cold first visits per page in Chromium, warm page
renders under AppTest, peak RSS."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
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
VISIT_TIMEOUT_S = 120
QUIET_MS = 600  # a page has settled once its script is done and nothing in it changed for this long
# Resolves with the ms (page clock) of the last change under stMain once the script finished (the state Streamlit's
# own end-to-end tests read), no spinner shows,
# every image is decoded, the main thread was never blocked and nothing changed for QUIET_MS: the moment the page
# looked done to its visitor.
SETTLED_JS = """quiet => new Promise(resolve => {
  const BLOCKED_MS = 200;
  const main = document.querySelector('[data-testid="stMain"]');
  let last = performance.now();
  new MutationObserver(() => { last = performance.now(); })
    .observe(main, {subtree: true, childList: true, attributes: true, characterData: true});
  const busy = () => {
    const state = document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state');
    return state === 'running' || state === 'rerunRequested'
      || document.querySelector('[data-testid="stMain"] [data-testid="stSpinner"]')
      || [...main.querySelectorAll('img')].some(img => !img.complete);
  };
  let polled = performance.now();
  const poll = () => {
    const now = performance.now();
    // a poll that came late means the main thread was blocked (a long task, e.g. a chart library's script being
    // compiled): the page was frozen, not settled, and what that task draws comes after it
    if (busy() || now - polled > BLOCKED_MS) { last = now; }
    polled = now;
    if (now - last >= quiet) { resolve(last); } else { setTimeout(poll, 50); }
  };
  poll();
})"""


def measure(
    repeats: int,
    log: Callable[[str], None],
    visit_pages: tuple[str, ...] | None = None,
    datasets: tuple[str, ...] | None = None,
    preload: bool = True,
) -> dict[str, Any]:
    """First page served (HTTP, and rendered in Chromium when Playwright is there), each page's cold first visit
    (`visit_pages`: all when None), warm page p50s and peak RSS, on `datasets` (names; all when None). `preload`:
    each first visit's server runs its background preload and the visit waits for its end, and the peak RSS
    includes it (without: what the pages loaded)."""
    out: dict[str, Any] = first_page()
    log(
        f"app first page: {out['first_page_s']} s, its samples {out.get('first_samples_s', '-')} s "
        f"({out['first_page_measure']})"
    )
    visits = first_visits(visit_pages, datasets, preload)
    if visits:
        out.update(visits)
        log(
            f"app first visits (server warm), p50 over pages and datasets {visits['first_visit_p50_s']} s, "
            f"slowest {visits['first_visit_max_s']} s: {visits['first_visit_s']}"
        )
    probe = subprocess.run(
        [sys.executable, "-m", "bench.app_probe", "--repeats", str(repeats)]
        + (["--datasets", ",".join(datasets)] if datasets else [])
        + ([] if preload else ["--no-preload"]),
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
        peak_rss_preloaded=preload,
        render_repeats=repeats,
    )
    log(f"app pages warm p50: {pages}; peak RSS {result['peak_rss_mb']} MB")
    return out


def first_page() -> dict[str, Any]:
    """Seconds from launching `streamlit run app.py` until GET / answers, and until Chromium (started beforehand) shows
    the first page's heading and then its first generated images."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    command = streamlit_command(port)
    with _browser() as browser:
        page = None if browser is None else browser.new_page()
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
                page.wait_for_selector('[data-testid="stMain"] img', timeout=START_TIMEOUT_S * 1000)  # any image drawn
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
            _stop(server)


def first_visits(
    pages: tuple[str, ...] | None = None, datasets: tuple[str, ...] | None = None, preload: bool = True
) -> dict[str, Any]:
    """Seconds from a click on each page's link until that page settles in Chromium, on a warm server: a fresh
    `streamlit run` per page and dataset, where one other page was opened first (the server's imports and that
    page's models are loaded) but this page never ran in the process. Empty without Playwright and Chromium.
    `pages` / `datasets` (names) narrow it down while working on one page; `preload`: the server runs its background
    preload and the visit waits for its end."""
    from genmodels.datasets import DATASETS
    from views import PAGES

    times: dict[str, dict[str, float]] = {}
    ready: list[float] = []
    with _browser() as browser:
        if browser is None:
            return {}
        for view in PAGES:
            if pages is not None and view.name not in pages:
                continue
            times[view.name] = {}
            warm_up = PAGES[1] if view == PAGES[0] else PAGES[0]
            for dataset in DATASETS.values():
                if datasets is not None and dataset.name not in datasets:
                    continue
                with _server(preload) as (url, log, started):
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    try:
                        page = context.new_page()
                        page.goto(url + warm_up.name if warm_up != PAGES[0] else url)
                        _settle(page, None)
                        if dataset.name != next(iter(DATASETS)):
                            _pick_dataset(page, dataset.title)
                        if preload:
                            ready.append(_wait_for_preload(log) - started)
                        times[view.name][dataset.name] = _visit(page, view.title)
                    finally:
                        context.close()
    flat = [t for by_dataset in times.values() for t in by_dataset.values()]
    return {
        "first_visit_s": times,
        "first_visit_p50_s": round(percentile(flat, 50), 2),
        "first_visit_max_s": max(flat),
        "slowest_first_visit": max(times, key=lambda p: max(times[p].values())),
        **({"server_ready_p50_s": round(percentile(ready, 50), 1)} if ready else {}),
        "first_visit_measure": "click on the page's link until it settled (script done, no spinner, images decoded); "
        "fresh server per page and dataset, one other page opened first and "
        + (
            "the server's background preload done (server_ready_p50_s: from streamlit run until the server logged "
            "the end of its preload)"
            if preload
            else "no background preload"
        ),
    }


def _visit(page: Any, title: str) -> float:
    """Seconds from clicking the page's link in the sidebar until the page settled."""
    link = page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True)
    clicked = page.evaluate("performance.now()")
    link.click()
    return _settle(page, clicked)


def _settle(page: Any, since_ms: float | None) -> float:
    """Wait until the page settled; seconds from `since_ms` (page clock) to its last change."""
    page.wait_for_selector('[data-testid="stMain"] [data-testid="stHeading"]', timeout=VISIT_TIMEOUT_S * 1000)
    if since_ms is None:
        since_ms = page.evaluate("performance.now()")
    last = page.evaluate(SETTLED_JS, QUIET_MS)
    return round(max(0.0, last - since_ms) / 1000, 2)


def _pick_dataset(page: Any, title: str) -> None:
    """Choose a dataset in the sidebar's picker and wait for the page to settle on it."""
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=title, exact=True).click()
    page.wait_for_timeout(300)
    _settle(page, None)


def _wait_for_preload(log: Path) -> float:
    """Until the server's log says its background preload is done (at once where GENMODELS_PRELOAD is "0");
    returns that moment (perf_counter). Gives up after VISIT_TIMEOUT_S."""
    from views.common import PRELOAD_ENV, PRELOADED

    deadline = time.perf_counter() + VISIT_TIMEOUT_S
    while os.environ.get(PRELOAD_ENV, "1") != "0" and time.perf_counter() < deadline:
        if PRELOADED in log.read_text(errors="replace"):
            break
        time.sleep(0.1)
    return time.perf_counter()


@contextlib.contextmanager
def _server(preload: bool = True) -> Iterator[tuple[str, Path, float]]:
    """`streamlit run app.py` on a free port, answering, with its background preload or without; yields (its URL, its
    log file, when it was started)."""
    from views.common import PRELOAD_ENV

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tempfile.NamedTemporaryFile(prefix="bench-app-", suffix=".log", delete=False)
    started = time.perf_counter()
    env = {**os.environ, **({} if preload else {PRELOAD_ENV: "0"})}
    server = subprocess.Popen(streamlit_command(port), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_http(url, started)
        yield url, Path(log.name), started
    finally:
        _stop(server)
        log.close()
        os.unlink(log.name)


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()


def streamlit_command(port: int, *options: str) -> list[str]:
    """`streamlit run app.py` headless on `port`, without usage stats or a file watcher (the benchmark and the
    browser tests start the app this one way); `options` are more Streamlit flags."""
    return [
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
        *options,
    ]


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
def _browser() -> Iterator[Any]:
    """A headless Chromium (Playwright), or None when either is missing."""
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
            yield browser
        finally:
            browser.close()

"""The training lab in Debian's Chromium: a run started from the sidebar is followed live on the Training page with
no other click, and a break-it preset's alert shows on the page. Every run a test starts is killed at its end."""

import os
import signal
import time

import pytest

from genmodels.runs import list_runs, pid_alive
from tests import test_browser
from tests.test_browser import REAL_DATA, choose, go_to, no_exception, settle, shot

pytestmark = pytest.mark.browser
# the browser fixtures of tests/test_browser.py (one app server and one Chromium per module)
app_url, browser, page = test_browser.app_url, test_browser.browser, test_browser.page

CURVE_POINTS = """n => {
    const plots = [...document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')];
    return plots.some(gd => (gd.data || []).some(t => t.x && t.x.length > n));
}"""


def stop_every_run(runs) -> None:
    """SIGTERM each run of the folder that is still going, then SIGKILL what is left after 20 s."""
    pids = [run.status.get("pid") for run in list_runs(runs) if run.active and run.status.get("pid")]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runs(app_url):
    """The app's runs folder; every run still going when the test ends (passed, failed or timed out) is stopped."""
    if not (REAL_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the full MNIST files are not in {REAL_DATA} (set GENMODELS_DATA)")
    try:
        yield app_url[1]
    finally:
        stop_every_run(app_url[1])


def test_a_run_started_from_the_sidebar_is_followed_live(page, runs):
    go_to(page, "Training")
    settle(page)
    sidebar, main = page.locator('[data-testid="stSidebar"]'), page.locator('[data-testid="stMain"]')
    sidebar.get_by_text("Train a model").click()
    sidebar.get_by_role("spinbutton", name="Batch size", exact=True).fill("128")
    # two whole epochs (936 steps, about 30 s on two cores): the page's 10 s refreshes see the curves grow
    sidebar.get_by_role("spinbutton", name="Epochs", exact=True).fill("2")
    sidebar.get_by_role("spinbutton", name="Epochs", exact=True).press("Tab")
    sidebar.get_by_role("button", name="Start training").click()
    # from here on no click: the page follows the new run by itself
    main.locator('[data-testid="stProgress"]', has_text="refreshes every").wait_for(timeout=90_000)
    page.wait_for_function(CURVE_POINTS, arg=0, timeout=120_000)  # the first points of the curves
    points = page.evaluate(
        """() => Math.max(...[...document.querySelectorAll('[data-testid="stMain"] .js-plotly-plot')]
            .flatMap(gd => (gd.data || []).map(t => (t.x || []).length)))"""
    )
    page.wait_for_function(CURVE_POINTS, arg=points, timeout=120_000)  # ... and more of them
    # the run's settings and layers, written after the page first showed it, are there without a click too
    main.get_by_text("Built from").first.wait_for(timeout=30_000)
    assert main.get_by_text("The run is starting").count() == 0
    shot(page, "training-lab-live-curves")
    main.get_by_text("samples after epoch 1").wait_for(timeout=240_000)  # the first epoch's grid, mid-run
    main.get_by_text("finished").first.wait_for(timeout=240_000)
    settle(page)
    no_exception(page)
    shot(page, "training-lab-live-finished")


def test_a_break_it_preset_shows_its_alert_on_the_page(page, runs):
    go_to(page, "Training")
    settle(page)
    sidebar, main = page.locator('[data-testid="stSidebar"]'), page.locator('[data-testid="stMain"]')
    sidebar.get_by_text("Break it: failure presets").click()
    choose(page, sidebar, "Preset", "A beta = 50 VAE")
    sidebar.get_by_text("the detector should raise posterior collapse").wait_for()
    sidebar.get_by_role("button", name="Start this preset").click()
    main.locator('[data-testid="stAlert"]', has_text="Posterior collapse").wait_for(timeout=240_000)
    settle(page)
    no_exception(page)
    shot(page, "training-lab-preset-alert")

"""The real app in Debian's Chromium: every page, dataset across page switches, Sample and Latent space interactions,
and a training run launched from the sidebar, watched and cancelled."""

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bench.app import streamlit_command
from genmodels.paths import REPO_ROOT
from views import PAGES as VIEWS

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
REAL_DATA = Path(os.environ.get("GENMODELS_DATA") or "/work/shared/datasets")
PAGES = tuple(view.title for view in VIEWS)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(runs: Path):
    """(server process, url, log file) of `streamlit run app.py` on a free port, once it accepts connections."""
    port = free_port()
    env = {**os.environ, "GENMODELS_RUNS": str(runs), "GENMODELS_DATA": str(REAL_DATA)}
    log = open(runs.parent / f"streamlit-{port}.log", "wb")
    server = subprocess.Popen(
        streamlit_command(port),
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with {server.returncode}: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.3)
    return server, url, log


def stop_app(server, log) -> None:
    server.terminate()
    server.wait(timeout=20)
    log.close()


def require_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`streamlit run app.py` on a free port, with an empty runs folder; stopped after the module."""
    require_browser()
    runs = tmp_path_factory.mktemp("browser_runs")
    server, url, log = start_app(runs)
    yield url, runs
    stop_app(server, log)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(45_000)
    page.goto(app_url[0])
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def go_to(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
    page.locator("h1").filter(has_text=title.split()[0]).first.wait_for()


def settle(page) -> None:
    """Wait until the script run in progress (the 'Running...' widget) is over."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=90_000)


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).first.inner_text()


def choose(page, container, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label` inside `container`."""
    container.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def every_model(page, dataset: str) -> None:
    """Each shipped generator of `dataset` on the Sample page, and each shipped VAE's map on the Latent space page."""
    from genmodels.checkpoint import shipped_generators
    from genmodels.kinds import KINDS

    main = page.locator('[data-testid="stMain"]')
    for title, box, kinds in (
        ("Sample", "Model", shipped_generators(dataset)),
        ("Latent space", "VAE", [k for k in shipped_generators(dataset) if KINDS[k].encodes]),
    ):
        go_to(page, title)
        settle(page)
        for kind in kinds:
            choose(page, main, box, KINDS[kind].display_title)
            settle(page)
            no_exception(page)
            assert main.locator('[data-testid="stImage"]').count() > 0, (title, kind)
            shot(page, f"{title.lower().replace(' ', '_')}-{kind}-{dataset}")


def test_every_page_and_dataset_across_page_switches(page):
    sidebar = page.locator('[data-testid="stSidebar"]')
    for title in PAGES:
        go_to(page, title)
        settle(page)
        no_exception(page)
        shot(page, f"page-{title.lower().replace(' ', '_')}-mnist")
    every_model(page, "mnist")
    go_to(page, "Data")
    choose(page, sidebar, "Dataset", "Fashion-MNIST")
    page.locator("h1", has_text="Data: Fashion-MNIST").wait_for()
    every_model(page, "fashion")
    go_to(page, "Training")
    training_log = page.get_by_role("combobox", name="Training log", exact=True)
    training_log.wait_for()
    assert "Fashion-MNIST" in training_log.input_value()
    go_to(page, "Data")
    page.locator("h1", has_text="Data: Fashion-MNIST").wait_for()
    settle(page)
    assert sidebar.get_by_role("combobox", name="Dataset", exact=True).input_value() == "Fashion-MNIST"
    no_exception(page)
    shot(page, "data-fashion-after-page-switch")


def test_gan_vs_vae_draws_its_samples_inline_without_a_chart_library(page):
    go_to(page, "GAN vs VAE")
    settle(page)
    no_exception(page)
    images = page.locator('[data-testid="stMain"] figure img')
    images.nth(39).wait_for()  # a loaded machine can go quiet before the last gallery is drawn
    assert images.count() >= 40  # four models' galleries and strips
    sizes = images.evaluate_all("imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert all(done and width == 56 for done, width in sizes), sizes  # decoded, at twice the 28-pixel size
    assert page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"]').count() == 0
    shot(page, "gan-vs-vae-mnist")


def test_sample_a_class(page):
    go_to(page, "Sample")
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stImage"]').first.wait_for()
    choose(page, main, "Class", "7")
    page.locator('[data-testid="stImageCaption"]', has_text="7").first.wait_for()
    before = main.locator('[data-testid="stImage"] img').first.get_attribute("src")
    main.get_by_role("button", name="Re-roll").click()
    page.wait_for_function(
        'src => document.querySelector(\'[data-testid="stMain"] [data-testid="stImage"] img\').src !== src', arg=before
    )
    no_exception(page)
    shot(page, "sample-class-7")


def test_latent_space_select_a_point(page):
    go_to(page, "Latent space")
    plot = page.locator('[data-testid="stMain"] [data-testid="stPlotlyChart"] .js-plotly-plot').first
    plot.wait_for()
    point_input = page.get_by_label("Point (", exact=False)
    before = point_input.input_value()
    # the pixel position of a data point far from the inspected one, computed from Plotly's own axes
    x, y = page.evaluate("""() => {
        const gd = document.querySelector('[data-testid="stMain"] [data-testid="stPlotlyChart"] .js-plotly-plot');
        const layout = gd._fullLayout, trace = gd._fullData.find(t => t._length > 20);
        const i = Math.floor(trace._length / 2), box = gd.getBoundingClientRect();
        return [box.left + layout._size.l + layout.xaxis.c2p(trace.x[i]),
                box.top + layout._size.t + layout.yaxis.c2p(trace.y[i])];
    }""")
    page.mouse.click(x, y)
    page.wait_for_function("([el, v]) => el.value !== v", arg=[point_input.element_handle(), before], timeout=20_000)
    no_exception(page)
    shot(page, "latent-space-selected-point")


def test_launch_watch_and_cancel_a_training_run(page, app_url):
    if not (REAL_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the full MNIST files are not in {REAL_DATA} (set GENMODELS_DATA)")
    from genmodels.checkpoint import load_model
    from genmodels.runs import list_runs

    runs = app_url[1]
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Train a model").click()
    choose(page, sidebar, "Model", "Classifier (CNN)")  # the launcher opens on a GAN
    choose(page, sidebar, "Training data", "MNIST")
    sidebar.get_by_role("spinbutton", name="Batch size", exact=True).fill("32")
    sidebar.get_by_role("spinbutton", name="Stop after steps (0 = no limit)", exact=True).fill("5000")
    sidebar.get_by_role("spinbutton", name="Epochs", exact=True).fill("1")
    sidebar.get_by_role("spinbutton", name="Epochs", exact=True).press("Tab")
    sidebar.get_by_role("button", name="Start training").click()
    started = sidebar.get_by_text("Started classifier-mnist-")
    refused = sidebar.get_by_text(re.compile("^(Not started|Training refused)"))
    started.or_(refused).first.wait_for(timeout=90_000)  # the rerun may wait behind a page still loading its models
    assert refused.count() == 0, refused.first.inner_text()
    progress = sidebar.locator('[data-testid="stProgress"]').first
    progress.filter(has_text="epoch 1/1, step ").wait_for(timeout=90_000)  # data loaded, the training loop is going
    go_to(page, "Training")  # an active run is the page's first pick, and it refreshes by itself
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stProgress"]', has_text="refreshes every").wait_for()
    progress.scroll_into_view_if_needed()
    shot(page, "training-run-progress")
    sidebar.get_by_role("button", name="Cancel").click()
    sidebar.get_by_text("was cancelled").wait_for(timeout=60_000)
    main.get_by_text("was cancelled").wait_for(timeout=20_000)  # the page's live part noticed the end on its own
    settle(page)
    no_exception(page)
    shot(page, "training-run-cancelled")
    (run,) = list_runs(runs)
    assert run.state == "cancelled" and run.status["reason"] == "stopped by SIGTERM"
    module, meta = load_model(run.model_file, kind="classifier", dataset="mnist")
    assert meta["steps_trained"] == run.status["step"] >= 1, "the step in progress was finished and saved"
    no_exception(page)
    shot(page, "training-page-cancelled-run")


def test_a_link_to_a_page_on_a_fresh_server_opens_it_inside_the_frame(browser, tmp_path):
    """The server's very first request is a link to /training: it opens inside the frame, with the sidebar."""
    require_browser()
    (tmp_path / "runs").mkdir()
    server, url, log = start_app(tmp_path / "runs")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(90_000)
        page.goto(url + "/training")  # the server's very first request
        page.get_by_role("heading", name="Training", exact=True).wait_for()
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Dataset", exact=True).wait_for()
        names = sidebar.locator('[data-testid="stSidebarNav"]').inner_text()
        assert "GAN vs VAE" in names and "common" not in names and page.url.endswith("/training")
    finally:
        context.close()
        stop_app(server, log)

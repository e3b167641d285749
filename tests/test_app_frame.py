"""The entry point and its sidebar: navigation renders, dataset picker, training launcher checks, live runs panel."""

import signal
import subprocess
import sys

import app_pages
import pytest
from streamlit.testing.v1 import AppTest

import genmodels.launch
import genmodels.runs
from genmodels.launch import TrainingRequest, check_request, parse_lr
from genmodels.paths import REPO_ROOT
from genmodels.runs import RunInfo
from views import PAGES

# Run in a fresh interpreter: app.py's frame and the sidebar, drawn, then which heavy modules were loaded.
FRAME_SCRIPT = """
from genmodels.memory import return_large_frees_to_the_os
from views import sidebar

return_large_frees_to_the_os()
sidebar.render()
"""
COLD_START = """
import sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_string(sys.argv[1], default_timeout=60).run()
assert not at.exception, at.exception
assert at.sidebar.selectbox, "no dataset picker"
print(sorted(m for m in ("torch", "torchvision", "sklearn") if m in sys.modules))
"""


def test_the_frame_and_sidebar_draw_before_pytorch_loads():
    """A cold start shows the sidebar and the default page's heading while PyTorch imports (2-3 s on 2 cores)."""
    out = subprocess.run(
        [sys.executable, "-c", COLD_START, FRAME_SCRIPT], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    sample_page = (REPO_ROOT / "views" / "sample.py").read_text()
    assert sample_page.index('st.title("Sample")') < sample_page.index("from genmodels")


def sidebar_script():
    from views import sidebar

    sidebar.render()


def open_sidebar(**state):
    at = AppTest.from_function(sidebar_script, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def submit(at, **fields):
    """Fill the launcher form (by label) and press Start."""
    for label, value in fields.items():
        widget = next(
            w for w in [*at.sidebar.text_input, *at.sidebar.number_input, *at.sidebar.selectbox] if w.label == label
        )
        widget.set_value(value)
    next(b for b in at.sidebar.button if b.label == "Start training").click()
    return at.run()


@pytest.fixture
def sleeper():
    """A real process to stand in for a training run's pid."""
    process = subprocess.Popen(["sleep", "60"])
    yield process
    process.kill()
    process.wait()


def test_app_renders_navigation_and_sidebar(runs_root):
    assert all(view.path.is_file() for view in PAGES)
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert at.sidebar.selectbox[0].label == "Dataset" and at.sidebar.selectbox[0].value == "mnist"
    assert any(b.label == "Start training" for b in at.sidebar.button)


def test_the_sidebar_is_drawn_when_the_page_stops_early(runs_root, tmp_path, monkeypatch):
    """A page that stops early (st.stop() after its error) still has the shared sidebar: the entry point draws it
    first."""
    with app_pages.checkpoints_at(tmp_path, monkeypatch):
        at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert at.error[0].value.startswith("No generator checkpoint for MNIST")
    assert any(b.label == "Start training" for b in at.sidebar.button)


def test_dataset_picker_stores_the_choice_for_every_page(runs_root):
    at = open_sidebar()
    picker = at.sidebar.selectbox(key="dataset")
    assert picker.value == "mnist" and picker.options == ["MNIST", "Fashion-MNIST"]
    picker.select("fashion").run()
    assert at.session_state["dataset"] == "fashion"
    launcher_dataset = next(s for s in at.sidebar.selectbox if s.label == "Training data")
    assert launcher_dataset.value == "fashion", "the launcher defaults to the dataset being viewed"


def test_bad_learning_rate_gets_one_clear_message(runs_root):
    at = submit(open_sidebar(), **{"Learning rate": "fast"})
    assert not at.exception
    assert [e.value for e in at.sidebar.error] == [
        "Not started: learning rate must be a number like 0.0002 or 2e-4, got 'fast'."
    ]
    assert not list(runs_root.iterdir())


def test_unwritable_runs_folder_is_refused_clearly(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("GENMODELS_RUNS", str(tmp_path / "a-file" / "runs"))
    at = submit(open_sidebar())
    message = at.sidebar.error[0].value
    assert message.startswith("Training refused: the runs folder") and "not writable" in message and not at.exception


def test_concurrency_limit_is_refused_clearly(runs_root, make_run, sleeper, monkeypatch):
    monkeypatch.setattr(genmodels.runs, "max_concurrent_runs", lambda: 1)
    make_run("gan-mnist-busy", "running", pid=sleeper.pid, step=3, total_steps=10)
    at = submit(open_sidebar())
    assert "1 runs are already going (at most 1 on this machine)" in at.sidebar.error[0].value


def test_start_launches_the_checked_request(runs_root, monkeypatch):
    calls = []

    def fake_launch(kind, dataset, **kwargs):
        calls.append((kind, dataset, kwargs))
        return RunInfo("vae-fashion-x", runs_root / "vae-fashion-x", {}, {"state": "starting"})

    monkeypatch.setattr(genmodels.launch, "launch_run", fake_launch)
    at = open_sidebar(dataset="fashion")
    at = submit(at, Model="vae", Epochs=2, **{"Stop after steps (0 = no limit)": 300, "Seed": 7})
    assert calls == [
        ("vae", "fashion", {"epochs": 2, "batch_size": 128, "lr": 1e-3, "seed": 7, "extra": ["--max-steps", "300"]})
    ]
    assert "Started vae-fashion-x" in at.sidebar.success[0].value
    assert at.session_state["launched_runs"] == ["vae-fashion-x"]


def test_active_run_shows_progress_and_cancel_stops_it(runs_root, make_run, sleeper):
    make_run("cgan-mnist-live", "running", kind="cgan", pid=sleeper.pid, epoch=0, step=50, total_steps=200)
    at = open_sidebar()
    progress = at.sidebar.get("progress")[0].proto
    assert progress.value == 25 and progress.text == "cgan on mnist: epoch 1/2, step 50/200"
    at.sidebar.button(key="cancel-cgan-mnist-live").click().run()
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert "Asked cgan-mnist-live to stop" in at.sidebar.info[0].value


def test_ended_runs_of_this_session_show_how_they_ended(runs_root, make_run):
    make_run("gan-mnist-done", "finished", reason="reached --max-steps 300")
    make_run("gan-mnist-stopped", "cancelled", reason="stopped by SIGTERM")
    make_run("gan-mnist-crash", "running", pid=2**22 + 4321, stderr="RuntimeError: boom")
    at = open_sidebar(launched_runs=["gan-mnist-done", "gan-mnist-stopped", "gan-mnist-crash"])
    assert "gan-mnist-done finished: reached --max-steps 300." in [s.value for s in at.sidebar.success]
    assert "cancelled (stopped by SIGTERM)" in at.sidebar.warning[0].value
    assert at.sidebar.error[0].value == "gan-mnist-crash crashed: the training process is gone."
    assert "RuntimeError: boom" in at.sidebar.code[0].value


def test_check_request_ranges():
    assert check_request("gan", "mnist", 3, 64, "2e-4", 1, 0) == TrainingRequest("gan", "mnist", 3, 64, 2e-4, 1, None)
    assert parse_lr("  ") is None
    for kwargs, message in [
        ({"kind": "diffusion"}, "model kind must be one of"),
        ({"dataset": "cifar"}, "dataset must be one of"),
        ({"epochs": 0}, "epochs must be between 1 and 500"),
        ({"epochs": 2.5}, "epochs must be a whole number"),
        ({"batch_size": 5000}, "batch size must be between 8 and 4096"),
        ({"lr": "0"}, "learning rate must be between"),
        ({"lr": "nan"}, "learning rate must be between"),
        ({"seed": -1}, "seed must be between 0"),
        ({"max_steps": -5}, "max steps must be between 1"),
    ]:
        args = {
            "kind": "gan",
            "dataset": "mnist",
            "epochs": 1,
            "batch_size": 64,
            "lr": "",
            "seed": 0,
            "max_steps": 0,
            **kwargs,
        }
        with pytest.raises(ValueError, match=message):
            check_request(**args)


def test_the_runs_panel_names_an_active_runs_alert(make_run, runs_root, sleeper):
    """A live run whose loss went NaN: the sidebar says so beside its progress bar."""
    make_run(
        "gan-live",
        "running",
        pid=sleeper.pid,
        total_steps=1000,
        step=300,
        records=[{"type": "step", "step": 300, "epoch": 0.3, "loss_d": float("nan"), "loss_g": 1.0}],
    )
    at = open_sidebar()
    assert not at.exception
    assert any(w.value.startswith("**Diverged** (step 300)") for w in at.sidebar.warning)


def test_views_are_thin_and_never_import_torch():
    """The views read widgets, call genmodels and render: tensor work lives in the library."""
    import ast

    for view in PAGES:
        tree = ast.parse(view.path.read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {
            node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        }
        assert "torch" not in imported, f"{view.path.name} imports torch"

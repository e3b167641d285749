"""The entry point and its sidebar: navigation renders, dataset picker, training launcher checks, live runs panel."""

import re
import signal
import subprocess
import sys

import app_pages
import pytest
from streamlit.testing.v1 import AppTest

import genmodels.launch
import genmodels.runs
from genmodels.kinds import KINDS
from genmodels.launch import TrainingRequest, changed_options, check_request, parse_lr, recipe_options
from genmodels.paths import REPO_ROOT, checkpoint_file
from genmodels.presets import PRESETS
from genmodels.recipes import OBJECTIVES
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
    before_heading = sample_page[: sample_page.index('st.title("Sample")')]
    assert "import torch" not in before_heading and "st.spinner" not in before_heading
    modules = re.findall(r"^from (genmodels[\w.]*) import", before_heading, re.MULTILINE)
    probe = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe, *modules], cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", f"{modules} import PyTorch before the Sample page's heading"


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
    """A page that stops early (common.stop_page() after its error) still has the whole sidebar: the frame draws its
    panels after the page, however the page ended. The chart scripts' warm-up is drawn on a session's first run only.
    """
    with app_pages.checkpoints_at(tmp_path, monkeypatch):
        at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
        assert not at.exception
        assert at.error[0].value.startswith("No generator checkpoint for MNIST")
        assert any(b.label == "Start training" for b in at.sidebar.button)
        assert any(b.label == "Start this preset" for b in at.sidebar.button)
        assert len(at.sidebar.get("plotly_chart")) == 1
        at.run()
        assert any(b.label == "Start training" for b in at.sidebar.button) and not at.sidebar.get("plotly_chart")


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


def _labels(at):
    return {
        w.label for w in [*at.sidebar.selectbox, *at.sidebar.number_input, *at.sidebar.text_input, *at.sidebar.checkbox]
    }


def test_the_launcher_offers_each_kinds_own_fields_and_defaults_to_a_gan(runs_root):
    at = open_sidebar()
    model = at.sidebar.selectbox(key="launch_kind")
    assert KINDS[model.value].adversarial, "the launcher opens on a GAN"
    assert model.options == [KINDS[k].title for k in KINDS], "every registered kind is offered"
    assert {
        "GAN objective",
        "Spectral norm in D",
        "D steps per G step",
        "D learning rate",
        "Label smoothing",
        "Mode-seeking weight",
    } <= _labels(at)
    assert "Beta (KL weight)" not in _labels(at)
    objective = next(s for s in at.sidebar.selectbox if s.label == "GAN objective")
    assert objective.options == list(OBJECTIVES) and "hinge" in objective.help
    model.select("vae").run()
    assert {"Beta (KL weight)", "KL warm-up steps"} <= _labels(at) and "GAN objective" not in _labels(at)
    at.sidebar.selectbox(key="launch_kind").select("classifier").run()
    assert not {"Beta (KL weight)", "GAN objective"} & _labels(at) and not at.exception


def test_changed_gan_fields_reach_the_training_command(runs_root, monkeypatch):
    calls = []
    monkeypatch.setattr(
        genmodels.launch,
        "launch_run",
        lambda kind, dataset, **kwargs: calls.append(kwargs["extra"]) or RunInfo("x", runs_root / "x", {}, {}),
    )
    at = open_sidebar()
    at.sidebar.selectbox(key="launch_kind").select("gan").run()
    next(c for c in at.sidebar.checkbox if c.label == "Spectral norm in D").check()
    at = submit(
        at,
        **{
            "GAN objective": "hinge",
            "D steps per G step": 2,
            "D learning rate": "1e-3",
            "Mode-seeking weight": 1.5,
            "Coverage weight": 5.0,
            "R1 penalty": 2.0,
        },
    )
    assert calls == [
        [
            "--objective",
            "hinge",
            "--spectral-norm",
            "--d-steps",
            "2",
            "--lr-d",
            "0.001",
            "--r1",
            "2.0",
            "--mode-seeking",
            "1.5",
            "--coverage",
            "5.0",
        ]
    ]


def test_bad_launcher_options_get_one_clear_message(runs_root):
    at = submit(open_sidebar(), **{"D learning rate": "quick"})
    assert [e.value for e in at.sidebar.error] == [
        "Not started: D learning rate must be a number like 0.0002 or 2e-4, got 'quick'."
    ]
    assert not list(runs_root.iterdir()) and not at.exception


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("vae", {"objective": "hinge"}, "GAN objective is for the GANs"),
        ("gan", {"beta": 4}, "Beta (KL weight) is for the VAEs"),
        ("classifier", {"kl_warmup": 10}, "KL warm-up steps is for the VAEs"),
        ("gan", {"objective": "minimax"}, "GAN objective must be one of bce, lsgan, hinge, wgan-gp"),
        ("gan", {"d_steps": 0}, "D steps per G step must be between 1 and 10"),
        ("gan", {"lr_d": "2"}, "D learning rate must be between"),
        ("gan", {"label_smoothing": 0.5}, "Label smoothing must be in [0, 0.5)"),
        ("cgan", {"mode_seeking": 11}, "Mode-seeking weight must be between 0 and 10"),
        ("dcgan", {"r1": 101}, "R1 penalty must be between 0 and 100"),
        ("gan", {"coverage": -1}, "Coverage weight must be between 0 and 100"),
        ("vae", {"beta": "nan"}, "Beta (KL weight) must be between 0 and 100"),
        ("vae", {"beta": -1}, "Beta (KL weight) must be between 0 and 100"),
        ("vae", {"kl_warmup": 2.5}, "KL warm-up steps must be a whole number"),
        ("vae", {"model": {"latent_dim": 0}}, "latent size must be between 1 and 512"),
        ("gan", {"init_from": "/no/such/run"}, "the run or checkpoint to start from is gone"),
        ("gan", {"temperature": 1}, "unknown training option 'temperature'"),
    ],
)
def test_check_request_refuses_bad_options(kind, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_request(kind, "mnist", 1, 64, "", 0, 0, 1, options)


def test_untouched_fields_train_as_the_recipe_and_options_become_flags():
    request = check_request("vae", "mnist", 1, 64, "", 0, 0, 1, {"beta": 8.0, "model": {"latent_dim": 2}})
    assert request.options.flags() == ["--beta", "8.0", "--model-config", '{"latent_dim": 2}']
    assert changed_options("gan", "mnist", recipe_options("gan", "mnist")) == {}
    assert changed_options("gan", "mnist", {**recipe_options("gan", "mnist"), "objective": "lsgan"}) == {
        "objective": "lsgan"
    }


def test_start_from_offers_the_shipped_checkpoint_and_ended_runs_and_forks_from_them(runs_root, make_run, monkeypatch):
    calls = []
    monkeypatch.setattr(
        genmodels.launch,
        "launch_run",
        lambda kind, dataset, **kwargs: calls.append(kwargs["extra"]) or RunInfo("x", runs_root / "x", {}, {}),
    )
    done = make_run("gan-mnist-done", "finished")
    (done / "state.safetensors").write_bytes(b"state")
    make_run("gan-mnist-nostate", "finished")
    make_run("vae-mnist-done", "finished", kind="vae")
    at = open_sidebar()
    at.sidebar.selectbox(key="launch_kind").select("gan").run()
    source = at.sidebar.selectbox(key="launch_source")
    assert source.options[0] == "fresh weights" and "your run gan-mnist-done (finished)" in source.options
    assert not any("nostate" in o or "vae" in o for o in source.options)
    assert source.options[1] == "the shipped gan checkpoint" or not checkpoint_file("gan", "mnist").is_file()
    source.select("your run gan-mnist-done (finished)").run()
    submit(at)
    assert calls == [["--init-from", str(done)]]


def test_a_preset_shows_its_prediction_before_it_starts_and_launches_its_settings(runs_root, monkeypatch):
    calls = []
    monkeypatch.setattr(
        genmodels.launch,
        "launch_run",
        lambda kind, dataset, **kwargs: (
            calls.append((kind, dataset, kwargs)) or RunInfo("gan-mnist-p", runs_root / "gan-mnist-p", {}, {})
        ),
    )
    at = open_sidebar()
    for key, preset in PRESETS.items():
        at.sidebar.selectbox(key="preset").select(key).run()
        shown = " ".join(m.value for m in at.sidebar.markdown)
        assert preset.prediction in shown and (preset.alert or "stay quiet") in shown
    assert not calls, "nothing starts before the click"
    preset = next(iter(PRESETS.values()))
    at.sidebar.selectbox(key="preset").select(preset.key).run()
    at.sidebar.button(key="start-preset").click().run()
    kind, dataset, kwargs = calls[0]
    assert (kind, dataset, kwargs["batch_size"]) == (preset.kind, "mnist", preset.batch_size)
    assert kwargs["extra"] == ["--max-steps", str(preset.max_steps), *preset.options.flags()]
    assert at.session_state["training_log"] == "run/gan-mnist-p"

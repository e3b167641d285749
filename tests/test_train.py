"""The training CLI: a short real run writes every artefact; signals, resume and bad flags."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from genmodels.checkpoint import load_model
from genmodels.kinds import training_order
from genmodels.paths import REPO_ROOT
from genmodels.runs import read_metrics, run_info
from train.cli import main

TINY = {
    "classifier": '{"channels": [4, 8], "hidden": 16}',
    "gan": '{"g_hidden": [32], "d_hidden": [32]}',
    "cgan": '{"g_hidden": [32], "d_hidden": [32]}',
    "vae": '{"hidden": [32], "class_weight": 1.0}',
}


def run_train(args, data, timeout=240, **kwargs):
    env = {**os.environ, "GENMODELS_DATA": str(data), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "train", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def train_here(args, capsys) -> tuple[int, str, str]:
    """`python -m train ARGS` in this process (GENMODELS_DATA set by the test): exit code, stdout, stderr. For tests
    of what a run does, where a process of its own would only add seconds."""
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_all_trains_and_publishes_every_model(synthetic_data, tmp_path, monkeypatch, capsys):
    """`train all` on synthetic data: every kind trains, its run folder is complete, checkpoints are published."""
    from train.tasks import critic

    # the critics' acceptance ceilings from 20 draws per class, not 2,000 through the recipe-sized generators
    monkeypatch.setattr(critic, "CEILING_DRAWS_PER_CLASS", 20)
    monkeypatch.setenv("GENMODELS_DATA", str(synthetic_data))
    target = tmp_path / "checkpoints"
    code, _, err = train_here(
        [
            "all",
            "--dataset",
            "mnist",
            "--max-steps",
            "4",
            "--batch-size",
            "50",
            "--device",
            "cpu",
            "--run-dir",
            str(tmp_path / "runs"),
            "--checkpoints",
            str(target),
            "--log-every",
            "2",
        ],
        capsys,
    )
    assert code == 0, err[-2000:]
    for kind in training_order():
        run_dir = tmp_path / "runs" / kind
        config = json.loads((run_dir / "config.json").read_text())
        assert config["kind"] == kind and config["dataset"] == "mnist" and config["recipe"]["seed"] == 0
        assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"
        records = read_metrics(run_dir / "metrics.jsonl")
        assert {"step", "epoch", "wall_time", "images_per_s"} <= set(records[0])
        assert records[-1]["type"] == "final" and records[-1]["step"] == 4
        module, meta = load_model(target / "mnist" / f"{kind}.safetensors", kind=kind, dataset="mnist")
        assert meta["steps_trained"] == 4 and meta["recipe"]["batch_size"] == 50
        assert (target / "mnist" / "logs" / f"{kind}.jsonl").exists()
    gan_records = read_metrics(tmp_path / "runs" / "gan" / "metrics.jsonl")
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(gan_records[0]) and "coverage_kl" in gan_records[-1]
    vae_records = read_metrics(tmp_path / "runs" / "vae" / "metrics.jsonl")
    assert {"recon", "kl"} <= set(vae_records[0]) and {"test_neg_elbo", "class_accuracy"} <= set(vae_records[-1])
    classifier_records = read_metrics(tmp_path / "runs" / "classifier" / "metrics.jsonl")
    assert {"loss", "accuracy"} <= set(classifier_records[0]) and "test_accuracy" in classifier_records[-1]
    mapper_meta = json.loads((target / "mnist" / "mapper.json").read_text())
    gan_meta = json.loads((target / "mnist" / "gan.json").read_text())
    assert mapper_meta["generator_sha256"] == gan_meta["weights_sha256"]


def test_an_epoch_writes_its_record_grid_and_checkpoint(synthetic_data, tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(
        [
            "cgan",
            "--dataset",
            "mnist",
            "--epochs",
            "2",
            "--batch-size",
            "100",
            "--device",
            "cpu",
            "--run-dir",
            str(run_dir),
            "--model-config",
            TINY["cgan"],
        ],
        synthetic_data,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Epoch [2/2] loss_d:" in result.stdout
    epochs = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2] and all(r["step"] == 6 * r["epoch"] for r in epochs)
    for epoch in (1, 2):
        assert (run_dir / "grids" / f"epoch_{epoch:03d}.png").read_bytes()[:4] == b"\x89PNG"
    _, meta = load_model(run_dir / "cgan.safetensors", kind="cgan", dataset="mnist")
    assert meta["epochs_trained"] == 2


def test_sigterm_finishes_the_step_and_saves(synthetic_data, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "GENMODELS_DATA": str(synthetic_data)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "train",
            "gan",
            "--dataset",
            "fashion",
            "--epochs",
            "1000",
            "--batch-size",
            "20",
            "--device",
            "cpu",
            "--log-every",
            "2",
            "--run-dir",
            str(run_dir),
            "--model-config",
            TINY["gan"],
        ],
        cwd=REPO_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (run_dir / "gan.safetensors").exists():
        time.sleep(0.2)
    assert (run_dir / "gan.safetensors").exists(), "no epoch finished in time"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    info = run_info(run_dir)
    assert info.state == "cancelled" and "SIGTERM" in info.status["reason"]
    load_model(run_dir / "gan.safetensors", kind="gan", dataset="fashion")
    assert read_metrics(run_dir / "metrics.jsonl")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["vae", "--dataset", "cifar"], "invalid choice"),
        (["vae", "--dataset", "mnist", "--epochs", "0"], "--epochs must be between 1"),
        (["vae", "--dataset", "mnist", "--lr", "0"], "--lr must be a number in (0, 1]"),
        (["vae", "--dataset", "mnist", "--lr", "nan"], "--lr must be a number in (0, 1]"),
        (["vae", "--dataset", "mnist", "--batch-size", "100000"], "--batch-size must be between 1"),
        (["vae", "--dataset", "mnist", "--seed", "-1"], "--seed must be between 0"),
        (["vae", "--dataset", "mnist", "--resume"], "--resume needs --run-dir"),
        (["gan", "--dataset", "mnist", "--compile", "on"], "only vae compiles its step"),
        (["vae", "--dataset", "mnist", "--run-dir", "{tmp}/a-file/run"], "is a file, not a folder"),
        (["gan", "--dataset", "mnist", "--gan", "{tmp}/a-file"], "--gan is for the mapper only"),
        (["all", "--dataset", "mnist", "--classifier", "{tmp}/a-file"], "uses the classifier trained in the same run"),
        (
            ["classifier", "--dataset", "mnist", "--classifier", "{tmp}/a-file"],
            "--classifier is for the cgan, gan, vae, dcgan, conv_vae and mapper only",
        ),
        (["vae", "--dataset", "mnist", "--checkpoints", "{tmp}"], "--checkpoints is for 'all' only"),
    ],
)
def test_bad_flags_are_refused_before_any_work(flags, message, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    try:
        code = main([flag.replace("{tmp}", str(tmp_path)) for flag in flags])
    except SystemExit as exit_:
        code = exit_.code
    stderr = capsys.readouterr().err
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("**/metrics.jsonl"))


def test_the_cli_process_exits_2_on_a_bad_flag(tmp_path):
    result = run_train(["gan", "--dataset", "mnist", "--epochs", "-3"], tmp_path, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: --epochs") and "Traceback" not in result.stderr


def test_precision_choices(monkeypatch):
    """'auto' picks bf16 only where the CPU multiplies bf16 natively; unknown choices are refused."""
    import torch

    from train.recipes import resolve_precision

    assert resolve_precision("fp32", "cpu") == "fp32"
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp16", "cpu")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="no native bf16"):
        resolve_precision("bf16", "cpu")


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_tasks_train_with_torch_s_fused_adam(weight_decay):
    """The public fused kernel (Adam, or AdamW with weight decay) with the recipe's betas; see train/optim.py for
    the benchmark that retired the hand-rolled step."""
    import torch

    from train.optim import make_adam
    from train.recipes import default_recipe

    recipe = default_recipe("gan", "mnist", weight_decay=weight_decay)
    optimizer = make_adam([torch.nn.Parameter(torch.zeros(3))], recipe)
    assert type(optimizer) is (torch.optim.AdamW if weight_decay else torch.optim.Adam)
    assert optimizer.defaults["fused"] and optimizer.defaults["betas"] == tuple(recipe.betas)
    assert optimizer.defaults["weight_decay"] == weight_decay


def test_the_weight_average_is_the_warmed_up_ema_of_the_generator():
    """train.ema.weight_average (torch's AveragedModel) starts at the init and then moves each weight by
    1 - min(decay, (1 + n) / (10 + n)) towards the network's at its n-th update, bit for bit."""
    import torch

    from train.ema import weight_average

    torch.manual_seed(0)
    network = torch.nn.Linear(4, 3)
    expected = [p.detach().clone() for p in network.parameters()]
    average = weight_average(network, decay=0.5)
    for n in range(1, 6):
        with torch.no_grad():
            for p in network.parameters():
                p.add_(torch.randn_like(p))
        average.update_parameters(network)
        torch._foreach_lerp_(expected, [p.detach() for p in network.parameters()], 1.0 - min(0.5, (1 + n) / (10 + n)))
    assert all(torch.equal(a, b) for a, b in zip(average.module.parameters(), expected, strict=True))
    assert set(average.module.state_dict()) == set(network.state_dict())  # the checkpoint's tensor names
    assert not any(p.requires_grad for p in average.module.parameters())


def test_energy_distance_is_near_zero_for_one_distribution_and_grows_with_a_shift_or_a_collapse():
    import torch

    from train.tasks.mapper import energy_distance

    gen = torch.Generator().manual_seed(0)
    points, others = torch.randn(400, 5, generator=gen), torch.randn(400, 5, generator=gen)
    same = float(energy_distance(points, others))
    assert abs(same) < 0.05
    assert float(energy_distance(points + 1.0, others)) > 1.0 > same
    collapsed = points.mean(0, keepdim=True).repeat(400, 1) + 0.01 * points
    assert float(energy_distance(collapsed, others)) > 1.0


def test_the_class_match_spreads_collapsed_images_like_the_generator_s_own():
    """Images nearly collapsed onto one point, moved by the match alone, take on the mean and spread of the images the
    generator draws from their class's latents; a class with too few known latents gets no pull at all."""
    import torch

    from train.tasks.mapper import MATCH_MIN_LATENTS, class_match_loss

    gen = torch.Generator().manual_seed(0)
    latents = [torch.randn(2_000, 4, generator=gen), torch.randn(MATCH_MIN_LATENTS - 1, 4, generator=gen)]

    def decode(z):  # a generator that stretches and shifts its latents
        return z * 2.0 + 3.0

    labels = torch.tensor([0, 1]).repeat(128)
    start = torch.randn(256, 4, generator=gen) * 0.01
    images = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([images], lr=0.05)
    for _ in range(400):
        loss = class_match_loss(images, labels, latents, decode, gen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    moved = images.detach()[labels == 0]
    assert torch.allclose(moved.mean(0), torch.full((4,), 3.0), atol=0.3)
    assert torch.allclose(moved.std(0), torch.full((4,), 2.0), atol=0.3)
    assert torch.equal(images.detach()[labels == 1], start[labels == 1])


def test_class_latents_keeps_the_draws_both_judges_confidently_call_the_class():
    import torch
    from torch import nn

    from genmodels.models import GANConfig, Generator
    from train.tasks.mapper import MATCH_CONFIDENCE, class_latents

    class Brightness(nn.Module):
        """Class 1 for images brighter than `level`, else class 0, confidently away from it."""

        def __init__(self, level):
            super().__init__()
            self.level = level

        def forward(self, images):
            margin = (images.mean((1, 2, 3)) - self.level) * 400
            return torch.stack([-margin, margin], dim=1)

    torch.manual_seed(0)
    generator = Generator(GANConfig(latent_dim=8, g_hidden=(16,))).eval().requires_grad_(False)
    level = float(generator(torch.randn(500, 8)).mean((1, 2, 3)).median())
    critic = Brightness(level)
    latents = class_latents(generator, critic, None, 2, 3_000, 0, torch.device("cpu"))
    assert 0 < sum(len(t) for t in latents) <= 3_000
    for c, z in enumerate(latents):
        confidence, verdict = torch.softmax(critic(generator(z)), dim=1).max(1)
        assert len(z) > 100 and (verdict == c).all() and (confidence >= MATCH_CONFIDENCE).all()

    class AlwaysZero(nn.Module):
        def forward(self, images):
            return torch.stack([torch.ones(len(images)), torch.zeros(len(images))], dim=1)

    agreed = class_latents(generator, critic, AlwaysZero(), 2, 3_000, 0, torch.device("cpu"))
    assert len(agreed[1]) == 0 and torch.equal(agreed[0], latents[0])


def test_compile_choices():
    """'auto' compiles the vae's step on the CPU for long runs only; kinds that do not compile refuse 'on'."""
    from train.recipes import COMPILE_MIN_STEPS, default_recipe, resolve_compile

    assert default_recipe("vae", "mnist").compile == "auto" and default_recipe("gan", "mnist").compile == "off"
    assert resolve_compile("auto", "vae", "cpu", COMPILE_MIN_STEPS) is True
    assert resolve_compile("auto", "vae", "cpu", COMPILE_MIN_STEPS - 1) is False
    assert resolve_compile("auto", "vae", "cuda", 10**6) is False
    assert resolve_compile("on", "vae", "cpu", 1) is True and resolve_compile("off", "vae", "cpu", 10**6) is False
    assert resolve_compile("auto", "cgan", "cpu", 10**6) is False
    with pytest.raises(ValueError, match="only vae compiles"):
        resolve_compile("on", "gan", "cpu", 10**6)
    with pytest.raises(ValueError, match="unknown compile choice"):
        resolve_compile("yes", "vae", "cpu", 10**6)


def _tiny_vae_task(compile_choice: str):
    import torch

    from genmodels.models import VAEConfig
    from train.recipes import default_recipe
    from train.tasks.vae import VAETask

    recipe = default_recipe("vae", "mnist", compile=compile_choice, precision="fp32")
    return VAETask(
        "vae", VAEConfig(hidden=(32,), latent_dim=4, class_weight=1.0), recipe, torch.device("cpu"), total_steps=10
    )


def test_compiled_vae_step_trains_like_the_eager_one():
    """The compiled step computes the eager step's losses and updates (to float rounding), from the same init and
    noise."""
    import torch

    images = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(16) % 10
    compiled, eager = _tiny_vae_task("on"), _tiny_vae_task("off")
    assert compiled.compiled and not eager.compiled
    for _ in range(3):
        got, want = compiled.step(images, labels), eager.step(images, labels)
        assert got.keys() == want.keys() == {"loss", "recon", "kl", "loss_class"}
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-4)
    assert compiled.compiled and compiled.compile_failure is None
    for a, b in zip(compiled.vae.parameters(), eager.vae.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_failed_compile_trains_on_uncompiled():
    """Where compiling fails (no C++ compiler, say), the step runs eagerly and the task says why."""
    import torch

    task = _tiny_vae_task("on")

    def broken(*args):
        raise RuntimeError("no working C++ compiler")

    task._losses_fn = broken
    losses = task.step(torch.rand(8, 1, 28, 28), torch.arange(8))
    assert torch.isfinite(losses["loss"]) and not task.compiled
    assert "RuntimeError: no working C++ compiler" in task.compile_failure
    task.step(torch.rand(8, 1, 28, 28), torch.arange(8))  # and goes on without trying again


def test_an_error_in_an_uncompiled_step_is_raised():
    """Only a compiled step falls back: an uncompiled one's error reaches the caller, and the task records no
    failure."""
    import torch

    task = _tiny_vae_task("off")
    with pytest.raises(IndexError, match="out of bounds"):
        task.step(torch.rand(8, 1, 28, 28), torch.arange(8, 16))  # labels outside 0..9
    assert task.compile_failure is None


@pytest.mark.parametrize(
    "flags, message",
    [
        (["vae", "--dataset", "mnist", "--run-dir", ""], "--run-dir must name a folder"),
        (["vae", "--dataset", "mnist", "--run-dir", "{tmp}/" + "x" * 300], "File name too long"),
        (
            ["gan", "--dataset", "mnist", "--model-config", '{"latent_dim": -1}'],
            "GANConfig.latent_dim must be between 1 and",
        ),
        (
            ["gan", "--dataset", "mnist", "--model-config", '{"negative_slope": -100}'],
            "GANConfig.negative_slope must be between 0",
        ),
        (["gan", "--dataset", "mnist", "--model-config", '{"g_hidden": [10000000, 10000000]}'], "at most 65,536"),
        (["all", "--dataset", "mnist", "--model-config", '{"dropout": 0.1}'], "vae refused it"),
        (["gan", "--dataset", "mnist", "--run-dir", "{tmp}/models"], "already holds a run or model files"),
        (["gan", "--dataset", "mnist", "--run-dir", "{tmp}/models", "--resume"], "holds no saved training state"),
    ],
)
def test_bad_folders_and_model_configs_are_refused_before_any_work(flags, message, tmp_path, capsys):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "gan.safetensors").write_bytes(b"not a run: a folder of models")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    try:
        code = main([flag.replace("{tmp}", str(tmp_path)) for flag in flags])
    except SystemExit as exit_:
        code = exit_.code
    stderr = capsys.readouterr().err
    assert code == 2 and message in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "a refused command wrote nothing"


def test_resume_continues_with_the_run_s_own_recipe_and_refuses_changes(synthetic_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENMODELS_DATA", str(synthetic_data))
    run_dir = tmp_path / "run"
    code, _, err = train_here(
        [
            "gan",
            "--dataset",
            "mnist",
            "--max-steps",
            "4",
            "--batch-size",
            "40",
            "--lr",
            "0.001",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--run-dir",
            str(run_dir),
            "--model-config",
            '{"latent_dim": 16, "g_hidden": [32], "d_hidden": [32]}',
            "--log-every",
            "2",
        ],
        capsys,
    )
    assert code == 0, err[-2000:]
    status_before = (run_dir / "status.json").read_text()
    code, _, err = train_here(
        ["gan", "--dataset", "mnist", "--max-steps", "8", "--batch-size", "64", "--resume", "--run-dir", str(run_dir)],
        capsys,
    )
    assert code == 2 and "--batch-size would change it" in err
    assert (run_dir / "status.json").read_text() == status_before, "a refused resume leaves the run's status alone"
    code, out, err = train_here(
        ["gan", "--dataset", "mnist", "--max-steps", "4", "--resume", "--run-dir", str(run_dir), "--device", "cpu"],
        capsys,
    )
    assert code == 0 and "(4 steps" in out, out + err  # at the limit: no extra step
    code, _, err = train_here(
        ["gan", "--dataset", "mnist", "--max-steps", "8", "--resume", "--run-dir", str(run_dir), "--device", "cpu"],
        capsys,
    )
    assert code == 0, err[-2000:]
    recipe = json.loads((run_dir / "config.json").read_text())["recipe"]
    assert (recipe["batch_size"], recipe["lr"], recipe["seed"], recipe["model"]["latent_dim"]) == (40, 0.001, 3, 16)
    _, meta = load_model(run_dir / "gan.safetensors", kind="gan", dataset="mnist")
    assert meta["steps_trained"] == 8


def test_a_resumed_run_logs_on_multiples_of_log_every(synthetic_data, tmp_path, monkeypatch, capsys):
    """Stopped at step 12 and resumed, a --log-every 5 run logs at 15, 20... (and at the 18-step epoch's end), not 17,
    23..."""
    monkeypatch.setenv("GENMODELS_DATA", str(synthetic_data))
    run_dir = tmp_path / "run"
    common = [
        "vae",
        "--dataset",
        "mnist",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--log-every",
        "5",
        "--run-dir",
        str(run_dir),
        "--model-config",
        TINY["vae"],
    ]
    code, _, err = train_here([*common, "--max-steps", "12"], capsys)
    assert code == 0, err[-2000:]
    code, _, err = train_here([*common, "--max-steps", "30", "--resume"], capsys)
    assert code == 0, err[-2000:]
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl") if r["type"] == "step"]
    assert steps == [5, 10, 12, 15, 18, 20, 25, 30]


def test_two_trainings_cannot_share_a_run_folder(synthetic_data, tmp_path):
    from genmodels.runs import RunFolder
    from train.run import _lock_run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    held = _lock_run(run_dir)
    try:
        result = run_train(
            ["gan", "--dataset", "mnist", "--max-steps", "2", "--device", "cpu", "--run-dir", str(run_dir)],
            synthetic_data,
        )
    finally:
        held.close()
    assert result.returncode == 2 and "another training is using" in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == [RunFolder(run_dir).lock_file.name]


def test_a_stopped_all_publishes_nothing(synthetic_data, tmp_path):
    target = tmp_path / "checkpoints"
    env = {**os.environ, "GENMODELS_DATA": str(synthetic_data)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "train",
            "all",
            "--dataset",
            "mnist",
            "--epochs",
            "1000",
            "--batch-size",
            "20",
            "--device",
            "cpu",
            "--run-dir",
            str(tmp_path / "runs"),
            "--checkpoints",
            str(target),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "runs" / "classifier" / "classifier.safetensors").exists():
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and "nothing was published" in err, out + err
    assert not (tmp_path / "runs" / "gan").exists() and not target.exists()


def test_resume_from_another_model_s_state_is_one_clear_error(synthetic_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GENMODELS_DATA", str(synthetic_data))
    runs = {}
    for name, latent in (("a", 16), ("b", 8)):
        runs[name] = tmp_path / name
        code, _, err = train_here(
            [
                "gan",
                "--dataset",
                "mnist",
                "--max-steps",
                "2",
                "--batch-size",
                "40",
                "--device",
                "cpu",
                "--run-dir",
                str(runs[name]),
                "--model-config",
                f'{{"latent_dim": {latent}, "g_hidden": [16], "d_hidden": [16]}}',
            ],
            capsys,
        )
        assert code == 0, err[-2000:]
    (runs["a"] / "state.safetensors").write_bytes((runs["b"] / "state.safetensors").read_bytes())
    code, _, err = train_here(
        ["gan", "--dataset", "mnist", "--max-steps", "4", "--resume", "--device", "cpu", "--run-dir", str(runs["a"])],
        capsys,
    )
    assert code == 1 and "Traceback" not in err
    assert "does not hold this run's gan state" in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_before_training_starts_is_one_line(tmp_path):
    code = (
        "import runpy, train.cli\n"
        "def interrupted(argv=None):\n    raise KeyboardInterrupt\n"
        "train.cli.main = interrupted\n"
        "runpy.run_module('train', run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 130 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: interrupted before training started; nothing was written"


def test_a_mapper_run_says_what_it_prepares_before_its_first_step(synthetic_data, tmp_path, monkeypatch):
    """While the mapper trains its pixel judge and sorts the generator's draws (about a minute for the shipped
    recipe), its status says so, and the sidebar shows it instead of 'loading data'; the note goes once steps run."""
    from train.tasks.mapper import MapperTask
    from views.sidebar import _progress_text

    run_dir = tmp_path / "run"
    seen = []
    original = MapperTask.before_training

    def recording(self, *args):
        seen.append(run_info(run_dir))
        return original(self, *args)

    monkeypatch.setenv("GENMODELS_DATA", str(synthetic_data))
    monkeypatch.setattr(MapperTask, "before_training", recording)
    assert main(["mapper", "--dataset", "mnist", "--max-steps", "2", "--device", "cpu", "--run-dir", str(run_dir)]) == 0
    (preparing,) = seen
    assert preparing.status["preparing"] == "training its pixel judge and sorting 5,120 draws of the generator by class"
    assert _progress_text(preparing) == f"mapper on mnist: starting ({preparing.status['preparing']})"
    assert "preparing" not in run_info(run_dir).status and run_info(run_dir).state == "finished"

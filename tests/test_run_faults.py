"""Training runs survive faults: killed runs keep a loadable checkpoint and readable logs, NaN stops a run cleanly,
resume is exact."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genmodels import health
from genmodels.checkpoint import load_model, load_tensors
from genmodels.paths import REPO_ROOT
from genmodels.runs import read_metrics, run_info

# 600 synthetic training images / batch 32 = 18 steps per epoch: a checkpoint every 18 steps.
STEPS_PER_EPOCH = 18
WAIT_LIMIT_S = 120


def training_env(data: Path, tmp_path: Path) -> dict[str, str]:
    """Environment of a training process: synthetic data, no shipped classifier, runs in tmp."""
    (tmp_path / "no_checkpoints").mkdir(exist_ok=True)
    return {
        **os.environ,
        "GENMODELS_DATA": str(data),
        "GENMODELS_CHECKPOINTS": str(tmp_path / "no_checkpoints"),
        "GENMODELS_RUNS": str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def start_training(run_dir: Path, env: dict[str, str], *flags: str, kind: str = "vae") -> subprocess.Popen:
    """Start `python -m train KIND` on synthetic MNIST into run_dir."""
    command = [
        sys.executable,
        "-m",
        "train",
        kind,
        "--dataset",
        "mnist",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--run-dir",
        str(run_dir),
        *flags,
    ]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process: subprocess.Popen, what: str, poll_s: float = 0.01) -> None:
    """Poll until condition() holds; fail with the process's output if it exits first or the wait runs long."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"training exited ({process.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(poll_s)


def step_records(run_dir: Path) -> list[dict]:
    """The 'step' records of a run's metrics log."""
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "step"]


def assert_every_line_is_json(path: Path, allow_torn_last: bool) -> None:
    """Each line of a JSONL file parses (the last may be torn only when the writer was SIGKILLed)."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    complete, tail = lines[:-1], lines[-1]
    for line in complete:
        assert isinstance(json.loads(line), dict)
    if tail and not allow_torn_last:
        pytest.fail(f"unterminated last line after a graceful stop: {tail!r}")


KILLS = [(sig, attempt) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL) for attempt in range(2)]


@pytest.mark.parametrize("sig,attempt", KILLS, ids=[f"{s.name}-{a}" for s, a in KILLS])
def test_killed_run_keeps_loadable_checkpoint_and_readable_log(synthetic_data, tmp_path, sig, attempt):
    """Killing a run at a random point leaves a loadable checkpoint, a line-readable log and a final status."""
    rng = random.Random(f"{sig.name}-{attempt}")
    run_dir = tmp_path / "runs" / "victim"
    process = start_training(
        run_dir,
        training_env(synthetic_data, tmp_path),
        "--epochs",
        "200",
        "--log-every",
        "5",
        "--model-config",
        '{"hidden": [128]}',
    )
    try:
        wait_for(lambda: (run_dir / "state.safetensors").exists(), process, "the first checkpoint")
        target_step = STEPS_PER_EPOCH + rng.randrange(1, 2 * STEPS_PER_EPOCH)
        wait_for(
            lambda: (step_records(run_dir) or [{"step": 0}])[-1]["step"] >= target_step,
            process,
            f"step {target_step}",
            poll_s=rng.uniform(0.001, 0.02),
        )
        time.sleep(rng.uniform(0, 0.3))
        process.send_signal(sig)
        if sig == signal.SIGKILL:  # before reaping: the zombie must already count as gone
            deadline = time.monotonic() + WAIT_LIMIT_S
            while run_info(run_dir).state == "running" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert run_info(run_dir).state == "crashed"
        out, err = process.communicate(timeout=WAIT_LIMIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    info = run_info(run_dir)
    if sig == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
        assert info.state == "crashed" and "gone" in info.status["reason"]
    else:
        assert process.returncode == 0, err
        assert "Traceback" not in err
        assert info.state == "cancelled" and info.status["reason"] == f"stopped by {sig.name}"
    assert not info.active

    module, meta = load_model(run_dir / "vae.safetensors", kind="vae", dataset="mnist")
    assert meta["steps_trained"] >= STEPS_PER_EPOCH
    assert meta["steps_trained"] <= info.status["step"] or sig == signal.SIGKILL
    assert all(torch.isfinite(p).all() for p in module.parameters())
    state, state_meta = load_tensors(run_dir / "state.safetensors")
    if sig == signal.SIGKILL:  # killed between the model file and the state file: the state may be one epoch older
        assert state_meta["global_step"] in (meta["steps_trained"], meta["steps_trained"] - STEPS_PER_EPOCH)
    else:
        assert state_meta["global_step"] == meta["steps_trained"]

    assert_every_line_is_json(run_dir / "metrics.jsonl", allow_torn_last=sig == signal.SIGKILL)
    steps = [r["step"] for r in step_records(run_dir)]
    assert steps == sorted(steps) and len(steps) >= 3
    if sig != signal.SIGKILL:  # a graceful stop saves the very step it stopped at
        assert meta["steps_trained"] == info.status["step"] == steps[-1]
    assert not list(run_dir.glob(".*.tmp")) or sig == signal.SIGKILL


def test_sigkilled_run_resumes_from_its_last_checkpoint(synthetic_data, tmp_path):
    """After SIGKILL, --resume continues from the last completed checkpoint and finishes."""
    env = training_env(synthetic_data, tmp_path)
    run_dir = tmp_path / "runs" / "crashed"
    common = (
        "--epochs",
        "200",
        "--log-every",
        "5",
        "--model-config",
        '{"hidden": [64]}',
        "--max-steps",
        str(6 * STEPS_PER_EPOCH),
    )
    process = start_training(run_dir, env, *common)
    try:
        wait_for(lambda: (run_dir / "state.safetensors").exists(), process, "the first checkpoint")
        process.kill()
        process.communicate()
    finally:
        if process.poll() is None:
            process.kill()
    saved = load_tensors(run_dir / "state.safetensors")[1]["global_step"]
    resumed = start_training(run_dir, env, *common, "--resume")
    out, err = resumed.communicate(timeout=WAIT_LIMIT_S)
    assert resumed.returncode == 0, err
    assert f"step {saved}" in out
    info = run_info(run_dir)
    assert info.state == "finished" and info.status["step"] == 6 * STEPS_PER_EPOCH
    assert load_model(run_dir / "vae.safetensors")[1]["steps_trained"] == 6 * STEPS_PER_EPOCH


def test_absurd_learning_rate_fails_the_run_without_a_checkpoint(synthetic_data, tmp_path):
    """--lr 1.0 on the VAE diverges: exit 1, status failed with the reason, no model file written."""
    run_dir = tmp_path / "runs" / "diverges"
    process = start_training(
        run_dir, training_env(synthetic_data, tmp_path), "--lr", "1.0", "--epochs", "5", "--log-every", "5"
    )
    out, err = process.communicate(timeout=WAIT_LIMIT_S)
    assert process.returncode == 1
    assert "diverged" in err and "Traceback" not in err
    info = run_info(run_dir)
    assert info.state == "failed" and "non-finite" in info.status["reason"]
    assert not (run_dir / "vae.safetensors").exists() and not (run_dir / "state.safetensors").exists()
    assert_every_line_is_json(run_dir / "metrics.jsonl", allow_torn_last=False)
    # the window that went non-finite is logged before the run stops, so the detector names it
    assert [a.name for a in health.alerts(read_metrics(run_dir / "metrics.jsonl"))] == ["diverged"]
    assert "alert: diverged" in out + err


@pytest.fixture
def in_process(monkeypatch, synthetic_data, tmp_path):
    """Run `python -m train` inside the test process (no signal handlers installed), on synthetic data."""
    import train.run

    monkeypatch.setattr(train.run.StopFlag, "install", lambda self: None)
    env = training_env(synthetic_data, tmp_path)
    for key in ("GENMODELS_DATA", "GENMODELS_CHECKPOINTS", "GENMODELS_RUNS"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)

    def run(*argv: str) -> int:
        from train.cli import main

        return main(list(argv))

    return run


def poison_vae_step(monkeypatch, at_step: int, poison_weights: bool):
    """Make VAETask.step go bad from `at_step` on: NaN losses, or NaN weights behind a finite loss."""
    from train.tasks.vae import VAETask

    real_step = VAETask.step

    def step(self, images, labels):
        losses = real_step(self, images, labels)
        if self.step_count >= at_step:
            if poison_weights:
                with torch.no_grad():
                    self.vae.to_pixels.bias.fill_(float("nan"))
            else:
                losses = {**losses, "loss": torch.tensor(float("nan"))}
        return losses

    monkeypatch.setattr(VAETask, "step", step)


def test_nan_loss_mid_run_keeps_the_last_good_checkpoint(in_process, monkeypatch, tmp_path):
    """A NaN loss after the first epoch fails the run and leaves epoch 1's checkpoint intact."""
    poison_vae_step(monkeypatch, at_step=STEPS_PER_EPOCH + 7, poison_weights=False)
    run_dir = tmp_path / "runs" / "nan-loss"
    assert (
        in_process(
            "vae",
            "--dataset",
            "mnist",
            "--batch-size",
            "32",
            "--epochs",
            "4",
            "--log-every",
            "5",
            "--device",
            "cpu",
            "--model-config",
            '{"hidden": [64]}',
            "--run-dir",
            str(run_dir),
        )
        == 1
    )
    info = run_info(run_dir)
    assert info.state == "failed" and "loss" in info.status["reason"]
    _, meta = load_model(run_dir / "vae.safetensors", kind="vae", dataset="mnist")
    assert meta["steps_trained"] == STEPS_PER_EPOCH


def test_nan_weights_behind_a_finite_loss_never_overwrite_a_good_checkpoint(in_process, monkeypatch, tmp_path):
    """Weights that turn NaN on an epoch's last step (loss still finite) fail the run instead of being saved."""
    poison_vae_step(monkeypatch, at_step=2 * STEPS_PER_EPOCH, poison_weights=True)
    run_dir = tmp_path / "runs" / "nan-weights"
    code = in_process(
        "vae",
        "--dataset",
        "mnist",
        "--batch-size",
        "32",
        "--epochs",
        "4",
        "--log-every",
        "100",
        "--device",
        "cpu",
        "--model-config",
        '{"hidden": [64]}',
        "--run-dir",
        str(run_dir),
    )
    info = run_info(run_dir)
    assert code == 1 and info.state == "failed", info.status
    _, meta = load_model(run_dir / "vae.safetensors", kind="vae", dataset="mnist")
    assert meta["steps_trained"] == STEPS_PER_EPOCH
    state = load_tensors(run_dir / "state.safetensors")[0]
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


@pytest.mark.parametrize("kind", ["vae", "classifier"])
def test_resume_after_sigterm_reproduces_the_uninterrupted_loss_curve(synthetic_data, tmp_path, kind):
    """A run stopped by SIGTERM and resumed logs the same per-step losses and ends with the same weights as one that
    never stopped."""
    env = training_env(synthetic_data, tmp_path)
    config = '{"hidden": [64]}' if kind == "vae" else '{"channels": [4, 8], "hidden": 16}'
    common = (
        "--epochs",
        "20",
        "--log-every",
        "1",
        "--seed",
        "3",
        "--max-steps",
        str(2 * STEPS_PER_EPOCH),
        "--model-config",
        config,
    )
    straight_dir, broken_dir = tmp_path / "runs" / "straight", tmp_path / "runs" / "broken"
    stop_at = random.Random(kind).randrange(
        STEPS_PER_EPOCH + 2, 2 * STEPS_PER_EPOCH - 3
    )  # mid-epoch, after a checkpoint
    straight = start_training(straight_dir, env, *common, kind=kind)  # both at once: independent processes
    broken = start_training(broken_dir, env, *common, kind=kind)
    try:
        wait_for(lambda: len(step_records(broken_dir)) >= stop_at, broken, f"step {stop_at}", poll_s=0.002)
        broken.send_signal(signal.SIGTERM)
        out, err = broken.communicate(timeout=WAIT_LIMIT_S)
        straight_out, straight_err = straight.communicate(timeout=WAIT_LIMIT_S)
    finally:
        for process in (straight, broken):
            if process.poll() is None:
                process.kill()
    assert straight.returncode == 0, straight_err
    assert broken.returncode == 0 and run_info(broken_dir).state == "cancelled", err
    stopped = run_info(broken_dir).status["step"]
    assert stopped < 2 * STEPS_PER_EPOCH, "the run finished before SIGTERM arrived"
    resumed = start_training(broken_dir, env, *common, "--resume", kind=kind)
    out, err = resumed.communicate(timeout=WAIT_LIMIT_S)
    assert resumed.returncode == 0, err
    assert run_info(broken_dir).state == "finished"

    reference = {r["step"]: r for r in step_records(straight_dir)}
    replay = {r["step"]: r for r in step_records(broken_dir)}
    assert sorted(replay) == sorted(reference) == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    loss_names = [k for k in reference[1] if k not in ("type", "step", "epoch", "wall_time", "images_per_s")]
    for step in reference:
        for name in loss_names:
            assert math.isclose(replay[step][name], reference[step][name], rel_tol=1e-4, abs_tol=1e-5), (
                step,
                name,
                stopped,
            )
    final_a = load_tensors(straight_dir / f"{kind}.safetensors")[0]
    final_b = load_tensors(broken_dir / f"{kind}.safetensors")[0]
    for name, tensor in final_a.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, final_b[name], rtol=1e-4, atol=1e-5), name


@pytest.mark.parametrize("failing", ["save_model", "save_tensors"])
def test_a_failed_checkpoint_write_is_resumed_from_the_state_alone(in_process, monkeypatch, tmp_path, capsys, failing):
    """Disk full while epoch 2's model file (save_model) or state file (save_tensors) is written: the run fails with
    one line; the state stays epoch 1's, and --resume continues from its own weights (never the possibly newer
    model file), ending with the weights of a run that never failed."""
    import errno

    import train.run

    common = (
        "vae",
        "--dataset",
        "mnist",
        "--batch-size",
        "32",
        "--epochs",
        "3",
        "--log-every",
        "100",
        "--device",
        "cpu",
        "--seed",
        "5",
        "--model-config",
        '{"hidden": [64]}',
    )
    straight_dir, broken_dir = tmp_path / "runs" / "straight", tmp_path / "runs" / "broken"
    assert in_process(*common, "--run-dir", str(straight_dir)) == 0

    writer, calls = getattr(train.run, failing), []

    def full_disk_on_epoch_2(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return writer(path, *args, **kwargs)

    monkeypatch.setattr(train.run, failing, full_disk_on_epoch_2)
    capsys.readouterr()
    assert in_process(*common, "--run-dir", str(broken_dir)) == 1
    stderr = capsys.readouterr().err
    assert "No space left on device" in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert run_info(broken_dir).state == "failed"
    assert load_tensors(broken_dir / "state.safetensors")[1]["global_step"] == STEPS_PER_EPOCH
    model_steps = load_model(broken_dir / "vae.safetensors")[1]["steps_trained"]
    assert model_steps == (2 if failing == "save_tensors" else 1) * STEPS_PER_EPOCH  # a model file ahead of its state

    assert in_process(*common, "--run-dir", str(broken_dir), "--resume") == 0
    assert f"resuming {broken_dir} at epoch 2, step {STEPS_PER_EPOCH}" in capsys.readouterr().out
    assert run_info(broken_dir).state == "finished"
    final_a, meta_a = load_tensors(straight_dir / "vae.safetensors")
    final_b, meta_b = load_tensors(broken_dir / "vae.safetensors")
    assert meta_b["steps_trained"] == meta_a["steps_trained"] == 3 * STEPS_PER_EPOCH
    for name, tensor in final_a.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, final_b[name], rtol=1e-4, atol=1e-5), name
    assert load_tensors(broken_dir / "state.safetensors")[1]["global_step"] == 3 * STEPS_PER_EPOCH


def test_replayed_steps_of_a_resumed_run_replace_the_logged_ones(tmp_path):
    """Killed between saves, a run resumes from an older state and logs steps 20 and 25 again: each step reads once,
    from the replay, and the records before the replay stay."""
    path = tmp_path / "metrics.jsonl"
    first = [{"type": "step", "step": s, "loss": 1.0} for s in (5, 10, 15)] + [
        {"type": "epoch", "step": 18, "epoch": 1, "loss": 0.9}
    ]
    lost = [{"type": "step", "step": s, "loss": 5.0} for s in (20, 25)]
    replay = [{"type": "step", "step": s, "loss": 0.5} for s in (20, 25, 30)]
    path.write_text("".join(json.dumps(r) + "\n" for r in first + lost + replay))
    records = read_metrics(path)
    assert [(r["type"], r["step"]) for r in records] == [
        ("step", 5),
        ("step", 10),
        ("step", 15),
        ("epoch", 18),
        ("step", 20),
        ("step", 25),
        ("step", 30),
    ]
    assert all(r["loss"] != 5.0 for r in records)

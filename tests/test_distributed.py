"""Training on two processes (torchrun, gloo, one thread each) is training on one: the same losses, the same files,
and the same fault handling: SIGTERM stops every rank at one step and rank 0 saves, a dead rank fails the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genmodels.checkpoint import load_model
from genmodels.paths import REPO_ROOT
from genmodels.runs import read_json, read_metrics
from tests.conftest import TINY_CONFIGS, write_idx_dataset
from train import cli, distributed
from train.launch_nproc import failure_reason, launch, worker_argv

KINDS = ("classifier", "vae", "gan", "cgan")
STEPS = 24  # 600 synthetic images / global batch 64 = 9 steps an epoch: three epoch ends, one of them mid-way
WAIT_LIMIT_S = 120

# Per-step losses of 2 processes against 1, as |a - b| <= atol + rtol |b|. The classifier trains here without
# dropout and jitter, its only noise: the sharded batches, the synchronised batch norm and DDP's averaged gradients
# must then give one process's numbers up to float summation order. The others draw noise per rank from their own
# generators (the VAE's latent samples, the GANs' latents, fake labels and dropout masks): the same data and weights
# with other noise. Measured on 24 steps: the VAE's total loss within 1.3% (its KL, near 0 early, is compared
# absolutely), the GANs' losses within 6%, 2% on average; the tolerances leave about twice that.
TOLERANCES = {
    "classifier": {"loss": (1e-5, 1e-4), "accuracy": (0.0, 1e-6)},
    "vae": {"loss": (0.03, 0.0), "recon": (0.03, 0.0), "kl": (0.0, 0.5)},
    "gan": {"loss_d": (0.12, 0.0), "loss_g": (0.12, 0.0)},
    "cgan": {"loss_d": (0.12, 0.0), "loss_g": (0.12, 0.0), "loss_d_class": (0.12, 0.0), "loss_g_class": (0.12, 0.0)},
}
MEAN_RTOL = 0.04  # the noisy kinds' losses, averaged over the run's steps
STOP_AT = 13  # a resumed run stops here, mid-epoch
CORES = os.cpu_count() or 1


def worker_env(data: Path, tmp_path: Path) -> dict[str, str]:
    """Synthetic data, no shipped classifier, one thread per process."""
    (tmp_path / "no_checkpoints").mkdir(exist_ok=True)
    return {
        **os.environ,
        "GENMODELS_DATA": str(data),
        "GENMODELS_CHECKPOINTS": str(tmp_path / "no_checkpoints"),
        "GENMODELS_RUNS": str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }


def write_spec(path: Path, runs_root: Path) -> Path:
    """The four comparison runs at a global batch of 64, fp32, uncompiled."""
    runs = []
    for kind in KINDS:
        recipe = {"batch_size": 64, "precision": "fp32", "epochs": 3, "seed": 0}
        model = dict(TINY_CONFIGS[kind])
        if kind == "vae":  # a constant rate: the run stopped by --max-steps below must follow the same schedule
            recipe.update(compile="off", schedule="constant")
        if kind == "classifier":
            recipe["augment"] = "none"
            model["dropout"] = 0.0
        runs.append(
            {"kind": kind, "recipe": recipe, "model": model, "run_dir": str(runs_root / kind), "max_steps": STEPS}
        )
    # the VAE again, stopped mid-epoch and resumed by the same processes
    stopped = {**runs[1], "run_dir": str(runs_root / "vae_resumed"), "max_steps": STOP_AT}
    runs += [stopped, {**stopped, "max_steps": STEPS, "resume": True}]
    path.write_text(json.dumps({"runs": runs}))
    return path


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The comparison runs trained by one process and by two (torchrun, gloo): {'one': root, 'two': root}."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = write_idx_dataset(tmp / "data", "MNIST")
    env = worker_env(data, tmp)
    worker = str(REPO_ROOT / "tests" / "ddp_worker.py")
    commands = {
        "one": [sys.executable, worker],
        "two": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", worker],
    }
    running = {
        name: subprocess.Popen(
            [*command, str(write_spec(tmp / f"{name}.json", tmp / name))],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, command in commands.items()
    }  # side by side: each waits on its own start-up much of the time
    for name, process in running.items():
        out, err = process.communicate(timeout=WAIT_LIMIT_S * 2)
        # each run's own record of how it ended, as `--nproc` judges a run: gloo's shutdown, after the last save,
        # sometimes aborts a rank and torchrun then exits 1 for a run that finished
        states = [(read_json(tmp / name / run / "status.json") or {}).get("state") for run in (*KINDS, "vae_resumed")]
        assert states == ["finished"] * 5, f"{name}: {states}, exit {process.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    return {name: tmp / name for name in commands}


def steps(run_dir: Path) -> list[dict]:
    """The per-step records of a run."""
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "step"]


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_log_the_losses_of_one(one_and_two, kind):
    """Every step's logged losses (the mean over the global batch) match one process's within the stated tolerance."""
    one, two = steps(one_and_two["one"] / kind), steps(one_and_two["two"] / kind)
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, STEPS + 1))
    for name, (rtol, atol) in TOLERANCES[kind].items():
        for a, b in zip(two, one, strict=True):
            assert abs(a[name] - b[name]) <= atol + rtol * abs(b[name]), (
                f"{kind} {name} at step {a['step']}: {a[name]} vs {b[name]}"
            )
        if rtol:
            mean = sum(abs(a[name] - b[name]) / abs(b[name]) for a, b in zip(two, one, strict=True)) / len(one)
            assert mean <= MEAN_RTOL, f"{kind} {name}: mean relative difference {mean:.3f}"


@pytest.mark.parametrize("processes", ["one", "two"])
def test_a_run_stopped_mid_epoch_resumes_to_the_uninterrupted_losses(one_and_two, processes):
    """--resume at the same world size: each rank's noise depends on (seed, rank, step) alone, so the resumed run
    logs exactly the losses of the run that was never stopped."""
    whole, resumed = steps(one_and_two[processes] / "vae"), steps(one_and_two[processes] / "vae_resumed")
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    for a, b in zip(resumed, whole, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6), a["step"]


def test_two_processes_train_the_classifier_s_weights_of_one(one_and_two):
    """With no per-rank noise, the two-process checkpoint holds one process's weights and batch-norm statistics.

    Except a conv's bias that feeds a batch norm, and that norm's running mean, which carries it: the norm removes the
    bias, so its true gradient is 0 and Adam scales float noise (different in the two runs) into full steps."""
    one = load_model(one_and_two["one"] / "classifier" / "classifier.safetensors", kind="classifier")[0].state_dict()
    two = load_model(one_and_two["two"] / "classifier" / "classifier.safetensors", kind="classifier")[0].state_dict()
    normed = {f"convs.{int(name.split('.')[1]) - 1}.bias" for name in one if name.endswith("running_mean")}
    compared = [name for name in one if name not in normed and not name.endswith("running_mean")]
    assert len(compared) == len(one) - 2 * len(normed) > 10
    for name in compared:
        assert torch.allclose(one[name].float(), two[name].float(), rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("kind", KINDS)
def test_a_two_process_run_writes_what_a_single_one_does(one_and_two, kind):
    """Rank 0 alone writes the run: the same files and checkpoint keys; the config and status name the world size."""
    one, two = one_and_two["one"] / kind, one_and_two["two"] / kind
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert sorted(p.name for p in (two / "grids").iterdir()) == sorted(p.name for p in (one / "grids").iterdir())
    model, meta = load_model(two / f"{kind}.safetensors", kind=kind, dataset="mnist")
    reference, _ = load_model(one / f"{kind}.safetensors", kind=kind, dataset="mnist")
    assert list(model.state_dict()) == list(reference.state_dict())
    assert meta["steps_trained"] == STEPS
    assert read_json(two / "config.json")["world_size"] == 2
    status = read_json(two / "status.json")
    assert (status["state"], status["world_size"], status["step"]) == ("finished", 2, STEPS)
    if kind in ("gan", "cgan"):
        from genmodels import api

        label = 3 if kind == "cgan" else None  # the gan draws labels through a mapper, which this test trains none of
        generator = api.load_generator(kind, "mnist", checkpoint=two / f"{kind}.safetensors")
        samples = generator.sample(n=4, label=label, seed=0)
        assert samples.images.shape == (4, 1, 28, 28) and torch.isfinite(samples.images).all()


def start_two(run_dir: Path, env: dict[str, str], *flags: str) -> subprocess.Popen:
    """`python -m train vae ... --nproc 2` on synthetic MNIST into run_dir."""
    command = [
        sys.executable,
        "-m",
        "train",
        "vae",
        "--dataset",
        "mnist",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--model-config",
        json.dumps(TINY_CONFIGS["vae"]),
        "--log-every",
        "5",
        "--run-dir",
        str(run_dir),
        "--nproc",
        "2",
        *flags,
    ]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run_dir: Path, process: subprocess.Popen) -> None:
    """Until the run's first checkpoint is written; fails with the output when the run ends first."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not (run_dir / "state.safetensors").exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"training exited ({process.returncode}) before its first checkpoint:\n{out}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no checkpoint in time")
        time.sleep(0.05)


def test_sigterm_stops_both_ranks_and_rank_0_saves(synthetic_data, tmp_path):
    """SIGTERM to the launcher: every rank stops after the same step, rank 0 saves, exit 0."""
    env = worker_env(synthetic_data, tmp_path)
    run_dir = tmp_path / "runs" / "stopped"
    process = start_two(run_dir, env, "--epochs", "200")
    wait_for_checkpoint(run_dir, process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=WAIT_LIMIT_S)
    assert process.returncode == 0, err[-3000:]
    status = read_json(run_dir / "status.json")
    assert (status["state"], status["reason"], status["world_size"]) == ("cancelled", "stopped by SIGTERM", 2)
    records = read_metrics(run_dir / "metrics.jsonl")
    assert all(json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    _, meta = load_model(run_dir / "vae.safetensors", kind="vae", dataset="mnist")
    assert meta["steps_trained"] == status["step"] == records[-1]["step"]


def test_a_killed_rank_fails_the_run_with_the_launcher_s_report(synthetic_data, tmp_path):
    """SIGKILL to rank 1: the run ends failed, naming the rank and the signal, exit 1; the last checkpoint loads."""
    run_dir = tmp_path / "runs" / "victim"
    process = start_two(run_dir, worker_env(synthetic_data, tmp_path), "--epochs", "200")
    wait_for_checkpoint(run_dir, process)
    rank0 = read_json(run_dir / "status.json")["pid"]
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == process.pid]
    victim = next(pid for pid in children if pid != rank0)
    os.kill(victim, signal.SIGKILL)
    _, err = process.communicate(timeout=WAIT_LIMIT_S)
    assert process.returncode == 1
    status = read_json(run_dir / "status.json")
    assert status["state"] == "failed"
    assert status["reason"].startswith(f"rank 1 (pid {victim}) was killed by SIGKILL"), status["reason"]
    assert f"error: {status['reason']}" in err
    load_model(run_dir / "vae.safetensors", kind="vae", dataset="mnist")


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--nproc", "0"], "--nproc must be at least 1, got 0"),
        (["--nproc", "-2"], "--nproc must be at least 1, got -2"),
        (["--nproc", str(CORES + 1)], f"this machine has {CORES} CPU cores; pass --force-nproc"),
        (["--nproc", "2", "--batch-size", "33"], "the batch of 33 does not split over 2 processes"),
        (["--nproc", "2", "--compile", "on"], "a run on several processes trains uncompiled"),
    ],
)
def test_bad_nproc_is_refused_with_one_line_and_no_run_folder(flags, message, tmp_path, capsys):
    """A process count the machine or run cannot take: exit 2, one 'error:' line, nothing created."""
    run_dir = tmp_path / "runs" / "never"
    code = cli.main(["vae", "--dataset", "mnist", "--device", "cpu", "--run-dir", str(run_dir), *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not run_dir.exists()


def test_nproc_is_refused_for_all_and_under_torchrun(tmp_path, capsys, monkeypatch):
    """'all' trains its models one by one; a torchrun rank does not start torchrun again."""
    base = ["--dataset", "mnist", "--device", "cpu", "--nproc", "2", "--run-dir"]
    assert cli.main(["all", *base, str(tmp_path / "a")]) == 2
    assert "a run on several processes trains one model" in capsys.readouterr().err
    for name, value in zip(distributed.TORCHRUN_VARS, ("0", "2", "0", "x", "1"), strict=True):
        monkeypatch.setenv(name, value)
    assert cli.main(["gan", *base, str(tmp_path / "b")]) == 2
    assert "under torchrun, pass --nproc-per-node" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_cli_process_exits_2_on_a_bad_nproc(tmp_path):
    """The same refusal from a real process: one line on stderr, exit 2."""
    done = subprocess.run(
        [sys.executable, "-m", "train", "gan", "--dataset", "mnist", "--nproc", "0", "--run-dir", str(tmp_path / "x")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--nproc" in done.stderr
    assert not (tmp_path / "x").exists()


def test_resume_refuses_another_world_size(synthetic_data, tmp_path, capsys, monkeypatch):
    """A run trained on 2 processes resumes on 2: on 1 it is refused before any work."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "state.safetensors").write_bytes(b"")
    recipe = {"epochs": 2, "batch_size": 32, "lr": 1e-3, "seed": 0}
    config = {"kind": "vae", "dataset": "mnist", "recipe": recipe, "world_size": 2}
    (run_dir / "config.json").write_text(json.dumps(config))
    assert cli.main(["vae", "--dataset", "mnist", "--device", "cpu", "--run-dir", str(run_dir), "--resume"]) == 2
    assert "on the 2 process(es) it was trained on, not 1; pass --nproc 2" in capsys.readouterr().err


def test_shards_cover_the_global_batch_and_rank_seeds_differ():
    """Ranks take contiguous, disjoint slices of each batch; seeds differ by rank, step and stream, never by chance."""
    images, labels = torch.arange(12.0).view(12, 1), torch.arange(12)
    parts = [distributed.Distributed(rank, 3, rank, 3).shard(images, labels) for rank in range(3)]
    assert torch.equal(torch.cat([p[0] for p in parts]), images)
    assert torch.equal(torch.cat([p[1] for p in parts]), labels)
    assert distributed.Distributed(1, 2).shard(None, labels)[0] is None
    assert distributed.SOLO.shard(images, labels) == (images, labels)
    seeds = {
        distributed.rank_seed(7, rank, step, stream) for rank in range(4) for step in range(50) for stream in (0, 1)
    }
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(ValueError, match="multiple of 4"):
        distributed.Distributed(0, 4).check_batch(30)


def test_the_launcher_hands_the_ranks_its_command_and_reports_deaths():
    """The ranks run the launcher's command less --nproc and --nice (inherited), in its folder; deaths name the rank."""
    assert worker_argv(["gan", "--nproc", "2", "--force-nproc", "--seed", "3", "--nice", "10"], Path("/r")) == [
        "gan",
        "--seed",
        "3",
        "--run-dir",
        "/r",
    ]
    assert worker_argv(["gan", "--nproc=2", "--run-dir", "/mine"], Path("/r")) == ["gan", "--run-dir", "/mine"]

    class Failure:
        def __init__(self, exitcode, pid, message=""):
            self.exitcode, self.pid, self.message = exitcode, pid, message

        def signal_name(self):
            return signal.Signals(-self.exitcode).name

    class Failed:
        def __init__(self, failures):
            self.failures = failures

    gloo = (
        "RuntimeError: [/w/gloo/transport/tcp/pair.cc:545] Read error: Connection reset by peer. "
        "This is typically caused by a remote worker hanging."
    )
    assert (
        failure_reason(Failed({1: Failure(-9, 42), 0: Failure(1, 41)}), {"state": "failed", "reason": gloo})
        == "rank 1 (pid 42) was killed by SIGKILL (rank 0: RuntimeError: Read error: Connection reset by peer.)"
    )
    exits = Failed({0: Failure(1, 41), 1: Failure(1, 42)})
    assert (
        failure_reason(exits, {"state": "failed", "reason": "non-finite loss: training diverged"})
        == "non-finite loss: training diverged"
    )
    assert failure_reason(exits, None).startswith("rank 0 (pid 41) exited with code 1; rank 1")


def test_the_launcher_offers_processes_only_on_several_gpus_or_more_than_two_cores(monkeypatch):
    """The sidebar's process count: up to the GPUs where there are several, else the cores where there are > 2."""
    from genmodels import launch

    for gpus, cores, most in [(0, 2, 1), (0, 3, 3), (0, 16, 16), (1, 16, 1), (4, 16, 4)]:
        monkeypatch.setattr(launch, "gpu_count", lambda gpus=gpus: gpus)
        monkeypatch.setattr(launch.os, "cpu_count", lambda cores=cores: cores)
        assert launch.max_processes() == most
    monkeypatch.setattr(launch, "gpu_count", lambda: 0)
    assert launch.check_request("gan", "mnist", 3, 64, "", 1, 0, 4).nproc == 4
    for nproc, message in [(0, "must be between 1 and 16"), (17, "between 1 and 16"), (3, "multiple of the 3")]:
        with pytest.raises(ValueError, match=message):
            launch.check_request("gan", "mnist", 3, 64, "", 1, 0, nproc)


def test_the_scale_benchmark_reports_rates_and_efficiency(monkeypatch):
    """`python -m bench --only scale`: images/s per process count and rate_N / (N rate_1), in the JSON and the table."""
    from bench import report, scale

    rates = {1: 1000.0, 2: 1800.0}
    monkeypatch.setattr(scale, "run_rate", lambda kind, dataset, device, root, n, steps, run_dir: rates[n])
    monkeypatch.setattr(scale, "process_counts", lambda device: [1, 2])
    result = scale.measure(torch.device("cpu"), "mnist", "/data", 12, lambda message: None, kinds=("gan",))
    assert result["gan"]["images_per_s"] == {"1": 1000, "2": 1800}
    assert result["gan"]["efficiency"] == {"1": 1.0, "2": 0.9}
    rows = report.rows({"scale": result})
    assert rows == [
        (
            "scale gan, global batch 256: img/s by processes (1 thread each)",
            "1: 1000, 2: 1800; efficiency 2: 0.90",
            "",
            "",
        )
    ]


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_the_cpu_synchronised_batch_norm_is_batch_norm_over_the_group(bf16):
    """On one rank the CPU synchronised batch norm gives torch's batch norm: outputs, gradients, running statistics."""
    from torch import nn

    torch.distributed.init_process_group("gloo", store=torch.distributed.HashStore(), rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        plain = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
        synced = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
        synced.load_state_dict(plain.state_dict())
        replaced = synced[1]
        distributed._sync_batch_norm(synced, on_gpu=False)
        assert isinstance(synced[1], distributed._SyncedBatchNorm) and synced[1].weight is replaced.weight
        x = torch.randn(16, 1, 8, 8).to(memory_format=torch.channels_last)
        outs = []
        for model in (plain, synced):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x)
            out.float().square().mean().backward()
            outs.append(out)
        assert outs[0].dtype == outs[1].dtype
        tol = {"rtol": 2e-2, "atol": 2e-2} if bf16 else {"rtol": 1e-4, "atol": 1e-5}
        assert torch.allclose(outs[0].float(), outs[1].float(), **tol)
        assert torch.allclose(plain[0].weight.grad, synced[0].weight.grad, **tol)
        for name in ("running_mean", "running_var"):
            assert torch.allclose(getattr(plain[1], name), getattr(synced[1], name), **tol), name
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("state", ["finished", "running"])
def test_a_rank_dying_after_rank_0_recorded_the_end_does_not_fail_the_run(tmp_path, monkeypatch, capsys, state):
    """torchrun's failure counts only before rank 0 recorded how the run ended: after, the files are complete."""
    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import (
        ChildFailedError,
        ProcessFailure,
    )

    def aborted(args):
        raise ChildFailedError("train", {1: ProcessFailure(local_rank=1, pid=7, exitcode=-6, error_file="")})

    monkeypatch.setattr(torchrun, "run", aborted)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    (tmp_path / "status.json").write_text(json.dumps({"state": state}))
    code = launch(2, ["vae", "--dataset", "mnist"], tmp_path)
    status, err = read_json(tmp_path / "status.json"), capsys.readouterr().err
    if state == "finished":
        assert code == 0 and status["state"] == "finished"
        assert "note: the run finished, then rank 1 (pid 7) was killed by SIGABRT on exit" in err
    else:
        assert code == 1 and status == {
            "state": "failed",
            "reason": "rank 1 (pid 7) was killed by SIGABRT",
            "updated": status["updated"],
        }

"""Bad input from users is refused up front: CLI flags exit 2 with one line, the sampling API raises ValueError."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from genmodels import api
from genmodels.paths import REPO_ROOT
from train import cli

BAD_FLAGS = [
    # seed
    ["--seed", "-1"],
    ["--seed", str(2**63)],
    ["--seed", "1.5"],
    ["--seed", "abc"],
    ["--seed", ""],
    # epochs
    ["--epochs", "0"],
    ["--epochs", "-3"],
    ["--epochs", str(cli.MAX_EPOCHS + 1)],
    ["--epochs", "1e3"],
    ["--epochs", "nan"],
    # learning rate
    ["--lr", "0"],
    ["--lr", "-0.001"],
    ["--lr", "nan"],
    ["--lr", "inf"],
    ["--lr", "-inf"],
    ["--lr", "1e400"],
    ["--lr", "2"],
    ["--lr", "fast"],
    # batch size
    ["--batch-size", "0"],
    ["--batch-size", "-8"],
    ["--batch-size", str(cli.MAX_BATCH + 1)],
    ["--batch-size", "9" * 30],
    ["--batch-size", "64.0"],
    # max steps
    ["--max-steps", "0"],
    ["--max-steps", "-1"],
    ["--max-steps", "ten"],
    # log every
    ["--log-every", "0"],
    ["--log-every", "-5"],
    ["--log-every", "100001"],
    ["--log-every", "0x10"],
    # other flags
    # niceness and precision
    ["--nice", "-1"],
    ["--nice", "20"],
    ["--nice", "low"],
    ["--precision", "fp16"],
    ["--precision", ""],
    ["--compile", "fast"],
    ["--compile", ""],
    ["--device", "tpu"],
    ["--model-config", "[1, 2]"],
    ["--model-config", "{not json"],
    ["--resume"],
    ["--classifier", "/nonexistent/classifier.safetensors"],
]


@pytest.mark.parametrize("flags", BAD_FLAGS, ids=lambda f: " ".join(f))
def test_bad_cli_flag_exits_2_with_one_line(flags, capsys, tmp_path, monkeypatch):
    """Each out-of-range or ill-typed flag exits with status 2 and a single 'error:' line, before any work."""
    monkeypatch.setenv("GENMODELS_RUNS", str(tmp_path / "runs"))
    argv = ["vae", "--dataset", "mnist", *flags]
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == cli.USAGE_EXIT
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), captured.err
    assert captured.out == ""
    assert not (tmp_path / "runs").exists(), "a refused command must not create a run folder"


@pytest.mark.parametrize("argv", [["vae", "--dataset", "cifar"], ["stylegan", "--dataset", "mnist"], ["vae"], []])
def test_bad_kind_or_dataset_exits_2(argv, capsys):
    """An unknown model, dataset or a missing one exits 2 with one line."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == cli.USAGE_EXIT
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags", [["--lr", "nan"], ["--seed", "-1"], ["--batch-size", "x"]])
def test_bad_flag_in_a_real_process_prints_no_traceback(flags, tmp_path):
    """`python -m train` with a bad flag exits 2, prints one line and no traceback."""
    env = {**os.environ, "GENMODELS_RUNS": str(tmp_path / "runs")}
    result = subprocess.run(
        [sys.executable, "-m", "train", "vae", "--dataset", "mnist", *flags],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_boundary_flag_values_are_accepted():
    """The extreme valid values pass validation (the checks are not off by one)."""
    args = cli.build_parser().parse_args(
        [
            "vae",
            "--dataset",
            "mnist",
            "--seed",
            str(2**63 - 1),
            "--epochs",
            str(cli.MAX_EPOCHS),
            "--lr",
            "1",
            "--batch-size",
            str(cli.MAX_BATCH),
            "--max-steps",
            "1",
            "--log-every",
            "1",
        ]
    )
    cli.validate(args)
    args = cli.build_parser().parse_args(
        [
            "vae",
            "--dataset",
            "mnist",
            "--seed",
            "0",
            "--epochs",
            "1",
            "--lr",
            "1e-12",
            "--batch-size",
            "1",
            "--log-every",
            "100000",
        ]
    )
    cli.validate(args)


def test_unwritable_run_dir_under_a_file_is_refused_before_training(tmp_path, capsys):
    """A --run-dir below a regular file (cannot be created, even as root) exits 2 with one clear line."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = cli.main(["vae", "--dataset", "mnist", "--max-steps", "1", "--run-dir", str(blocker / "runs" / "r1")])
    assert code == cli.USAGE_EXIT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not" in err and str(blocker) in err, err


def test_unwritable_run_dir_by_permission_is_refused(tmp_path, capsys):
    """A read-only runs folder exits 2 before training (skipped as root, who may write anywhere)."""
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits are not enforced")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert (
            cli.main(["vae", "--dataset", "mnist", "--max-steps", "1", "--run-dir", str(locked / "r1")])
            == cli.USAGE_EXIT
        )
        assert "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_full_disk_is_refused_before_training(tmp_path, capsys, monkeypatch):
    """With (simulated) 10 MB free, training refuses to start and says how much space it needs."""
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(cli.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000_000))
    code = cli.main(["vae", "--dataset", "mnist", "--max-steps", "1", "--run-dir", str(tmp_path / "r1")])
    assert code == cli.USAGE_EXIT
    err = capsys.readouterr().err
    assert "MB free" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r1").exists()


# ----------------------------------------------------------------------------- sampling API range checks


@pytest.mark.parametrize("seed", [-1, 2**63, 1.5, float("nan"), True, "3", None, [1]])
def test_bad_seed_is_refused(seed):
    """Seeds outside [0, 2^63-1] or not integers raise ValueError naming the seed."""
    with pytest.raises(ValueError, match="seed"):
        api.check_seed(seed)


@pytest.mark.parametrize("n", [0, -1, api.MAX_SAMPLES + 1, 2.0, True, "4", None])
def test_bad_count_is_refused(n):
    """Counts outside [1, MAX_SAMPLES] or not integers raise ValueError."""
    with pytest.raises(ValueError, match="number of images"):
        api.check_count(n)


@pytest.mark.parametrize("t", [0, 0.01, -1.0, 3.01, math.nan, math.inf, -math.inf, "1", None, True])
def test_bad_temperature_is_refused(t):
    """Temperatures outside the allowed range, non-finite or non-numeric raise ValueError."""
    with pytest.raises(ValueError, match="temperature"):
        api.check_temperature(t)


@pytest.mark.parametrize("label", [-1, 10, 1.0, "3", "ALL", True, [1], 2**70])
def test_bad_label_is_refused(label):
    """Labels outside 0..9, 'all' or None raise ValueError."""
    with pytest.raises(ValueError, match="label"):
        api.resolve_labels(label, 4, 10)


def test_all_labels_count_is_bounded():
    """'all' multiplies n by the number of classes, so n is capped to keep the total under MAX_SAMPLES."""
    assert len(api.resolve_labels("all", api.MAX_SAMPLES // 10, 10)) == api.MAX_SAMPLES
    with pytest.raises(ValueError):
        api.resolve_labels("all", api.MAX_SAMPLES // 10 + 1, 10)


@pytest.fixture(scope="module")
def tiny_models(tiny_checkpoints):
    """Tiny randomly initialised MNIST generators loaded through the public API."""
    return {
        kind: api.load_generator(kind, "mnist", root=tiny_checkpoints, device="cpu") for kind in ("gan", "cgan", "vae")
    }


@pytest.mark.parametrize("kind", ["gan", "cgan", "vae"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_latents_are_refused(tiny_models, kind, bad):
    """decode refuses latents holding NaN or infinity."""
    model = tiny_models[kind]
    z = torch.zeros(3, model.latent_dim)
    z[1, 0] = bad
    with pytest.raises(ValueError, match="finite"):
        model.decode(z, torch.zeros(3, dtype=torch.int64))


@pytest.mark.parametrize("kind", ["gan", "cgan", "vae"])
def test_wrong_latent_shape_is_refused(tiny_models, kind):
    """decode refuses latents of the wrong width or rank."""
    model = tiny_models[kind]
    for z in (torch.zeros(2, model.latent_dim + 1), torch.zeros(model.latent_dim), torch.zeros(1, 2, model.latent_dim)):
        with pytest.raises(ValueError, match="shape"):
            model.decode(z, torch.zeros(2, dtype=torch.int64))


@pytest.mark.parametrize(
    "labels", [None, torch.tensor([0, 10]), torch.tensor([-1, 0]), torch.tensor([0.0, 1.0]), torch.tensor([1])]
)
def test_cgan_decode_needs_one_valid_label_per_latent(tiny_models, labels):
    """The cgan refuses missing, out-of-range, float or miscounted labels."""
    model = tiny_models["cgan"]
    with pytest.raises(ValueError):
        model.decode(torch.zeros(2, model.latent_dim), labels)


def test_unknown_generator_or_dataset_is_refused(tiny_checkpoints):
    """load_generator names the choices for an unknown kind or dataset."""
    with pytest.raises(ValueError, match="unknown generator"):
        api.load_generator("classifier", "mnist", root=tiny_checkpoints)
    with pytest.raises(ValueError, match="unknown dataset"):
        api.load_generator("vae", "../mnist", root=tiny_checkpoints)

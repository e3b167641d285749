"""Tests of the `python -m genmodels` command line (sample, evaluate, summarize) on tiny checkpoints and synthetic
data."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from genmodels import cli, evaluation
from genmodels.api import load_generator
from genmodels.checkpoint import load_tensors, read_metadata
from genmodels.data import unit_to_uint8
from genmodels.kinds import generator_kinds
from genmodels.paths import REPO_ROOT


@pytest.fixture
def tiny(tiny_checkpoints, monkeypatch):
    """Sample from the tiny random checkpoints (fast) through GENMODELS_CHECKPOINTS."""
    monkeypatch.setenv("GENMODELS_CHECKPOINTS", str(tiny_checkpoints))
    return tiny_checkpoints


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's own refusals exit from parse_args
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- sample


def test_sample_npy_is_uint8_and_reproducible(tiny, tmp_path, capsys):
    a, b, c = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "c.npy"
    for out, seed in ((a, "5"), (b, "5"), (c, "6")):
        code, stdout, _ = run(
            capsys,
            "sample",
            "--dataset",
            "mnist",
            "--model",
            "cgan",
            "--label",
            "3",
            "--n",
            "4",
            "--seed",
            seed,
            "--out",
            str(out),
        )
        assert code == 0 and "wrote 4" in stdout
    first = np.load(a, allow_pickle=False)
    assert first.shape == (4, 28, 28) and first.dtype == np.uint8
    assert np.array_equal(first, np.load(b)) and not np.array_equal(first, np.load(c))


@pytest.mark.parametrize("kind", generator_kinds())
def test_every_generator_kind_samples_by_class(tiny, tmp_path, capsys, kind):
    out = tmp_path / f"{kind}.npy"
    argv = ("sample", "--dataset", "fashion", "--model", kind, "--label", "all", "--n", "1", "--out", str(out))
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and "wrote 10" in stdout and np.load(out).shape == (10, 28, 28)


def test_a_screened_generator_samples_through_its_critic_unless_told_otherwise(tiny, tmp_path, capsys):
    out = tmp_path / "x.npy"
    argv = ("sample", "--dataset", "mnist", "--model", "dcgan", "--label", "2", "--n", "3", "--out", str(out))
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and "screened by its critic" in stdout
    code, stdout, _ = run(capsys, *argv, "--without-critic")
    assert code == 0 and "wrote 3" in stdout and "screened by its critic" not in stdout
    code, stdout, _ = run(capsys, *argv, "--strictness", "4")
    assert code == 0 and "screened by its critic at strictness 4" in stdout


def test_sample_label_all_is_n_per_class_in_class_order(tiny, tmp_path, capsys):
    out = tmp_path / "all.npy"
    code, _, _ = run(
        capsys,
        "sample",
        "--dataset",
        "fashion",
        "--model",
        "vae",
        "--label",
        "all",
        "--n",
        "2",
        "--seed",
        "1",
        "--out",
        str(out),
    )
    assert code == 0
    expected = load_generator("vae", "fashion", device="cpu").sample(2, label="all", seed=1)
    assert expected.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert np.array_equal(np.load(out), unit_to_uint8(expected.images).numpy())


def test_sample_unconditional_png_grid(tiny, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, _, _ = run(
        capsys, "sample", "--dataset", "mnist", "--model", "gan", "--n", "12", "--temperature", "0.5", "--out", str(out)
    )
    assert code == 0
    with Image.open(out) as image:
        assert image.mode == "L" and image.size == (10 * 30 + 2, 2 * 30 + 2)  # 10 per row, 2 rows, 2 px padding


def test_sample_from_a_given_checkpoint(tiny, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(tiny / "mnist" / "gan.safetensors", run_dir / "gan.safetensors")  # no mapper beside it
    out = tmp_path / "x.npy"
    code, _, _ = run(
        capsys,
        "sample",
        "--dataset",
        "mnist",
        "--model",
        "gan",
        "--checkpoint",
        str(run_dir / "gan.safetensors"),
        "--n",
        "3",
        "--out",
        str(out),
    )
    assert code == 0 and np.load(out).shape == (3, 28, 28)
    code, _, err = run(
        capsys,
        "sample",
        "--dataset",
        "mnist",
        "--model",
        "gan",
        "--checkpoint",
        str(run_dir / "gan.safetensors"),
        "--label",
        "1",
        "--out",
        str(out),
    )
    assert code == 2 and "mapper" in err


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["--dataset", "cifar", "--model", "gan"], 2, "invalid choice"),
        (["--dataset", "mnist", "--model", "diffusion"], 2, "invalid choice"),
        (["--dataset", "mnist", "--model", "cgan", "--label", "10"], 2, "label must be"),
        (["--dataset", "mnist", "--model", "cgan", "--label", "-1"], 2, "label must be"),
        (["--dataset", "mnist", "--model", "cgan", "--label", "seven"], 2, "class index or 'all'"),
        (["--dataset", "mnist", "--model", "cgan", "--n", "0"], 2, "between 1 and 10000"),
        (["--dataset", "mnist", "--model", "cgan", "--n", "10001"], 2, "between 1 and 10000"),
        (["--dataset", "mnist", "--model", "cgan", "--label", "all", "--n", "1001"], 2, "between 1 and 1000"),
        (["--dataset", "mnist", "--model", "cgan", "--seed", "-3"], 2, "seed must be"),
        (["--dataset", "mnist", "--model", "cgan", "--temperature", "inf"], 2, "finite"),
        (["--dataset", "mnist", "--model", "cgan", "--temperature", "9"], 2, "temperature must be"),
        (["--dataset", "mnist", "--model", "cgan", "--out", "OUT/x.jpg"], 2, "unknown extension"),
        (["--dataset", "mnist", "--model", "cgan", "--out", "OUT/missing/x.png"], 2, "does not exist"),
        (["--dataset", "mnist", "--model", "cgan", "--out", "OUT"], 2, "unknown extension"),
        (["--dataset", "mnist", "--model", "cgan", "--without-critic", "--out", "OUT/x.png"], 2, "no sampling critic"),
        (["--dataset", "mnist", "--model", "cgan", "--strictness", "2", "--out", "OUT/x.png"], 2, "no sampling critic"),
        (["--dataset", "mnist", "--model", "dcgan", "--strictness", "0"], 2, "strictness must be"),
        (["--dataset", "mnist", "--model", "dcgan", "--strictness", "2", "--without-critic"], 2, "switches it off"),
        (
            ["--dataset", "mnist", "--model", "cgan", "--checkpoint", "OUT/none.safetensors", "--out", "OUT/x.png"],
            2,
            "no such file",
        ),
    ],
)
def test_sample_bad_input_is_one_error_line(tiny, tmp_path, capsys, argv, code, message):
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    result, stdout, err = run(capsys, "sample", *argv)
    assert result == code
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert "Traceback" not in err and stdout == ""
    assert not list(tmp_path.glob("x.*"))


def test_sample_corrupt_or_wrong_checkpoint_is_a_runtime_error(tiny, tmp_path, capsys):
    corrupt = tmp_path / "vae.safetensors"
    corrupt.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    out = tmp_path / "x.png"
    for path in (corrupt, tiny / "mnist" / "gan.safetensors"):
        code, stdout, err = run(
            capsys, "sample", "--dataset", "mnist", "--model", "vae", "--checkpoint", str(path), "--out", str(out)
        )
        assert code == 1 and err.startswith("error: checkpoint") and err.count("\n") == 1
    assert not out.exists()


def test_import_does_not_parse_arguments(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["python", "--bogus"])
    importlib.reload(importlib.import_module("genmodels.__main__"))  # would exit 2 if it parsed at import


def test_help_lists_the_commands(capsys):
    code, stdout, _ = run(capsys, "--help")
    assert code == 0 and all(name in stdout for name in ("sample", "evaluate", "summarize"))


def test_module_entry_point_in_a_subprocess():
    bad = subprocess.run(
        [sys.executable, "-m", "genmodels", "sample", "--dataset", "mnist", "--model", "vae", "--label", "12"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: label must be") and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr


# ----------------------------------------------------------------------------- evaluate


@pytest.fixture
def tiny_copy(tiny_checkpoints, tmp_path, monkeypatch):
    """A private copy of the tiny checkpoints (evaluate writes into them) used through GENMODELS_CHECKPOINTS."""
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny_checkpoints, root)
    monkeypatch.setenv("GENMODELS_CHECKPOINTS", str(root))
    return root


def checkpoint_files(root):
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_evaluate_prints_and_changes_no_file_by_default(synthetic_data, tiny_copy, capsys):
    before = checkpoint_files(tiny_copy)
    code, stdout, err = run(
        capsys, "evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--n", "100", "--json"
    )
    assert code == 0 and "wrote" not in err
    result = json.loads(stdout)
    for key in (
        "classifier_test_accuracy",
        "cgan_class_accuracy",
        "gan_class_accuracy",
        "vae_class_accuracy",
        "vae_test_neg_elbo",
        "s0_accuracy",
        "cgan_s1_accuracy",
        "gan_s1_accuracy",
        "vae_s1_accuracy",
        "cgan_class_accuracy_crosscheck",
        "gan_class_accuracy_crosscheck",
        "vae_class_accuracy_crosscheck",
    ):
        assert isinstance(result[key], float), key
    assert checkpoint_files(tiny_copy) == before  # measuring never modifies shipped files

    table = cli.format_table(result, generator_kinds())
    assert "classifier test accuracy" in table and "cross-check" in table and "FID" in table
    assert len(table.splitlines()) > 20
    real_lowest = min(result["classifier_test_per_class_accuracy"])
    worst = result["classifier_test_per_class_accuracy"].index(real_lowest)
    real_row, generators_row = (line for line in table.splitlines() if line.startswith("  lowest class"))
    assert real_row.endswith(f"{real_lowest:.2%} ({worst})")  # MNIST's class names are its digits
    assert f"{min(result['cgan_per_class_accuracy']):.2%}" in generators_row


def test_evaluate_writes_the_checkpoints_only_with_write(synthetic_data, tiny_copy, capsys, tmp_path, monkeypatch):
    from genmodels import compare
    from genmodels.compare import comparison_path, read_comparison

    monkeypatch.setattr(compare, "COUNTS", (10, 20))  # two slider positions are enough here, and quicker
    report = tmp_path / "report.json"
    code, stdout, err = run(
        capsys,
        "evaluate",
        "--dataset",
        "mnist",
        "--data",
        str(synthetic_data),
        "--n",
        "100",
        "--json",
        "--write",
        "--report",
        str(report),
    )
    assert code == 0 and "wrote evaluation into" in err and "wrote the GAN vs VAE page's numbers" in err
    result = json.loads(stdout)
    assert json.loads(report.read_text()) == result
    assert (
        read_metadata(tiny_copy / "mnist" / "vae.safetensors")["evaluation"]["test_neg_elbo"]
        == result["vae_test_neg_elbo"]
    )
    assert set(read_comparison(comparison_path("mnist", tiny_copy)).scores) == set(generator_kinds())

    before = checkpoint_files(tiny_copy)
    code, _, err = run(
        capsys, "evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--n", "100", "--json", "--write"
    )
    assert code == 0 and "wrote" not in err and checkpoint_files(tiny_copy) == before  # same numbers: nothing rewritten


def test_evaluate_report_stays_out_of_the_checkpoints(synthetic_data, tiny_copy, capsys, tmp_path):
    before = checkpoint_files(tiny_copy)
    for bad, message in (
        (tiny_copy / "mnist" / "report.json", "inside the checkpoints folder"),
        (tmp_path / "report.txt", "unknown extension"),
        (tmp_path / "none" / "r.json", "does not exist"),
    ):
        code, _, err = run(
            capsys, "evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--report", str(bad)
        )
        assert code == 2 and message in err and err.startswith("error: --report"), err
    assert checkpoint_files(tiny_copy) == before


def test_evaluate_no_write_is_still_accepted(synthetic_data, tiny_copy, capsys, monkeypatch):
    from genmodels import evaluation

    fake = {"dataset": "mnist", "samples": 100, "seed": 0, "vae_fid": 1.0}
    monkeypatch.setattr(evaluation, "evaluate_dataset", lambda *a, **k: fake)
    before = checkpoint_files(tiny_copy)
    code, stdout, _ = run(
        capsys, "evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--n", "100", "--json", "--no-write"
    )
    assert code == 0 and json.loads(stdout) == fake
    assert checkpoint_files(tiny_copy) == before


def test_evaluate_at_a_temperature_draws_hotter_and_stores_nothing(synthetic_data, tiny_copy, capsys):
    before = checkpoint_files(tiny_copy)
    common = ("evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--n", "100", "--json")
    code, stdout, _ = run(capsys, *common)
    default = json.loads(stdout)
    code, stdout, _ = run(capsys, *common, "--temperature", "2")
    hot = json.loads(stdout)
    assert code == 0 and default["temperature"] == 1.0 and hot["temperature"] == 2.0
    assert hot["classifier_test_accuracy"] == default["classifier_test_accuracy"]  # the real data: as before
    for kind in ("cgan", "gan", "vae"):
        assert hot[f"{kind}_fid"] != default[f"{kind}_fid"], kind  # every generator drew other images
    assert "drawn at temperature 2.0" in cli.format_table(hot, generator_kinds()).splitlines()[0]
    code, _, err = run(capsys, *common, "--temperature", "1.3", "--write")
    assert code == 2 and "--write stores the numbers every page shows" in err and err.count("\n") == 1
    assert checkpoint_files(tiny_copy) == before
    with pytest.raises(ValueError, match="not stored"):
        evaluation.write_evaluation(hot, tiny_copy)
    assert checkpoint_files(tiny_copy) == before


def test_evaluate_refuses_bad_input_and_missing_data(tmp_path, capsys):
    code, _, err = run(capsys, "evaluate", "--dataset", "mnist", "--n", "5", "--data", str(tmp_path))
    assert code == 2 and "between 100 and 10000" in err
    code, _, err = run(capsys, "evaluate", "--dataset", "mnist", "--temperature", "9", "--data", str(tmp_path))
    assert code == 2 and "temperature must be a number between" in err
    code, _, err = run(capsys, "evaluate", "--dataset", "fashion", "--data", str(tmp_path))
    assert code == 1 and err.startswith("error: evaluation needs the real Fashion-MNIST files") and err.count("\n") == 1


# ----------------------------------------------------------------------------- summarize


def test_summarize_rebuilds_a_summary(synthetic_data, tmp_path, capsys):
    out = tmp_path / "mnist_summary.safetensors"
    code, stdout, _ = run(capsys, "summarize", "--dataset", "mnist", "--data", str(synthetic_data), "--out", str(out))
    assert code == 0 and str(out) in stdout
    tensors, meta = load_tensors(out)
    assert meta["dataset"] == "mnist" and tensors["train_counts"].sum() == 600
    code, _, err = run(capsys, "summarize", "--dataset", "mnist", "--data", str(tmp_path / "none"))
    assert code == 1 and "needs the real MNIST files" in err
    code, stdout, _ = run(capsys, "summarize", "--dataset", "mnist", "--data", str(synthetic_data), "--out", str(out))
    assert code == 0, "an earlier summary may be replaced"
    model = tmp_path / "gan.safetensors"
    model.write_bytes(b"a checkpoint, or anything else")
    code, _, err = run(capsys, "summarize", "--dataset", "mnist", "--data", str(synthetic_data), "--out", str(model))
    assert (
        code == 2
        and "exists and is not a data summary" in err
        and model.read_bytes() == b"a checkpoint, or anything else"
    )


def test_evaluate_write_replaces_numbers_from_more_samples(synthetic_data, tiny_copy, capsys, monkeypatch):
    from genmodels import compare, evaluation
    from genmodels.checkpoint import update_metadata

    path = tiny_copy / "mnist" / "vae.safetensors"
    update_metadata(path, evaluation={"samples": 10_000, "seed": 0, "fid": 5.0})
    monkeypatch.setattr(
        evaluation,
        "evaluate_dataset",
        lambda *a, **k: {
            "dataset": "mnist",
            "samples": 100,
            "seed": 0,
            "vae_fid": 9.0,
            "classifier_test_accuracy": 0.9,
            "classifier_test_confidence": 0.9,
            "classifier_test_per_class_accuracy": [0.9] * 10,
            "crosscheck_test_accuracy": 0.9,
            "s0_accuracy": 0.9,
        },
    )
    monkeypatch.setattr(compare, "write_comparison", lambda *a, **k: False)
    code, _, err = run(capsys, "evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--n", "100", "--json")
    assert code == 0 and read_metadata(path)["evaluation"]["fid"] == 5.0
    code, _, err = run(
        capsys, "evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--n", "100", "--json", "--write"
    )
    assert code == 0 and read_metadata(path)["evaluation"]["fid"] == 9.0


def test_evaluate_measures_the_others_when_one_checkpoint_is_broken(synthetic_data, tiny_copy, capsys):
    broken = tiny_copy / "mnist" / "vae.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    before = broken.read_bytes()
    code, stdout, err = run(
        capsys, "evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--n", "100", "--json"
    )
    result = json.loads(stdout)
    assert code == 1 and isinstance(result["cgan_class_accuracy"], float) and "vae_class_accuracy" not in result
    assert "error: vae not measured:" in err and "Traceback" not in err and broken.read_bytes() == before
    code, _, err = run(
        capsys, "evaluate", "--dataset", "mnist", "--data", str(synthetic_data), "--n", "100", "--json", "--write"
    )
    assert code == 1 and "not every generator was measured" in err and broken.read_bytes() == before
    assert not (tiny_copy / "mnist" / "comparison.json").exists()

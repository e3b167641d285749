"""The benchmark runs end to end in --quick mode and prints every field the issue asks for (timings are never
asserted)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_KINDS = ("gan", "cgan", "vae", "dcgan", "conv_vae", "classifier")
GENERATOR_KINDS = ("cgan", "gan", "vae", "dcgan", "conv_vae")


def run_bench(*args: str, env: dict[str, str] | None = None, timeout: int = 540) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> dict:
    """`python -m bench --json --quick` over the train, quality and sample sections, on small synthetic IDX files."""
    from tests.conftest import write_idx_dataset

    root = tmp_path_factory.mktemp("bench_data")
    write_idx_dataset(root, "MNIST", n_train=1000)
    write_idx_dataset(root, "FashionMNIST", n_train=1000, seed=1)
    done = run_bench("--json", "--quick", "--only", "train,quality,sample", env={"GENMODELS_DATA": str(root)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.checkpoints
def test_quick_json_has_the_issue_fields(quick_results):
    for kind in TRAIN_KINDS:
        train = quick_results["train"][kind]
        assert train["speedup"] > 0 and train["fraction_of_peak"] > 0
        assert train["project_s_per_epoch"] > 0 and train["reference_images_per_s"] > 0
        # the vae compiles its full-length recipe on the CPU (where a C++ compiler is there for Inductor)
        assert train["compiled"] is (kind == "vae" and shutil.which("g++") is not None)
    assert quick_results["train"]["matmul_peak_gflops"] > 0
    assert set(quick_results["time_to_quality"]) == {"cgan", "dcgan"}  # every conditional GAN, conv included
    for quality in quick_results["time_to_quality"].values():
        assert {"speedup", "project", "reference", "project_recipe"} <= set(quality)
    for kind in GENERATOR_KINDS:
        sample = quick_results["sample"][kind]
        assert sample["p50_ms"] > 0 and sample["png_p50_ms"] > 0
    assert quick_results["quick"] is True and quick_results["machine"]["cores"] >= 1


@pytest.mark.checkpoints
def test_table_shows_every_measure_with_its_target(quick_results):
    text = report.table(quick_results)
    assert "QUICK mode" in text
    for needle in (
        "matmul peak",
        "train cgan, batch 64",
        "time to 95% class accuracy",
        "sample 100 vae images",
        "PNG grid",
    ):
        assert needle in text


def test_ceiling_section_is_opt_in_and_varies_batch_and_dropout(tmp_path):
    """`--only ceiling` measures gan and cgan at each batch with D's dropout and without; the default run leaves it
    out."""
    from bench.__main__ import parse_args
    from tests.conftest import write_idx_dataset

    assert "ceiling" not in parse_args([]).sections
    write_idx_dataset(tmp_path, "MNIST", n_train=1000)
    done = run_bench("--json", "--quick", "--only", "ceiling", env={"GENMODELS_DATA": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    ceiling = json.loads(done.stdout)["ceiling"]
    for kind in ("gan", "cgan"):
        settings = [(row["batch_size"], row["dropout"]) for row in ceiling[kind]]
        assert settings == [(32, 0.3), (32, 0.0), (64, 0.3), (64, 0.0)]
        assert all(row["fraction_of_peak"] > 0 and row["images_per_s"] > 0 for row in ceiling[kind])
    assert ceiling["matmul_peak_gflops"]
    assert "ceiling cgan, batch 64, dropout 0 " in report.table(json.loads(done.stdout))


def test_data_the_reference_loop_cannot_read_stops_with_one_message(tmp_path):
    """Gzipped IDX files serve the project's loader but not torchvision's: one error line, exit 2, no traceback."""
    import gzip

    from tests.conftest import write_idx_dataset

    raw = write_idx_dataset(tmp_path, "MNIST", n_train=1000) / "MNIST" / "raw"
    for path in list(raw.iterdir()):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    done = run_bench("--quick", "--only", "train", env={"GENMODELS_DATA": str(tmp_path)})
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: the reference loop reads MNIST through torchvision, which needs the unpacked")
    )
    assert "Traceback" not in done.stderr and not done.stdout


def test_unknown_section_is_refused():
    done = run_bench("--only", "nothing", timeout=60)
    assert done.returncode == 2 and "unknown section" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threads", "0"], "--threads must be at least 1, got 0"),
        (["--threads", "-2"], "--threads must be at least 1, got -2"),
        (["--only", ","], "--only: name at least one section"),
    ],
)
def test_bad_flags_are_refused_before_any_work(args, message, capsys):
    from bench.__main__ import parse_args

    with pytest.raises(SystemExit) as refused:
        parse_args(args)
    err = capsys.readouterr().err
    assert refused.value.code == 2 and message in err and len(err.strip().splitlines()) == 1  # no usage dump


def test_empty_entries_in_only_are_ignored():
    from bench.__main__ import parse_args

    assert parse_args(["--only", "train,,sample,"]).sections == ("train", "sample")


@pytest.mark.browser
@pytest.mark.checkpoints
def test_app_section_reports_first_page_renders_and_memory():
    pytest.importorskip("streamlit")
    done = run_bench("--json", "--quick", "--only", "app", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    app = json.loads(done.stdout)["app"]
    assert app["first_page_s"] > 0 and app["page_p50_s"] > 0 and app["peak_rss_mb"] > 0
    if "first_samples_s" in app:  # Chromium and Playwright are there: the quick run visits the MNIST Data page cold
        assert set(app["first_visit_s"]) == {"data"} and set(app["first_visit_s"]["data"]) == {"mnist"}
        assert 0 < app["first_visit_p50_s"] <= app["first_visit_max_s"]
    assert not app["page_errors"]


@pytest.mark.checkpoints
def test_invert_section_reports_inversion_and_the_your_image_page(tmp_path):
    pytest.importorskip("streamlit")
    done = run_bench("--json", "--quick", "--only", "invert", env={"GENMODELS_DATA": str(tmp_path)}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    invert = json.loads(done.stdout)["invert"]
    for kind in ("cgan", "gan"):
        assert 0 < invert["inversion"][kind]["p50_s"] <= invert["inversion"][kind]["p95_s"]
    for dataset in ("mnist", "fashion"):
        assert invert["page"][dataset]["first_input_s"] > 0 and invert["page"][dataset]["p50_s"] > 0
    assert "invert one image, cgan" in report.table(json.loads(done.stdout))


def test_reference_models_use_stock_layers_with_the_same_weights():
    """The reference loop trains what a usual script builds: nn.Dropout for the project's dropout, same weights and eval
    outputs."""
    import torch

    from bench.reference import stock_copy
    from genmodels.models import CGANConfig, CondDiscriminator, Dropout

    torch.manual_seed(0)
    model = CondDiscriminator(CGANConfig(d_hidden=(32, 16))).eval()
    stock = stock_copy(model).eval()
    assert not any(isinstance(m, Dropout) for m in stock.modules())
    assert [m.p for m in stock.modules() if isinstance(m, torch.nn.Dropout)] == [0.3, 0.3]
    assert any(isinstance(m, Dropout) for m in model.modules())  # the project's module is left alone
    images, labels = torch.randn(5, 1, 28, 28), torch.arange(5)
    for ours, theirs in zip(model(images, labels), stock(images, labels), strict=True):
        assert torch.equal(ours, theirs)


def test_the_app_probe_counts_its_own_memory_not_its_parents():
    """Linux hands `ru_maxrss` down across exec; the probe reads its own high-water mark instead."""
    parent_ballast = bytearray(400 * 2**20)
    parent_ballast[::4096] = b"\1" * len(parent_ballast[::4096])  # resident, not just reserved
    code = "from bench.app_probe import peak_rss_mb; print(peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert float(out.stdout) < 200  # a bare interpreter, not the 400 MB its parent holds
    del parent_ballast


@pytest.mark.parametrize("kind", ["dcgan", "conv_vae"])
def test_the_conv_kinds_train_in_both_loops(kind, synthetic_data, monkeypatch):
    """The throughput section compares the convolutional kinds too: the project's step and a usual-way step of a
    stock copy of the same networks both train, and the FLOP counter sees the convolutions."""
    import torch

    from bench import reference, throughput
    from tests.conftest import TINY_CONFIGS

    monkeypatch.setenv("GENMODELS_DATA", str(synthetic_data))
    assert kind in reference.compared_kinds() and kind not in reference.dropout_gan_kinds()
    loop = throughput.project_loop(kind, "mnist", torch.device("cpu"), batch_size=8, model=TINY_CONFIGS[kind])
    assert throughput.flops_per_image(loop) > 0 and loop.run(2) == 16
    trainer = reference.reference_trainer(loop.task)
    images, labels = next(iter(loop.batches))
    assert torch.isfinite(torch.tensor(trainer.step(images, labels)))

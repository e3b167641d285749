"""Training health rules: each named failure fires on a log built to show it; the shipped runs' logs raise none."""

import math

import pytest

from genmodels import health
from genmodels.kinds import KINDS
from genmodels.paths import REPO_ROOT
from genmodels.runs import read_metrics


def steps(count, every=100, **values):
    return [{"type": "step", "step": s, "epoch": s / 1000, **values} for s in range(every, every * (count + 1), every)]


def epochs(*values):
    return [{"type": "epoch", "step": 1000 * e, "epoch": float(e), **v} for e, v in enumerate(values, 1)]


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_shipped_logs_raise_no_alert(dataset, kind):
    path = REPO_ROOT / "checkpoints" / dataset / "logs" / f"{kind}.jsonl"
    if not path.is_file():
        pytest.skip(f"no shipped {kind} log for {dataset}")
    assert health.alerts(read_metrics(path)) == []


def test_a_nan_loss_is_named_diverged_at_its_step():
    (alert,) = health.alerts([*steps(3, loss_d=1.0), {"type": "step", "step": 400, "epoch": 0.4, "loss_g": math.nan}])
    assert alert.name == "diverged" and alert.step == 400 and "loss_g" in alert.message


def test_a_discriminator_that_rejects_every_fake_for_300_steps_wins():
    healthy = steps(4, d_fake=0.3)
    assert health.alerts(healthy) == []
    won = health.alerts([*healthy, *({**r, "step": r["step"] + 400} for r in steps(6, d_fake=0.01))])
    assert [a.name for a in won] == ["discriminator wins"] and won[0].step == 800
    brief = [*healthy, *({**r, "step": r["step"] + 400} for r in steps(3, d_fake=0.01))]
    assert health.alerts(brief) == [], "200 steps is not yet 'winning'"


def test_mode_collapse_needs_two_epochs_of_one_dominant_class():
    varied = {"dominant_class_share": 0.12, "dominant_class": 3}
    collapsed = {"dominant_class_share": 0.7, "dominant_class": 1}
    assert health.alerts(epochs(varied, collapsed, varied)) == []
    (alert,) = health.alerts(epochs(varied, collapsed, collapsed))
    assert alert.name == "mode collapse" and "70% of the samples are class 1 since epoch 2" in alert.message


def test_frozen_blank_and_collapsed_posterior_outputs_are_named():
    frozen = health.alerts(epochs({"sample_change": 0.2}, {"sample_change": 1e-5}, {"sample_change": 0.0}))
    assert [a.name for a in frozen] == ["output frozen"]
    (blank,) = health.alerts(epochs({"pixel_std": 0.001, "pixel_mean": 0.0}))
    assert blank.name == "blank output" and "all black" in blank.message
    (vae,) = health.alerts(epochs({"kl": 12.0}, {"kl": 0.1}))
    assert vae.name == "posterior collapse" and vae.epoch == 2.0


def test_alerts_round_trip_as_log_records_and_are_not_rules_input():
    (alert,) = health.alerts(epochs({"kl": 0.1}))
    record = alert.to_record()
    assert record["type"] == "alert" and record["name"] == "posterior collapse"
    assert health.alerts([record]) == []


def test_sample_health_signals_name_a_collapsed_and_a_frozen_generator():
    import torch

    from genmodels.metrics import sample_health

    images = torch.rand(100, 1, 28, 28)
    probs = torch.nn.functional.one_hot(torch.full((100,), 3), 10).float()
    signals = sample_health(images, images.clone(), probs)
    assert signals["dominant_class"] == 3 and signals["dominant_class_share"] == 1.0
    assert signals["classes_covered"] == 1 and signals["class_entropy"] == 0.0 and signals["sample_change"] == 0.0
    assert set(sample_health(images, None, None)) == {"pixel_mean", "pixel_std"}


def test_a_run_whose_generator_is_cut_to_a_constant_is_named_and_printed(synthetic_data, tmp_path):
    """A GAN whose learning rate is ~0 draws the same samples every epoch: the trainer prints 'output frozen'."""
    import subprocess
    import sys

    run = tmp_path / "frozen"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "train",
            "gan",
            "--dataset",
            "mnist",
            "--data",
            str(synthetic_data),
            "--run-dir",
            str(run),
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--lr",
            "1e-9",
            "--model-config",
            '{"g_hidden": [16], "d_hidden": [16]}',
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "alert: output frozen" in out.stdout
    assert "output frozen" in [a.name for a in health.alerts(read_metrics(run / "metrics.jsonl"))]

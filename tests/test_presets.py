"""Break-it presets: each is a valid launch that names a real alert; on the real MNIST (`-m presets`), each run
finishes in under three minutes and raises exactly the alert it predicts (its fixed counterpart none)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genmodels import health
from genmodels.launch import check_request, extra_flags, recipe_lr
from genmodels.paths import REPO_ROOT
from genmodels.presets import PRESETS

ALERT_NAMES = {rule.__name__.replace("_", " ") for rule in health.RULES}
REAL_DATA = Path(os.environ.get("GENMODELS_DATA") or "/work/shared/datasets")
TIME_LIMIT_S = 180


def test_every_preset_is_a_valid_launch_that_names_a_real_alert():
    for preset in PRESETS.values():
        request = preset.request()
        options = {k: v for k, v in vars(request.options).items() if v not in (None, {})}
        checked = check_request(
            request.kind,
            "mnist",
            request.epochs,
            request.batch_size,
            request.lr,
            request.seed,
            request.max_steps,
            1,
            options,
        )
        assert checked == request, preset.key
        assert preset.alert is None or preset.alert in ALERT_NAMES, preset.key
        assert preset.prediction.endswith(".") and preset.prediction.count(". ") == 0, "one sentence"


def test_every_fixed_preset_fixes_a_failing_one_of_its_kind():
    fixed = [p for p in PRESETS.values() if p.alert is None]
    assert fixed and len(fixed) < len(PRESETS)
    for preset in fixed:
        broken = PRESETS[preset.fixes]
        assert broken.kind == preset.kind and broken.alert is not None
        assert (broken.max_steps, broken.batch_size) == (preset.max_steps, preset.batch_size), "like with like"


def test_each_failing_preset_shows_a_different_failure():
    failing = [p.alert for p in PRESETS.values() if p.alert is not None]
    assert len(set(failing)) == len(failing), failing


@pytest.mark.presets
@pytest.mark.realdata
@pytest.mark.parametrize("key", list(PRESETS))
def test_a_preset_run_raises_its_alert_in_under_three_minutes(key, tmp_path):
    """The measurement behind docs/failure_modes.md: the preset's own launch flags, trained on the real MNIST."""
    if not (REAL_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the full MNIST files are not in {REAL_DATA} (set GENMODELS_DATA)")
    preset, run = PRESETS[key], tmp_path / key
    request = preset.request()
    lr = request.lr if request.lr is not None else recipe_lr(request.kind, request.dataset)
    command = [
        *(sys.executable, "-m", "train", request.kind, "--dataset", request.dataset),
        *("--epochs", str(request.epochs), "--batch-size", str(request.batch_size), "--lr", repr(lr)),
        *("--seed", str(request.seed), "--log-every", "20", "--run-dir", str(run), *extra_flags(request)),
    ]
    started = time.perf_counter()
    out = subprocess.run(
        command, cwd=REPO_ROOT, env={**os.environ, "GENMODELS_DATA": str(REAL_DATA)}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    fired = [alert.name for alert in health.alerts(records)]
    print(f"{key}: {seconds:.0f} s, alerts {fired}, exit {out.returncode}")
    assert out.returncode == 0, out.stderr[-2000:]
    assert fired == ([preset.alert] if preset.alert else []), fired  # exactly its own alert
    assert seconds < TIME_LIMIT_S

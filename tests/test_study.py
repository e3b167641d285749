"""The objective study: a tiny one trains, scores, ships its logs and writes its table; the Training page lists them."""

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from bench import study
from genmodels.logs import study_logs
from genmodels.paths import REPO_ROOT
from genmodels.runs import studies_dir
from tests.conftest import TINY_CONFIGS

RECORDS = [{"type": "epoch", "epoch": e, "class_accuracy": a} for e, a in enumerate([0.5, 0.8, 0.9, 0.86, 0.9], 1)]


def test_wobble_is_the_std_of_the_changes_over_the_second_half():
    # changes into epochs 3, 4, 5 (above 5 / 2): +0.10, -0.04, +0.04; their mean 0.1 / 3
    mean = 0.1 / 3
    expected = 100 * (((0.1 - mean) ** 2 + (-0.04 - mean) ** 2 + (0.04 - mean) ** 2) / 3) ** 0.5
    assert study.wobble(RECORDS) == pytest.approx(expected)
    assert study.wobble(RECORDS[:2]) is None, "one change into the second half is no spread"
    assert study.wobble([{"type": "step", "epoch": 0.5, "loss_d": 1.0}]) is None


def test_a_tiny_study_trains_scores_ships_its_logs_and_writes_the_table(
    synthetic_data, tiny_checkpoints, tmp_path, monkeypatch
):
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny_checkpoints, root)
    docs = tmp_path / "study.md"
    docs.write_text("# Notes kept\n\n" + study.BEGIN + "\nold\n" + study.END + "\n\nFindings kept.\n")
    argv = ["--dataset", "mnist", "--objectives", "bce,hinge", "--steps", "4", "--samples", "100"]
    argv += ["--model-config", json.dumps(TINY_CONFIGS["cgan"]), "--runs", str(tmp_path / "runs")]
    argv += ["--checkpoints", str(root), "--docs", str(docs), "--data", str(synthetic_data)]
    assert study.main(argv) == 0

    result = json.loads((studies_dir("mnist", root) / study.RESULTS_FILE).read_text())
    assert list(result["rows"]) == ["bce", "hinge"]
    for objective, row in result["rows"].items():
        assert row["recipe"]["objective"] == objective and row["recipe"]["seed"] == 0
        assert 0 <= row["recall"] <= 1 and row["fid"] > 0 and 0 <= row["class_accuracy"] <= 1
    text = docs.read_text()
    assert text.startswith("# Notes kept") and text.rstrip().endswith("Findings kept.") and "\nold\n" not in text
    assert "| bce |" in text and "| hinge |" in text and "python -m bench.study --dataset mnist" in text

    logs = study_logs("mnist", str(root))
    assert [log.study for log in logs] == ["objective-bce", "objective-hinge"]
    assert all(log.metrics_file.is_file() and log.config["recipe"]["objective"] in log.study for log in logs)
    assert study.main(argv) == 0, "a rerun reuses the finished runs"
    assert study.main([*argv, "--steps", "5"]) == 1, "a finished run of another budget is refused"


def test_unknown_objective_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        study.parse_args(["--dataset", "mnist", "--objectives", "bce,nope"])
    assert exc.value.code == 2 and "nope" in capsys.readouterr().err


@pytest.mark.checkpoints
@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_shipped_study_logs_are_listed_and_load_on_the_training_page(shipped_logs_dir, runs_root, dataset):
    logs = study_logs(dataset)
    assert {log.study for log in logs} >= {f"{study.VARIANT_PREFIX}{o}" for o in ("bce", "lsgan", "hinge", "wgan-gp")}
    at = AppTest.from_file(str(REPO_ROOT / "views" / "training.py"), default_timeout=60)
    at.session_state["dataset"] = dataset
    at.run()
    picker = at.selectbox(key="training_log")
    assert all(log.label in picker.options for log in logs)
    at = picker.select(logs[-1].key).run()
    assert not at.exception and not at.error
    assert at.get("plotly_chart") and at.get("image"), "its charts and grids"
    assert any("study run" in c.value for c in at.caption)

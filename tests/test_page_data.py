"""Data page: counts, class balance, previews, mean images and histogram render for both datasets; widgets change
them."""

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from genmodels.paths import REPO_ROOT

PAGE = str(REPO_ROOT / "views" / "data.py")
REAL_DATA = Path(os.environ.get("GENMODELS_DATA") or "/work/shared/datasets")


@pytest.fixture
def no_full_data(tmp_path, monkeypatch):
    """No dataset files: the page must work from the bundled summary."""
    monkeypatch.setenv("GENMODELS_DATA", str(tmp_path / "no-data"))


def open_page(dataset="mnist"):
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["dataset"] = dataset
    return at.run()


def chart(at, key):
    return json.loads(at.get_by_key(key).proto.spec)


def metrics(at):
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("dataset, title", [("mnist", "MNIST"), ("fashion", "Fashion-MNIST")])
def test_renders_counts_and_charts_offline(no_full_data, dataset, title):
    at = open_page(dataset)
    assert not at.exception and not at.error
    assert at.title[0].value == f"Data: {title}"
    assert metrics(at) == {"Training images": "60,000", "Test images": "10,000", "Total": "70,000", "Classes": "10"}
    assert "bundled with the app" in at.caption[0].value
    balance = chart(at, "class_balance")
    assert [bar["name"] for bar in balance["data"]] == ["train", "test"] and sum(balance["data"][1]["y"]) == 10_000
    means = chart(at, "class_means")
    names = [a["text"] for a in means["layout"]["annotations"]]
    assert [trace["name"] for trace in means["data"]] == names and len(set(names)) == 10, "a mean image per class"
    z = means["data"][3]["z"]  # plotly sends arrays base64-encoded
    z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
    assert len(z) == 28 * 28 and 0 <= z.min() and z.max() <= 1 and z.max() > 0.3
    assert len({(trace["x0"], trace["y0"]) for trace in means["data"]}) == 10, "each in its own place"
    assert at.get("image"), "the preview grid"
    if dataset == "fashion":
        assert "9 = Ankle boot" in at.caption[1].value


def test_preview_widgets_change_the_grid(no_full_data):
    at = open_page()
    first = at.get("image")[0].value
    at.slider(key="data_per_class").set_value(3).run()
    assert at.get("image")[0].value != first
    at.multiselect(key="data_classes").set_value([]).run()
    assert not at.get("image") and "Pick at least one class" in at.info[0].value
    at.multiselect(key="data_classes").set_value([8]).run()
    assert at.get("image")[0].captions == ["8"]
    assert not any("wrapped" in c.value for c in at.caption)
    at.number_input(key="data_offset").set_value(199).run()
    assert any("wrapped round to the start" in c.value for c in at.caption) and not at.exception


def test_histogram_widgets_change_the_chart(no_full_data):
    at = open_page()
    histogram = chart(at, "pixel_histogram")
    assert len(histogram["data"][0]["y"]) == 64 and histogram["layout"]["yaxis"]["type"] == "log"
    assert sum(histogram["data"][0]["y"]) == 60_000 * 28 * 28
    at.select_slider(key="data_bins").set_value(16)
    at.toggle(key="data_log").set_value(False).run()
    histogram = chart(at, "pixel_histogram")
    assert len(histogram["data"][0]["y"]) == 16 and histogram["layout"]["yaxis"]["type"] == "linear"


def test_damaged_bundled_summary_gives_one_clear_message(no_full_data, tmp_path, monkeypatch):
    import genmodels.summary

    (tmp_path / "mnist_summary.safetensors").write_bytes(b"\x00" * 64)
    monkeypatch.setattr(genmodels.summary, "ASSETS_DIR", tmp_path)
    monkeypatch.setenv("GENMODELS_DATA", str(tmp_path / "elsewhere"))  # a fresh cache entry
    at = open_page()
    assert not at.exception and "summary is unavailable" in at.error[0].value


@pytest.mark.realdata
def test_live_summary_from_the_full_dataset(monkeypatch):
    if not (REAL_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"the full MNIST files are not in {REAL_DATA}")
    monkeypatch.setenv("GENMODELS_DATA", str(REAL_DATA))
    at = open_page()
    assert not at.exception and "Computed live from the full dataset" in at.caption[0].value
    assert metrics(at)["Total"] == "70,000"

"""Training page: shipped and user logs render, widgets change the charts, ended and broken runs are shown as such."""

import json
import shutil
import subprocess

import pytest
from streamlit.testing.v1 import AppTest

from genmodels.kinds import KINDS, generator_kinds
from genmodels.paths import REPO_ROOT

PAGE = str(REPO_ROOT / "views" / "training.py")
GAN_RECORDS = [
    {
        "type": "step",
        "step": s,
        "epoch": s / 10,
        "loss_d": 1.0 + (s % 3) * 0.3,
        "loss_g": 2.0 - (s % 2) * 0.5,
        "d_real": 0.7,
        "d_fake": 0.3,
    }
    for s in range(1, 21)
] + [
    {
        "type": "epoch",
        "step": 10 * e,
        "epoch": e,
        "loss_d": 1.1,
        "loss_g": 1.8,
        "d_real": 0.7,
        "d_fake": 0.3,
        "classifier_confidence": 0.8 + e / 100,
    }
    for e in (1, 2)
]


def open_page(dataset="mnist", **state):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["dataset"] = dataset
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def charts(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def errors(at):
    return " ".join(e.value for e in at.error)


@pytest.mark.checkpoints
@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_shipped_logs_render_with_their_charts(shipped_logs_dir, runs_root, dataset):
    at = open_page(dataset)
    assert not at.exception and not at.error
    assert at.selectbox(key="training_log").value == f"shipped/{dataset}/{generator_kinds()[0]}", "registry order"
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert any("D(x)" in t for t in titles) and any("discriminator vs generator" in t for t in titles)
    assert at.get("download_button") and at.get("image")
    assert any("Discriminator" in m.value for m in at.markdown), "the architecture lists G and D"


@pytest.mark.checkpoints
def test_picking_another_log_changes_the_charts(shipped_logs_dir, runs_root):
    at = open_page()
    gan_titles = [c["layout"]["title"]["text"] for c in charts(at)]
    at.selectbox(key="training_log").select("shipped/mnist/vae").run()
    vae_titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert vae_titles != gan_titles and any("KL" in t for t in vae_titles)
    at.selectbox(key="training_log").select("shipped/mnist/classifier").run()
    assert any("Accuracy" in c["layout"]["title"]["text"] for c in charts(at))
    assert not at.exception and not at.error


@pytest.mark.checkpoints
@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_the_shipped_logs_of_the_convolutional_kinds_render(shipped_logs_dir, runs_root, dataset):
    from genmodels.checkpoint import shipped_generators

    at = open_page(dataset)
    for kind in (k for k in ("dcgan", "conv_vae") if k in shipped_generators(dataset)):
        at.selectbox(key="training_log").select(f"shipped/{dataset}/{kind}").run()
        assert not at.exception and not at.error, kind
        titles = [c["layout"]["title"]["text"] for c in charts(at)]
        assert any(("KL" if kind == "conv_vae" else "D(x)") in t for t in titles), (kind, titles)
        assert at.get("image"), f"{kind}: its per-epoch sample grids"
        table = next(t.value for t in at.table if list(t.value.columns) == ["value"])
        settings = table["value"].to_dict()
        assert settings["Epochs"] == str(KINDS[kind].recipe(dataset).epochs), "the recipe the run trained with"
        assert ("Beta (KL weight)" if kind == "conv_vae" else "GAN objective") in settings
        if kind == "dcgan":
            assert settings["Mode-seeking weight"] == ("1" if dataset == "fashion" else "0")


@pytest.mark.checkpoints
def test_smoothing_slider_changes_the_plotted_series(shipped_logs_dir, runs_root):
    at = open_page(training_log="shipped/mnist/gan")
    smoothed = charts(at)[0]["data"]
    at.slider(key="training_smoothing").set_value(0.0).run()
    raw = charts(at)[0]["data"]
    at.slider(key="training_smoothing").set_value(0.95).run()
    heavy = charts(at)[0]["data"]
    assert len(raw) == 2 and len(smoothed) == 4, "raw: one line per metric; smoothed: a faint raw line under each"
    assert raw[0]["y"] == smoothed[0]["y"] and raw[0]["y"] != smoothed[1]["y"] != heavy[1]["y"]


@pytest.mark.checkpoints
def test_grid_slider_shows_the_chosen_epoch(shipped_logs_dir, runs_root):
    at = open_page()
    first = generator_kinds()[0]
    slider = at.select_slider(key=f"grid-epoch-shipped/mnist/{first}")
    last_grid = sorted((shipped_logs_dir / "mnist" / "logs" / f"{first}_grids").glob("epoch_*.png"))[-1]
    assert slider.value == int(last_grid.stem.removeprefix("epoch_"))  # opens on the last epoch
    slider.set_value(1).run()
    assert "after epoch 1" in at.get("image")[0].captions[0]


def test_cancelled_run_is_shown_as_cancelled_with_its_curves(runs_root, make_run):
    make_run("gan-mnist-a", "cancelled", reason="stopped by SIGTERM", records=GAN_RECORDS)
    at = open_page(training_log="run/gan-mnist-a")
    assert not at.exception
    assert "cancelled (stopped by SIGTERM)" in " ".join(w.value for w in at.warning)
    assert len(charts(at)) == 3
    csv = at.get("download_button")[0]
    assert csv.proto.label == "Download metrics (CSV)"


def test_crashed_and_failed_runs_show_the_reason_and_stderr(runs_root, make_run):
    make_run("gan-mnist-dead", "running", pid=2**22 + 12345, records=GAN_RECORDS[:3], stderr="Traceback...\nKilled")
    make_run(
        "vae-mnist-bad", "failed", kind="vae", reason="non-finite loss: training diverged", stderr="error: diverged"
    )
    at = open_page(training_log="run/gan-mnist-dead")
    assert "crashed: the training process is gone" in errors(at)
    assert any("Killed" in c.value for c in at.code)
    at.selectbox(key="training_log").select("run/vae-mnist-bad").run()
    assert "failed: non-finite loss" in errors(at) and not at.exception


def test_active_run_shows_progress(runs_root, make_run):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        make_run("gan-mnist-live", "running", pid=sleeper.pid, records=GAN_RECORDS[:5], step=5, total_steps=20)
        at = open_page()
        assert at.selectbox(key="training_log").value == "run/gan-mnist-live", "an active run is picked first"
        progress = at.get("progress")[0].proto
        assert progress.value == 25 and "step 5/20" in progress.text
        assert not at.exception
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.checkpoints
def test_missing_or_corrupt_checkpoint_keeps_the_page_working(shipped_logs_dir, runs_root, tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    shutil.copytree(shipped_logs_dir / "mnist" / "logs", root / "mnist" / "logs")
    (root / "mnist" / "gan.safetensors").write_bytes(b"not a safetensors file")
    monkeypatch.setenv("GENMODELS_CHECKPOINTS", str(root))
    at = open_page(training_log="shipped/mnist/gan")
    assert "checkpoint is unusable" in errors(at) and len(charts(at)) == 3
    assert any("training log's config" in c.value for c in at.caption), (
        "the architecture falls back to the log's config"
    )
    at.selectbox(key="training_log").select("shipped/mnist/vae").run()
    assert "checkpoint is missing" in errors(at) and charts(at) and not at.exception


def test_no_logs_at_all_gives_one_clear_message(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GENMODELS_CHECKPOINTS", str(tmp_path / "nothing"))
    at = open_page("fashion")
    assert not at.exception and "No training logs for Fashion-MNIST" in at.info[0].value


def test_log_helpers_series_smoothing_csv_and_grids(tmp_path):
    from genmodels.logs import charts_for, grid_images, metric_series, metrics_csv, smooth

    series = metric_series(GAN_RECORDS, "loss_d")
    assert not series.per_epoch and len(series.x) == 20, "step records are preferred when they carry the metric"
    quality = metric_series(GAN_RECORDS, "classifier_confidence")
    assert quality.per_epoch and quality.x == [1.0, 2.0]
    assert metric_series([{"type": "step", "epoch": 1, "loss_d": float("nan")}], "loss_d").x == []
    assert smooth([1.0, 3.0], 0.0) == [1.0, 3.0] and smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])
    assert smooth([1.0, 2.0, 4.0], 0.5) == pytest.approx([1.0, 5 / 3, 3.0]), "bias-corrected, as TensorBoard smooths"
    with pytest.raises(ValueError):
        smooth([1.0], 1.0)
    losses_chart, losses = charts_for("gan", GAN_RECORDS)[0]
    assert "r1_penalty" in losses_chart.keys and [s.key for s in losses] == ["loss_d", "loss_g"], "only what it logged"
    header, first = metrics_csv(GAN_RECORDS).splitlines()[:2]
    assert header.startswith("type,step,epoch,") and first.startswith("step,1,0.1,")
    for name in ("epoch_010.png", "epoch_002.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert list(grid_images(tmp_path)) == [2, 10] and grid_images(tmp_path / "absent") == {}


@pytest.mark.checkpoints
def test_a_finished_run_is_evaluated_against_the_shipped_checkpoint_with_one_click(make_run, runs_root):
    run = make_run(
        "cgan-mnist-done",
        "finished",
        kind="cgan",
        records=[{"type": "epoch", "step": 10, "epoch": 1, "loss_d": 1.0, "loss_g": 1.0, "d_real": 0.6, "d_fake": 0.4}],
    )
    shutil.copyfile(REPO_ROOT / "checkpoints" / "mnist" / "cgan.safetensors", run / "cgan.safetensors")
    at = open_page(training_log="run/cgan-mnist-done")
    assert not at.exception and not at.error
    at.button(key="evaluate-run/cgan-mnist-done").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    assert list(table.index) == ["this run (cgan-mnist-done)", "shipped cgan"]
    assert table.loc["this run (cgan-mnist-done)", "class accuracy"] == table.loc["shipped cgan", "class accuracy"]
    assert float(table.loc["shipped cgan", "class accuracy"].rstrip("%")) > 95
    fid = next(c for c in table.columns if c.startswith("FID to real test images (real: "))
    assert (
        float(table.loc["shipped cgan", fid]) < 60
        and 0.5 < float(table.loc["shipped cgan", "within-class spread (real = 1)"]) < 1.5
    )


@pytest.mark.checkpoints
def test_a_gan_run_without_mapper_meets_the_shipped_gan_without_its_mapper(make_run, runs_root, tiny_checkpoints):
    records = [{"type": "epoch", "step": 10, "epoch": 1, "loss_d": 1.0, "loss_g": 1.0, "d_real": 0.6, "d_fake": 0.4}]
    same = make_run("gan-mnist-same", "finished", kind="gan", records=records)
    shutil.copyfile(REPO_ROOT / "checkpoints" / "mnist" / "gan.safetensors", same / "gan.safetensors")
    noise = make_run("gan-mnist-noise", "finished", kind="gan", records=records)
    shutil.copyfile(tiny_checkpoints / "mnist" / "gan.safetensors", noise / "gan.safetensors")  # untrained: noise
    tables = {}
    for name in ("gan-mnist-same", "gan-mnist-noise"):
        at = open_page(training_log=f"run/{name}")
        at.button(key=f"evaluate-run/{name}").click().run()
        assert not at.exception and not at.error
        tables[name] = at.dataframe[-1].value
    same_table, noise_table = tables["gan-mnist-same"], tables["gan-mnist-noise"]
    assert list(same_table["class accuracy"]) == ["n/a (no labels)", "n/a (no labels)"]  # both unconditional
    fid = next(c for c in same_table.columns if c.startswith("FID to real test images"))
    assert same_table.loc["this run (gan-mnist-same)", fid] == same_table.loc["shipped gan", fid]
    # the classifier may be sure of its verdicts on noise; the FID is not fooled
    assert float(noise_table.loc["this run (gan-mnist-noise)", fid]) > 5 * float(noise_table.loc["shipped gan", fid])


def test_an_active_run_on_the_other_dataset_is_pointed_to(runs_root, make_run):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        make_run(
            "cgan-fashion-live",
            "running",
            kind="cgan",
            dataset="fashion",
            pid=sleeper.pid,
            records=[],
            step=0,
            total_steps=20,
        )
        at = open_page("mnist")
        notes = " ".join(i.value for i in at.info)
        assert "Also training, on another dataset" in notes and "Fashion-MNIST" in notes and not at.exception
        assert "run/cgan-fashion-live" not in at.selectbox(key="training_log").options
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_run_that_ended_within_its_first_epoch_says_so(runs_root, make_run):
    make_run("gan-mnist-short", "cancelled", reason="stopped by SIGTERM", records=GAN_RECORDS[:5])
    at = open_page(training_log="run/gan-mnist-short")
    assert any("ended before its first epoch" in c.value for c in at.caption) and not at.exception
    shares = [c for c in charts(at) if c["layout"]["yaxis"].get("tickformat") == ".0%"]
    assert shares and all(c["layout"]["yaxis"]["range"] == [0, 1.02] for c in shares)


def test_a_failing_run_shows_its_alert_and_a_marker_on_the_curves(make_run, runs_root):
    """A run whose D rejects every fake for 300 steps: the page names it, says what to try, and marks the step."""
    records = [
        {"type": "step", "step": s, "epoch": s / 100, "loss_d": 0.01, "loss_g": 6.0, "d_real": 0.99, "d_fake": 0.01}
        for s in range(100, 800, 100)
    ]
    make_run("gan-broken", "finished", kind="gan", records=records)
    at = open_page(training_log="run/gan-broken")
    assert not at.exception
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("**Discriminator wins** at step 400") and "lower D's learning rate" in warning
    marked = [shape for chart in charts(at) for shape in chart["layout"].get("shapes", [])]
    assert marked and all(shape["x0"] == 4.0 for shape in marked)


@pytest.mark.checkpoints
def test_two_logs_compare_on_shared_axes_with_one_grid_slider(shipped_logs_dir, runs_root):
    at = open_page(training_log="shipped/mnist/gan")
    at.multiselect(key="training_compare").select("shipped/mnist/cgan").run()
    assert not at.exception and not at.error
    overlaid = [c for c in charts(at) if any(" · " in (t.get("name") or "") for t in c["data"])]
    losses = next(c for c in overlaid if "discriminator vs generator" in c["layout"]["title"]["text"])
    labels = {t["name"].split(" · ")[0] for t in losses["data"]}
    assert len(labels) == 2, "both logs' losses on one chart"
    slider = at.select_slider(key="compare-epoch")
    first = int(slider.options[0])
    slider.set_value(first).run()
    captions = [image.captions[0] for image in at.get("image")[-2:]]
    assert captions == [f"after epoch {first}"] * 2, "one grid per log, both at the chosen epoch"
    table = next(t.value for t in at.table if len(t.value.columns) == 2)
    assert len(table.columns) == 2, "a column per log"
    assert table.index[0] == "Learning rate" and table.loc["GAN objective"].tolist() == ["bce", "bce"]


def test_run_settings_fill_options_a_log_predates_with_the_recipe_defaults(tmp_path):
    from genmodels.logs import TrainingLog, run_settings

    def log(kind, recipe):
        return TrainingLog("x", kind, "mnist", tmp_path / "m.jsonl", {"recipe": recipe}, tmp_path, None)

    old_gan = run_settings(log("gan", {"epochs": 3, "lr": 2e-4, "label_smoothing": 0.1}))
    assert old_gan == {
        "Epochs": "3",
        "Learning rate": "0.0002",
        "GAN objective": "bce",
        "Spectral norm in D": "off",
        "D steps per G step": "1",
        "D learning rate": "same as G's",
        "Label smoothing": "0.1",
        "R1 penalty": "0",
        "Mode-seeking weight": "0",
        "Coverage weight": "0",
    }
    vae = run_settings(log("vae", {"epochs": 2, "beta": 4.0, "ema_decay": 0.0, "objective": "bce"}))
    assert vae == {"Epochs": "2", "Beta (KL weight)": "4", "KL warm-up steps": "0"}, "no GAN fields, no EMA off"
    assert (
        run_settings(log("classifier", {})) == {}
        and run_settings(log("gan", {"r1_weight": 2.5}))["R1 penalty"] == "2.5"
        and run_settings(log("cgan", {"coverage": 20.0}))["Coverage weight"] == "20"
    )


def test_an_opened_card_is_a_log_like_any_other(runs_root, tmp_path):
    """A card unpacked into the session shows its charts and joins the picker (the upload itself: browser test)."""
    from genmodels.cards import make_card, unpack

    records = [
        {"type": "step", "step": s, "epoch": s / 10, "loss_d": 1.0, "loss_g": 2.0, "d_real": 0.6, "d_fake": 0.4}
        for s in range(1, 11)
    ]
    card = make_card("my-card", "gan", "mnist", {"recipe": {"seed": 3}}, records, {})
    at = open_page(opened_cards={"abc": (card, unpack(card, tmp_path / "abc"))}, training_log="card/my-card")
    assert not at.exception and not at.error
    assert at.selectbox(key="training_log").value == "card/my-card" and charts(at)


def test_a_fork_names_its_parent_and_compares_with_it_in_one_click(runs_root, make_run):
    parent = make_run("gan-mnist-parent", "finished", records=GAN_RECORDS)
    fork = make_run("gan-mnist-fork", "finished", records=GAN_RECORDS[:10])
    config = json.loads((fork / "config.json").read_text())
    config["forked_from"] = {"path": str(parent), "kind": "gan", "dataset": "mnist", "whole_state": True}
    (fork / "config.json").write_text(json.dumps(config))
    at = open_page(training_log="run/gan-mnist-fork")
    assert any("A fork of Your run gan-mnist-parent" in c.value for c in at.caption)
    at.button(key="compare-parent").click().run()
    assert at.multiselect(key="training_compare").value == ["run/gan-mnist-parent"]
    names = {trace["name"] for chart in charts(at) for trace in chart["data"] if "name" in trace}
    assert any("gan-mnist-parent" in n for n in names) and any("gan-mnist-fork" in n for n in names)
    assert not at.exception


def test_a_run_that_is_no_fork_offers_no_parent(runs_root, make_run):
    make_run("gan-mnist-plain", "finished", records=GAN_RECORDS)
    at = open_page(training_log="run/gan-mnist-plain")
    assert not [b for b in at.button if b.key == "compare-parent"] and not at.exception

"""Training page: live curves of the shipped and the user's runs with health alerts, per-epoch sample grids,
architectures, CSV and experiment-card export, and two to four runs compared side by side."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from genmodels import health
from genmodels.architecture import NetworkTable, architecture
from genmodels.cards import CardError, read_card, unpack
from genmodels.checkpoint import CheckpointError, read_metadata
from genmodels.compare import model_scores
from genmodels.datasets import dataset_info
from genmodels.health import Alert
from genmodels.kinds import KINDS, draws_samples, generator_kinds
from genmodels.logs import (
    Chart,
    Series,
    TrainingLog,
    card_log,
    charts_for,
    grid_images,
    log_card,
    metric_series,
    metrics_csv,
    parent_key,
    run_log,
    run_settings,
    shipped_logs,
    smooth,
    study_logs,
    user_logs,
)
from genmodels.runs import read_metrics, run_info
from views.common import (
    TRAINING_LOG_KEY,
    current_dataset,
    real_baselines,
    stop_page,
    try_classifier,
    try_generator,
)
from views.sidebar import REFRESH_S, show_ended

PALETTE = plotly.colors.qualitative.Plotly
DASHES = ("solid", "dash", "dot", "dashdot")  # one per metric of a compared chart; colours tell the logs apart
MAX_COMPARED = 4
CARDS_KEY = "opened_cards"  # {content digest: (card, unpacked folder)} of this session


def _file_stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, -1)
    return (stat.st_mtime_ns, stat.st_size)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_records(path: str, stamp: tuple[int, int]) -> list[dict[str, Any]]:
    """The records of a metrics file; `stamp` (mtime, size) makes a growing file re-read."""
    return read_metrics(path)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_metadata(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    """A checkpoint's verified metadata (raises CheckpointError)."""
    return read_metadata(path)


@st.cache_data(max_entries=32, show_spinner=False)
def cached_architecture(kind: str, config_json: str) -> list[NetworkTable]:
    """The layer tables of a kind's networks, built once per config."""
    return architecture(kind, json.loads(config_json) if config_json else None)


def records_of(log: TrainingLog) -> list[dict[str, Any]]:
    """The log's records, re-read only when its file changed."""
    return cached_records(str(log.metrics_file), _file_stamp(log.metrics_file))


def chart_layout(figure: go.Figure, chart: Chart, height: int, legend_y: float, **layout) -> go.Figure:
    """A training chart's title, epoch axis, legend below, and a fixed 0-1 axis for shares."""
    figure.update_layout(
        title=dict(text=chart.title, font=dict(size=14)),
        xaxis_title="epoch",
        yaxis_title=chart.y_label,
        height=height,
        margin=dict(t=40, b=10, l=10, r=10),
        legend=dict(orientation="h", y=legend_y),
        **layout,
    )
    if chart.share:
        figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return figure


def series_mode(series: Series) -> str:
    """Markers on sparse per-epoch series, so a short run's single point shows."""
    return "lines+markers" if series.per_epoch and len(series.x) <= 60 else "lines"


def chart_figure(chart: Chart, series: list[Series], smoothing: float, alerts: list[Alert] = ()) -> go.Figure:
    """Raw values faintly, smoothed values on top (TensorBoard style); per-epoch metrics get markers; a dotted
    line marks where each alert fired."""
    figure = go.Figure()
    for i, alert in enumerate(alerts):  # labels alternate top and bottom so neighbouring alerts stay readable
        figure.add_vline(
            x=alert.epoch,
            line=dict(color="#d62728", dash="dot", width=1),
            annotation=dict(text=alert.name, font=dict(color="#d62728", size=11)),
            annotation_position="top right" if i % 2 == 0 else "bottom right",
        )
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        mode = series_mode(s)
        if smoothing > 0:
            figure.add_scatter(
                x=s.x,
                y=s.y,
                mode="lines",
                line=dict(color=color, width=1),
                opacity=0.25,
                legendgroup=s.key,
                showlegend=False,
                hoverinfo="skip",
            )
        figure.add_scatter(
            x=s.x,
            y=smooth(s.y, smoothing) if smoothing > 0 else s.y,
            mode=mode,
            name=s.key,
            line=dict(color=color, width=2),
            legendgroup=s.key,
        )
    return chart_layout(figure, chart, height=330, legend_y=-0.25, hovermode="x unified")


def show_status(log: TrainingLog) -> None:
    """Where the run stands: shipped provenance, live progress, or how it ended (with its reason)."""
    if log.shipped:
        recipe = log.config.get("recipe", {})
        st.caption(
            f"The log of the run behind the shipped {log.kind} checkpoint: {recipe.get('epochs', '?')} epochs, "
            f"batch {recipe.get('batch_size', '?')}, lr {recipe.get('lr', '?')}, on {log.config.get('device', '?')}."
        )
    elif log.study is not None:
        recipe = log.config.get("recipe", {})
        st.caption(
            f"A shipped study run (logs and grids only): objective {recipe.get('objective', '?')}, "
            f"{recipe.get('epochs', '?')} epochs, batch {recipe.get('batch_size', '?')}, lr {recipe.get('lr', '?')}, "
            f"seed {recipe.get('seed', '?')}. Its scores: docs/objective_study.md."
        )
    elif log.card is not None:
        recipe = log.config.get("recipe", {})
        st.caption(
            f"Opened from an experiment card: a {log.kind} run on {dataset_info(log.dataset).title}, seed "
            f"{recipe.get('seed', '?')}, {recipe.get('epochs', '?')} epochs, lr {recipe.get('lr', '?')}."
        )
    elif log.active:
        world = log.run.status.get("world_size", 1)
        st.progress(
            log.run.progress,
            text=f"{log.run.state}: step {log.run.status.get('step', 0)}"
            f"/{log.run.status.get('total_steps') or '?'}"
            + (f" on {world} processes" if world > 1 else "")
            + f" (refreshes every {REFRESH_S:g} s)",
        )
    else:
        show_ended(log.run)


def show_settings(log: TrainingLog) -> None:
    """The settings the run trained with (its recorded recipe), folded away."""
    settings = run_settings(log)
    if not settings:
        return
    with st.expander("Training settings (the run's recipe)"):
        # a plain table: every row in view at once, no inner scroll
        st.table(pd.DataFrame({"value": list(settings.values())}, index=pd.Index(list(settings), name="setting")))


def settings_comparison(logs: list[TrainingLog]) -> tuple[pd.DataFrame, int]:
    """The logs' settings side by side, a column per log, the settings that differ first; and how many differ."""
    table = pd.DataFrame({log.label: run_settings(log) for log in logs}).fillna("-")
    differs = table.nunique(axis=1) > 1
    return pd.concat([table[differs], table[~differs]]).rename_axis("setting"), int(differs.sum())


def show_alerts(alerts: list[Alert]) -> None:
    """What the health rules found in the log: each failure named, where it fired, and what to try."""
    for alert in alerts:
        st.warning(
            f"**{alert.name.capitalize()}** at step {alert.step:,} (epoch {alert.epoch:.3g}): {alert.message}. "
            f"Try: {alert.fix}.",
            icon=":material/warning:",
        )


def show_charts(log: TrainingLog, records: list[dict[str, Any]], smoothing: float, alerts: list[Alert]) -> None:
    """The kind's charts, two per row."""
    charts = charts_for(log.kind, records)
    if not charts:
        st.info("No metrics logged yet." if log.active or not records else f"Nothing to chart for a {log.kind!r} log.")
        return
    columns = st.columns(2)
    for i, (chart, series) in enumerate(charts):
        with columns[i % 2]:
            st.plotly_chart(chart_figure(chart, series, smoothing, alerts), key=f"chart-{i}")


def show_grids(log: TrainingLog) -> None:
    """The fixed-noise sample grid of the epoch picked on a slider."""
    grids = grid_images(log.grids_dir)
    if not grids:
        if not draws_samples(log.kind):
            st.caption(f"No sample grids: a {log.kind} draws none.")
        elif log.active:
            st.caption("No sample grid yet (one is drawn at the end of each epoch).")
        else:
            st.caption(
                "No sample grid: the run ended before its first epoch did (a grid is drawn at the end of each epoch)."
            )
        return
    epochs = list(grids)
    slider_key, newest_key = f"grid-epoch-{log.key}", f"grid-newest-{log.key}"
    if st.session_state.get(slider_key) in (None, st.session_state.get(newest_key)):
        st.session_state[slider_key] = epochs[-1]  # follow each new grid until the user moves the slider
    st.session_state[newest_key] = epochs[-1]
    epoch = st.select_slider(
        "Epoch", epochs, key=slider_key, help="The same fixed noise (and labels) every epoch: watch the model learn."
    )
    try:
        st.image(grids[epoch].read_bytes(), caption=f"{log.kind} samples after epoch {epoch}", width=420)
    except OSError as exc:
        st.warning(f"Cannot read the grid of epoch {epoch}: {exc.strerror or exc}")


def live_view(log: TrainingLog, smoothing: float) -> None:
    """Charts, grids and CSV of a log; while its run is active this part re-runs by itself."""
    if log.active:
        fresh = run_log(run_info(log.run.path))
        # it just ended (a full rerun shows the outcome and stops the timer), or it wrote its config after the page
        # ran (a full rerun shows its settings and architecture, which sit outside this fragment)
        if not fresh.active or ("model" in fresh.config and "model" not in log.config):
            st.rerun()
        log = fresh
        show_status(log)
    records = records_of(log)
    alerts = health.alerts(records)
    show_alerts(alerts)
    show_charts(log, records, smoothing, alerts)
    st.subheader("Samples per epoch")
    show_grids(log)
    if records:
        csv_col, card_col = st.columns(2)
        csv_col.download_button(
            "Download metrics (CSV)",
            metrics_csv(records),
            file_name=f"{log.key.replace('/', '-')}.csv",
            mime="text/csv",
            on_click="ignore",
            key="metrics-csv",
        )
        card_col.download_button(
            "Download experiment card",
            log_card(log, records).to_json(),
            file_name=f"{log.key.replace('/', '-')}.card.json",
            mime="application/json",
            on_click="ignore",
            key="experiment-card",
            help="One file with the config, seed, environment, metrics, alerts and last grid; open it again below.",
        )


def show_architecture(log: TrainingLog) -> None:
    """The layers of each network, built from the checkpoint's config (else from the log's config)."""
    config, source = log.config.get("model"), "the training log's config"
    if log.model_file is not None and log.model_file.exists():
        try:
            meta = cached_metadata(str(log.model_file), _file_stamp(log.model_file))
        except CheckpointError as exc:
            st.error(f"The {log.kind} checkpoint is unusable: {exc.reason}. The curves above come from its log.")
        else:
            config, source = meta.get("config"), f"`{log.model_file.name}`"
            facts = {
                "epochs completed": meta.get("epochs_trained"),
                "steps": meta.get("steps_trained"),
                "training time (s)": meta.get("training_wall_time_s"),
                "device": meta.get("device"),
            }
            st.caption(" · ".join(f"{k}: {v}" for k, v in facts.items() if v is not None))
            if isinstance(meta.get("metrics"), dict) and meta["metrics"]:
                with st.expander("Metrics stored with the checkpoint (its last epoch-end check)"):
                    metrics = meta["metrics"]
                    st.table(
                        pd.DataFrame(
                            {"value": [str(v) for v in metrics.values()]}, index=pd.Index(list(metrics), name="metric")
                        )
                    )
    elif log.shipped:
        st.error(
            f"The shipped {log.kind} checkpoint is missing ({log.model_file}). The curves above come from its log."
        )
    elif not log.active:
        st.caption("This run saved no model file.")
    if not isinstance(config, dict):
        st.info(
            "The run is starting: its architecture shows once it has written its config."
            if log.active
            else "No model config recorded, so no architecture to show."
        )
        return
    try:
        tables = cached_architecture(log.kind, json.dumps(config, sort_keys=True))
    except (ValueError, TypeError) as exc:
        st.error(f"Cannot rebuild the {log.kind} architecture from {source}: {exc}")
        return
    st.caption(f"Built from {source}.")
    for table in tables:
        st.markdown(f"**{table.title}**: {table.parameters:,} trainable parameters")
        # a plain table: every layer in view, and quicker to draw than a data grid (docs/benchmark.md)
        rows = pd.DataFrame(table.rows).set_index("layer")
        st.table(rows.assign(parameters=rows["parameters"].map("{:,}".format)))


EVALUATION_PER_CLASS = 100


def evaluation_row(model, classifier) -> dict[str, str]:
    baseline = real_baselines(model.dataset)
    scores = model_scores(model, classifier, EVALUATION_PER_CLASS, baseline)
    return {
        "class accuracy": "n/a (no labels)" if scores.accuracy is None else f"{scores.accuracy:.1%}",
        "mean confidence": f"{scores.confidence:.3f}",
        f"FID to real test images (real: {baseline.floor:.1f})": f"{scores.fid:.1f}",
        "within-class spread (real = 1)": "n/a" if scores.spread_ratio is None else f"{scores.spread_ratio:.2f}",
        "class coverage KL (nats)": f"{scores.coverage_kl:.4f}",
        "mid-grey pixels (blur)": f"{scores.midtone_share:.1%}",
    }


def show_evaluation(log: TrainingLog) -> None:
    """One click: score the run's checkpoint and the shipped one the same way, side by side."""
    st.subheader("Evaluate this run")
    state_key = f"evaluation-{log.key}"
    if st.button(
        "Evaluate against the shipped checkpoint",
        key=f"evaluate-{log.key}",
        help=f"{EVALUATION_PER_CLASS} samples per class from each, judged by the project classifier (seed 0)",
    ):
        classifier = try_classifier(log.dataset)
        run_model = try_generator(log.kind, log.dataset, str(log.model_file))
        shipped_model = try_generator(log.kind, log.dataset)
        if (
            run_model is not None
            and shipped_model is not None
            and shipped_model.supports_labels
            and not run_model.supports_labels
        ):
            # like with like: a GAN run without a label mapper meets the shipped GAN without its mapper
            shipped_model = shipped_model.without_mapper()
        if run_model is not None and shipped_model is not None and run_model.critic is None:
            shipped_model = shipped_model.without_critic()  # ...and a run's raw draws the shipped model's raw draws
        if classifier is not None and run_model is not None:
            with st.spinner("Sampling and classifying..."):
                rows = {f"this run ({log.run.name})": evaluation_row(run_model, classifier)}
                if shipped_model is not None:
                    rows[f"shipped {log.kind}"] = evaluation_row(shipped_model, classifier)
            st.session_state[state_key] = rows
    if state_key in st.session_state:
        st.dataframe(pd.DataFrame(st.session_state[state_key]).T, width="stretch")
        real = real_baselines(log.dataset).reference_size
        st.caption(
            f"{EVALUATION_PER_CLASS} samples per class from each (seed 0). The classifier is confident even on noise, "
            "so read its verdicts with the FID: the Fréchet distance between the samples' classifier features and "
            f"{real:,} real test images' (the number in the heading is as many other real images': the best a model "
            "can get). Spread: variety within a class "
            "against real images'. The full set of measures (precision/recall, memorisation...) for any checkpoint: "
            "`python -m genmodels evaluate`."
        )


def opened_cards() -> list[TrainingLog]:
    """The experiment cards this session opened (unpacked once per card content)."""
    return [card_log(card, folder) for card, folder in st.session_state.get(CARDS_KEY, {}).values()]


def open_card_box() -> None:
    """Upload an experiment card: it joins the logs to view and compare; a bad file gets one message."""
    upload = st.file_uploader(
        "Open an experiment card", type=["json"], key="card_upload", help="A .card.json file downloaded from this page."
    )
    if upload is None:
        return
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    cards = st.session_state.setdefault(CARDS_KEY, {})
    if digest in cards:
        return
    try:
        card = read_card(data)
    except CardError as exc:
        st.error(f"Cannot open {upload.name}: {exc}.")
        return
    cards[digest] = (card, unpack(card, Path(tempfile.gettempdir()) / "genmodels-cards" / digest))
    st.session_state[TRAINING_LOG_KEY] = f"card/{card.name}"
    st.rerun()


def overlay_figure(chart: Chart, logs: list[TrainingLog], smoothing: float) -> go.Figure | None:
    """One chart's metrics from every compared log on shared axes: a colour per log, a dash per metric."""
    figure = go.Figure()
    for i, log in enumerate(logs):
        records = records_of(log)
        for j, key in enumerate(chart.keys):
            s = metric_series(records, key)
            if s.x:
                figure.add_scatter(
                    x=s.x,
                    y=smooth(s.y, smoothing) if smoothing > 0 else s.y,
                    mode=series_mode(s),
                    name=f"{log.label} · {key}",
                    line=dict(color=PALETTE[i % len(PALETTE)], width=2, dash=DASHES[j % len(DASHES)]),
                )
    if not figure.data:
        return None
    return chart_layout(figure, chart, height=360, legend_y=-0.3)


def show_comparison(logs: list[TrainingLog], smoothing: float) -> None:
    """Two to four logs: their settings side by side, their curves overlaid chart by chart, and their grids at one
    epoch under one slider."""
    table, differing = settings_comparison(logs)
    if not table.empty:
        with st.expander(
            f"Training settings: {differing} of {len(table)} differ" if differing else "Training settings"
        ):
            st.table(table)
    charts = {chart.title: chart for log in logs for chart in KINDS[log.kind].charts if log.kind in KINDS}
    columns = st.columns(2)
    drawn = 0
    for chart in charts.values():
        figure = overlay_figure(chart, logs, smoothing)
        if figure is not None:
            with columns[drawn % 2]:
                st.plotly_chart(figure, key=f"compare-chart-{drawn}")
            drawn += 1
    grids = {log.key: grid_images(log.grids_dir) for log in logs}
    epochs = sorted({epoch for by_epoch in grids.values() for epoch in by_epoch})
    if not epochs:
        st.caption("None of these logs has a sample grid.")
        return
    epoch = (
        epochs[-1]
        if len(epochs) == 1
        else st.select_slider("Epoch, for every grid", epochs, value=epochs[-1], key="compare-epoch")
    )
    for column, log in zip(st.columns(len(logs)), logs, strict=True):
        earlier = [e for e in grids[log.key] if e <= epoch]
        with column:
            st.markdown(f"**{log.label}**")
            if earlier:
                shown = earlier[-1]
                st.image(grids[log.key][shown].read_bytes(), caption=f"after epoch {shown}", width="stretch")
            else:
                st.caption(f"No grid by epoch {epoch}.")


dataset = current_dataset()
st.title("Training")
shipped = [*shipped_logs(dataset), *study_logs(dataset)]  # in the registry's order, then the studies'
try:
    every_run = user_logs()
except OSError as exc:
    st.error(f"Cannot read your runs: {exc}")
    every_run = []
runs = [r for r in every_run if r.dataset == dataset]
cards = [c for c in opened_cards() if c.dataset == dataset]
logs = {log.key: log for log in [*(r for r in runs if r.active), *cards, *shipped, *(r for r in runs if not r.active)]}
elsewhere = [r for r in every_run if r.active and r.dataset != dataset]
if elsewhere:
    st.info(
        "Also training, on another dataset: "
        + ", ".join(f"{log.label} ({dataset_info(log.dataset).title})" for log in elsewhere)
        + ". Switch the dataset in the sidebar to follow it here."
    )
if not logs:
    st.info(
        f"No training logs for {dataset_info(dataset).title}: the shipped logs are missing and you have no runs. "
        "Start one from the sidebar."
    )
    stop_page()

pick_col, smooth_col = st.columns([3, 2])
if st.session_state.get(TRAINING_LOG_KEY) not in logs:
    st.session_state.pop(TRAINING_LOG_KEY, None)  # a log that went away (a deleted run): open on the first one
key = pick_col.selectbox("Training log", list(logs), format_func=lambda k: logs[k].label, key=TRAINING_LOG_KEY)
smoothing = smooth_col.slider(
    "Smoothing",
    0.0,
    0.99,
    0.6,
    step=0.01,
    key="training_smoothing",
    help="Exponential moving average of the curves; 0 shows the raw values.",
)
log = logs[key]
if not log.active:
    show_status(log)
show_settings(log)
st.fragment(live_view, run_every=REFRESH_S if log.active else None)(log, smoothing)
st.subheader("Architecture")
show_architecture(log)
if log.run is not None and not log.active and log.kind in generator_kinds() and log.model_file is not None:
    show_evaluation(log)
st.subheader("Compare runs")
parent = parent_key(log)
if parent in logs:
    st.caption(
        f"A fork of {logs[parent].label}: it started from those weights with its own settings, and its log "
        "starts again at step 0."
    )
    st.button(
        "Compare with its parent",
        key="compare-parent",
        on_click=lambda: st.session_state.update(training_compare=[parent]),
    )
others = st.multiselect(
    "Compare with",
    [k for k in logs if k != key],
    format_func=lambda k: logs[k].label,
    max_selections=MAX_COMPARED - 1,
    key="training_compare",
    placeholder="Pick up to three other logs: shipped, your runs or opened cards",
)
if others:
    show_comparison([log, *(logs[k] for k in others)], smoothing)
open_card_box()

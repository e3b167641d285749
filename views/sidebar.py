"""The sidebar of every page: dataset picker, training launcher and the live status of training runs."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from genmodels import health
from genmodels.datasets import DATASETS, dataset_info
from genmodels.kinds import KINDS
from genmodels.launch import (
    BATCH_RANGE,
    EPOCH_RANGE,
    LAUNCH_KINDS,
    MAX_STEPS_RANGE,
    OPTION,
    SEED_RANGE,
    Option,
    TrainingRequest,
    changed_options,
    check_request,
    max_processes,
    recipe_options,
    start,
    start_sources,
)
from genmodels.presets import PRESETS
from genmodels.runs import LaunchError, RunInfo, cancel_run, list_runs, read_metrics, run_info
from views.common import DATASET_KEY, TRAINING_LOG_KEY, current_dataset, page_frame

LAUNCHED_KEY = "launched_runs"  # names of the runs started from this browser session, newest last
NOTICE_KEY = "runs_notice"  # one message for the runs panel (e.g. the outcome of a Cancel click)
FOLLOW_KEY = "follow_run"  # the training log the Training page shows next (its picker exists by the time we launch)
STARTED_KEY = "runs_started"  # the runs panel's note on the run just started (shown once, after the rerun)
WARMED_KEY = "chart_library_warmed"  # this session's browser tab has compiled the chart and table scripts
# Seconds between refreshes of the runs panel while a run is going. A fragment tick reruns part
# of the script; a shorter interval than a page's render time under load starves the page.
REFRESH_S = 10.0
ENDED_SHOWN = 3


def dataset_picker() -> None:
    """The dataset every page shows; its value lives in st.session_state[DATASET_KEY] across page switches."""
    st.session_state[DATASET_KEY] = current_dataset()  # sent with every run: the picker always shows the dataset in use
    st.selectbox("Dataset", list(DATASETS), key=DATASET_KEY, format_func=lambda name: dataset_info(name).title)


def option_fields(kind: str, dataset: str) -> dict[str, object]:
    """A field for each of launch.OPTIONS that applies to the kind, with its one-line help; defaults: the recipe's."""
    return {name: option_field(OPTION[name], default) for name, default in recipe_options(kind, dataset).items()}


def option_field(option: Option, default: object) -> object:
    """The launcher's widget for one option."""
    if option.kind == "choice":
        return st.selectbox(option.title, option.choices, index=option.choices.index(default), help=option.help)
    if option.kind == "switch":
        return st.checkbox(option.title, value=default, help=option.help)
    if option.kind == "lr":
        return st.text_input(option.title, value=default, placeholder=option.placeholder, help=option.help)
    if option.kind == "int":
        low, high, step = int(option.low), int(option.high), int(option.step)
        return st.number_input(option.title, low, high, value=int(default), step=step, help=option.help)
    # an excluded upper end: the largest value the field shows below it, at its two decimals
    high = option.high - 0.01 if option.high_open else option.high
    return st.number_input(option.title, option.low, high, value=float(default), step=option.step, help=option.help)


def launch(request: TrainingRequest | None, dataset: str, error: str | None = None) -> None:
    """Start a checked request (or show why not) and point the Training page at the new run."""
    if error is not None:
        st.error(f"Not started: {error}.")
        return
    try:
        info = start(request)
    except LaunchError as exc:
        st.error(f"Training refused: {exc}.")
        return
    st.session_state.setdefault(LAUNCHED_KEY, []).append(info.name)
    st.session_state[FOLLOW_KEY] = f"run/{info.name}"  # the Training page follows the new run after the rerun
    where = "" if dataset == current_dataset() else f" with the sidebar's dataset set to {dataset_info(dataset).title}"
    st.session_state[STARTED_KEY] = f"Started {info.name}. Follow it below or on the Training page{where}."
    st.rerun()  # the page ran before this panel: run it again, now with the new run


def launcher() -> None:
    """The training form: Start runs `python -m train` as a separate process in a new run folder. Model, data and
    starting point sit outside the form, so the fields that apply to the chosen kind show at once."""
    with st.expander("Train a model", expanded=False):
        kind = st.selectbox("Model", LAUNCH_KINDS, format_func=lambda k: KINDS[k].title, key="launch_kind")
        names = list(DATASETS)
        dataset = st.selectbox(
            "Training data",
            names,
            index=names.index(current_dataset()),
            format_func=lambda name: dataset_info(name).title,
        )
        sources = start_sources(kind, dataset)
        source = st.selectbox(
            "Start from",
            list(sources),
            key="launch_source",
            help="A fork: continue the shipped checkpoint or one of your ended runs with changed settings (its log "
            "starts at step 0; a run gives every network, the shipped checkpoint its generator or VAE only).",
        )
        with st.form("launcher", border=False):
            epochs = st.number_input("Epochs", *EPOCH_RANGE, value=5, step=1)
            batch_size = st.number_input("Batch size", *BATCH_RANGE, value=128, step=8)
            lr = st.text_input(
                "Learning rate",
                placeholder="the recipe's (e.g. 2e-4)",
                help="Leave empty for the shipped recipe's learning rate.",
            )
            seed = st.number_input("Seed", *SEED_RANGE, value=0, step=1)
            max_steps = st.number_input(
                "Stop after steps (0 = no limit)",
                0,
                MAX_STEPS_RANGE[1],
                value=0,
                step=100,
                help="A quick trial: stop after this many optimisation steps.",
            )
            most = max_processes()
            nproc = (
                st.number_input(
                    "Processes",
                    1,
                    most,
                    value=1,
                    step=1,
                    help="Train on several processes (torchrun, DDP) that split the batch.",
                )
                if most > 1
                else 1
            )
            fields = option_fields(kind, dataset)
            options = {**changed_options(kind, dataset, fields), "init_from": sources.get(source)}
            submitted = st.form_submit_button("Start training", type="primary", width="stretch")
        if submitted:
            try:
                request = check_request(kind, dataset, epochs, batch_size, lr, seed, max_steps, nproc, options)
            except ValueError as exc:
                launch(None, dataset, str(exc))
            else:
                launch(request, dataset)


def presets_panel() -> None:
    """Break-it presets: a known failure (or its fix) in one click, with the prediction shown before the run."""
    with st.expander("Break it: failure presets", expanded=False):
        key = st.selectbox("Preset", list(PRESETS), format_func=lambda k: PRESETS[k].title, key="preset")
        preset = PRESETS[key]
        expected = (
            f"the detector should raise **{preset.alert}**"
            if preset.alert
            else f"the detector should stay quiet (it fixes *{PRESETS[preset.fixes].title}*)"
        )
        st.markdown(f":material/science: **Prediction:** {preset.prediction} On the page, {expected}.")
        st.caption(f"A {KINDS[preset.kind].title} on MNIST, {preset.max_steps:,} steps of batch {preset.batch_size}.")
        if st.button("Start this preset", key="start-preset", width="stretch"):
            launch(preset.request(), preset.request().dataset)


def _cancel(run: RunInfo) -> None:
    fresh = run_info(run.path)
    if cancel_run(fresh):
        st.session_state[NOTICE_KEY] = f"Asked {run.name} to stop; it saves its checkpoint and exits."
    else:
        st.session_state[NOTICE_KEY] = f"{run.name} had already stopped ({fresh.state})."


def _progress_text(run: RunInfo) -> str:
    status = run.status
    if not status.get("total_steps"):
        return f"{run.kind} on {run.dataset}: starting ({status.get('preparing') or 'loading data'})"
    epoch = min(status.get("epoch", 0) + 1, status.get("epochs") or 1)
    processes = f", {status['world_size']} processes" if status.get("world_size", 1) > 1 else ""
    return (
        f"{run.kind} on {run.dataset}: epoch {epoch}/{status.get('epochs', '?')}, "
        f"step {status.get('step', 0)}/{status['total_steps']}{processes}"
    )


def show_ended(run: RunInfo) -> None:
    """How a run ended: finished, cancelled, or failed / crashed with its reason and the tail of its stderr."""
    reason = run.status.get("reason") or ""
    if run.state == "finished":
        st.success(f"{run.name} finished{': ' + reason if reason else ''}.")
    elif run.state == "cancelled":
        st.warning(f"{run.name} was cancelled ({reason or 'stopped'}); its last checkpoint is kept.")
    else:
        st.error(f"{run.name} {run.state}: {reason or 'no reason recorded'}.")
        tail = run.stderr_tail()
        if tail:
            st.code(tail, language=None)


def runs_panel() -> None:
    """Active runs with a progress bar and Cancel, then how this session's recent runs ended."""
    try:
        runs = list_runs()
    except OSError as exc:
        st.error(f"Cannot read the runs folder: {exc}")
        return
    launched = st.session_state.get(LAUNCHED_KEY, [])
    active = [r for r in runs if r.active]
    ended = [r for r in runs if not r.active and r.name in launched][:ENDED_SHOWN]
    notice, started = st.session_state.pop(NOTICE_KEY, None), st.session_state.pop(STARTED_KEY, None)
    if not active and not ended and not notice and not started:
        return
    st.subheader("Training runs")
    if started:
        st.success(started)
    if notice:
        st.info(notice)
    for run in active:
        st.progress(run.progress, text=_progress_text(run))
        for alert in health.alerts(read_metrics(run.folder.metrics_file)):
            st.warning(
                f"**{alert.name.capitalize()}** (step {alert.step:,}): {alert.message}.", icon=":material/warning:"
            )
        st.button("Cancel", key=f"cancel-{run.name}", on_click=_cancel, args=(run,), help=f"Stop {run.name}")
    for run in ended:
        show_ended(run)


def _safe_runs() -> list[RunInfo]:
    try:
        return list_runs()
    except OSError:
        return []


# One transparent point without axes, one pixel high: drawn only so that the browser fetches and compiles Plotly.
BLANK_FIGURE = {
    "data": [{"type": "scatter", "x": [0], "y": [0], "mode": "markers", "marker": {"opacity": 0}}],
    "layout": {"xaxis": {"visible": False}, "yaxis": {"visible": False}, "margin": {"l": 0, "r": 0, "t": 0, "b": 0}},
}


BLANK_TABLE = {"": [""]}


def warm_chart_library() -> None:
    """A blank one-pixel Plotly chart and table at the foot of the sidebar, drawn after the page's first run in a
    session: the browser then loads and compiles Plotly's 4.7 MB script and the table's 1.2 MB while the visitor looks
    at the first page, instead of freezing the first page with a chart for 0.7 s on a 2-core laptop
    (docs/benchmark.md, issue 22). Once is enough: the compiled scripts stay in the tab."""
    if st.session_state.get(WARMED_KEY):
        return
    with st.sidebar, st.container(height=1, border=False):  # one pixel high: the table's frame is taller
        st.plotly_chart(
            BLANK_FIGURE, height=1, config={"staticPlot": True, "displayModeBar": False}, key="chart_library_warm_up"
        )
        st.dataframe(BLANK_TABLE, hide_index=True, key="table_library_warm_up")
    st.session_state[WARMED_KEY] = True


def render(page: Callable[[], None] = lambda: None) -> None:
    """The sidebar around `page` (the entry point passes the navigation's run): the dataset picker before it; the
    launcher, presets and runs after it, in their place below the picker. Their widgets' scripts are fetched on
    first use, and the browser shows nothing new until they arrive: fetched before the page, from a server busy
    importing PyTorch, they held back the Sample page's first images by ~0.7 s on a cold start (docs/benchmark.md)."""
    if FOLLOW_KEY in st.session_state:  # before the Training page draws its log picker
        st.session_state[TRAINING_LOG_KEY] = st.session_state.pop(FOLLOW_KEY)
    with st.sidebar:
        dataset_picker()
        panels = st.container()
    try:
        with page_frame():
            page()
    finally:
        with panels:
            launcher()
            presets_panel()
            # refresh by itself only while something is running: an idle sidebar costs nothing
            any_active = any(r.active for r in _safe_runs())
            st.fragment(runs_panel, run_every=REFRESH_S if any_active else None)()
        warm_chart_library()

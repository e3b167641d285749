"""The sidebar of every page: dataset picker, training launcher and the live status of training runs."""

from __future__ import annotations

import streamlit as st

from genmodels import health
from genmodels.datasets import DATASETS, dataset_info
from genmodels.kinds import KINDS
from genmodels.launch import (
    BATCH_RANGE,
    BETA_RANGE,
    D_STEPS_RANGE,
    EPOCH_RANGE,
    GAN_HELP,
    KL_WARMUP_RANGE,
    LABEL_SMOOTHING_RANGE,
    LAUNCH_KINDS,
    MAX_STEPS_RANGE,
    MODE_SEEKING_RANGE,
    SEED_RANGE,
    VAE_HELP,
    TrainingRequest,
    changed_options,
    check_request,
    max_processes,
    recipe_options,
    start,
    start_sources,
)
from genmodels.presets import PRESETS
from genmodels.recipes import OBJECTIVES
from genmodels.runs import LaunchError, RunInfo, cancel_run, list_runs, read_metrics, run_info
from views.common import DATASET_KEY, TRAINING_LOG_KEY, current_dataset

LAUNCHED_KEY = "launched_runs"  # names of the runs started from this browser session, newest last
NOTICE_KEY = "runs_notice"  # one message for the runs panel (e.g. the outcome of a Cancel click)
# Seconds between refreshes of the runs panel while a run is going. A fragment tick reruns part
# of the script; a shorter interval than a page's render time under load starves the page.
REFRESH_S = 10.0
ENDED_SHOWN = 3


def dataset_picker() -> None:
    """The dataset every page shows; its value lives in st.session_state[DATASET_KEY] across page switches."""
    st.session_state[DATASET_KEY] = current_dataset()  # sent with every run: the picker always shows the dataset in use
    st.selectbox("Dataset", list(DATASETS), key=DATASET_KEY, format_func=lambda name: dataset_info(name).title)


def gan_fields(kind: str, dataset: str) -> dict[str, object]:
    """The GAN objective fields, each with its one-line help; their defaults are the kind's recipe."""
    recipe = recipe_options(kind, dataset)
    objectives = list(OBJECTIVES)
    return {
        "objective": st.selectbox(
            "GAN objective", objectives, index=objectives.index(recipe["objective"]), help=GAN_HELP["objective"]
        ),
        "spectral_norm": st.checkbox(
            "Spectral norm in D", value=recipe["spectral_norm"], help=GAN_HELP["spectral_norm"]
        ),
        "d_steps": st.number_input(
            "D steps per G step", *D_STEPS_RANGE, value=recipe["d_steps"], help=GAN_HELP["d_steps"]
        ),
        "lr_d": st.text_input(
            "D learning rate", value=recipe["lr_d"], placeholder="same as G's", help=GAN_HELP["lr_d"]
        ),
        "label_smoothing": st.number_input(
            "Label smoothing",
            LABEL_SMOOTHING_RANGE[0],
            0.49,
            value=float(recipe["label_smoothing"]),
            step=0.05,
            help=GAN_HELP["label_smoothing"],
        ),
        "mode_seeking": st.number_input(
            "Mode-seeking weight",
            *MODE_SEEKING_RANGE,
            value=float(recipe["mode_seeking"]),
            step=0.5,
            help=GAN_HELP["mode_seeking"],
        ),
    }


def vae_fields(kind: str, dataset: str) -> dict[str, object]:
    """The VAE's KL weight and warm-up, each with its one-line help; their defaults are the kind's recipe."""
    recipe = recipe_options(kind, dataset)
    return {
        "beta": st.number_input(
            "Beta (KL weight)", *BETA_RANGE, value=float(recipe["beta"]), step=0.5, help=VAE_HELP["beta"]
        ),
        "kl_warmup": st.number_input(
            "KL warm-up steps", *KL_WARMUP_RANGE, value=recipe["kl_warmup"], step=100, help=VAE_HELP["kl_warmup"]
        ),
    }


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
    st.session_state[TRAINING_LOG_KEY] = f"run/{info.name}"  # the Training page follows the new run
    where = "" if dataset == current_dataset() else f" with the sidebar's dataset set to {dataset_info(dataset).title}"
    st.success(f"Started {info.name}. Follow it below or on the Training page{where}.")


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
            fields: dict[str, object] = {}
            if KINDS[kind].adversarial:
                fields.update(gan_fields(kind, dataset))
            if KINDS[kind].encodes:
                fields.update(vae_fields(kind, dataset))
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
    notice = st.session_state.pop(NOTICE_KEY, None)
    if not active and not ended and not notice:
        return
    st.subheader("Training runs")
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


def render() -> None:
    """Everything the sidebar holds (called by the entry point on every page)."""
    with st.sidebar:
        dataset_picker()
        launcher()
        presets_panel()
        # refresh by itself only while something is running: an idle sidebar costs nothing
        any_active = any(r.active for r in _safe_runs())
        st.fragment(runs_panel, run_every=REFRESH_S if any_active else None)()

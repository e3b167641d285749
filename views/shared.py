"""What every session shares and no widget changes, computed once per server: the latent map's points, plane,
verdicts, scatter and confidence map; the comparison's stored numbers and loss curves; the dataset overview.

`preload` computes all of it (and loads every model) in a background thread when the server starts
(`common.start_preload`), so a visitor's first look at a page finds it ready instead of waiting seconds for it.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import threading
import time

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from streamlit.logger import get_logger

from genmodels.api import predict
from genmodels.checkpoint import shipped_generators
from genmodels.compare import epoch_series, nearest_training_pairs, shipped_log, stored_numbers, training_stability
from genmodels.datasets import DATASETS, missing_files
from genmodels.eda import DataOverview, overview
from genmodels.gallery import Gallery, generate_gallery
from genmodels.inversion import one_thread
from genmodels.kinds import KINDS
from genmodels.latent import (
    LatentMap,
    RealImages,
    class_verdicts,
    decode_points,
    full_test_images,
    interpolation_strip,
    real_latent_map,
    summary_images,
)
from genmodels.paths import data_dir
from genmodels.projection import PROJECTIONS, ConfidenceGrid, Plane, confidence_grid, pca_plane
from genmodels.summary import load_summary
from views import common

SUBSET, FULL = "subset", "full"  # the bundled 200 test images per class, or the whole test split when its files exist
SIDE_BY_SIDE = 10  # the GAN vs VAE page's samples per model
MAX_SIDE_BY_SIDE = 4  # models it compares at once: more columns would shrink every image below legibility
MEMORISATION_SHOWN = 5  # of which this many are searched for in the training set
STRIP_STEPS = 10  # the GAN vs VAE page's interpolation steps before anyone moves the slider
PRELOAD_NICE = 10  # the preload thread yields the CPU to visitors' script runs
# imported by pages only when first opened: pandas (GAN vs VAE, Training) and pyarrow (Streamlit sends every table
# through it) took 0.3-0.5 s of a first visit
PRELOAD_MODULES = ("pandas", "pyarrow")
log = get_logger(__name__)  # Streamlit's logger: shown at its `logger.level` (info by default)


@st.cache_data(show_spinner="Reading the real test images...", max_entries=4)
def real_images(dataset: str, source: str) -> RealImages:
    """The real test images of the map, in its row order."""
    return full_test_images(dataset) if source == FULL else summary_images(load_summary(dataset, prefer_full=False))


@st.cache_data(show_spinner="Encoding the real test images...", max_entries=4)
def latent_map(dataset: str, kind: str, source: str) -> LatentMap:
    """The PCA map of the latent means of the VAE kind `kind` for the real test images."""
    return real_latent_map(common.generator(kind, dataset).module, real_images(dataset, source))


@st.cache_resource(show_spinner="Placing the points on the map...", max_entries=8)
def plane_of(dataset: str, kind: str, source: str, projection: str) -> Plane:
    """The map's plane: its own PCA, or the shipped UMAP (the whole test split placed on it point by point)."""
    lmap = latent_map(dataset, kind, source)
    if projection == "PCA":
        return pca_plane(lmap)
    umap = common.umap_plane(dataset, kind)
    return umap if source == SUBSET else dataclasses.replace(umap, coords=umap.project(lmap.latents))


def plane_box(plane: Plane) -> tuple[float, float, float, float]:
    """(x min, x max, y min, y max) of the plane's points, widened to whole numbers: the chart's and sliders' range."""
    coords = plane.coords
    return (
        float(np.floor(coords[:, 0].min())),
        float(np.ceil(coords[:, 0].max())),
        float(np.floor(coords[:, 1].min())),
        float(np.ceil(coords[:, 1].max())),
    )


@st.cache_data(show_spinner="Decoding the confidence map...", max_entries=8)
def confidence_map(
    dataset: str, kind: str, source: str, projection: str, box: tuple[float, float, float, float]
) -> ConfidenceGrid:
    """The classifier's confidence on the VAE's images over the plane's box."""
    vae, classifier = common.generator(kind, dataset), common.classifier(dataset)
    return confidence_grid(
        plane_of(dataset, kind, source, projection),
        lambda z: decode_points(vae, z),
        lambda images: predict(classifier, images),
        box[:2],
        box[2:],
    )


@st.cache_data(show_spinner=False, max_entries=4)
def real_predictions(dataset: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's predicted class and confidence for each real image of the map."""
    return class_verdicts(predict(common.classifier(dataset), real_images(dataset, source).unit(slice(None))))


@st.cache_data(show_spinner=False, max_entries=8)
def scatter_spec(dataset: str, kind: str, source: str, projection: str, with_predictions: bool) -> dict:
    """The scatter of the map, one trace per class, with the map row in customdata for selections.

    Cached as a plain dict: unpickling a go.Figure re-validates every trace, which costs more than the rest of a rerun.
    """
    lmap = latent_map(dataset, kind, source)
    coords = plane_of(dataset, kind, source, projection).coords
    names = common.class_names(dataset)
    predicted, confidence = real_predictions(dataset, source) if with_predictions else (None, None)
    colours = px.colors.qualitative.T10  # ten clearly distinct hues, one per class
    fig = go.Figure()
    for c, name in enumerate(names):
        rows = np.flatnonzero(lmap.labels == c)
        verdict = (
            [f"{names[p]} ({q:.0%})" for p, q in zip(predicted[rows], confidence[rows], strict=True)]
            if with_predictions
            else ["classifier unavailable"] * len(rows)
        )
        fig.add_trace(
            go.Scattergl(
                x=coords[rows, 0],
                y=coords[rows, 1],
                mode="markers",
                name=name,
                marker=dict(size=5 if source == SUBSET else 3, color=colours[c % len(colours)], opacity=0.75),
                customdata=np.stack([rows, lmap.indices[rows], np.array(verdict, dtype=object)], axis=1),
                hovertemplate=(
                    f"class: {name}<br>test index: %{{customdata[1]}}<br>classifier: %{{customdata[2]}}<extra></extra>"
                ),
            )
        )
    titles = plane_of(dataset, kind, source, projection).axis_titles
    fig.update_layout(
        height=560,
        margin=dict(l=10, r=10, t=30, b=10),
        legend_title_text="class",
        dragmode="pan",
        xaxis_title=titles[0],
        yaxis_title=titles[1],
    )
    return fig.to_dict()


@st.cache_data(show_spinner=False, max_entries=16)
def cached_stored_numbers(path: str, modified_ns: int) -> tuple[dict, dict]:
    """(metrics, class profile) stored in a checkpoint, verified once per file version (its mtime is in the key)."""
    return stored_numbers(path)


def checkpoint_numbers(kind: str, dataset: str) -> tuple[dict, dict]:
    """The stored numbers of a shipped checkpoint; CheckpointError when it is missing or broken."""
    from genmodels.checkpoint import checkpoint_path

    path = checkpoint_path(kind, dataset)
    try:
        modified_ns = path.stat().st_mtime_ns
    except OSError:
        modified_ns = -1  # missing: the load below raises the CheckpointError that names the file
    return cached_stored_numbers(str(path), modified_ns)


@st.cache_data(show_spinner=False, max_entries=16)
def stability(kind: str, dataset: str) -> tuple[dict, tuple[list[float], list[float]]]:
    """Stability numbers and the per-epoch loss curve of a shipped training log."""
    records = shipped_log(kind, dataset)
    return training_stability(kind, records), epoch_series(records, KINDS[kind].loss_key)


def shipped_vaes(dataset: str) -> list[str]:
    """The shipped VAE kinds of `dataset` (kinds with an encoder), in page order: the Latent space page's choice."""
    return [kind for kind in shipped_generators(dataset) if KINDS[kind].encodes]


def default_compared(dataset: str) -> tuple[str, ...]:
    """The models the GAN vs VAE page compares before anyone picks: the shipped class-conditional ones (the reports'
    MLPs beside the convolutional kinds), as many as fit; the first shipped ones where none is conditional."""
    shipped = shipped_generators(dataset)
    conditional = tuple(kind for kind in shipped if KINDS[kind].conditional)
    return (conditional or shipped)[:MAX_SIDE_BY_SIDE]


def loss_curves(dataset: str, kinds: tuple[str, ...]) -> tuple[list[dict], dict[str, tuple[list[float], list[float]]]]:
    """(stability rows, loss curves) of those of `kinds` whose shipped training log has epochs."""
    rows, curves = [], {}
    for kind in kinds:
        numbers, curve = stability(kind, dataset)
        if curve[0]:
            curves[kind] = curve
            rows.append({"model": KINDS[kind].display_title, "loss": KINDS[kind].loss_key, **numbers})
    return rows, curves


@st.cache_data(show_spinner=False, max_entries=32)
def nearest_in_training(kinds: tuple[str, ...], dataset: str, label: int, seed: int) -> dict[str, tuple]:
    """Per model, (generated images, their nearest training images, pixel distances) for the first few side-by-side
    samples: one search of the training set for every model."""
    return nearest_training_pairs(
        {kind: side_by_side(kind, dataset, label, seed).images[:MEMORISATION_SHOWN] for kind in kinds}, dataset
    )


@st.cache_data(show_spinner=False, max_entries=32)
def side_by_side(kind: str, dataset: str, label: int, seed: int) -> Gallery:
    """A few classified samples of one class (unconditional for a gan without mapper)."""
    model = common.generator(kind, dataset)
    return generate_gallery(
        model, common.classifier(dataset), label if model.supports_labels else None, SIDE_BY_SIDE, seed
    )


@st.cache_data(show_spinner=False, max_entries=32)
def strip(kind: str, dataset: str, labels: tuple[int, int], seed: int, steps: int):
    """A class-to-class interpolation strip of one model and the classifier's probabilities for it."""
    images = interpolation_strip(common.generator(kind, dataset), *labels, seed, seed, steps)
    return images, predict(common.classifier(dataset), images)


@st.cache_data(show_spinner="Summarising the dataset...", max_entries=4)
def data_overview(dataset: str, data_folder: str) -> DataOverview:
    """The live summary when the full dataset is in `data_folder`, else the bundled one (cached per folder)."""
    return overview(load_summary(dataset, data_folder))


def preload(datasets: tuple[str, ...] = tuple(DATASETS)) -> None:
    """Load every model and compute what the pages show before anyone picks anything, for each dataset.

    Runs on one OpenMP thread at a lower priority, so the visitors' own script runs keep the CPU. A step that fails
    (a missing checkpoint or dataset) is skipped: the page reports it when it is opened.
    """
    started = time.perf_counter()
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PRELOAD_NICE)  # Linux: a thread has its own nice
    for module in PRELOAD_MODULES:
        _attempt(importlib.import_module, module)
    with one_thread():
        for dataset in datasets:
            _attempt(common.classifier, dataset)
            for kind in shipped_generators(dataset):
                _attempt(common.generator, kind, dataset)
        for dataset in datasets:
            _attempt(_latent_page, dataset)
            _attempt(_comparison_page, dataset)
            _attempt(data_overview, dataset, str(data_dir()))
    log.info("%s %.1f s", common.PRELOADED, time.perf_counter() - started)


def _attempt(step, *args) -> None:
    try:
        step(*args)
    except Exception:  # noqa: BLE001 - a warm-up step; the page shows the real error to whoever opens it
        log.debug("preload step %s%s failed", step.__name__, args, exc_info=True)


def _latent_page(dataset: str) -> None:
    """The Latent space page's first view (its first VAE) in both projections: map, verdicts, scatter, confidence
    map."""
    kind = shipped_vaes(dataset)[0]
    real_predictions(dataset, SUBSET)
    for projection in PROJECTIONS:
        plane = plane_of(dataset, kind, SUBSET, projection)
        scatter_spec(dataset, kind, SUBSET, projection, True)
        confidence_map(dataset, kind, SUBSET, projection, plane_box(plane))


def _comparison_page(dataset: str) -> None:
    """The GAN vs VAE page's numbers that no widget changes, and what it shows before anyone picks a class or seed
    (class 0, seed 0: the first of its classes, its seed box's default)."""
    kinds = default_compared(dataset)
    loss_curves(dataset, kinds)
    for kind in kinds:
        checkpoint_numbers(kind, dataset)
        side_by_side(kind, dataset, 0, 0)
        if common.generator(kind, dataset).supports_labels:
            strip(kind, dataset, (0, 1), 0, STRIP_STEPS)
    if not missing_files(dataset):
        nearest_in_training(kinds, dataset, 0, 0)

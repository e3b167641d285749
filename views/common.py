"""What every page shares: the current dataset, cached model loaders, and friendly error display.

PyTorch loads on first use of a model, not on import: the sidebar and a page's heading are drawn while it loads.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING

import streamlit as st

from genmodels.datasets import DATASETS, dataset_info

if TYPE_CHECKING:
    from collections.abc import Callable

    from genmodels import api
    from genmodels.compare import Baseline
    from genmodels.latent import LatentMap
    from genmodels.projection import Plane

DATASET_KEY = "dataset"
TRAINING_LOG_KEY = "training_log"  # the log the Training page shows: "shipped/..", "run/<name>" or "card/<name>"
DEFAULT_DATASET = "mnist"
PRELOAD_ENV = "GENMODELS_PRELOAD"  # "0": no background preload (the page tests measure and clear caches themselves)
# The preload waits this long after the first page's script ended: its imports hold the GIL, and started at once
# they delayed the first visitor's images (5.1-7.4 s -> 7.6-9.4 s after `streamlit run` on a loaded 2-core machine)
PRELOAD_DELAY_S = 3.0
PRELOADED = "genmodels preload done in"  # the line the server logs when the preload ends (the benchmark waits for it)


class PageStopped(Exception):
    """Ends a page's script inside the app's frame (see `stop_page`)."""


_frame = threading.local()  # Streamlit runs each session's script in a thread of its own


@contextlib.contextmanager
def page_frame():
    """Run a page inside the app's frame: `stop_page` ends just the page, and the frame goes on drawing."""
    _frame.active = True
    try:
        yield
    except PageStopped:
        pass
    finally:
        _frame.active = False


def stop_page() -> None:
    """End the page's script here, after its message. Inside the frame the sidebar's panels are still drawn after it
    (st.stop() would end the whole run); a page run on its own, as in the page tests, stops as with st.stop()."""
    if getattr(_frame, "active", False):
        raise PageStopped
    st.stop()


def current_dataset() -> str:
    """The dataset picked in the sidebar (the entry point owns the widget; pages only read it)."""
    name = st.session_state.get(DATASET_KEY, DEFAULT_DATASET)
    return name if name in DATASETS else DEFAULT_DATASET


def persist_widgets(defaults: dict) -> None:
    """Assign each widget key its current value (or its default) before the widgets are drawn.

    A value assigned through st.session_state is sent with every run, so the browser always shows
    what the server computes with. Without it, a run interrupted under load before its widgets reached
    the browser left sliders drawn at their minimum while the images used the real values, and a
    key press on such a slider changed nothing. It also keeps the values across page switches.
    """
    for key, default in defaults.items():
        st.session_state[key] = st.session_state.get(key, default)


def class_names(dataset: str) -> tuple[str, ...]:
    return dataset_info(dataset).classes


def generator(kind: str, dataset: str, checkpoint: str | None = None) -> api.GenerativeModel:
    """A generator, loaded once per process (never mutated by pages)."""
    return _generator(kind, dataset, checkpoint)  # always three arguments: one cache entry however it is called


@st.cache_resource(show_spinner="Loading model...", max_entries=32)
def _generator(kind: str, dataset: str, checkpoint: str | None) -> api.GenerativeModel:
    """The cached load behind `generator`: Streamlit keys a cache on the arguments as passed, so
    generator(kind, dataset) and generator(kind, dataset, None) held two copies of each model."""
    from genmodels import api

    return api.load_generator(kind, dataset, checkpoint=checkpoint)


@st.cache_resource(show_spinner="Loading classifier...", max_entries=8)
def classifier(dataset: str):
    """The project classifier of a dataset, loaded once per process."""
    from genmodels import api

    return api.load_classifier(dataset)


@st.cache_data(show_spinner=False, max_entries=4)
def real_baselines(dataset: str) -> Baseline:
    """The real side that samples are measured against, from the bundled real test images (once per server)."""
    from genmodels.compare import summary_baseline
    from genmodels.summary import load_summary

    return summary_baseline(classifier(dataset), load_summary(dataset, prefer_full=False))


@st.cache_data(show_spinner="Encoding the real test images...", max_entries=8)
def subset_latent_map(dataset: str, kind: str) -> LatentMap:
    """The PCA map of the latent means of the VAE kind `kind` for the bundled test images (the points UMAP was fitted
    on)."""
    from genmodels.latent import real_latent_map, summary_images
    from genmodels.summary import load_summary

    return real_latent_map(generator(kind, dataset).module, summary_images(load_summary(dataset, prefer_full=False)))


@st.cache_resource(show_spinner=False, max_entries=8)
def umap_plane(dataset: str, kind: str) -> Plane:
    """The shipped UMAP plane of the bundled test images in the latent space of the VAE kind `kind`; CheckpointError
    when missing or fitted to other weights."""
    from genmodels.projection import load_umap_coords
    from genmodels.projection import umap_plane as make_plane

    lmap = subset_latent_map(dataset, kind)
    coords = load_umap_coords(dataset, kind, generator(kind, dataset).meta["weights_sha256"], len(lmap.latents))
    return make_plane(lmap.latents, coords)


def try_generator(kind: str, dataset: str, checkpoint: str | None = None) -> api.GenerativeModel | None:
    """The generator, or None after showing why it cannot be loaded (other pages keep working)."""
    from genmodels.checkpoint import CheckpointError

    try:
        return generator(kind, dataset, checkpoint)
    except (CheckpointError, ValueError) as exc:
        st.error(f"The {kind} model for {dataset_info(dataset).title} is unavailable: {exc}")
        return None


def try_classifier(dataset: str):
    """The classifier, or None after showing why it cannot be loaded."""
    from genmodels.checkpoint import CheckpointError

    try:
        return classifier(dataset)
    except (CheckpointError, ValueError) as exc:
        st.error(f"The classifier for {dataset_info(dataset).title} is unavailable: {exc}")
        return None


@st.cache_resource(show_spinner=False)
def start_preload() -> threading.Thread | None:
    """Start, once per server, the thread that loads every model and computes what pages show by default
    (views.shared.preload); None when GENMODELS_PRELOAD is "0"."""

    def run() -> None:
        time.sleep(PRELOAD_DELAY_S)
        from views.shared import preload  # plotly, pandas and the rest load here, after the first page was drawn

        preload()

    return start_background("genmodels-preload", run)


def start_background(name: str, target: Callable[[], None]) -> threading.Thread | None:
    """Run `target` in a daemon thread called `name`; None, starting nothing, when GENMODELS_PRELOAD is "0" (the
    page tests measure and clear caches themselves)."""
    if os.environ.get(PRELOAD_ENV, "1") == "0":
        return None
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def figure_row(pngs: list[str], captions: list[str], width: int) -> str:
    """Base64 PNGs `width` px wide with a caption each -> a row of inline figures (HTML for st.markdown)."""
    # one element and no media request per image: the browser draws a page of 120 images ~0.5 s sooner than as
    # st.image's one element each (docs/benchmark.md); the sanitiser drops an img's style and size, so the PNGs come
    # at their display size
    import html

    figures = "".join(
        f'<figure style="margin:0;text-align:center;width:{width}px"><img alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{png}">'
        f'<figcaption style="font-size:0.8rem;opacity:0.6;line-height:1.2;margin:0">{html.escape(caption)}</figcaption>'
        "</figure>"
        for png, caption in zip(pngs, captions, strict=True)
    )
    return f'<div style="display:flex;flex-wrap:wrap;gap:0.5rem">{figures}</div>'


@contextlib.contextmanager
def caption_while(text: str, show: bool = True):
    """Show `text` as a caption (when `show`) while the block runs; a spinner would fetch its script first."""
    slot = st.empty()
    if show:
        slot.caption(text)
    try:
        yield
    finally:
        slot.empty()

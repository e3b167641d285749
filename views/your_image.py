"""Your image page: draw or upload an image and see every model take it in: the classifier's verdict and its reasons,
the VAE's encoding on the latent map, each GAN's inversion, and the nearest training images."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from streamlit.logger import get_logger
from streamlit_drawable_canvas import st_canvas

from genmodels.checkpoint import CheckpointError
from genmodels.drawing import EmptyCanvas, ImageInputError, prepare, read_canvas, read_upload
from genmodels.kinds import KINDS
from views import PAGE_PATHS, common

CANVAS_SIDE = 280
NEIGHBOURS = 8
STRIP_STEPS = 8
INVERSIONS_KEY = "your_image_inversions"  # this session's inversions, so a rerun does not redo them
KEPT_INVERSIONS = 24
ENCODING_KEY = "your_image_encoding"  # {dataset: (mu, draws)} for the Latent space page to draw
SELECT_KEY = "your_image_select"  # tells the Latent space page to decode at the encoding
PROJECTION_KEY = "latent_projection"  # shared with the Latent space page
log = get_logger(__name__)


@st.cache_data(show_spinner=False, max_entries=32)
def classify(dataset: str, pixels: np.ndarray):
    """The classifier's verdict with Integrated Gradients."""
    from genmodels.your_image import verdict

    return verdict(common.classifier(dataset), pixels)


@st.cache_data(show_spinner=False, max_entries=32)
def encode(dataset: str, pixels: np.ndarray):
    """The VAE's view of the image."""
    from genmodels.your_image import vae_view

    return vae_view(common.generator("vae", dataset), pixels)


@st.cache_resource(
    show_spinner="Indexing the training images (10-30 s the first time, a few seconds on a restarted server)...",
    max_entries=2,
)
def neighbour_index(dataset: str):
    """The nearest-neighbour index of the dataset's training images."""
    from genmodels.neighbors import build_index
    from genmodels.paths import cache_dir
    from genmodels.your_image import neighbour_pool

    return build_index(common.classifier(dataset), *neighbour_pool(dataset), cache=cache_dir())


@st.cache_resource(show_spinner=False, max_entries=2)
def start_indexing(dataset: str) -> threading.Thread | None:
    """Start, once per server and dataset, building the neighbour index in the background when the page opens, so
    that it is ready, or under way, by the time a visitor has drawn or uploaded an image; None when
    GENMODELS_PRELOAD is "0" (the page tests measure the page themselves)."""

    def run() -> None:
        try:
            neighbour_index(dataset)  # a visitor's call for the same index waits for this one (a per-key lock)
        except Exception:  # noqa: BLE001 - the page shows the real error when the visitor's call retries it
            log.debug("indexing %s in the background failed", dataset, exc_info=True)

    return common.start_background(f"genmodels-index-{dataset}", run)


@st.cache_data(show_spinner=False, max_entries=32)
def neighbours(dataset: str, pixels: np.ndarray):
    """The nearest indexed images in pixels and in classifier features."""
    from genmodels.neighbors import nearest
    from genmodels.your_image import as_batch

    return nearest(neighbour_index(dataset), common.classifier(dataset), as_batch(pixels), NEIGHBOURS)


@st.cache_data(show_spinner=False, max_entries=64)
def class_strip(dataset: str, kind: str, key: str, label: int):
    """Images from an inversion's latent to a draw of class `label`."""
    from genmodels.inversion import strip_to_class

    return strip_to_class(common.generator(kind, dataset), st.session_state[INVERSIONS_KEY][key], label, STRIP_STEPS)


def inversion(dataset: str, kind: str, pixels: np.ndarray, digest: str, label: int | None):
    """(this session's cache key, the inversion of the image by one GAN), with a progress bar while it runs."""
    from genmodels.inversion import invert
    from genmodels.your_image import as_batch

    key = f"{dataset}/{kind}/{label}/{digest}"
    done = st.session_state.setdefault(INVERSIONS_KEY, {})
    if key not in done:
        text = f"Inverting the {KINDS[kind].title}..."
        bar = st.progress(0.0, text=text)
        done[key] = invert(
            common.generator(kind, dataset),
            common.classifier(dataset),
            as_batch(pixels),
            label,
            progress=lambda fraction: bar.progress(fraction, text=text),
        )
        bar.empty()
        while len(done) > KEPT_INVERSIONS:
            done.pop(next(iter(done)))
    return key, done[key]


def read_input(dataset: str) -> np.ndarray | None:
    """The greyscale input from the canvas or the uploader (None until there is one); shows why it was refused."""
    mode = st.radio("Input", ["Draw", "Upload"], horizontal=True, key="your_image_mode")
    try:
        if mode == "Draw":
            brush = st.slider("Brush width", 4, 40, 22 if dataset == "mnist" else 30, key=f"your_image_brush_{dataset}")
            drawn = st_canvas(
                stroke_width=brush,
                stroke_color="#000000",
                background_color="#FFFFFF",
                height=CANVAS_SIDE,
                width=CANVAS_SIDE,
                drawing_mode="freedraw",
                key=f"your_image_canvas_{dataset}",
                return_image_data=True,
            )
            st.caption("Undo, redo and clear are in the canvas's toolbar (above it).")
            return read_canvas(drawn.image_data)
        upload = st.file_uploader(
            "An image file (PNG, JPEG, BMP or WebP)",
            type=["png", "jpg", "jpeg", "bmp", "webp"],
            key=f"your_image_upload_{dataset}",
        )
        if upload is None:
            st.info("Upload an image to see what the models make of it.")
            return None
        grey = read_upload(upload.getvalue())  # checked first: a bomb or a broken file never reaches st.image
        st.image(grey, width=CANVAS_SIDE, caption="uploaded (in greyscale)", clamp=True)
        return grey
    except EmptyCanvas as exc:
        st.info(str(exc))
        return None
    except ImageInputError as exc:
        st.warning(str(exc))
        return None


def verdict_section(dataset: str, pixels: np.ndarray) -> int:
    """The classifier's bar chart and attribution; returns its top class."""
    from genmodels.your_image import attribution_overlay

    st.subheader("1. The classifier's verdict")
    result = classify(dataset, pixels)
    bars, why = st.columns([2, 1])
    colours = ["#d62728" if c == result.predicted else "#7f7f7f" for c in range(len(names))]
    chart = go.Figure(go.Bar(x=list(names), y=result.probs, marker_color=colours))
    chart.update_layout(
        height=280,
        margin=dict(l=10, r=10, t=30, b=10),
        yaxis=dict(range=[0, 1], title="probability"),
        xaxis=dict(type="category"),
        title=f"{names[result.predicted]} ({result.probs[result.predicted]:.0%})",
    )
    bars.plotly_chart(chart, width="stretch", key="your_image_verdict")
    why.image(
        attribution_overlay(pixels, result.attribution),
        width=168,
        caption=f"Why {names[result.predicted]}: red ink argues for it, blue against (Integrated Gradients)",
    )
    return result.predicted


def vae_section(dataset: str, pixels: np.ndarray) -> None:
    """The encoding on the latent map with its sigma ellipse, the reconstruction and draws of q(z|x)."""
    from genmodels.gallery import display_pixels
    from genmodels.projection import PROJECTIONS, encoding_ellipse, pca_plane

    st.subheader("2. The VAE's view")
    view = encode(dataset, pixels)
    lmap = common.subset_latent_map(dataset, "vae")
    projection = st.radio("Map", PROJECTIONS, horizontal=True, key=PROJECTION_KEY)
    plane = pca_plane(lmap)
    if projection == "UMAP":
        try:
            plane = common.umap_plane(dataset, "vae")
        except CheckpointError as exc:
            st.warning(f"The UMAP map is unavailable ({exc}); showing PCA.")
    centre, ellipse = encoding_ellipse(plane, view.mu, view.draws)
    chart = go.Figure()
    colours = px.colors.qualitative.T10
    for c, name in enumerate(names):
        rows = np.flatnonzero(lmap.labels == c)
        chart.add_trace(
            go.Scattergl(
                x=plane.coords[rows, 0],
                y=plane.coords[rows, 1],
                mode="markers",
                name=name,
                marker=dict(size=4, color=colours[c % len(colours)], opacity=0.6),
                hoverinfo="name",
            )
        )
    chart.add_trace(
        go.Scatter(
            x=ellipse[:, 0], y=ellipse[:, 1], mode="lines", name="1σ of q(z|x)", line=dict(color="black", width=2)
        )
    )
    chart.add_trace(
        go.Scatter(
            x=[centre[0]],
            y=[centre[1]],
            mode="markers",
            name="your image",
            marker=dict(size=18, symbol="star", color="gold", line=dict(color="black", width=1)),
        )
    )
    chart.update_layout(
        height=420,
        margin=dict(l=10, r=10, t=10, b=10),
        xaxis_title=plane.axis_titles[0],
        yaxis_title=plane.axis_titles[1],
        legend_title_text="class",
    )
    map_col, images_col = st.columns([3, 2])
    map_col.plotly_chart(chart, width="stretch", key="your_image_map")
    with images_col:
        st.image(display_pixels(view.reconstruction, 4), width=112, caption="reconstruction (decoded mean)")
        st.image(display_pixels(view.draw_images), width=84, caption=["draw of q(z|x)"] * len(view.draw_images))
        st.caption(f"Mean σ over the {len(view.sigma)} latent dimensions: {float(view.sigma.mean()):.3f}")
        if st.button("Open on the Latent space page", key="your_image_to_latent"):
            st.session_state[ENCODING_KEY] = {dataset: (view.mu, view.draws)}
            st.session_state[SELECT_KEY] = True
            st.switch_page(PAGE_PATHS["latent_space"])


def gan_section(dataset: str, pixels: np.ndarray, digest: str, predicted: int) -> None:
    """Each GAN's inversion: image, residual, distance, and a strip to a chosen class."""
    from genmodels.checkpoint import shipped_generators
    from genmodels.gallery import display_pixels
    from genmodels.inversion import gan_kinds
    from genmodels.your_image import as_batch, residual_image

    st.subheader("3. The GANs' view: inversion")
    st.caption(
        "Adam on the latent (8 restarts at once, 40 steps) to match your image in pixels and in the "
        "classifier's features, with a prior term that keeps the latent where the generator was trained."
    )
    kinds = [kind for kind in gan_kinds() if kind in shipped_generators(dataset)]
    for kind, column in zip(kinds, st.columns(max(1, len(kinds))), strict=False):
        with column:
            st.markdown(f"**{KINDS[kind].display_title}**")
            model = common.try_generator(kind, dataset)
            if model is None:
                continue
            label = None
            if KINDS[kind].conditional or model.supports_labels:
                label = st.selectbox(
                    "Invert as class",
                    range(len(names)),
                    index=predicted,
                    format_func=names.__getitem__,
                    key=f"your_image_label_{kind}_{dataset}",
                )
            key, found = inversion(dataset, kind, pixels, digest, label)
            st.image(
                [
                    display_pixels(as_batch(pixels))[0],
                    display_pixels(found.image)[0],
                    residual_image(as_batch(pixels), found.image),
                ],
                width=84,
                caption=["yours", "inverted", "residual"],
            )
            st.caption(
                f"pixel RMS distance {found.pixel_distance:.3f}, feature distance {found.feature_distance:.2f}, "
                f"{found.seconds:.2f} s"
            )
            if model.supports_labels:
                target = st.selectbox(
                    "Walk to class",
                    range(len(names)),
                    index=(predicted + 1) % len(names),
                    format_func=names.__getitem__,
                    key=f"your_image_walk_{kind}_{dataset}",
                )
                st.image(display_pixels(class_strip(dataset, kind, key, target)), width=48)


def neighbour_section(dataset: str, pixels: np.ndarray) -> None:
    """The nearest training images in pixels and in classifier features."""
    from genmodels.gallery import display_pixels
    from genmodels.neighbors import SPACES

    st.subheader("4. The nearest training images")
    found = neighbours(dataset, pixels)
    index = neighbour_index(dataset)
    st.caption(f"Among {len(index.images):,} {index.source}.")
    titles = {"pixels": "In pixels (L2 distance)", "features": "In the classifier's features"}
    for space in SPACES:
        result = found[space]
        st.markdown(f"**{titles[space]}**")
        st.image(
            display_pixels(index.unit_images(result.rows)),
            width=72,
            caption=[f"{names[int(c)]} ({d:.2f})" for c, d in zip(result.labels, result.distances, strict=True)],
        )


dataset = common.current_dataset()
names = common.class_names(dataset)
start_indexing(dataset)
st.title("Your image")
st.caption(
    "Draw a digit or a garment, or upload a picture: the page prepares it the way the dataset's images were "
    "made and shows what each model makes of it."
)

input_col, prepared_col = st.columns([2, 1])
with input_col:
    grey = read_input(dataset)
if grey is None:
    common.stop_page()
try:
    prepared = prepare(grey, dataset)
except ImageInputError as exc:
    input_col.warning(str(exc))
    common.stop_page()
with prepared_col:
    from genmodels.gallery import display_pixels
    from genmodels.your_image import as_batch

    st.image(display_pixels(as_batch(prepared.pixels), 6), width=168, caption="28x28, as the models see it")
    how = (
        "greyscale, cropped to the ink, fitted to 20x20 keeping its aspect, centred by its centre of mass in 28x28"
        if dataset == "mnist"
        else "greyscale, trimmed, longest side fitted to 28, centred"
    )
    st.caption(f"{'Negated (dark on light), ' if prepared.inverted else ''}{how}.")
pixels = prepared.pixels
digest = hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
if common.try_classifier(dataset) is None or common.try_generator("vae", dataset) is None:
    common.stop_page()
predicted = verdict_section(dataset, pixels)
vae_section(dataset, pixels)
gan_section(dataset, pixels, digest, predicted)
neighbour_section(dataset, pixels)

"""Latent space page: the VAE codes of real test images in a PCA or UMAP plane over the classifier's confidence map;
inspect points, decode anywhere, interpolate, and see your own image's encoding."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from genmodels.api import predict
from genmodels.checkpoint import CheckpointError
from genmodels.data import DataMissingError
from genmodels.datasets import dataset_info, missing_files
from genmodels.gallery import display_pixels, prediction_captions
from genmodels.kinds import KINDS
from genmodels.latent import decode_points, reconstruct
from genmodels.paths import checkpoints_dir
from genmodels.projection import PROJECTIONS, encoding_ellipse
from views import common
from views.shared import (
    FULL,
    SUBSET,
    confidence_map,
    latent_map,
    plane_box,
    plane_of,
    real_images,
    scatter_spec,
    shipped_vaes,
)

NEIGHBOURS = 8
SCATTER_KEY = "latent_scatter"
PROJECTION_KEY = "latent_projection"  # shared with the Your image page
ENCODING_KEY = "your_image_encoding"  # {dataset: (mu, draws of q(z|x))}, set by the Your image page
SELECT_KEY = "your_image_select"  # set with it when that page's button sends people here


@st.cache_data(show_spinner=False, max_entries=64)
def decode_latents(dataset: str, kind: str, latents: np.ndarray, with_predictions: bool):
    """VAE images of latents [M, L] and, when the classifier is available, its class probabilities for them."""
    images = decode_points(common.generator(kind, dataset), latents)
    return images, predict(common.classifier(dataset), images) if with_predictions else None


@st.cache_data(show_spinner=False, max_entries=64)
def reconstruction(dataset: str, kind: str, source: str, row: int):
    """The real image `row` of the map and its VAE reconstruction, as two images."""
    real = real_images(dataset, source).unit(slice(row, row + 1))
    return [*display_pixels(real, 4), *display_pixels(reconstruct(common.generator(kind, dataset).module, real), 4)]


def select_from_chart(row_key: str) -> None:
    """Make the clicked point of the scatter the inspected one (extra overlay traces carry no map row)."""
    points = st.session_state[SCATTER_KEY].selection.points
    rows = [p["customdata"][0] for p in points if p.get("customdata")]
    if rows:
        st.session_state[row_key] = int(rows[0])


def point_label(row: int) -> str:
    """A map row as people read it: its class and test-set index."""
    return f"{names[int(lmap.labels[row])]}, test index {int(lmap.indices[row])}"


dataset = common.current_dataset()
names = common.class_names(dataset)
st.title("Latent space")
st.caption(
    "Latent means of the VAE for real test images, projected onto their first two principal components or by "
    "UMAP. Hover for class, test index and the classifier's verdict; click a point to inspect it. Behind them, "
    "the classifier's confidence on the VAE's image of each place: dark cells are the holes between classes."
)

encoders = shipped_vaes(dataset)
if not encoders:
    st.error(f"No VAE checkpoint for {dataset_info(dataset).title} in {checkpoints_dir()}.")
    common.stop_page()
if st.session_state.get("latent_vae") not in encoders:  # a VAE shipped for the other dataset only
    st.session_state["latent_vae"] = encoders[0]
vae_kind = st.selectbox("VAE", encoders, format_func=lambda k: KINDS[k].display_title, key="latent_vae")
vae = common.try_generator(vae_kind, dataset)
if vae is None:
    common.stop_page()
full_available = not missing_files(dataset)
source = (
    FULL
    if full_available
    and st.toggle(
        "All 10,000 test images",
        key=f"latent_full_{dataset}",
        help="The whole test split (its files are present); off: the bundled 200 test images per class.",
    )
    else SUBSET
)
try:
    lmap = latent_map(dataset, vae_kind, source)
except (CheckpointError, DataMissingError) as exc:
    st.error(f"The real test images of {dataset} are unavailable: {exc}")
    common.stop_page()
has_classifier = common.try_classifier(dataset) is not None
projection_col, background_col = st.columns(2)
projection = projection_col.radio(
    "Projection",
    PROJECTIONS,
    horizontal=True,
    key=PROJECTION_KEY,
    help="PCA: linear, exact both ways. UMAP: non-linear, fitted offline on the bundled "
    "test images; other points are placed by their nearest fitted neighbours.",
)
show_confidence = has_classifier and background_col.checkbox("Confidence background", True, key="latent_confidence")
try:
    plane = plane_of(dataset, vae_kind, source, projection)
except CheckpointError as exc:
    st.warning(f"The UMAP map is unavailable ({exc}); showing PCA.")
    projection = "PCA"
    plane = plane_of(dataset, vae_kind, source, projection)
suffix = ("" if source == SUBSET else "_full") + (
    "" if vae_kind == encoders[0] else f"_{vae_kind}"
)  # each source has its own point numbering and plane
row_key, a_key, b_key = (f"latent_{name}_{dataset}{suffix}" for name in ("row", "from", "to"))
plane_suffix = suffix + ("" if projection == "PCA" else "_" + projection.lower())
pc1_key, pc2_key = f"latent_pc1_{dataset}{plane_suffix}", f"latent_pc2_{dataset}{plane_suffix}"
axis_names = ("PC1", "PC2") if projection == "PCA" else plane.axis_titles
common.persist_widgets({row_key: 0, a_key: 0, b_key: int(np.flatnonzero(lmap.labels != lmap.labels[0])[0])})

if projection == "PCA":
    ratio = lmap.explained_variance_ratio
    variance_cols = st.columns(3)
    variance_cols[0].metric("PC1 explains", f"{ratio[0]:.1%}")
    variance_cols[1].metric("PC2 explains", f"{ratio[1]:.1%}")
    variance_cols[2].metric(
        "Together",
        f"{ratio.sum():.1%}",
        help=f"of the variance of the {lmap.latents.shape[1]}-dimensional latent means",
    )

box = plane_box(plane)
x_range, y_range = box[:2], box[2:]
# the Your image page encodes with the registry's first VAE: its point means nothing in another VAE's latent space
encoding = st.session_state.get(ENCODING_KEY, {}).get(dataset) if vae_kind == encoders[0] else None
if encoding is not None:
    centre, ellipse = encoding_ellipse(plane, *encoding)
    if st.session_state.pop(SELECT_KEY, False):  # arrived from the Your image page: decode at its point
        st.session_state[pc1_key] = round(float(np.clip(centre[0], *x_range)), 2)
        st.session_state[pc2_key] = round(float(np.clip(centre[1], *y_range)), 2)
pc1 = float(st.session_state.get(pc1_key, 0.0))
pc2 = float(st.session_state.get(pc2_key, 0.0))

a_row, b_row = int(st.session_state[a_key]), int(st.session_state[b_key])
path = plane.project(lmap.line(a_row, b_row, 2 if projection == "PCA" else 12))  # a straight line bends in UMAP
selected = int(st.session_state[row_key])
fig = go.Figure(scatter_spec(dataset, vae_kind, source, projection, has_classifier))
if show_confidence:
    grid = confidence_map(dataset, vae_kind, source, projection, box)
    fig.add_trace(
        go.Heatmap(
            x=grid.xs,
            y=grid.ys,
            z=grid.confidence,
            zmin=0.0,
            zmax=1.0,
            opacity=0.5,
            colorscale=[[0.0, "#3c3c3c"], [1.0, "#ffffff"]],
            showscale=False,
            name="classifier confidence",
            text=np.asarray(names, dtype=object)[grid.predicted],
            hovertemplate="decoded here: %{text} (%{z:.0%})<extra></extra>",
        )
    )
    fig.data = (fig.data[-1], *fig.data[:-1])  # behind the points
if encoding is not None:
    fig.add_trace(
        go.Scatter(
            x=ellipse[:, 0],
            y=ellipse[:, 1],
            mode="lines",
            name="1σ of q(z|x)",
            line=dict(color="black", width=2),
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[centre[0]],
            y=[centre[1]],
            mode="markers",
            name="your image",
            hoverinfo="skip",
            marker=dict(size=18, symbol="star", color="gold", line=dict(color="black", width=1)),
        )
    )
fig.add_trace(
    go.Scatter(
        x=path[:, 0],
        y=path[:, 1],
        mode="lines+markers",
        name="interpolation",
        line=dict(color="black", dash="dot"),
        marker=dict(size=9, symbol="diamond"),
        hoverinfo="skip",
    )
)
fig.add_trace(
    go.Scatter(
        x=[plane.coords[selected, 0]],
        y=[plane.coords[selected, 1]],
        mode="markers",
        name="inspected",
        marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="black", width=2)),
        hoverinfo="skip",
    )
)
fig.add_trace(
    go.Scatter(
        x=[pc1],
        y=[pc2],
        mode="markers",
        name="decoded point",
        marker=dict(size=16, symbol="star", color="gold", line=dict(color="black", width=1)),
        hoverinfo="skip",
    )
)
st.plotly_chart(
    fig, on_select=lambda: select_from_chart(row_key), selection_mode="points", key=SCATTER_KEY, width="stretch"
)

inspect_col, decode_col = st.columns([3, 1])
with inspect_col:
    st.subheader("Inspected point")
    row = st.number_input(
        f"Point (0-{len(lmap.labels) - 1}, or click the chart)", 0, len(lmap.labels) - 1, step=1, key=row_key
    )
    st.write(point_label(row))
    with st.spinner("Reconstructing..."):
        pair = reconstruction(dataset, vae_kind, source, row)
    st.image(pair, caption=["real", "VAE reconstruction"], width=112, output_format="PNG")
    neighbours = lmap.nearest(row, NEIGHBOURS)
    distances = lmap.distances(row, neighbours)
    st.write(f"{NEIGHBOURS} nearest neighbours in the {lmap.latents.shape[1]}-D latent space")
    neighbour_images = real_images(dataset, source).unit(neighbours)
    st.image(
        display_pixels(neighbour_images),
        width=84,
        caption=[f"{names[int(lmap.labels[r])]} (d={d:.2f})" for r, d in zip(neighbours, distances, strict=True)],
        output_format="PNG",
    )
with decode_col:
    st.subheader("Decode anywhere")
    pc1 = st.slider(axis_names[0], *x_range, value=float(np.clip(0.0, *x_range)), step=0.05, key=pc1_key)
    pc2 = st.slider(axis_names[1], *y_range, value=float(np.clip(0.0, *y_range)), step=0.05, key=pc2_key)
    point_latent = plane.to_latent(np.array([[pc1, pc2]]))
    decoded, decoded_probs = decode_latents(dataset, vae_kind, point_latent, has_classifier)
    st.image(
        display_pixels(decoded, 5),
        caption=prediction_captions(decoded_probs, names, count=1),
        width=140,
        output_format="PNG",
    )
    st.caption(
        f"({pc1:.2f}, {pc2:.2f}) in the PCA plane, mapped back to the latent space by the PCA inverse "
        "transform (the other components at their mean) and decoded."
        if projection == "PCA"
        else f"({pc1:.2f}, {pc2:.2f}) in the UMAP plane, mapped back to the latent space as the distance-weighted "
        "mean of the latents of its nearest map points, and decoded."
    )

st.subheader("Interpolation between two real images")
from_col, to_col, steps_col = st.columns(3)
from_col.number_input("From point", 0, len(lmap.labels) - 1, step=1, key=a_key)
from_col.caption(point_label(a_row))
to_col.number_input("To point", 0, len(lmap.labels) - 1, step=1, key=b_key)
to_col.caption(point_label(b_row))
steps = steps_col.slider("Steps", 3, 20, 10, key="latent_steps")
steps_col.button("Start from the inspected point", on_click=lambda: st.session_state.update({a_key: row}))
line = lmap.line(a_row, b_row, steps)
with st.spinner("Decoding the line..."):
    strip, strip_probs = decode_latents(dataset, vae_kind, line, has_classifier)
st.image(
    display_pixels(strip),
    caption=prediction_captions(strip_probs, names, count=len(strip)),
    width=72,
    output_format="PNG",
)
st.caption(
    "A straight line between the two latent means in the full latent space (dotted on the chart), decoded "
    "at evenly spaced points."
)

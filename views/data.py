"""Data page: the dataset at a glance (report 000, part 1): counts, class balance, previews, mean images, pixel
histogram."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from genmodels.checkpoint import CheckpointError
from genmodels.datasets import dataset_info
from genmodels.eda import DataOverview, intensity_histogram, preview_grid
from genmodels.images import png_bytes
from genmodels.paths import data_dir
from views.common import current_dataset, stop_page
from views.shared import data_overview


def class_balance_chart(data: DataOverview) -> go.Figure:
    """Images per class, train and test side by side."""
    figure = go.Figure(
        [
            go.Bar(name="train", x=list(data.classes), y=data.train_counts),
            go.Bar(name="test", x=list(data.classes), y=data.test_counts),
        ]
    )
    figure.update_layout(
        barmode="group",
        xaxis_title="class",
        yaxis_title="images",
        height=340,
        margin=dict(t=30, b=10),
        legend=dict(orientation="h", y=1.1),
    )
    figure.update_xaxes(type="category")
    return figure


MEANS_PER_ROW = 5
MEANS_GAP = 4  # blank pixels between two mean images


def mean_images_chart(data: DataOverview) -> go.Figure:
    """The mean training image of each class, tiled on one pair of axes (much less for the browser to lay out than
    a subplot per class): a grayscale heatmap per class, named for the hover."""
    size = data.class_means.shape[-1]
    step = size + MEANS_GAP
    figure = go.Figure()
    for c, (mean, name) in enumerate(zip(data.class_means, data.classes, strict=True)):
        left, top = (c % MEANS_PER_ROW) * step, (c // MEANS_PER_ROW) * step
        figure.add_trace(
            go.Heatmap(
                z=mean,
                x0=left,
                y0=top,
                name=name,
                zmin=0,
                zmax=1,
                colorscale="gray",
                showscale=False,
                hovertemplate="%{fullData.name}: mean intensity %{z:.2f}<extra></extra>",
            )
        )
        figure.add_annotation(x=left + (size - 1) / 2, y=top - 1, text=name, showarrow=False, yanchor="bottom")
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    figure.update_layout(height=380, margin=dict(t=30, b=10, l=10, r=10), plot_bgcolor="white")
    return figure


def histogram_chart(data: DataOverview, bins: int, log_scale: bool) -> go.Figure:
    """Pixel intensities over the training split."""
    starts, counts = intensity_histogram(data, bins)
    width = 256 / bins
    figure = go.Figure(
        go.Bar(
            x=[s + width / 2 for s in starts],
            y=counts,
            width=width,
            marker_line_width=0,
            hovertemplate="intensity %{x:.0f}: %{y:,} pixels<extra></extra>",
        )
    )
    figure.update_layout(
        xaxis_title="pixel intensity (0 = black, 255 = white)",
        yaxis_title="pixels (train split)",
        height=340,
        margin=dict(t=30, b=10),
        bargap=0,
    )
    figure.update_yaxes(type="log" if log_scale else "linear")
    return figure


dataset = current_dataset()
info = dataset_info(dataset)
st.title(f"Data: {info.title}")
try:
    data = data_overview(dataset, str(data_dir()))
except (CheckpointError, ValueError, OSError, RuntimeError) as exc:  # a damaged bundled summary or unreadable files
    st.error(f"The {info.title} summary is unavailable: {exc}")
    stop_page()

if data.source == "full dataset":
    st.caption(f"Computed live from the full dataset in `{data_dir()}`.")
else:
    st.caption(
        "From the summary bundled with the app (the full dataset is not present here); "
        f"previews use its {data.per_class} real test images per class."
    )

train_col, test_col, total_col, classes_col = st.columns(4)
train_col.metric("Training images", f"{data.train_total:,}")
test_col.metric("Test images", f"{data.test_total:,}")
total_col.metric("Total", f"{data.train_total + data.test_total:,}")
classes_col.metric("Classes", len(data.classes))
st.caption("Labels: " + ", ".join(f"{i} = {name}" if name != str(i) else name for i, name in enumerate(data.classes)))

st.subheader("Class balance")
st.plotly_chart(class_balance_chart(data), key="class_balance")

st.subheader("Preview per class")
options_col, grid_col = st.columns([1, 3])
with options_col:
    per_class = st.slider("Images per class", 1, min(20, data.per_class), 10, key="data_per_class")
    picked = st.multiselect(
        "Classes",
        list(range(len(data.classes))),
        default=list(range(len(data.classes))),
        format_func=lambda c: data.classes[c],
        key="data_classes",
    )
    offset = st.number_input(
        "Start at image",
        0,
        data.per_class - 1,
        0,
        step=per_class,
        key="data_offset",
        help="Page through the real test images of each class.",
    )
with grid_col:
    if picked:
        grid = preview_grid(data, per_class, sorted(picked), int(offset))
        st.image(png_bytes(grid, scale=2), caption=", ".join(data.classes[c] for c in sorted(picked)))
        if int(offset) + per_class > data.per_class:
            st.caption(
                f"Each class has {data.per_class} preview images here, "
                f"so image {int(offset)} wrapped round to the start."
            )
    else:
        st.info("Pick at least one class to preview.")

st.subheader("Mean image per class (train split)")
st.plotly_chart(mean_images_chart(data), key="class_means")

st.subheader("Pixel-intensity histogram")
bins_col, scale_col = st.columns(2)
bins = bins_col.select_slider("Bins", [16, 32, 64, 128, 256], value=64, key="data_bins")
log_scale = scale_col.toggle(
    "Log scale", value=True, key="data_log", help="Most pixels are background (0): a log scale shows the rest."
)
st.plotly_chart(histogram_chart(data, bins, log_scale), key="pixel_histogram")

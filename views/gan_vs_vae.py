"""GAN vs VAE page: the same class and seed side by side, and report 000's comparison backed by measured numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.colors
import streamlit as st

from genmodels.checkpoint import CheckpointError, shipped_generators
from genmodels.compare import (
    COUNTS,
    S_PER_CLASS,
    SCORE_SEED,
    SPREAD_REAL_PER_CLASS,
    Comparison,
    classifier_fingerprint,
    comparison_path,
    evaluation_facts,
    fingerprint,
    metric_rows,
    model_scores,
    shipped_comparison,
)
from genmodels.datasets import dataset_info, missing_files
from genmodels.gallery import display_pixels, prediction_captions
from genmodels.images import png_base64
from genmodels.kinds import KINDS, generator_kinds
from genmodels.metrics import jump_ratio
from genmodels.scoring import Scores
from genmodels.summary import load_summary
from views import common, shared

COMPARED = generator_kinds()
TITLES = {kind: KINDS[kind].display_title for kind in COMPARED}
# one colour per model in every chart, by position (the palette has more colours than there are models)
COLORS = dict(zip(COMPARED, plotly.colors.qualitative.D3, strict=False))
DEFAULT_COUNT = 50


@st.cache_data(show_spinner=False, max_entries=8)
def shipped(dataset: str, fingerprints: tuple[tuple[str, str], ...], modified_ns: int) -> Comparison | None:
    """The numbers `evaluate --write` shipped for exactly these weights, read once per server (None: measure live)."""
    return shipped_comparison(dataset, dict(fingerprints))


@st.cache_data(show_spinner=False, max_entries=64)
def live_scores(kind: str, dataset: str, n_per_class: int) -> Scores:
    """The same numbers measured now, where none were shipped for these weights: once per server for each choice."""
    return model_scores(
        common.generator(kind, dataset), common.classifier(dataset), n_per_class, common.real_baselines(dataset)
    )


def model_numbers(precomputed: Comparison | None, kind: str, dataset: str, n_per_class: int) -> Scores:
    """One model's numbers at one choice of samples per class: shipped where they were, else measured live."""
    shipped_scores = precomputed.scores.get(kind, {}).get(n_per_class) if precomputed is not None else None
    return shipped_scores or live_scores(kind, dataset, n_per_class)


def comparison_numbers(dataset: str, kinds: list[str]) -> Comparison | None:
    """The shipped comparison of these models, when it was measured on their weights and the classifier's."""
    path = comparison_path(dataset)
    try:
        modified_ns = path.stat().st_mtime_ns
    except OSError:
        return None
    prints = (
        ("classifier", classifier_fingerprint(dataset)),
        *((kind, fingerprint(common.generator(kind, dataset))) for kind in kinds),
    )
    return shipped(dataset, prints, modified_ns)


def percent_bars(columns: dict[str, list[float]], class_names: list[str]) -> pd.DataFrame:
    """Shares per class (rows) and column, in percent, for `bar_columns`."""
    return pd.DataFrame({name: [100.0 * share for share in shares] for name, shares in columns.items()}, class_names)


def bar_columns(names: list[str], top: float) -> dict:
    """A bar-in-cell column per name, in its model's colour on every chart of the page, scaled to [0, top] percent."""
    colours = {TITLES[kind]: colour for kind, colour in COLORS.items()}
    return {
        name: st.column_config.ProgressColumn(
            name, format="%.1f%%", min_value=0.0, max_value=top, color=colours.get(name, "gray")
        )
        for name in names
    }


@st.cache_data(show_spinner=False, max_entries=64)
def figure_row_html(pixels: np.ndarray, captions: tuple[str, ...]) -> str:
    """uint8 images [N, H, W] as one row of captioned figures (cached: the page's ~100 PNGs took ~40 ms to encode
    on every rerun)."""
    return common.figure_row(png_base64(pixels, 2), list(captions), 56)


def show_images(images, captions: list[str], below=None) -> None:
    """Images [N, 1, 28, 28] in [0, 1] at twice their size (each above its partner in `below`, when given), a caption
    under each, as one element."""
    pixels = np.stack(display_pixels(images, 1))
    if below is not None:
        pixels = np.concatenate([pixels, np.stack(display_pixels(below, 1))], axis=1)
    st.markdown(figure_row_html(pixels, tuple(captions)), unsafe_allow_html=True)


def percent(value: float | None) -> str:
    """A share as a percentage, or n/a."""
    return "n/a" if value is None else f"{value:.1%}"


def ratio(value: float | None) -> str:
    """A spread ratio with two decimals, or n/a."""
    return "n/a" if value is None else f"{value:.2f}"


dataset = common.current_dataset()
names = common.class_names(dataset)
title = dataset_info(dataset).title
st.title("GAN vs VAE")
st.caption(
    "Report 000 compared the models on image quality, training stability and latent space. "
    "Here every claim is checked against numbers measured on the shipped checkpoints."
)

controls = st.columns(3)
label = controls[0].selectbox("Class", range(len(names)), format_func=lambda c: names[c], key="compare_class")
seed = controls[1].number_input("Seed", min_value=0, max_value=2**32 - 1, value=0, step=1, key="compare_seed")
n_per_class = controls[2].slider(
    "Samples per class for the accuracies",
    COUNTS[0],
    COUNTS[-1],
    DEFAULT_COUNT,
    step=COUNTS[1] - COUNTS[0],
    key="compare_n",
)

shipped_kinds = shipped_generators(dataset)
picked = st.multiselect(
    "Models",
    shipped_kinds,
    default=shared.default_compared(dataset),
    max_selections=shared.MAX_SIDE_BY_SIDE,
    format_func=TITLES.get,
    key=f"compare_models_{dataset}",
    help="Any two to four of the shipped generators, e.g. an MLP against its convolutional counterpart.",
)

classifier = common.try_classifier(dataset)
if classifier is None:
    st.info("Without the classifier only the training-log numbers can be shown.")
models = {kind: common.try_generator(kind, dataset) for kind in picked}
available = [kind for kind, model in models.items() if model is not None]

st.subheader(f"Same class ({names[label]}), same seed ({seed})")
if classifier is not None and available:
    columns = st.columns(len(available))
    for column, kind in zip(columns, available, strict=True):
        with column, st.spinner(f"Sampling the {TITLES[kind]}..."):
            gallery = shared.side_by_side(kind, dataset, int(label), int(seed))
            st.markdown(f"**{TITLES[kind]}**")
            if not models[kind].supports_labels:
                st.caption("No label mapper: unconditional samples.")
            show_images(gallery.images, gallery.captions(names))

    precomputed = comparison_numbers(dataset, available)
    with st.spinner(f"Classifying {n_per_class} samples per class from each model..."):
        real = precomputed or common.real_baselines(dataset)  # both carry the real side's numbers
        measured = {kind: model_numbers(precomputed, kind, dataset, int(n_per_class)) for kind in available}
        s1 = {kind: model_numbers(precomputed, kind, dataset, S_PER_CLASS) for kind in available}
    floor, reference_size = real.floor, real.reference_size
    s0_accuracy, s0_midtones = real.s0_accuracy, real.s0_midtone_share

    st.subheader("Image quality")
    fid_column = f"FID to real (real: {floor:.1f})"
    rows = [
        {
            "model": TITLES[kind],
            f"accuracy on {names[label]}": percent(measured[kind].per_class[label]),
            "accuracy, all classes": percent(measured[kind].accuracy),
            "S1 / S0 accuracy (100 images)": percent(s1[kind].accuracy),
            "mean confidence": percent(measured[kind].confidence),
            "class coverage KL (nats)": f"{measured[kind].coverage_kl:.3f}",
            "mid-grey pixels": percent(measured[kind].midtone_share),
            f"spread on {names[label]} (real = 1)": ratio(
                (measured[kind].per_class_spread_ratio or [None] * len(names))[label]
            ),
            "spread, all classes (real = 1)": ratio(measured[kind].spread_ratio),
            fid_column: f"{measured[kind].fid:.1f}",
        }
        for kind in available
    ]
    rows.append(
        {
            "model": "Real test images (S0)",
            f"accuracy on {names[label]}": "",
            "accuracy, all classes": "",
            "S1 / S0 accuracy (100 images)": percent(s0_accuracy),
            "mean confidence": "",
            "class coverage KL (nats)": "",
            "mid-grey pixels": percent(s0_midtones),
            f"spread on {names[label]} (real = 1)": "1.00",
            "spread, all classes (real = 1)": "1.00",
            fid_column: "",
        }
    )
    st.dataframe(pd.DataFrame(rows).set_index("model"), width="stretch")
    st.caption(
        f"Accuracies: the share of {n_per_class} samples per class that the {title} classifier puts in the "
        f"requested class (samples drawn with seed {SCORE_SEED}). "
        "S0/S1 as in report 001: 100 real test images vs 100 generated, 10 per class. "
        "Mid-grey pixels (between 0.1 and 0.9) measure blur: crisp strokes are nearly black or white. "
        "Spread: the mean pixel distance between two samples of the same class (by the classifier's verdict "
        f"for a model without labels), over the same for {SPREAD_REAL_PER_CLASS} real test images of that class; "
        "a model that "
        "draws nearly one image per class sits far below 1, however accurate it is. FID: the Fréchet distance "
        f"between the samples' classifier features and those of {reference_size:,} real "
        "test images (lower is better); the number in the heading is as many other real images', the best a model "
        "can get here. Fewer samples per class raise every FID, so compare the models at one setting."
    )
    sharpest = min(available, key=lambda k: measured[k].midtone_share)
    st.markdown(
        f"Report 000: *the GAN's images are sharper, the VAE's blurrier.* Measured: the {TITLES[sharpest]} has "
        f"the fewest mid-grey pixels ({measured[sharpest].midtone_share:.1%}; real images "
        f"{s0_midtones:.1%})."
    )
    varied = [k for k in available if measured[k].spread_ratio is not None]
    if varied:
        narrowest = min(varied, key=lambda k: measured[k].spread_ratio)
        per_class = measured[narrowest].per_class_spread_ratio
        worst = min((c for c in range(len(names)) if per_class[c] is not None), key=lambda c: per_class[c])
        st.markdown(
            f"Variety: the {TITLES[narrowest]} varies least within a class ({measured[narrowest].spread_ratio:.2f} "
            f"of real images' spread; least on {names[worst]}: {per_class[worst]:.2f}). Read its accuracy with that "
            "in mind: drawing the same convincing image every time scores 100%."
        )
elif not available:
    st.error("None of the chosen generators could be loaded." if picked else "Pick at least one model.")

st.subheader("Training stability")
stability_rows, curves = shared.loss_curves(dataset, tuple(picked))
if stability_rows:
    # each loss curve as a line in its model's row (its own scale): the page needs no chart library, whose drawing
    # cost its first visit ~0.3 s on a 2-core machine (docs/benchmark.md); the Training page draws them in full
    table = pd.DataFrame(stability_rows).set_index("model")
    table.insert(1, "loss per epoch", [curve[1] for curve in curves.values()])
    st.dataframe(
        table, column_config={"loss per epoch": st.column_config.LineChartColumn(width="medium")}, width="stretch"
    )
    st.caption(
        "The loss over every epoch of the shipped training logs (each line on its own scale), and numbers over the "
        "last 10 epochs. Report 000: *the GAN was harder to train (a min-max game)*; the VAE minimises one loss, so "
        "its curve only goes down. Compare the relative wobble (std / mean) and the epoch-end classifier checks; "
        "the Training page shows each log in full."
    )
else:
    st.info("No shipped training logs found for this dataset.")

st.subheader("Latent space: interpolation")
steps_col, from_col, to_col = st.columns(3)
start = from_col.selectbox("From class", range(len(names)), format_func=lambda c: names[c], key="compare_from")
end = to_col.selectbox("To class", range(len(names)), index=1, format_func=lambda c: names[c], key="compare_to")
steps = steps_col.slider("Steps", 3, 16, shared.STRIP_STEPS, key="compare_steps")
if classifier is not None and start == end:
    st.info("Pick two different classes to see one morph into the other.")
elif classifier is not None:
    for kind in available:
        if not models[kind].supports_labels:
            st.caption(f"{TITLES[kind]}: no label mapper, no class-to-class strip.")
            continue
        with st.spinner(f"Interpolating the {TITLES[kind]}..."):
            images, probs = shared.strip(kind, dataset, (int(start), int(end)), int(seed), int(steps))
        st.markdown(f"**{TITLES[kind]}**: largest frame-to-frame change = {jump_ratio(images):.2f} × the mean change")
        show_images(images, prediction_captions(probs, names, count=len(images)))
    st.caption(
        "Same seed and the same two classes for every model, on a straight line through each model's latent "
        "space. Report 000: *GAN latent spaces are unstructured, VAE latent spaces continuous.* A ratio near 1 "
        "is an even morph; a large one means the image jumps somewhere along the line."
    )

st.subheader("Stored evaluation metrics")
table, profiles = {}, {}
for kind in picked:
    try:
        table[TITLES[kind]], profiles[kind] = shared.checkpoint_numbers(kind, dataset)
    except CheckpointError as exc:
        st.caption(f"{TITLES[kind]}: no metrics ({exc.reason}).")
if table:
    st.dataframe(pd.DataFrame(metric_rows(table)).set_index("measure"), width="stretch")
    facts = evaluation_facts(table)
    run = f" on {facts[0]:,} samples per measure (seed {facts[1]})" if facts else ""
    st.caption(
        "The first rows are the checks at the end of training; the rest is what `python -m genmodels evaluate` "
        f"stored{run}. A dash: the model has no such measure (the GAN's conditional numbers use its label mapper; "
        "its unconditional ones, FID to coverage, do not)."
    )

if any(profiles.values()):
    # bars inside table cells: the table script is loaded anyway, and two Plotly charts cost this page ~0.4 s of
    # drawing on a 2-core machine (docs/benchmark.md)
    accuracy_rows = {TITLES[k]: p["per_class_accuracy"] for k, p in profiles.items() if "per_class_accuracy" in p}
    real_mix = load_summary(dataset, prefer_full=False).test_counts.float()
    coverage_rows = {
        "real test split": (real_mix / real_mix.sum()).tolist(),
        **{TITLES[k]: p["class_histogram"] for k, p in profiles.items() if "class_histogram" in p},
    }
    st.markdown("**Class accuracy per requested class** (10,000 samples)")
    st.dataframe(percent_bars(accuracy_rows, names), column_config=bar_columns(list(accuracy_rows), 100.0))
    st.markdown("**Class coverage**: the classes the classifier sees in unconditional samples")
    top = max(max(shares) for shares in coverage_rows.values())
    st.dataframe(percent_bars(coverage_rows, names), column_config=bar_columns(list(coverage_rows), 100.0 * top))
    st.caption(
        "From `python -m genmodels evaluate`. A generator that drops a class (mode collapse) shows an empty bar "
        "in the coverage table; the first column there is the real class mix."
    )

st.subheader("Memorisation: each sample beside its nearest training image")
if missing_files(dataset):
    st.caption(
        "Needs the full training set (set GENMODELS_DATA); `python -m genmodels evaluate` stores the copy share "
        "shown in the table above."
    )
elif classifier is not None and available:
    with st.spinner("Searching 60,000 training images for the samples..."):
        pairs = shared.nearest_in_training(tuple(available), dataset, int(label), int(seed))
    for column, kind in zip(st.columns(len(available)), available, strict=True):
        generated, nearest, distances = pairs[kind]
        with column:
            st.markdown(f"**{TITLES[kind]}**")
            show_images(generated, [f"d={d:.1f}" for d in distances.tolist()], below=nearest)
    st.caption(
        "Each pair: a generated image above the nearest of the 60,000 training images, and their pixel (L2) "
        "distance d. "
        "A copy would sit at d near 0; "
        "real test images sit about as far from the training set as these samples."
    )

"""Sample page: generate images by model, class and seed, edit latents, interpolate, and download the grid."""

from __future__ import annotations

import sys
import time

import streamlit as st

from genmodels.kinds import KINDS
from genmodels.preview import (
    DEFAULT_CLASS,
    DEFAULT_COUNT,
    DEFAULT_SEED,
    DEFAULT_TEMPERATURE,
    DISPLAY_SCALE,
    IMAGE_SIDE,
    default_kind,
    read_preview,
)
from views import common

PREVIEW_SEND_S = 0.4
MODES = ("One class", "Every class", "Unconditional")
EDITABLE_DIMS = 4
STRICTNESS_CHOICES = (1.0, 2.0, 4.0)  # the critic's density ratio to these powers (docs/model_zoo.md measured them)
DEFAULTS = {
    "sample_kind": default_kind(),
    "sample_mode": "One class",
    "sample_class": DEFAULT_CLASS,
    "sample_n": DEFAULT_COUNT,
    "sample_seed": DEFAULT_SEED,
    "sample_temperature": DEFAULT_TEMPERATURE,
    "sample_strictness": STRICTNESS_CHOICES[0],
    "sample_edit_scope": "First image",
    **{f"sample_dz{i}": 0.0 for i in range(EDITABLE_DIMS)},
}


def preview_html(preview) -> str:
    """The preview's images with their captions as one row of inline PNGs."""
    return common.figure_row(preview.pngs, preview.captions, IMAGE_SIDE * DISPLAY_SCALE)


def show_preview():
    """While PyTorch loads on a cold start, the default view's stored images (drawn from the shipped weights);
    returns their placeholder, emptied once the live page is drawn."""
    slot = st.empty()
    at_defaults = all(st.session_state.get(key, value) == value for key, value in DEFAULTS.items())
    dataset = common.current_dataset()
    preview = read_preview(dataset) if at_defaults and "torch" not in sys.modules else None
    if preview is not None:
        names = common.class_names(dataset)
        with slot.container():
            st.caption(
                f"{KINDS[preview.kind].display_title}, {names[DEFAULT_CLASS]}, seed {DEFAULT_SEED}: the default view, "
                "stored with the shipped weights; the controls appear once PyTorch has loaded."
            )
            # inline PNGs in markdown, whose renderer the page has already loaded: a media file or the html element's
            # script would be one more request to a server busy importing PyTorch
            st.markdown(preview_html(preview), unsafe_allow_html=True)
        # importing PyTorch holds the GIL for long stretches: let the server send these images first
        time.sleep(PREVIEW_SEND_S)
    return slot


# The default page draws its heading before PyTorch loads: on a cold start the imports below take 2-3 s.
st.title("Sample")
st.caption(
    "Generate images by model, class and seed. Every image is captioned with the project classifier's "
    "prediction and confidence (✗ marks a disagreement with the requested class)."
)
preview_slot = show_preview()
# a caption, not st.spinner: the spinner's script is fetched on first use from a server busy importing PyTorch, and the
# browser held back the preview above until it arrived (~0.3-1 s, docs/benchmark.md)
with common.caption_while("Loading PyTorch (once per server start)...", "torch" not in sys.modules):
    from genmodels import runs
    from genmodels.api import predict
    from genmodels.checkpoint import shipped_generators
    from genmodels.datasets import dataset_info
    from genmodels.gallery import MAX_GALLERY, Gallery, display_pixels, generate_gallery, next_seed, prediction_captions
    from genmodels.images import grid_png
    from genmodels.latent import interpolation_strip
    from genmodels.paths import checkpoints_dir

SHIPPED = ""  # the Checkpoint box's first option; not None, which a selectbox shows as "no choice" after a rerun


def apply_preset(mode: str, n: int) -> None:
    """Set the class mode and count of a one-click preset (runs before the widgets are drawn)."""
    st.session_state["sample_mode"] = mode
    st.session_state["sample_n"] = n


def reroll() -> None:
    """Move to the next seed of the deterministic re-roll sequence."""
    st.session_state["sample_seed"] = next_seed(int(st.session_state["sample_seed"]))


def reset_edits() -> None:
    """Put every latent shift back to zero."""
    for i in range(EDITABLE_DIMS):
        st.session_state[f"sample_dz{i}"] = 0.0


@st.cache_data(max_entries=64, show_spinner=False)
def cached_gallery(
    kind: str,
    dataset: str,
    checkpoint: str | None,
    label,
    n: int,
    seed: int,
    temperature: float,
    offsets: tuple[float, ...],
    first_only: bool,
    classify: bool,
    strictness: float | None,
) -> Gallery:
    """A generated, classified batch; the same request is answered from the cache."""
    classifier = common.classifier(dataset) if classify else None
    model = screening(common.generator(kind, dataset, checkpoint), strictness)
    return generate_gallery(model, classifier, label, n, seed, temperature, offsets, first_only)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_strip(
    kind: str,
    dataset: str,
    checkpoint: str | None,
    labels: tuple,
    seeds: tuple[int, int],
    steps: int,
    temperature: float,
    classify: bool,
    strictness: float | None,
):
    """Interpolation images and, when the classifier is available, their class probabilities."""
    model = screening(common.generator(kind, dataset, checkpoint), strictness)
    images = interpolation_strip(model, *labels, *seeds, steps, temperature)
    return images, predict(common.classifier(dataset), images) if classify else None


def screening(model, strictness: float | None):
    """The model drawing with its critic's rejection sampling at `strictness`, or without it (None: the page switched
    that off)."""
    if model.critic is None:
        return model
    return model.without_critic() if strictness is None else model.with_strictness(strictness)


def user_checkpoints(kind: str, dataset: str) -> dict[str, str]:
    """Finished user runs' model files of this kind and dataset, by run name."""
    return {
        run.name: str(run.model_file)
        for run in runs.list_runs()
        if run.kind == kind and run.dataset == dataset and run.state == "finished" and run.model_file is not None
    }


common.persist_widgets(DEFAULTS)

dataset = common.current_dataset()
names = common.class_names(dataset)
preset_cols = st.columns(3)
preset_cols[0].button(
    "10×10 grid of 100 (report 001)", on_click=apply_preset, args=("Every class", 10), width="stretch"
)
preset_cols[1].button(
    "10 images, one per class (report 000)", on_click=apply_preset, args=("Every class", 1), width="stretch"
)
preset_cols[2].button("5 images of the chosen class", on_click=apply_preset, args=("One class", 5), width="stretch")

choices = shipped_generators(dataset)
if not choices:
    st.error(
        f"No generator checkpoint for {dataset_info(dataset).title} in {checkpoints_dir()}: "
        "train one with `python -m train`."
    )
    common.stop_page()
if st.session_state["sample_kind"] not in choices:  # a kind shipped for the other dataset only
    st.session_state["sample_kind"] = choices[0]
left, middle, right = st.columns(3)
kind = left.selectbox("Model", choices, format_func=lambda k: KINDS[k].display_title, key="sample_kind")
runs_of_kind = user_checkpoints(kind, dataset)
run_name = left.selectbox(
    "Checkpoint",
    [SHIPPED, *runs_of_kind],
    format_func=lambda r: "Shipped" if r == SHIPPED else f"Run {r}",
    key=f"sample_checkpoint_{kind}_{dataset}",
    disabled=not runs_of_kind,
    help="Finished training runs of this model and dataset can be picked next to the shipped checkpoint.",
)
checkpoint = runs_of_kind.get(run_name)
mode = middle.radio("Classes", MODES, key="sample_mode", horizontal=True)
label_index = middle.selectbox(
    "Class",
    range(len(names)),
    format_func=lambda c: names[c],
    key="sample_class",
    help="Used with 'One class' (and by the '5 images' preset).",
)
n = right.number_input(
    "Images (per class with 'Every class')", min_value=1, max_value=MAX_GALLERY, step=1, key="sample_n"
)
seed_col, roll_col = right.columns([2, 1], vertical_alignment="bottom")
seed = seed_col.number_input("Seed", min_value=0, max_value=2**32 - 1, step=1, key="sample_seed")
roll_col.button("Re-roll", icon=":material/casino:", on_click=reroll, help="Re-roll the seed", width="stretch")
temperature = right.slider(
    "Truncation / temperature",
    0.1,
    2.0,
    step=0.05,
    key="sample_temperature",
    help="Scale of the latent noise: below 1 trades variety for cleaner images.",
)

with st.expander("Latent dimensions"):
    scope = st.radio("Edit the latents of", ("First image", "All images"), key="sample_edit_scope", horizontal=True)
    dim_cols = st.columns(EDITABLE_DIMS)
    offsets = tuple(
        float(col.slider(f"z[{i}] shift", -3.0, 3.0, step=0.1, key=f"sample_dz{i}")) for i, col in enumerate(dim_cols)
    )
    st.button("Reset the shifts", on_click=reset_edits)

model = common.try_generator(kind, dataset, checkpoint)
classifier = common.try_classifier(dataset)
if model is None:
    preview_slot.empty()
    common.stop_page()
screened = model.critic is not None and left.toggle(
    "Critic's rejection sampling",
    value=True,
    key="sample_screened",
    help="A critic trained on real images against this generator's draws keeps each draw with a probability that "
    "rises with how real it finds it (discriminator rejection sampling): switch it off to see the raw draws.",
)
strictness = (
    float(
        left.select_slider(
            "Critic's strictness",
            STRICTNESS_CHOICES,
            format_func=lambda a: f"{a:g}" + (" (exact)" if a == 1.0 else ""),
            key="sample_strictness",
            help="Each draw is kept with probability (the critic's density ratio) to this power. 1 aims at the real "
            "images' spread; 2 and 4 keep only the draws the critic finds likeliest: more typical images (the "
            "classifier agrees more often), less variety.",
        )
    )
    if screened
    else None
)
if mode != "Unconditional" and not model.supports_labels:
    st.warning("This GAN checkpoint has no label mapper beside it, so it can only sample unconditionally.")
    mode = "Unconditional"
label = {"One class": int(label_index), "Every class": "all", "Unconditional": None}[mode]
total = n * len(names) if mode == "Every class" else n
if total > MAX_GALLERY:
    st.error(
        f"{n} images per class makes {total} images; at most {MAX_GALLERY} at once "
        f"(up to {MAX_GALLERY // len(names)} per class with 'Every class')."
    )
    common.stop_page()

try:
    with st.spinner("Sampling..."):
        gallery = cached_gallery(
            kind,
            dataset,
            checkpoint,
            label,
            int(n),
            int(seed),
            float(temperature),
            offsets,
            scope == "First image",
            classifier is not None,
            strictness,
        )
except ValueError as exc:
    preview_slot.empty()
    st.error(f"Cannot sample with these settings: {exc}")
    common.stop_page()
preview_slot.empty()  # the live images are drawn next

if gallery.accuracy is not None:
    asked = "drawn at random" if mode == "Unconditional" else "requested"
    st.metric(
        f"Classifier agrees with the {asked} class",
        f"{gallery.accuracy:.0%}",
        help=f"{len(gallery.images)} images classified by the {dataset} classifier."
        + (" Unconditional samples of a conditional model get a random class each." if mode == "Unconditional" else ""),
    )
columns_per_row = len(names) if mode == "Every class" else min(10, len(gallery.images))
pixels, captions = display_pixels(gallery.images), gallery.captions(names)
for start in range(0, len(pixels), columns_per_row):  # one image list per grid row, so 'Every class' rows are classes
    st.image(
        pixels[start : start + columns_per_row],
        caption=captions[start : start + columns_per_row],
        width=84,
        output_format="PNG",
    )
st.download_button(
    "Download the grid (PNG)",
    grid_png(gallery.images, nrow=columns_per_row, scale=2),
    file_name=f"{dataset}-{kind}-seed{seed}.png",
    mime="image/png",
)

st.subheader("Interpolation")
between = st.radio(
    "Between",
    ("Two classes", "Two seeds") if model.supports_labels else ("Two seeds",),
    key="sample_interp_between",
    horizontal=True,
)
steps = st.slider("Steps", 3, 20, 10, key="sample_interp_steps")
if between == "Two classes":
    a_col, b_col = st.columns(2)
    start = a_col.selectbox("From class", range(len(names)), format_func=lambda c: names[c], key="sample_interp_from")
    end = b_col.selectbox(
        "To class", range(len(names)), index=1, format_func=lambda c: names[c], key="sample_interp_to"
    )
    labels, seeds = (int(start), int(end)), (int(seed), int(seed))
    st.caption(f"Same seed ({seed}), from {names[start]} to {names[end]}.")
else:
    other_seed = st.number_input(
        "Second seed", min_value=0, max_value=2**32 - 1, value=1, step=1, key="sample_interp_seed"
    )
    fixed = int(label_index) if model.supports_labels and mode == "One class" else None
    labels, seeds = (fixed, fixed), (int(seed), int(other_seed))
    st.caption(
        f"Seed {seed} to seed {other_seed}, " + (f"class {names[fixed]}." if fixed is not None else "unconditional.")
    )
try:
    with st.spinner("Interpolating..."):
        strip, strip_probs = cached_strip(
            kind, dataset, checkpoint, labels, seeds, int(steps), float(temperature), classifier is not None, strictness
        )
except ValueError as exc:
    st.error(f"Cannot interpolate with these settings: {exc}")
else:
    st.image(
        display_pixels(strip),
        caption=prediction_captions(strip_probs, names, count=len(strip)),
        width=72,
        output_format="PNG",
    )

"""Your image: GAN inversion of one image, and the Your image page's render after an input (AppTest)."""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

from bench.timing import percentile

PAGE_TIMEOUT_S = 600


def _targets(dataset: str, count: int):
    """`count` bundled test images [1, 1, 28, 28] of different classes, in [0, 1]."""
    from genmodels.latent import unit_images
    from genmodels.summary import load_summary

    summary = load_summary(dataset, prefer_full=False)
    step = len(summary.subset_images) // count
    return [unit_images(summary.subset_images[i * step : i * step + 1]) for i in range(count)], summary


def inversion_times(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Per GAN kind, p50 / p95 seconds of inverting one image (worst dataset), after one warm-up inversion."""
    from genmodels import api
    from genmodels.datasets import DATASETS
    from genmodels.inversion import gan_kinds, invert

    out: dict[str, Any] = {}
    for kind in gan_kinds():
        by_dataset = {}
        for dataset in DATASETS:
            model = api.load_generator(kind, dataset, device="cpu")
            classifier = api.load_classifier(dataset, device="cpu")
            targets, _ = _targets(dataset, repeats + 1)
            labels = [int(api.predict(classifier, t).argmax()) for t in targets]
            times, cpu = [], []
            for target, label in zip(targets, labels, strict=True):
                started = time.thread_time()  # the inversion runs on this thread alone (inversion.one_thread)
                times.append(invert(model, classifier, target, label).seconds)
                cpu.append(time.thread_time() - started)
            times, cpu = times[1:], cpu[1:]  # the first is the warm-up
            by_dataset[dataset] = {
                "p50_s": round(percentile(times, 50), 3),
                "p95_s": round(percentile(times, 95), 3),
                "cpu_p50_s": round(percentile(cpu, 50), 3),
            }
        out[kind] = {key: max(d[key] for d in by_dataset.values()) for key in ("p50_s", "p95_s", "cpu_p50_s")}
        out[kind]["by_dataset"] = by_dataset
        log(
            f"invert {kind}: p50 {out[kind]['p50_s']} s, p95 {out[kind]['p95_s']} s, "
            f"CPU p50 {out[kind]['cpu_p50_s']} s (worst dataset)"
        )
    return out


def _upload_png(image) -> bytes:
    """A test image as a person would upload it: dark ink on white, 4x larger."""
    from PIL import Image

    pixels = (255 - image.reshape(28, 28).mul(255).round()).byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").resize((112, 112), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def page_render_times(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Seconds from an upload to the Your image page fully drawn: the server's first input (models loaded, training
    images indexed), then `repeats` new inputs on the open page, per dataset."""
    from genmodels.datasets import DATASETS

    out: dict[str, Any] = {}
    # a server's very first input: no index features kept by an earlier run (genmodels.neighbors' cache)
    with (
        tempfile.TemporaryDirectory(prefix="genmodels-cold-cache-") as cold,
        mock.patch.dict(os.environ, {"GENMODELS_CACHE": cold}),
    ):
        for dataset in DATASETS:
            out[dataset] = _page_times(dataset, repeats)
            log(
                f"your image page, {dataset}: first input {out[dataset]['first_input_s']} s (loads and indexes), "
                f"then p50 {out[dataset]['p50_s']} s"
            )
    out["p50_s"] = max(out[d]["p50_s"] for d in DATASETS)
    return out


def _page_times(dataset: str, repeats: int) -> dict[str, float]:
    """The Your image page's first input, then p50 / p95 of `repeats` more inputs, in seconds, on one dataset."""
    from streamlit.testing.v1 import AppTest

    from genmodels.paths import REPO_ROOT

    targets, _ = _targets(dataset, repeats + 1)
    app = AppTest.from_file(str(REPO_ROOT / "views" / "your_image.py"), default_timeout=PAGE_TIMEOUT_S)
    app.session_state["framed"] = True
    app.session_state["dataset"] = dataset
    app.session_state["your_image_mode"] = "Upload"
    app.run()
    times = []
    for i, target in enumerate(targets):
        app.file_uploader(key=f"your_image_upload_{dataset}").set_value((f"{i}.png", _upload_png(target), "image/png"))
        start = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - start)
        if app.exception:
            raise RuntimeError(f"the Your image page failed on {dataset}: {app.exception[0].message}")
    return {
        "first_input_s": round(times[0], 2),
        "p50_s": round(percentile(times[1:], 50), 2),
        "p95_s": round(percentile(times[1:], 95), 2),
    }


def measure(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Inversion latency per GAN and the page's render after an input."""
    return {"inversion": inversion_times(repeats, log), "page": page_render_times(repeats, log)}

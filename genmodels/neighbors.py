"""The training images nearest to a given image, in pixels and in the classifier's feature space.

scikit-learn's NearestNeighbors searches a 48-component PCA of each space (60,000 x 48 floats: 11 MB, where the raw
pixels would hold 188 MB per dataset in the app); its candidates are then re-ranked by their exact distance.
"""

from __future__ import annotations

import copy
import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genmodels.api import PREDICT_BATCH, seeded_generator
from genmodels.checkpoint import weights_sha256
from genmodels.models import Classifier
from genmodels.paths import atomic_write_bytes

COMPONENTS = 48
CANDIDATES = 64  # searched in the PCA space, then re-ranked exactly: the true top 8 sit well inside them
PCA_FIT_ROWS = 10_000  # the axes fitted on a fixed random subset: same axes, a sixth of the work
SPACES = ("pixels", "features")
CHUNK = 5_000  # images per pass while indexing: 16 MB of float pixels at a time
INDEX_BATCH = 250  # images per pass while indexing: faster than 100 or 500 on the 2-core EPYC (docs/benchmark.md)
log = logging.getLogger(__name__)


@dataclass
class Neighbours:
    """Rows into the index's images (nearest first), their labels and their exact distances."""

    rows: np.ndarray
    labels: np.ndarray
    distances: np.ndarray


@dataclass
class NeighbourIndex:
    """Images uint8 [N, 28, 28] with labels, where they come from, and one PCA + NearestNeighbors per space."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    searches: dict[str, tuple[Any, Any]]  # space -> (fitted PCA, fitted NearestNeighbors)

    def unit_images(self, rows: np.ndarray) -> torch.Tensor:
        """The images at `rows` as floats [K, 1, 28, 28] in [0, 1]."""
        return _unit(self.images[torch.from_numpy(np.asarray(rows, dtype=np.int64))])


def _unit(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.reshape(-1, 1, 28, 28).float().div(255.0)


@torch.no_grad()
def classifier_features(classifier: Classifier, images: torch.Tensor) -> torch.Tensor:
    """Hidden-layer features [N, H] (CPU) of images [N, 1, 28, 28] in [0, 1], in chunks."""
    device = next(classifier.parameters()).device
    return torch.cat([classifier.features(chunk.to(device) * 2.0 - 1.0).cpu() for chunk in images.split(PREDICT_BATCH)])


@torch.no_grad()
def _index_features(classifier: Classifier, images: torch.Tensor) -> np.ndarray:
    """Features [N, H] of uint8 images [N, 28, 28] for the search, on a copy of the classifier made for inference
    (`_inference_copy`), in bf16 where the CPU multiplies it natively."""
    # candidates are re-ranked by their exact fp32 features: the folding and rounding only shift which 64 are looked at
    fast = _inference_copy(classifier)
    device = next(fast.parameters()).device
    native_bf16 = device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    out = []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=native_bf16):
        for chunk in images.split(INDEX_BATCH):
            unit = _unit(chunk).to(device).contiguous(memory_format=torch.channels_last)
            out.append(fast.features(unit * 2.0 - 1.0).float().cpu())
    return torch.cat(out).numpy()


def _inference_copy(classifier: Classifier) -> Classifier:
    """A channels-last copy of the classifier (in eval mode) with each batch norm folded into the convolution before
    it; the shared classifier stays as it is."""
    # a profiled pass spent 12% in batch norm and 32% in max-pooling of contiguous maps
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fast = copy.deepcopy(classifier).eval()
    layers = fast.convs
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.Conv2d) and isinstance(layers[i + 1], nn.BatchNorm2d):
            layers[i], layers[i + 1] = fuse_conv_bn_eval(layers[i], layers[i + 1]), nn.Identity()
    return fast.to(memory_format=torch.channels_last)


def features_key(classifier: Classifier, images: torch.Tensor) -> str:
    """A digest of everything the index's features depend on: the classifier's weights, the images, and how the
    features are computed on this machine (torch's version, bf16 or not)."""
    digest = hashlib.sha256(weights_sha256(classifier.state_dict()).encode())
    digest.update(images.contiguous().numpy().tobytes())
    native_bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    digest.update(f"{torch.__version__} bf16={native_bf16} batch={INDEX_BATCH}".encode())
    return digest.hexdigest()[:24]


def _cached_features(classifier: Classifier, images: torch.Tensor, cache: Path) -> np.ndarray:
    """`_index_features`, read from `cache` when an earlier run stored them; computed and stored otherwise."""
    # the classifier's pass is ~90% of an index's build (10-30 s on a 2-core CPU), and a server restart repeats it
    path = Path(cache) / f"index-features-{features_key(classifier, images)}.npy"
    try:
        features = np.load(path, allow_pickle=False)
        if features.ndim == 2 and len(features) == len(images) and features.dtype == np.float32:
            return features
        log.warning("ignoring %s: it holds %s %s, not one float32 row per image", path, features.shape, features.dtype)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        log.warning("ignoring the unreadable cache file %s: %s", path, error)
    features = _index_features(classifier, images)
    buffer = io.BytesIO()
    np.save(buffer, features, allow_pickle=False)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:  # a read-only checkout still answers; it only computes them again next time
        log.warning("could not keep the index's features in %s: %s", path, error)
    return features


def _fit_search(chunks: Callable[[], Iterator[np.ndarray]], subset: np.ndarray) -> tuple[Any, Any]:
    """A PCA fitted on the rows `subset` of the row chunks [n, D] and a NearestNeighbors over every row in its space.

    The rows come in chunks twice (fit, then project), so the whole float matrix never sits in memory at once.
    """
    from sklearn.decomposition import PCA  # deferred: scikit-learn's import holds ~140 MB, only this page needs it
    from sklearn.neighbors import NearestNeighbors

    picked, start = [], 0
    for chunk in chunks():
        inside = subset[(subset >= start) & (subset < start + len(chunk))] - start
        picked.append(chunk[inside])
        start += len(chunk)
    rows = np.concatenate(picked)
    pca = PCA(min(COMPONENTS, *rows.shape), svd_solver="covariance_eigh").fit(rows)  # exact and deterministic
    projected = np.concatenate([pca.transform(chunk) for chunk in chunks()]).astype(np.float32)
    return pca, NearestNeighbors().fit(projected)


def build_index(
    classifier: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    source: str,
    seed: int = 0,
    cache: Path | None = None,
) -> NeighbourIndex:
    """Index uint8 images [N, 28, 28] with labels [N] by pixels and by `classifier`'s features; with a `cache`
    folder, the features of the same classifier and images are read from there instead of computed again."""
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != torch.uint8 or len(images) != len(labels):
        raise ValueError(f"need uint8 images [N, 28, 28] with one label each, got {tuple(images.shape)} {images.dtype}")
    if len(images) < 2:
        raise ValueError("need at least 2 images to index")
    subset = np.sort(torch.randperm(len(images), generator=seeded_generator(seed))[:PCA_FIT_ROWS].numpy())
    features = _index_features(classifier, images) if cache is None else _cached_features(classifier, images, cache)
    searches = {
        "pixels": _fit_search(
            lambda: (_unit(chunk).reshape(len(chunk), -1).numpy() for chunk in images.split(CHUNK)), subset
        ),
        "features": _fit_search(lambda: iter(np.array_split(features, max(1, len(features) // CHUNK))), subset),
    }
    return NeighbourIndex(images, labels, source, searches)


def nearest(index: NeighbourIndex, classifier: Classifier, image: torch.Tensor, k: int = 8) -> dict[str, Neighbours]:
    """The k indexed images nearest to image [1, 1, 28, 28] in [0, 1], per space (pixels: L2 of [0, 1] pixels)."""
    if image.shape != (1, 1, 28, 28):
        raise ValueError(f"need one image [1, 1, 28, 28], got {tuple(image.shape)}")
    if not 1 <= k <= len(index.images):
        raise ValueError(f"k must be between 1 and {len(index.images)}, got {k}")
    queries = {"pixels": image.reshape(1, -1), "features": classifier_features(classifier, image.float())}
    found = {}
    for space in SPACES:
        pca, search = index.searches[space]
        query = queries[space].numpy()
        candidates = search.kneighbors(
            pca.transform(query).astype(np.float32), min(CANDIDATES, len(index.images)), return_distance=False
        )[0]
        pixels = _unit(index.images[torch.from_numpy(candidates)])
        exact = pixels.reshape(len(candidates), -1) if space == "pixels" else classifier_features(classifier, pixels)
        distances = torch.linalg.vector_norm(exact - queries[space], dim=1).numpy()
        order = np.argsort(distances, kind="stable")[:k]
        rows = candidates[order]
        found[space] = Neighbours(rows, index.labels[torch.from_numpy(rows)].numpy(), distances[order])
    return found

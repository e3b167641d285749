"""The latent map's plane: PCA or UMAP of the VAE latents, new points placed on it, and a classifier-confidence map.

UMAP is fitted offline with umap-learn (`python -m genmodels umap`) on the latents of the bundled test subset and its
coordinates ship in genmodels/assets/: importing umap-learn takes ~18 s and ~250 MB (numba), too much for a page.
The app places any other latent as umap-learn's `transform` starts: the membership-weighted mean of the positions of
its nearest fitted points (without the optimisation epochs that follow), and maps a plane point back to a latent by
the inverse-distance-weighted mean of the latents of its nearest fitted points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genmodels.checkpoint import CheckpointError, load_tensors, save_tensors
from genmodels.datasets import dataset_info
from genmodels.kinds import kind as model_kind
from genmodels.latent import LatentMap
from genmodels.summary import ASSETS_DIR

PROJECTIONS = ("PCA", "UMAP")
UMAP_NEIGHBOURS = 15  # umap-learn's default n_neighbors, used by the fit and by placing new points alike
UMAP_MIN_DIST = 0.1
INVERSE_NEIGHBOURS = 8
GRID_CELLS = 40  # 1,600 decoded images for the confidence map: ~0.1 s of VAE and classifier
QUERY_CHUNK = 2_048  # latents per distance block while placing points: 16 MB of distances against 2,000 fitted points


@dataclass
class Plane:
    """A projection of latents [N, L] to a plane: the map points' coordinates, axis titles and both directions."""

    name: str
    coords: np.ndarray  # [N, 2]
    axis_titles: tuple[str, str]
    project: Callable[[np.ndarray], np.ndarray]  # latents [M, L] -> plane points [M, 2]
    to_latent: Callable[[np.ndarray], np.ndarray]  # plane points [M, 2] -> latents [M, L]


def pca_plane(lmap: LatentMap) -> Plane:
    """The map's own PCA plane (exact in both directions: the inverse is the plane through the mean)."""
    ratio = lmap.explained_variance_ratio
    return Plane(
        "PCA",
        lmap.coords,
        (f"PC1 ({ratio[0]:.1%} of variance)", f"PC2 ({ratio[1]:.1%} of variance)"),
        lmap.project,
        lmap.to_latent,
    )


def _nearest(reference: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, rows) [M, k] of the k reference rows nearest to each query, in blocks."""
    found = [torch.cdist(block, reference).topk(k, largest=False) for block in queries.split(QUERY_CHUNK)]
    return torch.cat([f.values for f in found]), torch.cat([f.indices for f in found])


def _check_points(points: np.ndarray, width: int, what: str) -> torch.Tensor:
    points = np.asarray(points, dtype=np.float32).reshape(-1, width)
    if not np.isfinite(points).all():
        raise ValueError(f"{what} must be finite")
    return torch.from_numpy(points)


def umap_plane(reference_latents: np.ndarray, reference_coords: np.ndarray) -> Plane:
    """The UMAP plane of fitted latents [R, L] at coordinates [R, 2], placing other points as described above."""
    latents = torch.from_numpy(np.ascontiguousarray(reference_latents, dtype=np.float32))
    coords = torch.from_numpy(np.ascontiguousarray(reference_coords, dtype=np.float32))
    if latents.ndim != 2 or coords.shape != (len(latents), 2) or len(latents) <= UMAP_NEIGHBOURS:
        raise ValueError(f"need more than {UMAP_NEIGHBOURS} latents [R, L] with coordinates [R, 2]")

    def project(points: np.ndarray) -> np.ndarray:
        distances, rows = _nearest(latents, _check_points(points, latents.shape[1], "latents"), UMAP_NEIGHBOURS)
        # umap's fuzzy membership: 1 for the nearest neighbour, decaying with the distance beyond it
        beyond = distances - distances[:, :1]
        scale = beyond.mean(1, keepdim=True).clamp_min(1e-6)
        weights = torch.exp(-beyond / scale)
        placed = (weights.unsqueeze(2) * coords[rows]).sum(1) / weights.sum(1, keepdim=True)
        return placed.numpy()

    def to_latent(points: np.ndarray) -> np.ndarray:
        distances, rows = _nearest(coords, _check_points(points, 2, "plane coordinates"), INVERSE_NEIGHBOURS)
        weights = 1.0 / distances.clamp_min(1e-3)
        return ((weights.unsqueeze(2) * latents[rows]).sum(1) / weights.sum(1, keepdim=True)).numpy()

    return Plane("UMAP", np.asarray(reference_coords, dtype=np.float32), ("UMAP 1", "UMAP 2"), project, to_latent)


def umap_path(dataset: str, kind: str) -> Path:
    """The shipped UMAP coordinates of a dataset's bundled test subset in the latent space of the VAE kind `kind`."""
    dataset_info(dataset)
    if not model_kind(kind).encodes:
        raise ValueError(f"{kind} has no encoder, so no latent map")
    return ASSETS_DIR / f"{dataset}_{kind}_umap.safetensors"


def fit_umap(latents: np.ndarray, seed: int = 0) -> np.ndarray:
    """UMAP coordinates [N, 2] of latents [N, L] with umap-learn (offline: its import alone takes ~18 s)."""
    import umap  # deferred: numba compiles on import; never imported by the app

    # umap-learn takes an integer seed; fixing it also makes its optimisation single-threaded and repeatable
    reducer = umap.UMAP(n_neighbors=UMAP_NEIGHBOURS, min_dist=UMAP_MIN_DIST, random_state=seed)
    return reducer.fit_transform(np.asarray(latents, dtype=np.float32)).astype(np.float32)


def write_umap(
    dataset: str, kind: str, coords: np.ndarray, vae_sha256: str, seed: int, path: Path | None = None
) -> Path:
    """Save the UMAP coordinates of the bundled subset, tied to the weights of the VAE (of kind `kind`) that encoded
    it."""
    path = path or umap_path(dataset, kind)
    meta = {
        "kind": "latent_umap",
        "dataset": dataset,
        "vae_sha256": vae_sha256,
        "seed": seed,
        "n_neighbors": UMAP_NEIGHBOURS,
        "min_dist": UMAP_MIN_DIST,
    }
    save_tensors(path, {"coords": torch.from_numpy(np.ascontiguousarray(coords, dtype=np.float32))}, meta)
    return path


def load_umap_coords(dataset: str, kind: str, vae_sha256: str, rows: int) -> np.ndarray:
    """The shipped UMAP coordinates [rows, 2] of the VAE kind `kind`; CheckpointError when missing, unreadable or made
    for other weights."""
    path = umap_path(dataset, kind)
    tensors, meta = load_tensors(path)
    if meta.get("kind") != "latent_umap" or meta.get("dataset") != dataset:
        raise CheckpointError(path, f"is not the UMAP map of {dataset}")
    if meta.get("vae_sha256") != vae_sha256:
        raise CheckpointError(
            path,
            f"was fitted to another VAE; refit it with `python -m genmodels umap --dataset {dataset} --model {kind}`",
        )
    coords = tensors.get("coords")
    if coords is None or tuple(coords.shape) != (rows, 2) or not torch.isfinite(coords).all():
        raise CheckpointError(path, f"does not hold finite coordinates [{rows}, 2]")
    return coords.numpy()


@dataclass
class ConfidenceGrid:
    """The classifier's top-class probability and class over a grid of decoded plane points."""

    xs: np.ndarray  # [cells]
    ys: np.ndarray  # [cells]
    confidence: np.ndarray  # [cells (y), cells (x)]
    predicted: np.ndarray  # [cells (y), cells (x)]


def confidence_grid(
    plane: Plane,
    decode: Callable[[np.ndarray], torch.Tensor],
    classify: Callable[[torch.Tensor], torch.Tensor],
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    cells: int = GRID_CELLS,
) -> ConfidenceGrid:
    """Decode each cell centre of the plane's box and classify it: low confidence marks the holes between classes."""
    if cells < 2 or not all(map(math.isfinite, (*x_range, *y_range))):
        raise ValueError("need at least 2 cells per side and a finite box")
    xs = np.linspace(*x_range, cells, dtype=np.float32)
    ys = np.linspace(*y_range, cells, dtype=np.float32)
    grid_x, grid_y = np.meshgrid(xs, ys)
    probs = classify(decode(plane.to_latent(np.stack([grid_x.ravel(), grid_y.ravel()], axis=1))))
    confidence, predicted = probs.max(1)
    return ConfidenceGrid(xs, ys, confidence.numpy().reshape(cells, cells), predicted.numpy().reshape(cells, cells))


def encoding_ellipse(
    plane: Plane, mu: np.ndarray, samples: np.ndarray, points: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """(the mean's plane point [2], the 1-sigma ellipse [points, 2]) of an encoding from draws [S, L] of q(z|x).

    The ellipse is the covariance of the draws' plane points, so it means the same on a linear and a non-linear map.
    """
    centre = plane.project(np.asarray(mu, dtype=np.float32)[None])[0]
    placed = plane.project(samples)
    covariance = np.cov(placed.T) + 1e-9 * np.eye(2)
    angles = np.linspace(0.0, 2 * np.pi, points)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return centre, centre + circle @ np.linalg.cholesky(covariance).T

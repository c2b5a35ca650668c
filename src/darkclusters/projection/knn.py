"""k-nearest-neighbour box-kernel surface densities at pixel centres (DarkClusters-15k, seed 000 App. A).

For each pixel centre c the k particles nearest to c *in projection* are found (2-D cKDTree on the sky
positions), and every quantity is their summed weight over the disc they fill:

    Σ_q(c) = Σ_{i ∈ kNN(c)} w_{q,i} / (π r_k(c)²),    r_k = distance to the k-th nearest particle,

a kernel density estimate with a box (top-hat) kernel of adaptive radius r_k; several weights (e.g. gas mass,
tSZ and X-ray weights) share the neighbours of one tree. For Poisson-sampled uniform density n, k/(π r_k² n)
has mean k/(k − 1) (π r_k² n is Gamma(k) distributed): a 0.3 % bias at k = 300, below its 1/√k scatter.
Which particles a tree holds (all matter, one species) is the caller's choice (:mod:`.maps`).

Adaptive evaluation (``interpolation_ratio`` = R): Σ is evaluated exactly on a dyadic hierarchy of pixel
nodes, coarse to fine; inside a node cell whose four corners all have r_k ≥ R × the cell's side, Σ is
bilinearly interpolated instead (it varies on the scale r_k, so the interpolation error is O((side/r_k)²)).
The exact queries then number ≈ R² N_map/(π k) (N_map particles in the map) but at most the pixels; at 512²
and 1e6–1e7 particles r_k is a few pixels, so most pixels stay exact. Measured on a 1e6-particle cluster
against exact evaluation: R = 4 → median 0.0–0.5 %, 99th percentile 4 %; R = 2 → 1.2 % / 6 % at 3–4× fewer
queries (the estimator's own scatter is 1/√k ≈ 6 %). ``None`` evaluates every pixel exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["build_tree", "knn_surface_density"]

_CHUNK = 4096  # pixels per query (memory ≈ chunk × k × (16 + 8Q) bytes)


def build_tree(xy_kpc: np.ndarray) -> cKDTree:
    """2-D cKDTree of sky positions (N, 2) [kpc], built the same way every time (deterministic ties)."""
    xy = np.ascontiguousarray(xy_kpc, dtype=np.float64).reshape(-1, 2)
    return cKDTree(xy, leafsize=64, balanced_tree=False, compact_nodes=False)


def _query(tree: cKDTree, weights: np.ndarray, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Σ_q (Q, M) [weight / kpc²], r_k (M,) [kpc]) at points (M, 2) [kpc], exact; weights (N, Q)."""
    sigma = np.empty((len(points), weights.shape[1]))
    radius = np.empty(len(points))
    for start in range(0, len(points), _CHUNK):
        s = slice(start, start + _CHUNK)
        d, idx = tree.query(points[s], k=k, workers=-1)
        d, idx = d.reshape(len(d), -1), idx.reshape(len(idx), -1)
        rk = d[:, -1]
        area = np.pi * np.maximum(rk, np.finfo(np.float64).tiny) ** 2
        sigma[s] = weights[idx].sum(axis=1) / area[:, None]  # one row gather per neighbour
        radius[s] = rk
    return sigma.T, radius


def _axis_nodes(npix: int, step: int) -> np.ndarray:
    """Pixel indices 0, step, 2·step, ... and the last pixel (so that every pixel lies between nodes)."""
    return np.unique(np.concatenate([np.arange(0, npix, step), [npix - 1]]))


def knn_surface_density(
    tree: cKDTree,
    weights: np.ndarray,
    *,
    npix: int,
    pixel_kpc: float,
    k: int,
    interpolation_ratio: float | None = 4.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Box-kernel kNN surface densities of Q weights at the pixel centres of an npix × npix map.

    tree: :func:`build_tree` of the sky positions [kpc] (map centre at 0). weights: (Q, N) per particle, in
    the tree's order (e.g. mass [Msun] per species, zero for other species). pixel_kpc: pixel side; pixel
    (i, j) has centre ((j + ½ − npix/2)p, (i + ½ − npix/2)p). k: neighbours (min(k, N) is used).
    interpolation_ratio: see the module docstring (None: exact everywhere). Returns (Σ (Q, npix, npix) in
    weight per kpc², r_k (npix, npix) [kpc]) indexed [q, row = y, col = x].
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if w.shape[1] != tree.n:
        raise ValueError(f"weights has {w.shape[1]} particles, the tree {tree.n}")
    if k < 1 or npix < 1 or not pixel_kpc > 0:
        raise ValueError(f"need k >= 1, npix >= 1, pixel_kpc > 0 (got k={k}, npix={npix}, {pixel_kpc})")
    if interpolation_ratio is not None and not interpolation_ratio > 0:
        raise ValueError(f"interpolation_ratio={interpolation_ratio} must be > 0 or None")
    q = w.shape[0]
    if tree.n == 0:
        return np.zeros((q, npix, npix)), np.full((npix, npix), np.inf)
    k = min(k, tree.n)
    centres = (np.arange(npix) + 0.5 - npix / 2) * pixel_kpc
    sigma = np.zeros((q, npix, npix))
    radius = np.zeros((npix, npix))
    known = np.zeros((npix, npix), dtype=bool)

    w_rows = np.ascontiguousarray(w.T)  # (N, Q): the Q weights of a neighbour are adjacent in memory

    def exact(rows: np.ndarray, cols: np.ndarray) -> None:
        s, r = _query(tree, w_rows, np.stack([centres[cols], centres[rows]], axis=1), k)
        sigma[:, rows, cols], radius[rows, cols] = s, r
        known[rows, cols] = True

    top = 0 if interpolation_ratio is None else max(0, int(np.floor(np.log2(max(npix, 2) / 2))))
    nodes = _axis_nodes(npix, 2**top)
    rows, cols = np.meshgrid(nodes, nodes, indexing="ij")
    exact(rows.ravel(), cols.ravel())
    for level in range(top - 1, -1, -1):
        coarse, nodes = nodes, _axis_nodes(npix, 2**level)
        rows, cols = np.meshgrid(nodes, nodes, indexing="ij")
        new = ~known[rows, cols]
        rows, cols = rows[new], cols[new]
        # the coarse node cell around each new node: [r0, r1] × [c0, c1] (degenerate on a coarse edge)
        r1 = coarse[np.searchsorted(coarse, rows)]
        c1 = coarse[np.searchsorted(coarse, cols)]
        r0 = coarse[np.searchsorted(coarse, rows, side="right") - 1]
        c0 = coarse[np.searchsorted(coarse, cols, side="right") - 1]
        side = np.maximum(np.maximum(r1 - r0, c1 - c0), 1) * pixel_kpc
        rk_min = np.minimum.reduce([radius[r0, c0], radius[r0, c1], radius[r1, c0], radius[r1, c1]])
        smooth = rk_min >= interpolation_ratio * side
        ty = np.where(r1 > r0, (rows - r0) / np.maximum(r1 - r0, 1), 0.0)
        tx = np.where(c1 > c0, (cols - c0) / np.maximum(c1 - c0, 1), 0.0)
        wts = ((1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx)
        corners = ((r0, c0), (r0, c1), (r1, c0), (r1, c1))
        ri, ci = rows[smooth], cols[smooth]
        sigma[:, ri, ci] = sum(
            wt[smooth] * sigma[:, a[smooth], b[smooth]] for wt, (a, b) in zip(wts, corners, strict=True)
        )
        radius[ri, ci] = sum(
            wt[smooth] * radius[a[smooth], b[smooth]] for wt, (a, b) in zip(wts, corners, strict=True)
        )
        known[ri, ci] = True
        exact(rows[~smooth], cols[~smooth])
    return sigma, radius

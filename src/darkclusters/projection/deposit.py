"""Adaptive SPH splatting of particles onto a square pixel grid, and SPH smoothing lengths.

Every particle carries weights (mass, electron thermal energy, X-ray luminosity, ...) and a kernel support
radius H (W = 0 beyond H; :mod:`.kernels`). :func:`sph_splat` returns, per pixel, the sum over particles of
weight × ∫_pixel F(R; H) d²R, the projected kernel integrated over the pixel, so that a particle whose kernel
lies inside the map deposits exactly its weight (sums over the map equal sums over particles to rounding).

Algorithm (vectorised, memory O(N + pixels); the cost does not grow with H):

1. Size classes. A particle goes to pyramid level L ≥ 0 (cells of 2^L pixels) where its support is below
   ``H_CAP`` cells (and above H_CAP/2 for L ≥ 1); the coarsest level has ≳ 4 cells across the map.
2. Cloud-in-cell (CIC) deposit on the level grid, split between two neighbouring kernel *nodes* (stencils of
   supports H_a < H_b on a geometric ladder, :data:`NODES_PER_OCTAVE` per octave) with weights (1 − t, t)
   chosen so that the per-axis second moment of the result equals that of the exact pixel-integrated kernel:
   V_a(1 − t) + V_b t = s² H² + 1/12 − ½[u(1−u) + v(1−v)] − (1 − 4^−L)/3, where s² H² is the kernel's
   variance, u, v the CIC fractions (CIC adds u(1−u)) and (1 − 4^−L)/3 the variance that L bilinear
   prolongations add (1 fine pixel² each). Mass is exact; only the kernel's shape beyond its second moment
   is approximated (peak errors ~3 % for a single particle at 4 nodes per octave).
   Supports below one pixel skip the nodes: the product of the kernel's 1-D marginals, integrated over the
   3 × 3 pixels around the particle (exact mass and second moment, as sharp as the pixels). Supports above
   32 cells on the coarsest level (wider than the map) are sampled at the cell centres.
3. Each node's grid is convolved with its stencil (zero-padded FFT, summed in Fourier space per level).
4. Levels are combined coarse to fine by the mass-conserving bilinear prolongation (weights ¾, ¼ per axis).

Against a brute-force pixel integration of every kernel the maps of clustered particle sets agree to ~1 % in
L1 (tests/test_projection.py), and with yt's off-axis SPH projection to ~0.2 % (benchmarks/project.py).

Smoothing lengths (:func:`neighbour_support_radius`): H = distance to the N-th nearest neighbour in 3-D, so
the support sphere holds N other particles (the usual SPH definition, e.g. Springel 2010, §3).

Speed: the per-particle loops (size classes, node CIC, the 3 × 3 deposit) are compiled
(:mod:`.splat_kernels`), the neighbour search too (:mod:`.neighbours`); FFTs run one thread per splat
(:mod:`.maps` runs two splats side by side).
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np
import scipy.fft
from scipy.spatial import cKDTree

from darkclusters.projection import splat_kernels
from darkclusters.projection.kernels import (
    marginal_cdf_table,
    pixel_stencil,
    projected_kernel,
    variance_per_h2,
)
from darkclusters.projection.neighbours import kth_neighbour_distance

__all__ = ["H_CAP", "NODES_PER_OCTAVE", "density_support_radius", "neighbour_support_radius", "sph_splat"]

H_CAP = 8.0  # largest support [cells] deposited at a level below the coarsest
NODES_PER_OCTAVE = 4  # kernel nodes per factor 2 in support
_H_NODE_MIN = 0.5  # smallest non-delta node support [cells]
_EXACT_VARIANCE_BELOW = 16.0  # supports [cells] whose stencil variance is measured, not s²H² + 1/12
_H_GIANT = 32.0  # supports [cells] above this, on the coarsest level, are sampled at cell centres
_QUERY_CHUNK = 1 << 20  # neighbour queries per cKDTree call (bounds memory)


@cache
def _node_supports(kernel: str, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Supports H_i [cells] of the kernel nodes (node 0 is the delta) and their per-axis variances V_i."""
    h = np.concatenate([[0.0], _H_NODE_MIN * 2.0 ** (np.arange(n_nodes - 1) / NODES_PER_OCTAVE)])
    var = np.empty(n_nodes)
    for i, hi in enumerate(h):
        if hi < _EXACT_VARIANCE_BELOW:
            s = pixel_stencil(float(hi), kernel)
            c = np.arange(s.shape[0]) - s.shape[0] // 2
            var[i] = float((s * c[None, :] ** 2).sum())
        else:
            var[i] = variance_per_h2(kernel) * hi**2 + 1.0 / 12.0
    if np.any(np.diff(var) <= 0):  # the smallest supports fall inside one pixel: drop non-increasing nodes
        keep = np.concatenate([[True], np.diff(np.maximum.accumulate(var)) > 0])
        h, var = h[keep], var[keep]
    return h, var


def _node_table(kernel: str, var_max: float) -> tuple[np.ndarray, np.ndarray]:
    n = 8
    while True:
        h, var = _node_supports(kernel, n)
        if var[-1] >= var_max:
            return h, var
        n += 2 * NODES_PER_OCTAVE


@lru_cache(maxsize=512)
def _stencil_fft(kernel: str, support: float, m: int) -> np.ndarray:
    """rfft2 of the stencil of ``support`` placed with its centre at [0, 0] of an m × m periodic array."""
    s = pixel_stencil(support, kernel)
    r = s.shape[0] // 2
    padded = np.zeros((m, m))
    padded[: 2 * r + 1, : 2 * r + 1] = s
    return scipy.fft.rfft2(np.roll(padded, (-r, -r), axis=(0, 1)), workers=-1)


def _prolong(coarse: np.ndarray) -> np.ndarray:
    """Bilinear 2× prolongation of cell sums (..., n, n) → (..., 2n, 2n); conserves the sum in the interior.

    Along each axis fine cell 2m gets ½(¾ c_m + ¼ c_{m−1}) and 2m+1 gets ½(¾ c_m + ¼ c_{m+1}) (cell-average
    interpolation); cells beyond the grid count as zero.
    """
    out = coarse
    for axis in (-1, -2):
        c = np.moveaxis(out, axis, -1)
        left = np.concatenate([np.zeros_like(c[..., :1]), c[..., :-1]], axis=-1)
        right = np.concatenate([c[..., 1:], np.zeros_like(c[..., :1])], axis=-1)
        fine = np.empty((*c.shape[:-1], 2 * c.shape[-1]))
        fine[..., 0::2] = 0.375 * c + 0.125 * left
        fine[..., 1::2] = 0.375 * c + 0.125 * right
        out = np.moveaxis(fine, -1, axis)
    return out


def _giant_deposit(
    uc: np.ndarray, vc: np.ndarray, hc: np.ndarray, w: np.ndarray, *, n: int, pad: int, kernel: str
) -> np.ndarray:
    """Kernels much wider than a cell, sampled at the cell centres: F(R; H) × cell area, (Q, n, n)."""
    centres = np.arange(n) - pad
    out = np.zeros((w.shape[0], n * n))
    for start in range(0, len(hc), 256):
        s = slice(start, start + 256)
        dx = centres[None, None, :] - uc[s, None, None]
        dy = centres[None, :, None] - vc[s, None, None]
        f = projected_kernel(np.hypot(dx, dy) / hc[s, None, None], kernel) / hc[s, None, None] ** 2
        out += w[:, s] @ f.reshape(f.shape[0], -1)
    return out.reshape(w.shape[0], n, n)


def _node_deposit(
    x: np.ndarray,
    y: np.ndarray,
    h: np.ndarray,
    w: np.ndarray,
    levels: np.ndarray,
    *,
    level: int,
    npix: int,
    n: int,
    pad: int,
    h_min: float,
    h_max: float,
    kernel: str,
) -> np.ndarray:
    """CIC onto two kernel nodes per particle (second moment matched, module docstring), FFT-convolved and
    summed in Fourier space; (Q, n, n) cell sums of the particles of ``level`` with h_min ≤ support [cells]
    ≤ h_max."""
    q = w.shape[0]
    var_max = variance_per_h2(kernel) * (h_max + 1.0) ** 2 + 1.0 / 12.0
    supports, var = _node_table(kernel, var_max)
    keep = int(np.searchsorted(var, var_max)) + 2  # the nodes any particle of this level can use
    supports, var = supports[:keep], var[:keep]
    grids = np.zeros((q, len(var), n, n))
    used = np.zeros(len(var), dtype=np.bool_)
    splat_kernels.node_cic(
        x, y, h, w, levels, level, npix, pad, h_min, h_max, variance_per_h2(kernel), var, grids, used
    )
    out = grids[:, 0].copy()  # the delta node: CIC only
    nodes = np.flatnonzero(used[1:]) + 1
    if len(nodes) == 0:
        return out
    m = scipy.fft.next_fast_len(n + int(np.floor(supports[nodes[-1]] + 0.5)) + 1, real=True)
    acc = None
    for node in nodes:
        term = scipy.fft.rfft2(grids[:, node], s=(m, m), workers=1) * _stencil_fft(
            kernel, float(supports[node]), m
        )
        acc = term if acc is None else acc + term
    out += scipy.fft.irfft2(acc, s=(m, m), workers=1)[:, :n, :n]
    return out


def _deposit_level(
    x: np.ndarray,
    y: np.ndarray,
    h: np.ndarray,
    w: np.ndarray,
    levels: np.ndarray,
    level: int,
    npix: int,
    last: bool,
    kernel: str,
) -> tuple[np.ndarray, int]:
    """Deposit one size class on the level grid; returns ((Q, n, n) cell sums, P) for cells [−P, n − P).

    x, y: pixels from the map centre, h: support [pixels], levels: :func:`.splat_kernels.level_of` (the
    particles of other levels are skipped; on the last level, those that cannot reach the map are marked −1
    here)."""
    scale = 2**level
    pad = int(np.ceil(H_CAP)) + 2
    h_min = 1.0 if level == 0 else 0.0  # smaller supports: the separable 3 × 3 deposit
    h_max = H_CAP if not last else _H_GIANT
    giant = None
    if last:
        # the coarsest level holds every larger support: keep what can reach the map, pad for the largest
        sel = np.flatnonzero(levels == level)
        uc, vc, hc = (x[sel] + npix / 2.0) / scale - 0.5, (y[sel] + npix / 2.0) / scale - 0.5, h[sel] / scale
        du = np.maximum(np.maximum(-(uc + 0.5), uc + 0.5 - npix / scale), 0.0)
        dv = np.maximum(np.maximum(-(vc + 0.5), vc + 0.5 - npix / scale), 0.0)
        reach = np.maximum(du, dv) < hc + 2.0
        levels[sel[~reach]] = -1
        big = reach & (hc > _H_GIANT)
        giant = (uc[big], vc[big], hc[big], w[:, sel[big]])
        pad = max(pad, int(np.ceil(hc[reach & ~big].max(initial=0.0))) + 2)
    n = -(-npix // scale) + 2 * pad
    out = _node_deposit(
        x, y, h, w, levels, level=level, npix=npix, n=n, pad=pad, h_min=h_min, h_max=h_max, kernel=kernel
    )
    if giant is not None and giant[0].size:
        out += _giant_deposit(*giant, n=n, pad=pad, kernel=kernel)
    if level == 0:
        splat_kernels.separable_cic(x, y, h, w, levels, npix, pad, 1.0, marginal_cdf_table(kernel), out)
    return out, pad


def sph_splat(
    x_pix: np.ndarray,
    y_pix: np.ndarray,
    support_pix: np.ndarray,
    weights: np.ndarray,
    *,
    npix: int,
    kernel: str = "wendland_c2",
) -> np.ndarray:
    """Sum of particle weights per pixel, each spread by its projected kernel integrated over the pixels.

    x_pix, y_pix: (N,) sky positions in pixels from the map centre (the map spans [−npix/2, npix/2) on both
    axes; pixel (i, j) has centre (j + ½ − npix/2, i + ½ − npix/2)). support_pix: (N,) kernel support radius H
    [pixels] (≥ 0; 0 is a point). weights: (Q, N) or (N,). Returns (Q, npix, npix) (or (npix, npix) for 1-D
    weights) indexed [q, row = y, col = x], in the unit of the weights per pixel. Algorithm: module docstring.
    """
    x = np.asarray(x_pix, dtype=np.float64).ravel()
    y = np.asarray(y_pix, dtype=np.float64).ravel()
    h = np.asarray(support_pix, dtype=np.float64).ravel()
    w = np.asarray(weights, dtype=np.float64)
    squeeze = w.ndim == 1
    w = np.atleast_2d(w)
    if npix < 1:
        raise ValueError(f"npix={npix} must be >= 1")
    if not (len(x) == len(y) == len(h) == w.shape[1]):
        raise ValueError(f"x_pix, y_pix, support_pix, weights disagree in length: {len(x)}, {len(y)}, "
                         f"{len(h)}, {w.shape[1]}")  # fmt: skip
    if np.any(~np.isfinite(h) | (h < 0)):
        raise ValueError("support_pix must be finite and >= 0")
    w = np.ascontiguousarray(w)
    n_levels = max(1, int(np.floor(np.log2(max(npix, 4) / 4.0))) + 1)
    levels, counts = splat_kernels.level_of(x, y, h, npix / 2.0, H_CAP, n_levels)
    acc, acc_pad = None, 0
    for lev in range(n_levels - 1, -1, -1):
        if counts[lev] == 0 and acc is None and lev > 0:
            continue  # nothing on this coarse level yet
        grid, pad = _deposit_level(x, y, h, w, levels, lev, npix, lev == n_levels - 1, kernel)
        if acc is not None:
            fine = _prolong(acc)
            start = 2 * acc_pad - pad  # fine cell −pad sits at index 2·acc_pad − pad of the prolonged grid
            grid += fine[:, start : start + grid.shape[1], start : start + grid.shape[2]]
        acc, acc_pad = grid, pad
    result = acc[:, acc_pad : acc_pad + npix, acc_pad : acc_pad + npix]
    return result[0] if squeeze else result


def neighbour_support_radius(
    pos_kpc: np.ndarray, n_neighbours: int, *, query_kpc: np.ndarray | None = None
) -> np.ndarray:
    """Kernel support radius H [kpc] = 3-D distance to the ``n_neighbours``-th nearest other particle.

    pos_kpc: (N, 3) particles the neighbours are counted among. query_kpc: (M, 3) where H is wanted (default:
    the same particles, which are then not their own neighbour). With fewer particles than needed, the
    farthest available one is used. Returns (M,) float64. Among the particles themselves: the compiled
    Morton-grid search of :mod:`.neighbours`; other query points: cKDTree, in chunks over all cores.
    """
    if n_neighbours < 1:
        raise ValueError(f"n_neighbours={n_neighbours} must be >= 1")
    pos = np.asarray(pos_kpc, dtype=np.float64).reshape(-1, 3)
    same = query_kpc is None
    query = pos if same else np.asarray(query_kpc, dtype=np.float64).reshape(-1, 3)
    available = len(pos) - (1 if same else 0)
    if len(query) == 0:
        return np.zeros(0)
    if available < 1:
        raise ValueError(f"need at least {2 if same else 1} particles to measure a neighbour distance")
    if same:
        return kth_neighbour_distance(pos, min(n_neighbours, available))
    k = min(n_neighbours, available)
    tree = cKDTree(pos, leafsize=16, balanced_tree=False, compact_nodes=True)
    out = np.empty(len(query))
    for start in range(0, len(query), _QUERY_CHUNK):
        d, _ = tree.query(query[start : start + _QUERY_CHUNK], k=[k], workers=-1)
        out[start : start + _QUERY_CHUNK] = d[:, 0]
    return out


def density_support_radius(
    mass_msun: np.ndarray, density_msun_kpc3: np.ndarray, n_neighbours: int
) -> np.ndarray:
    """Support radius H [kpc] whose sphere holds ``n_neighbours`` particle masses at the particle's density.

    H = (3 N m / (4π ρ))^⅓: the N-neighbour definition evaluated with the hydrodynamic density (gas cells of
    TNG's moving mesh, GIZMO's SPH-like density), so gas needs no neighbour search.
    """
    m = np.asarray(mass_msun, dtype=np.float64)
    rho = np.asarray(density_msun_kpc3, dtype=np.float64)
    if np.any(~(rho > 0)):
        raise ValueError("density_msun_kpc3 must be > 0 for every gas particle")
    return np.cbrt(3.0 * n_neighbours * m / (4.0 * np.pi * rho))

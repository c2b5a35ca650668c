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
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np
import scipy.fft
from scipy.spatial import cKDTree

from darkclusters.projection.kernels import marginal_cdf, pixel_stencil, projected_kernel, variance_per_h2

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


def _separable_deposit(
    uc: np.ndarray, vc: np.ndarray, hc: np.ndarray, w: np.ndarray, *, n: int, pad: int, kernel: str
) -> np.ndarray:
    """Supports below one cell: the product of the kernel's 1-D marginals integrated over the 3 × 3 cells
    around the particle's cell (exact in mass and second moment, as sharp as the pixels allow)."""
    out = np.zeros((w.shape[0], n * n))
    u, v = uc + 0.5, vc + 0.5  # cell-edge coordinates: cell c spans [c, c + 1)
    cu, cv = np.floor(u), np.floor(v)
    keep = (cu - 1 >= -pad) & (cu + 1 < n - pad) & (cv - 1 >= -pad) & (cv + 1 < n - pad)
    u, v, cu, cv, hc, w = u[keep], v[keep], cu[keep], cv[keep], hc[keep], w[:, keep]
    hs = np.maximum(hc, 1e-12)
    wx = [
        marginal_cdf((cu + d + 1 - u) / hs, kernel) - marginal_cdf((cu + d - u) / hs, kernel)
        for d in (-1, 0, 1)
    ]
    wy = [
        marginal_cdf((cv + d + 1 - v) / hs, kernel) - marginal_cdf((cv + d - v) / hs, kernel)
        for d in (-1, 0, 1)
    ]
    base = (cv.astype(np.int64) + pad) * n + cu.astype(np.int64) + pad
    for q in range(w.shape[0]):
        for dy, fy in zip((-1, 0, 1), wy, strict=True):
            for dx, fx in zip((-1, 0, 1), wx, strict=True):
                out[q] += np.bincount(base + (dy * n + dx), weights=w[q] * fx * fy, minlength=n * n)
    return out.reshape(w.shape[0], n, n)


def _node_deposit(
    uc: np.ndarray,
    vc: np.ndarray,
    hc: np.ndarray,
    w: np.ndarray,
    *,
    level: int,
    n: int,
    pad: int,
    kernel: str,
) -> np.ndarray:
    """CIC onto two kernel nodes per particle (second moment matched, module docstring), FFT-convolved."""
    out = np.zeros((w.shape[0], n, n))
    i0, j0 = np.floor(uc), np.floor(vc)
    fu, fv = uc - i0, vc - j0
    gx, gy = i0.astype(np.int64) + pad, j0.astype(np.int64) + pad
    keep = (gx >= 0) & (gx + 1 < n) & (gy >= 0) & (gy + 1 < n)  # others cannot reach the map
    gx, gy, fu, fv, hc, w = gx[keep], gy[keep], fu[keep], fv[keep], hc[keep], w[:, keep]
    if hc.size == 0:
        return out
    var_kernel = variance_per_h2(kernel) * hc**2 + 1.0 / 12.0
    target = var_kernel - 0.5 * (fu * (1 - fu) + fv * (1 - fv)) - (1.0 - 4.0**-level) / 3.0
    supports, var = _node_table(kernel, float(target.max()))
    a = np.clip(np.searchsorted(var, target, side="right") - 1, 0, len(var) - 2)
    t = np.clip((target - var[a]) / (var[a + 1] - var[a]), 0.0, 1.0)
    used = np.unique(np.concatenate([a, a + 1]))
    base = (np.searchsorted(used, a) * n + gy) * n + gx
    size = len(used) * n * n
    # the 8 (node, CIC corner) shares of every particle, in one bincount per weight row
    offsets = np.array([0, 1, n, n + 1, n * n, n * n + 1, n * n + n, n * n + n + 1])
    cells = (base[None, :] + offsets[:, None]).ravel()
    cu, cv = np.stack([1 - fu, fu]), np.stack([1 - fv, fv])
    share = (np.stack([1 - t, t])[:, None, None, :] * cv[None, :, None, :] * cu[None, None, :, :]).reshape(
        8, -1
    )
    grids = np.stack(
        [np.bincount(cells, weights=(share * w[q]).ravel(), minlength=size)[:size] for q in range(w.shape[0])]
    )
    grids = grids.reshape(w.shape[0], len(used), n, n)
    m = scipy.fft.next_fast_len(n + int(np.floor(supports[used[-1]] + 0.5)) + 1, real=True)
    acc = None
    for j, node in enumerate(used):
        g = grids[:, j]
        if node == 0:
            out += g  # the delta node: CIC only
        elif np.any(g):
            term = scipy.fft.rfft2(g, s=(m, m), workers=-1) * _stencil_fft(kernel, float(supports[node]), m)
            acc = term if acc is None else acc + term
    if acc is not None:
        out += scipy.fft.irfft2(acc, s=(m, m), workers=-1)[:, :n, :n]
    return out


def _deposit_level(
    u: np.ndarray, v: np.ndarray, h: np.ndarray, w: np.ndarray, level: int, npix: int, last: bool, kernel: str
) -> tuple[np.ndarray, int]:
    """Deposit one size class on the level grid; returns ((Q, n, n) cell sums, P) for cells [−P, n − P)."""
    scale = 2**level
    uc, vc, hc = u / scale - 0.5, v / scale - 0.5, h / scale  # cell-centre coordinates, support [cells]
    pad = int(np.ceil(H_CAP)) + 2
    giant = None
    if last and hc.size:
        # the coarsest level holds every larger support: keep what can reach the map, pad for the largest
        du = np.maximum(np.maximum(-(uc + 0.5), uc + 0.5 - npix / scale), 0.0)
        dv = np.maximum(np.maximum(-(vc + 0.5), vc + 0.5 - npix / scale), 0.0)
        reach = np.maximum(du, dv) < hc + 2.0
        big = reach & (hc > _H_GIANT)
        giant = (uc[big], vc[big], hc[big], w[:, big])
        reach &= ~big
        uc, vc, hc, w = uc[reach], vc[reach], hc[reach], w[:, reach]
        pad = max(pad, int(np.ceil(hc.max(initial=0.0))) + 2)
    n = -(-npix // scale) + 2 * pad
    out = np.zeros((w.shape[0], n, n))
    if giant is not None and giant[0].size:
        out += _giant_deposit(*giant, n=n, pad=pad, kernel=kernel)
    small = hc < 1.0 if level == 0 else np.zeros(hc.shape, dtype=bool)
    if np.any(small):
        out += _separable_deposit(uc[small], vc[small], hc[small], w[:, small], n=n, pad=pad, kernel=kernel)
    rest = ~small
    out += _node_deposit(uc[rest], vc[rest], hc[rest], w[:, rest], level=level, n=n, pad=pad, kernel=kernel)
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
    reach = np.maximum(np.abs(x), np.abs(y)) < npix / 2.0 + h + 1.0  # the others cannot touch the map
    x, y, h, w = x[reach], y[reach], h[reach], w[:, reach]
    n_levels = max(1, int(np.floor(np.log2(max(npix, 4) / 4.0))) + 1)
    with np.errstate(divide="ignore"):
        level = np.clip(np.ceil(np.log2(h / H_CAP)), 0, n_levels - 1).astype(np.int8)
    order = np.argsort(level, kind="stable")  # radix sort: particles grouped by level, in input order
    bounds = np.searchsorted(level[order], np.arange(n_levels + 1))
    u, v = x + npix / 2.0, y + npix / 2.0
    acc, acc_pad = None, 0
    for lev in range(n_levels - 1, -1, -1):
        sel = order[bounds[lev] : bounds[lev + 1]]
        grid, pad = _deposit_level(u[sel], v[sel], h[sel], w[:, sel], lev, npix, lev == n_levels - 1, kernel)
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
    farthest available one is used. Returns (M,) float64. cKDTree, queried in chunks over all cores.
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
    k = min(n_neighbours, available) + (1 if same else 0)
    tree = cKDTree(pos, leafsize=16, balanced_tree=True, compact_nodes=True)  # slower build, faster queries
    # query in the tree's leaf order: neighbouring queries walk the same nodes (≈ 2× faster than file order)
    order = tree.indices if same else np.arange(len(query))
    out = np.empty(len(query))
    for start in range(0, len(query), _QUERY_CHUNK):
        chunk = order[start : start + _QUERY_CHUNK]
        d, _ = tree.query(query[chunk], k=[k], workers=-1)
        out[chunk] = d[:, 0]
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

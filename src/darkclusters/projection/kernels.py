"""SPH smoothing kernels projected to 2-D, and their pixel stencils.

Each 3-D kernel W(r; H) has compact support H (W = 0 for r ≥ H; q = r/H) and unit integral:

* ``wendland_c2``: W = 21/(2π H³) (1 − q)⁴ (1 + 4q) (Wendland 1995; Dehnen & Aly 2012, Table 1), the kernel of
  HYPER used for the SZ/X-ray maps of Hsu et al. (seed 002, eq. 2);
* ``cubic_spline``: the M4 spline with support H (Monaghan & Lattanzio 1985): W = 8/(π H³) × (1 − 6q² + 6q³)
  for q < ½ and 2(1 − q)³ for ½ ≤ q < 1, the kernel of GADGET/GIZMO (Springel 2005).

The projected kernel is F(R; H) = ∫ W(√(R² + z²); H) dz = f(R/H)/H² with ∫ F d²R = 1; f is tabulated once
on q ∈ [0, 1] by Gauss–Legendre quadrature along the line of sight. A *stencil* is F integrated over the
pixels of a square grid (pixel side 1) around a kernel centred on a pixel centre, renormalised to sum 1 so
that deposits conserve mass exactly; its per-axis second moment is ≈ ``variance_per_h2(kernel)``·H² + 1/12.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = [
    "KERNELS",
    "kernel_3d",
    "marginal_cdf",
    "marginal_cdf_table",
    "pixel_stencil",
    "projected_kernel",
    "variance_per_h2",
]

KERNELS = ("wendland_c2", "cubic_spline")
_N_TABLE = 2049  # points of the projected-kernel table on q ∈ [0, 1]
_N_GAUSS = 96  # Gauss–Legendre nodes of the line-of-sight integral


def _check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r} is not one of {KERNELS}")


def kernel_3d(q: np.ndarray, kernel: str) -> np.ndarray:
    """W(q) · H³ of a 3-D kernel at q = r/H (dimensionless; zero for q ≥ 1). Formulas: module docstring."""
    _check_kernel(kernel)
    q = np.asarray(q, dtype=np.float64)
    inside = q < 1.0
    qc = np.clip(q, 0.0, 1.0)
    if kernel == "wendland_c2":
        w = 21.0 / (2.0 * np.pi) * (1.0 - qc) ** 4 * (1.0 + 4.0 * qc)
    else:
        w = 8.0 / np.pi * np.where(qc < 0.5, 1.0 - 6.0 * qc**2 + 6.0 * qc**3, 2.0 * (1.0 - qc) ** 3)
    return np.where(inside, w, 0.0)


@cache
def _projected_table(kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """(q grid, f(q)) of the projected kernel, normalised so that 2π ∫₀¹ f(q) q dq = 1."""
    q = np.linspace(0.0, 1.0, _N_TABLE)
    nodes, weights = np.polynomial.legendre.leggauss(_N_GAUSS)
    zmax = np.sqrt(np.clip(1.0 - q**2, 0.0, None))  # the chord half-length at projected radius q
    z = 0.5 * (nodes[None, :] + 1.0) * zmax[:, None]
    f = 2.0 * (0.5 * zmax) * (kernel_3d(np.sqrt(q[:, None] ** 2 + z**2), kernel) @ weights)
    norm = 2.0 * np.pi * np.trapezoid(f * q, q)
    return q, f / norm


def projected_kernel(r_over_h: np.ndarray, kernel: str) -> np.ndarray:
    """f(R/H) = F(R; H)·H²: the line-of-sight integral of the unit-mass kernel, per unit area × H²."""
    _check_kernel(kernel)
    q, f = _projected_table(kernel)
    return np.interp(np.asarray(r_over_h, dtype=np.float64), q, f, right=0.0)


@cache
def _marginal_table(kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """(x grid on [−1, 1], cumulative G(x)) of the 1-D marginal g(x) = ∫ F(√(x² + y²)) dy, in units of H."""
    x = np.linspace(0.0, 1.0, _N_TABLE)
    nodes, weights = np.polynomial.legendre.leggauss(_N_GAUSS)
    ymax = np.sqrt(np.clip(1.0 - x**2, 0.0, None))
    y = 0.5 * (nodes[None, :] + 1.0) * ymax[:, None]
    g = 2.0 * (0.5 * ymax) * (projected_kernel(np.sqrt(x[:, None] ** 2 + y**2), kernel) @ weights)
    half = np.concatenate([[0.0], np.cumsum(0.5 * (g[1:] + g[:-1]) * np.diff(x))])
    half /= 2.0 * half[-1]  # G(0) = ½, G(1) = 1 by symmetry
    grid = np.concatenate([-x[::-1], x[1:]])
    cdf = np.concatenate([0.5 - half[::-1], 0.5 + half[1:]])
    return grid, cdf


def marginal_cdf(x_over_h: np.ndarray, kernel: str) -> np.ndarray:
    """G(x/H): fraction of a projected kernel's weight at abscissa < x (kernel centred on 0), in [0, 1]."""
    _check_kernel(kernel)
    grid, cdf = _marginal_table(kernel)
    return np.interp(np.asarray(x_over_h, dtype=np.float64), grid, cdf, left=0.0, right=1.0)


def marginal_cdf_table(kernel: str) -> np.ndarray:
    """G on the uniform grid x/H = −1, …, 1 (:func:`marginal_cdf` interpolates it linearly), read-only."""
    _check_kernel(kernel)
    cdf = _marginal_table(kernel)[1]
    cdf.flags.writeable = False
    return cdf


@cache
def variance_per_h2(kernel: str) -> float:
    """Per-axis second moment of the kernel in units of H²: ⟨x²⟩/H² = ⟨q²⟩/3 (1/15 for Wendland C2)."""
    q, f = _projected_table(kernel)
    # ⟨R²⟩ of the 2-D projected kernel is 2 ⟨x²⟩
    return float(np.trapezoid(2.0 * np.pi * q**3 * f, q) / 2.0)


@cache
def pixel_stencil(support_pix: float, kernel: str) -> np.ndarray:
    """Pixel-integrated projected kernel of support ``support_pix`` [pixels], centred on a pixel centre.

    Returns a (2R+1, 2R+1) array indexed [row = y, col = x] with R = ⌊H + ½⌋ (every pixel the support
    reaches), summing exactly to 1. Pixels are integrated by supersampling (≥ 8 samples per H along each
    axis); the renormalisation absorbs the quadrature error. ``support_pix`` = 0 gives the 1×1 delta stencil.
    """
    _check_kernel(kernel)
    h = float(support_pix)
    if not np.isfinite(h) or h < 0:
        raise ValueError(f"support_pix={support_pix} must be finite and >= 0")
    if h == 0.0:
        return np.ones((1, 1))
    radius = int(np.floor(h + 0.5))
    sub = int(np.clip(np.ceil(8.0 / h), 4, 64))  # samples per pixel and axis
    n = (2 * radius + 1) * sub
    c = (np.arange(n) + 0.5) / sub - (radius + 0.5)  # sample offsets from the central pixel centre
    r = np.hypot(c[None, :], c[:, None])
    values = projected_kernel(r / h, kernel).reshape(2 * radius + 1, sub, 2 * radius + 1, sub)
    stencil = values.sum(axis=(1, 3))
    total = stencil.sum()
    if total <= 0:  # support far below a pixel: all samples missed it
        stencil = np.zeros_like(stencil)
        stencil[radius, radius] = 1.0
        return stencil
    return stencil / total

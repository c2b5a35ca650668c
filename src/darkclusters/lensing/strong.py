"""Strong-lensing mocks: multiple-image finding on a deflection grid, source placement, families and arcs.

Implements the strong-lensing observations of DarkClusters (seed paper 000, §4.1): sources are placed
uniformly on the source plane where the cluster images them several times, the lens equation (eq. 1)

    β = θ − α(θ),   α from κ by eq. 3 (``operators.deflection_field``),

is solved for their image positions θ; ``sersic.render_arcs`` ray-traces their Sérsic light into arcs.
Conventions: angles in arcsec; maps (..., H, W) indexed [row = y, col = x], x right, y up, pixel (i, j)
centred at x_j = (j + ½ − W/2)·p, y_i = (i + ½ − H/2)·p. A κ map made for the reference source redshift z_ref
gives the deflection of a source at z_s after scaling by (D_ls/D_s)(z_s) / (D_ls/D_s)(z_ref).

Image finding (Schneider, Ehlers & Falco 1992, §11.2; the triangle mapping of Keeton 2001, gravlens): every
cell between four pixel centres is split into two triangles, mapped to the source plane, and each triangle
whose image contains β_s (barycentric test) seeds Newton iterations on the bilinear interpolation of α,
θ ← θ − A⁻¹(θ − α(θ) − β_s), A = I − ∂α/∂θ. Magnifications μ = 1/det A use the Jacobian of α by central
differences (``numpy.gradient``), bilinearly interpolated at the image; sign(μ) is the parity.

Catalogue layout (``make_strong_lensing_catalog``; plain numpy arrays, ready for HDF5 groups):
``{"families": {...}, "images": {...}, "meta": {...}}``, the keys listed in that function's docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.cosmology import FLRW

from darkclusters.cosmology import distance_ratio
from darkclusters.lensing.operators import deflection_field
from darkclusters.lensing.sersic import sersic_amp_for_flux
from darkclusters.lensing.weak import DEFAULT_Z0, DEFAULT_Z_BETA, sample_source_redshifts

__all__ = [
    "DEFAULT_SOURCE_RANGES",
    "caustic_region",
    "critical_curve_mask",
    "einstein_area_arcsec2",
    "find_images",
    "make_strong_lensing_catalog",
    "place_sources",
    "truncated_source_redshifts",
]

#: Ranges of the drawn Sérsic source parameters: R_sersic [arcsec] log-uniform (compact z ≈ 1–3 star-forming
#: galaxies, r_e ≈ 1–5 kpc), n uniform (disc-like), axis ratio q uniform and position angle uniform in [0, π).
DEFAULT_SOURCE_RANGES: dict[str, tuple[float, float]] = {
    "R_sersic_arcsec": (0.15, 0.6),
    "n_sersic": (0.5, 2.0),
    "axis_ratio": (0.4, 1.0),
}
_MERGE_PIXEL = 0.25  # Newton roots closer than this (pixels) are one image


@dataclass(frozen=True)
class _LensGrid:
    """Precomputed deflection grid of one source redshift: values, Jacobian maps and mapped triangles."""

    pixel: float
    alpha: np.ndarray  # (2, H, W) [arcsec]
    jacobian: np.ndarray  # (4, H, W): ∂αx/∂x, ∂αx/∂y, ∂αy/∂x, ∂αy/∂y by central differences
    tri_theta: np.ndarray  # (3, 2, T) image-plane triangle vertices [arcsec]
    tri_beta: np.ndarray  # (3, 2, T) their source-plane images [arcsec]
    tri_inverse: np.ndarray  # (4, T) inverse of [P1 − P0, P2 − P0] in the source plane (NaN if degenerate)
    det_a: np.ndarray  # (H, W) det A = det(I − ∂α/∂θ)


def _lens_grid(alpha_x: np.ndarray, alpha_y: np.ndarray, pixel_arcsec: float) -> _LensGrid:
    alpha_x, alpha_y = np.asarray(alpha_x, dtype=np.float64), np.asarray(alpha_y, dtype=np.float64)
    if alpha_x.shape != alpha_y.shape or alpha_x.ndim != 2 or min(alpha_x.shape) < 2:
        raise ValueError(f"alpha_x {alpha_x.shape} and alpha_y {alpha_y.shape} must be equal (H, W) maps")
    alpha = np.stack([alpha_x, alpha_y])
    if pixel_arcsec <= 0:
        raise ValueError(f"pixel_arcsec={pixel_arcsec} must be > 0")
    height, width = alpha.shape[1:]
    x = (np.arange(width) + 0.5 - width / 2) * pixel_arcsec
    y = (np.arange(height) + 0.5 - height / 2) * pixel_arcsec
    theta = np.stack(np.meshgrid(x, y, indexing="xy"))  # (2, H, W)
    beta = theta - alpha
    dax_dy, dax_dx = np.gradient(alpha[0], pixel_arcsec)
    day_dy, day_dx = np.gradient(alpha[1], pixel_arcsec)
    jacobian = np.stack([dax_dx, dax_dy, day_dx, day_dy])
    det_a = (1 - dax_dx) * (1 - day_dy) - dax_dy * day_dx

    def corners(grid: np.ndarray) -> tuple[np.ndarray, ...]:
        return grid[:, :-1, :-1], grid[:, :-1, 1:], grid[:, 1:, 1:], grid[:, 1:, :-1]

    def triangles(grid: np.ndarray) -> np.ndarray:
        c00, c01, c11, c10 = corners(grid)  # cell = triangles (00, 01, 11) and (00, 11, 10)
        pairs = ((c00, c00), (c01, c11), (c11, c10))  # vertex k of the first and of the second triangle
        return np.stack([np.concatenate([a, b], axis=-1).reshape(2, -1) for a, b in pairs])

    tri_beta = triangles(beta)
    (v0x, v0y), (v1x, v1y) = tri_beta[1] - tri_beta[0], tri_beta[2] - tri_beta[0]
    det = v0x * v1y - v1x * v0y
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.stack([v1y, -v1x, -v0y, v0x]) / np.where(det != 0, det, np.nan)
    return _LensGrid(pixel_arcsec, alpha, jacobian, triangles(theta), tri_beta, inverse, det_a)


def _bilinear(grid: _LensGrid, maps: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bilinear values (C, n) and x-, y-derivatives of ``maps`` (C, H, W) at (x, y) [arcsec], and an inside
    mask (the convex hull of the pixel centres), with the convention of ``interpolate.sample_field``."""
    height, width = maps.shape[-2:]
    u = x / grid.pixel + width / 2 - 0.5  # fractional column index
    v = y / grid.pixel + height / 2 - 0.5
    inside = (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    j0 = np.clip(np.floor(u), 0, width - 2).astype(np.int64)
    i0 = np.clip(np.floor(v), 0, height - 2).astype(np.int64)
    fu, fv = u - j0, v - i0
    f00, f01 = maps[:, i0, j0], maps[:, i0, j0 + 1]
    f10, f11 = maps[:, i0 + 1, j0], maps[:, i0 + 1, j0 + 1]
    value = f00 * (1 - fu) * (1 - fv) + f01 * fu * (1 - fv) + f10 * (1 - fu) * fv + f11 * fu * fv
    d_dx = ((f01 - f00) * (1 - fv) + (f11 - f10) * fv) / grid.pixel
    d_dy = ((f10 - f00) * (1 - fu) + (f11 - f01) * fu) / grid.pixel
    return value, d_dx, d_dy, inside


def _images_on_grid(
    grid: _LensGrid, beta_x: float, beta_y: float, tol_pixel: float, max_newton: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image positions (x, y) [arcsec] and signed magnifications of one source on a precomputed grid."""
    dx, dy = beta_x - grid.tri_beta[0, 0], beta_y - grid.tri_beta[0, 1]
    inv = grid.tri_inverse
    l1, l2 = inv[0] * dx + inv[1] * dy, inv[2] * dx + inv[3] * dy  # barycentric coordinates
    eps = 1e-9
    hit = np.flatnonzero((l1 >= -eps) & (l2 >= -eps) & (l1 + l2 <= 1 + eps))
    t0, t1, t2 = grid.tri_theta[:, :, hit]
    theta = t0 + l1[hit] * (t1 - t0) + l2[hit] * (t2 - t0)  # (2, n) linear inverse inside the triangle
    tol = tol_pixel * grid.pixel
    target = np.array([[beta_x], [beta_y]])
    for step_count in range(max_newton + 1):
        alpha, d_dx, d_dy, inside = _bilinear(grid, grid.alpha, theta[0], theta[1])
        residual = theta - alpha - target
        converged = np.hypot(*residual) < tol
        if step_count == max_newton or np.all(converged | ~inside):
            break
        a11, a12, a21, a22 = 1 - d_dx[0], -d_dy[0], -d_dx[1], 1 - d_dy[1]
        det_a = a11 * a22 - a12 * a21
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.stack([a22 * residual[0] - a12 * residual[1], a11 * residual[1] - a21 * residual[0]])
            step = step / det_a
        step = np.nan_to_num(step, nan=0.0, posinf=0.0, neginf=0.0)
        # damp steps to one pixel: near a critical curve det A → 0 and a full step would leave the basin
        scale = np.minimum(1.0, grid.pixel / np.maximum(np.hypot(*step), 1e-300))
        theta = theta - np.where(converged, 0.0, step * scale)
    good = np.flatnonzero(converged & inside)
    order = good[np.argsort(np.hypot(*residual[:, good]))]
    kept: list[int] = []
    for k in order:
        if all(np.hypot(*(theta[:, k] - theta[:, m])) > _MERGE_PIXEL * grid.pixel for m in kept):
            kept.append(int(k))
    x_img, y_img = theta[:, kept]
    jac = _bilinear(grid, grid.jacobian, x_img, y_img)[0]
    mu = 1.0 / ((1 - jac[0]) * (1 - jac[3]) - jac[1] * jac[2])
    order = np.argsort(-np.abs(mu), kind="stable")
    return x_img[order], y_img[order], mu[order]


def find_images(
    alpha_x: np.ndarray,
    alpha_y: np.ndarray,
    pixel_arcsec: float,
    beta_x: float,
    beta_y: float,
    *,
    tol_pixel: float = 1e-3,
    max_newton: int = 20,
    min_abs_magnification: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All images θ of a point source at β_s with β_s = θ − α(θ), inside the field (module docstring).

    alpha_x, alpha_y: deflection at the source's redshift [arcsec], (H, W), [row = y, col = x].
    beta_x, beta_y: source position [arcsec]. An image is kept when |β(θ) − β_s| < tol_pixel·p on the
    bilinear α within ``max_newton`` steps, it lies inside the pixel-centre hull, and
    |μ| ≥ ``min_abs_magnification``.
    Returns (x [arcsec], y [arcsec], μ) of shape (n_images,), sorted by decreasing |μ|; μ < 0 is odd parity.
    """
    if tol_pixel <= 0 or max_newton < 1 or min_abs_magnification < 0:
        raise ValueError(
            f"tol_pixel={tol_pixel} must be > 0, max_newton={max_newton} >= 1 and "
            f"min_abs_magnification={min_abs_magnification} >= 0"
        )
    grid = _lens_grid(alpha_x, alpha_y, pixel_arcsec)
    x, y, mu = _images_on_grid(grid, beta_x, beta_y, tol_pixel, max_newton)
    keep = np.abs(mu) >= min_abs_magnification
    return x[keep], y[keep], mu[keep]


def critical_curve_mask(alpha_x: np.ndarray, alpha_y: np.ndarray, pixel_arcsec: float) -> np.ndarray:
    """Pixels on a critical curve: det A (central differences) changes sign towards a 4-neighbour, (H, W)."""
    det_a = _lens_grid(alpha_x, alpha_y, pixel_arcsec).det_a
    return _sign_change(det_a)


def _sign_change(det_a: np.ndarray) -> np.ndarray:
    neg = det_a < 0
    mask = np.zeros_like(neg)
    flip_x, flip_y = neg[:, 1:] != neg[:, :-1], neg[1:, :] != neg[:-1, :]
    mask[:, 1:] |= flip_x
    mask[:, :-1] |= flip_x
    mask[1:, :] |= flip_y
    mask[:-1, :] |= flip_y
    return mask


def caustic_region(
    alpha_x: np.ndarray, alpha_y: np.ndarray, pixel_arcsec: float, *, margin_pixel: float = 2.0
) -> tuple[float, float, float, float] | None:
    """Source-plane box (x_min, x_max, y_min, y_max) [arcsec] around the caustics, or None without any.

    The critical-curve pixels are mapped to the source plane by β = θ − α(θ); every multiply imaged source
    lies inside the caustics, hence inside this box widened by ``margin_pixel`` pixels.
    """
    grid = _lens_grid(alpha_x, alpha_y, pixel_arcsec)
    return _caustic_box(grid, margin_pixel)


def _caustic_box(grid: _LensGrid, margin_pixel: float) -> tuple[float, float, float, float] | None:
    mask = _sign_change(grid.det_a)
    if not mask.any():
        return None
    height, width = mask.shape
    rows, cols = np.nonzero(mask)
    bx = (cols + 0.5 - width / 2) * grid.pixel - grid.alpha[0, rows, cols]
    by = (rows + 0.5 - height / 2) * grid.pixel - grid.alpha[1, rows, cols]
    m = margin_pixel * grid.pixel
    return float(bx.min() - m), float(bx.max() + m), float(by.min() - m), float(by.max() + m)


def place_sources(
    alpha_x: np.ndarray,
    alpha_y: np.ndarray,
    pixel_arcsec: float,
    n_sources: int,
    rng: np.random.Generator,
    *,
    min_images: int = 2,
    min_abs_magnification: float = 0.0,
    max_tries: int = 1000,
    tol_pixel: float = 1e-3,
) -> list[tuple[float, float, np.ndarray, np.ndarray, np.ndarray]]:
    """Draw up to ``n_sources`` multiply imaged sources by rejection: β uniform in the caustic box.

    Each try draws β uniformly in ``caustic_region`` and keeps it when ``find_images`` gives at least
    ``min_images`` images with |μ| ≥ ``min_abs_magnification``, so the accepted β are uniform over the
    multiply imaged source-plane region (seed paper 000, §4.1). Stops after ``max_tries`` tries.
    Returns a list of (beta_x, beta_y, x_images, y_images, magnifications) [arcsec, arcsec, ...].
    """
    if n_sources < 0 or min_images < 1 or max_tries < 0:
        raise ValueError(
            f"need n_sources >= 0, min_images >= 1, max_tries >= 0: {n_sources}, {min_images}, {max_tries}"
        )
    grid = _lens_grid(alpha_x, alpha_y, pixel_arcsec)
    box = _caustic_box(grid, 2.0)
    found: list[tuple[float, float, np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(max_tries if box is not None else 0):
        if len(found) >= n_sources:
            break
        bx, by = float(rng.uniform(box[0], box[1])), float(rng.uniform(box[2], box[3]))
        x, y, mu = _images_on_grid(grid, bx, by, tol_pixel, 20)
        keep = np.abs(mu) >= min_abs_magnification
        if keep.sum() >= min_images:
            found.append((bx, by, x[keep], y[keep], mu[keep]))
    return found


def einstein_area_arcsec2(alpha_x: np.ndarray, alpha_y: np.ndarray, pixel_arcsec: float) -> float:
    """Area [arcsec²] inside the tangential critical curves: pixels whose smaller eigenvalue of the
    symmetrised A = I − ∂α/∂θ is negative (λ_t = 1 − κ − |γ| < 0); the Einstein radius is √(area/π)."""
    jac = _lens_grid(alpha_x, alpha_y, pixel_arcsec).jacobian
    a11, a22, a12 = 1 - jac[0], 1 - jac[3], -(jac[1] + jac[2]) / 2
    lam_t = (a11 + a22) / 2 - np.sqrt(((a11 - a22) / 2) ** 2 + a12**2)
    return float(np.count_nonzero(lam_t < 0) * pixel_arcsec**2)


def truncated_source_redshifts(
    rng: np.random.Generator,
    n: int,
    *,
    z_min: float,
    z_max: float,
    alpha: float = 2.0,
    z0: float = DEFAULT_Z0,
    beta: float = DEFAULT_Z_BETA,
) -> np.ndarray:
    """n redshifts from p(z) ∝ z^α exp[−(z/z0)^β] (Lanusse et al. 2016) truncated to z_min < z ≤ z_max.

    Exact: rejection from ``weak.sample_source_redshifts`` (the Gamma sampler) in batches. The accepted
    fraction P(a, t_max) − P(a, t_min), a = (α+1)/β, t = (z/z0)^β, P the regularised lower incomplete gamma
    function, must exceed 1e-6, else ValueError. Returns (n,) float64.
    """
    from scipy.special import gammainc

    if not 0 <= z_min < z_max:
        raise ValueError(f"need 0 <= z_min < z_max, got z_min={z_min}, z_max={z_max}")
    if not (alpha > -1 and z0 > 0 and beta > 0):
        raise ValueError(f"alpha={alpha} must be > -1 and z0={z0}, beta={beta} > 0")
    a = (alpha + 1.0) / beta
    accept = gammainc(a, (z_max / z0) ** beta) - gammainc(a, (z_min / z0) ** beta)
    if accept < 1e-6:
        raise ValueError(f"p(z) with z0={z0}, beta={beta} has probability {accept:.1e} in ({z_min}, {z_max}]")
    out = np.zeros(0)
    while len(out) < n:
        draw = sample_source_redshifts(rng, int((n - len(out)) / accept) + 16, alpha=alpha, z0=z0, beta=beta)
        out = np.concatenate([out, draw[(draw > z_min) & (draw <= z_max)]])
    return out[:n]


def make_strong_lensing_catalog(
    kappa_ref: np.ndarray,
    pixel_arcsec: float,
    *,
    z_lens: float,
    z_ref: float,
    cosmology: FLRW,
    n_systems_range: tuple[int, int],
    seed: int | np.random.SeedSequence,
    source_redshifts: Mapping[str, float] | None = None,
    z_source_max: float = 6.0,
    z_margin: float = 0.1,
    families_per_arcmin2: float = 40.0,
    min_abs_magnification: float = 0.2,
    source_ranges: Mapping[str, tuple[float, float]] | None = None,
    max_tries_per_system: int = 300,
    pad_factor: int = 2,
) -> dict[str, dict[str, np.ndarray]]:
    """Multiply imaged source families behind one cluster view (seed paper 000, §4.1), seeded.

    kappa_ref: (H, W) convergence for sources at ``z_ref``, [row = y, col = x]; α_ref = deflection_field(κ).
    Number of systems: N = clip(round(``families_per_arcmin2`` · A_E), lo, hi) with A_E [arcmin²] the area
    inside the tangential critical curves at z_ref (``einstein_area_arcsec2``), and N = 0 without any; 40
    per arcmin² gives ≈ 27 families for θ_E = 28″ (MACS J1206, Caminha et al. 2017). For each system,
    z_s ~ p(z) ∝ z^α exp[−(z/z0)^β] on (z_lens + z_margin, z_source_max] (``truncated_source_redshifts``
    with ``source_redshifts`` = {alpha, z0, beta}, the config's ``lensing.source_redshifts``),
    α = α_ref·(D_ls/D_s)(z_s)/(D_ls/D_s)(z_ref), and β is drawn by ``place_sources`` (≥ 2 images with
    |μ| ≥ ``min_abs_magnification``; a z_s that yields none in ``max_tries_per_system`` tries is redrawn, at
    most 3N times in all, so weak lenses may give fewer than N). Images fainter than the unlensed source by
    more than 1/``min_abs_magnification`` (demagnified central images) are not recorded, as they are rarely
    detected. Sérsic parameters follow
    ``source_ranges`` (default ``DEFAULT_SOURCE_RANGES``), with amp set for unit total flux so that
    ``render_arcs`` scales by the caller's per-band fluxes.

    Returns {"families": {family_id, z_source, deflection_scale, beta_x_arcsec, beta_y_arcsec, amp,
    R_sersic_arcsec, n_sersic, e1, e2, n_images} each (n_families,); "images": {family_id, x_arcsec,
    y_arcsec, magnification (signed), parity (±1, int8)} each (n_images,); "meta": 0-d arrays z_lens, z_ref,
    pixel_arcsec, einstein_area_arcsec2, n_target, families_per_arcmin2, min_abs_magnification}.
    """
    lo, hi = (int(v) for v in n_systems_range)
    if not 0 <= lo <= hi:
        raise ValueError(f"n_systems_range={n_systems_range} must satisfy 0 <= lo <= hi")
    if not 0 <= z_lens < z_ref or families_per_arcmin2 < 0 or z_margin < 0:
        raise ValueError(
            f"need 0 <= z_lens < z_ref, families_per_arcmin2 >= 0, z_margin >= 0; got z_lens={z_lens}, "
            f"z_ref={z_ref}, families_per_arcmin2={families_per_arcmin2}, z_margin={z_margin}"
        )
    kappa = np.asarray(kappa_ref, dtype=np.float64)
    if kappa.ndim != 2:
        raise ValueError(f"kappa_ref must be one (H, W) map, got shape {kappa.shape}")
    alpha_x, alpha_y = deflection_field(kappa, pixel_arcsec, pad_factor=pad_factor)
    area = einstein_area_arcsec2(alpha_x, alpha_y, pixel_arcsec)
    n_target = 0 if area == 0 else int(np.clip(round(families_per_arcmin2 * area / 3600.0), lo, hi))
    rng = np.random.default_rng(seed)
    p_z = dict(source_redshifts or {})
    ratio_ref = distance_ratio(cosmology, z_lens, z_ref)
    systems: list[tuple[float, float, tuple[float, float, np.ndarray, np.ndarray, np.ndarray]]] = []
    for _ in range(3 * n_target):
        if len(systems) >= n_target:
            break
        z_s = float(truncated_source_redshifts(rng, 1, z_min=z_lens + z_margin, z_max=z_source_max, **p_z)[0])
        scale = float(distance_ratio(cosmology, z_lens, z_s)) / float(ratio_ref)
        placed = place_sources(
            scale * alpha_x,
            scale * alpha_y,
            pixel_arcsec,
            1,
            rng,
            min_abs_magnification=min_abs_magnification,
            max_tries=max_tries_per_system,
        )
        if placed:
            systems.append((z_s, scale, placed[0]))
    return _assemble(
        systems,
        rng,
        source_ranges or DEFAULT_SOURCE_RANGES,
        meta={
            "z_lens": z_lens,
            "z_ref": z_ref,
            "pixel_arcsec": pixel_arcsec,
            "einstein_area_arcsec2": area,
            "n_target": n_target,
            "families_per_arcmin2": families_per_arcmin2,
            "min_abs_magnification": min_abs_magnification,
        },
    )


def _assemble(
    systems: list[tuple[float, float, tuple[float, float, np.ndarray, np.ndarray, np.ndarray]]],
    rng: np.random.Generator,
    ranges: Mapping[str, tuple[float, float]],
    meta: Mapping[str, Any],
) -> dict[str, dict[str, np.ndarray]]:
    """Pack placed systems into the catalogue dict, drawing their Sérsic parameters from ``ranges``."""
    n = len(systems)
    (r_lo, r_hi), (n_lo, n_hi), (q_lo, q_hi) = (ranges[k] for k in DEFAULT_SOURCE_RANGES)
    if not (0 < r_lo <= r_hi and 0.5 <= n_lo <= n_hi and 0 < q_lo <= q_hi <= 1):
        raise ValueError(f"source_ranges={dict(ranges)} must have 0 < R, n >= 0.5 and 0 < q <= 1, ordered")
    r_sersic = np.exp(rng.uniform(np.log(r_lo), np.log(r_hi), n))
    n_sersic = rng.uniform(n_lo, n_hi, n)
    q, phi = rng.uniform(q_lo, q_hi, n), rng.uniform(0.0, np.pi, n)
    e_mod = (1 - q) / (1 + q)  # e1 + i e2 = (1 − q)/(1 + q) e^(2iφ), lenstronomy phi_q2_ellipticity
    n_images = np.array([len(s[2][2]) for s in systems], dtype=np.int64)
    families = {
        "family_id": np.arange(n, dtype=np.int64),
        "z_source": np.array([s[0] for s in systems], dtype=np.float64),
        "deflection_scale": np.array([s[1] for s in systems], dtype=np.float64),
        "beta_x_arcsec": np.array([s[2][0] for s in systems], dtype=np.float64),
        "beta_y_arcsec": np.array([s[2][1] for s in systems], dtype=np.float64),
        "amp": np.asarray(sersic_amp_for_flux(np.ones(n), r_sersic, n_sersic), dtype=np.float64),
        "R_sersic_arcsec": r_sersic,
        "n_sersic": n_sersic,
        "e1": e_mod * np.cos(2 * phi),
        "e2": e_mod * np.sin(2 * phi),
        "n_images": n_images,
    }
    mu = np.concatenate([s[2][4] for s in systems]) if n else np.zeros(0)
    images = {
        "family_id": np.repeat(families["family_id"], n_images),
        "x_arcsec": np.concatenate([s[2][2] for s in systems]) if n else np.zeros(0),
        "y_arcsec": np.concatenate([s[2][3] for s in systems]) if n else np.zeros(0),
        "magnification": mu,
        "parity": np.sign(mu).astype(np.int8),
    }
    return {"families": families, "images": images, "meta": {k: np.asarray(v) for k, v in meta.items()}}

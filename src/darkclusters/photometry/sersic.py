"""Sérsic components on pixel grids, and the two-component BCG + intracluster-light fit.

The profile is :mod:`darkclusters.profiles.sersic` (shared with the lensed sources; exact b_n, circularised
radius, (e1, e2)). Shapes here keep the photometry's stored convention (:class:`SersicShape`, the
``icl_shapes`` attribute of the photometry files): centre (x0, y0), half-light *semi-major* axis a_e, index n,
axis ratio q = b/a ≤ 1 and major-axis angle θ counter-clockwise from +x, i.e.
I(R) = I_e exp{−b_n [(R / a_e)^{1/n} − 1]} with R² = x'² + (y'/q)² and total flux
2π n q a_e² I_e e^{b_n} b_n^{−2n} Γ(2n) (Graham & Driver 2005, PASA 22, 118, eqs. 1 and 4).
:meth:`SersicShape.profile_parameters` converts to the shared convention (r_eff = √q a_e,
(e1, e2) = (1 − q)/(1 + q) (cos 2θ, sin 2θ)): the same profile. Images are ``(H, W)`` indexed
[row = y, col = x] with x right and y up and the map centre at (0, 0) (conventions of
:mod:`darkclusters.projection.geometry`); each pixel holds the profile averaged over ``oversample``²
sub-pixels times the pixel area, i.e. flux per pixel in the unit of the total flux.

Intracluster light (paper App. A.1): following Gonzalez et al. (2005, ApJ 618, 195), the BCG and its
envelope are fitted with two concentric Sérsic components (:func:`fit_two_sersic`): the shapes (common centre;
per component a_e, n, q, θ) by robust non-linear least squares on one band, the fluxes by non-negative
linear least squares at fixed shapes (variable projection), so the other bands reuse the shapes
(:func:`fit_fluxes`). The outer component (larger a_e) is the ICL.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from darkclusters.profiles.sersic import (
    ellipticity_from_axis_ratio,
    sersic_amp_for_flux,
    sersic_surface_brightness,
)

__all__ = [
    "SersicShape",
    "TwoSersicFit",
    "fit_fluxes",
    "fit_two_sersic",
    "sersic_image",
]


@dataclass(frozen=True)
class SersicShape:
    """Shape of one Sérsic component: centre (x0, y0) [arcsec], half-light semi-major axis a_e = r_eff_arcsec
    [arcsec], index n, axis ratio q, major-axis angle θ [rad] (module docstring)."""

    x0_arcsec: float
    y0_arcsec: float
    r_eff_arcsec: float
    n: float
    q: float
    theta_rad: float

    def as_array(self) -> np.ndarray:
        return np.array([self.x0_arcsec, self.y0_arcsec, self.r_eff_arcsec, self.n, self.q, self.theta_rad])

    def profile_parameters(self) -> dict[str, float]:
        """Keyword arguments of :func:`darkclusters.profiles.sersic.sersic_surface_brightness` (all but amp):
        circularised r_eff = √q a_e [arcsec], n, e1, e2, center_x, center_y [arcsec]."""
        _check_shape(self)
        e1, e2 = ellipticity_from_axis_ratio(self.q, self.theta_rad)
        return {
            "r_eff": float(np.sqrt(self.q) * self.r_eff_arcsec),
            "n": float(self.n),
            "e1": float(e1),
            "e2": float(e2),
            "center_x": float(self.x0_arcsec),
            "center_y": float(self.y0_arcsec),
        }


def sersic_image(
    npix: int, pixel_arcsec: float, shape: SersicShape, *, flux: float = 1.0, oversample: int = 3
) -> np.ndarray:
    """A Sérsic component of total flux ``flux`` (untruncated) on an npix × npix map: (npix, npix), flux per
    pixel, pixel-averaged on oversample² sub-pixels."""
    if npix < 1 or pixel_arcsec <= 0 or oversample < 1:
        raise ValueError(
            f"npix={npix}, pixel_arcsec={pixel_arcsec}, oversample={oversample} must be positive"
        )
    params = shape.profile_parameters()
    sub = ((np.arange(npix * oversample) + 0.5) / oversample - npix / 2) * pixel_arcsec  # sub-pixel centres
    amp = sersic_amp_for_flux(flux, params["r_eff"], params["n"])
    surface = sersic_surface_brightness(sub[None, :], sub[:, None], amp=amp, **params)
    pixels = surface.reshape(npix, oversample, npix, oversample).mean(axis=(1, 3))
    return pixels * pixel_arcsec**2


@dataclass(frozen=True)
class TwoSersicFit:
    """Result of :func:`fit_two_sersic`: inner and outer shapes (outer: the larger R_e) and their fluxes."""

    inner: SersicShape
    outer: SersicShape
    flux_inner: float
    flux_outer: float
    success: bool


def fit_two_sersic(
    image: np.ndarray,
    sigma: np.ndarray,
    pixel_arcsec: float,
    *,
    fit_radius_arcsec: float,
    r_eff_init_arcsec: tuple[float, float],
    oversample: int = 3,
    max_evaluations: int = 200,
) -> TwoSersicFit:
    """Fit two concentric Sérsic components to the light around the map centre (module docstring).

    image, sigma: (H, W) flux per pixel and its 1σ uncertainty (> 0), indexed [row = y, col = x], H = W.
    Only pixels within ``fit_radius_arcsec`` of the centre enter. Residuals (model − image)/σ go through a
    soft-L1 loss (scale 3σ), so satellite galaxies inside the radius pull weakly. Bounds: centre within
    max(2 pixels, 2″) of the map centre, R_e in [pixel/4, 2 × fit radius], n in [0.5, 8], q in [0.2, 1].
    r_eff_init_arcsec: starting R_e of the inner and outer component; both start at n = 4, q = 0.9.
    """
    image = np.asarray(image, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    npix = image.shape[-1]
    if image.ndim != 2 or image.shape != (npix, npix) or sigma.shape != image.shape:
        raise ValueError(
            f"image and sigma must be square (H, W) of one shape, got {image.shape}, {sigma.shape}"
        )
    if not np.all(sigma > 0):
        raise ValueError("sigma must be > 0 everywhere")
    if fit_radius_arcsec <= 0:
        raise ValueError(f"fit_radius_arcsec={fit_radius_arcsec} must be > 0")
    image, sigma, inside = _central_region(image, sigma, pixel_arcsec, fit_radius_arcsec)
    npix = image.shape[-1]
    data, weight = image[inside], 1.0 / sigma[inside]
    step = max(2.0 * pixel_arcsec, 2.0)
    r_lo, r_hi = pixel_arcsec / 4.0, 2.0 * fit_radius_arcsec
    lower = [-step, -step] + [np.log(r_lo), 0.5, 0.2, -np.pi] * 2
    upper = [step, step] + [np.log(r_hi), 8.0, 1.0, np.pi] * 2
    r0 = np.clip(r_eff_init_arcsec, r_lo * 1.01, r_hi * 0.99)
    p0 = np.array([0.0, 0.0, np.log(r0[0]), 4.0, 0.9, 0.0, np.log(r0[1]), 4.0, 0.9, 0.0])

    def basis(p: np.ndarray) -> np.ndarray:
        shapes = _shapes_from_vector(p)
        return np.stack(
            [sersic_image(npix, pixel_arcsec, sh, oversample=oversample)[inside] for sh in shapes]
        )

    def residual(p: np.ndarray) -> np.ndarray:
        a = basis(p)
        fluxes = _nnls_small(a * weight, data * weight)
        return (fluxes @ a - data) * weight

    result = least_squares(
        residual,
        p0,
        bounds=(lower, upper),
        loss="soft_l1",
        f_scale=3.0,
        max_nfev=max_evaluations,
        x_scale="jac",
        tr_solver="lsmr",
    )
    a = basis(result.x)
    fluxes = _nnls_small(a * weight, data * weight)
    shapes = _shapes_from_vector(result.x)
    order = np.argsort([sh.r_eff_arcsec for sh in shapes])
    inner, outer = (shapes[i] for i in order)
    return TwoSersicFit(inner, outer, float(fluxes[order[0]]), float(fluxes[order[1]]), bool(result.success))


def fit_fluxes(
    image: np.ndarray,
    sigma: np.ndarray,
    pixel_arcsec: float,
    shapes: tuple[SersicShape, ...],
    *,
    fit_radius_arcsec: float,
    oversample: int = 3,
) -> np.ndarray:
    """Non-negative fluxes of fixed-shape Sérsic components that best fit ``image`` within the fit radius.

    image, sigma: (H, W) as in :func:`fit_two_sersic`. Returns (len(shapes),) fluxes in the image's unit
    (weighted linear least squares with flux >= 0).
    """
    image = np.asarray(image, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    npix = image.shape[-1]
    if image.shape != (npix, npix) or sigma.shape != image.shape or not np.all(sigma > 0):
        raise ValueError("image and sigma must be square (H, W) of one shape, with sigma > 0")
    image, sigma, inside = _central_region(image, sigma, pixel_arcsec, fit_radius_arcsec)
    npix = image.shape[-1]
    weight = 1.0 / sigma[inside]
    a = np.stack([sersic_image(npix, pixel_arcsec, sh, oversample=oversample)[inside] for sh in shapes])
    return _nnls_small(a * weight, image[inside] * weight)


def _nnls_small(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    """argmin_{x >= 0} |xᵀa − d|² for a few basis rows a (k, m), by the normal equations on every subset of
    active components (exact for small k; 2^k − 1 tiny solves instead of an iterative NNLS)."""
    k = a.shape[0]
    gram, rhs = a @ a.T, a @ d
    best, best_cost = np.zeros(k), 0.0  # x = 0 costs |d|² − |d|², i.e. 0 relative to |d|²
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            idx = list(subset)
            try:
                x_s = np.linalg.solve(gram[np.ix_(idx, idx)], rhs[idx])
            except np.linalg.LinAlgError:
                continue
            if np.any(x_s < 0):
                continue
            cost = float(x_s @ gram[np.ix_(idx, idx)] @ x_s - 2.0 * x_s @ rhs[idx])
            if cost < best_cost:
                best = np.zeros(k)
                best[idx] = x_s
                best_cost = cost
    return best


def _central_region(
    image: np.ndarray, sigma: np.ndarray, pixel_arcsec: float, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smallest centred square crop (same parity, so the same centre) holding the circle of radius
    ``radius_arcsec``, of image and sigma, and the mask of its pixels inside the circle."""
    npix = image.shape[-1]
    trim = max(0, (npix - 2 * int(np.ceil(radius_arcsec / pixel_arcsec)) - 2) // 2)
    image, sigma = (
        image[trim : npix - trim, trim : npix - trim],
        sigma[trim : npix - trim, trim : npix - trim],
    )
    centres = (np.arange(image.shape[-1]) + 0.5 - image.shape[-1] / 2) * pixel_arcsec
    inside = (centres[None, :] ** 2 + centres[:, None] ** 2) <= radius_arcsec**2
    if not inside.any():
        raise ValueError(f"no pixel centre lies within radius_arcsec={radius_arcsec} of the map centre")
    return image, sigma, inside


def _shapes_from_vector(p: np.ndarray) -> tuple[SersicShape, SersicShape]:
    x0, y0 = float(p[0]), float(p[1])
    return (
        SersicShape(x0, y0, float(np.exp(p[2])), float(p[3]), float(p[4]), float(p[5])),
        SersicShape(x0, y0, float(np.exp(p[6])), float(p[7]), float(p[8]), float(p[9])),
    )


def _check_shape(shape: SersicShape) -> None:
    if not (shape.r_eff_arcsec > 0 and shape.n > 0 and 0 < shape.q <= 1):
        raise ValueError(f"invalid Sérsic shape {shape}: need r_eff_arcsec > 0, n > 0, 0 < q <= 1")

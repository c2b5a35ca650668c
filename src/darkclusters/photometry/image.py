"""Image formation on the map grid: nearest-pixel binning of star light, the PSF, and sky noise.

Conventions of :mod:`darkclusters.projection.geometry`: images are ``(B, H, W)`` (band, row = y, col = x),
x grows to the right with the column and y up with the row, and the map centre is the cluster centre. A
star at sky position (x, y) [arcsec] lands in column ⌊x/p + W/2⌋ and row ⌊y/p + H/2⌋ for pixel side p
(paper App. A.1: "we just bin each particle to its nearest pixel"; no kernel smoothing, unlike the mass maps).

PSF: a circular Gaussian, exp(−r²/2σ²) with σ = FWHM/(2√(2 ln 2)), or Moffat (1969), (1 + r²/α²)^(−β) with
α = FWHM / (2√(2^{1/β} − 1)); integrated over pixels on a sub-grid fine enough to resolve the FWHM, cut at
``radius_fwhm`` × FWHM (at least one pixel) and normalised to unit sum, so convolution conserves the flux of
sources whose light stays on the map (:func:`psf_kernel`, :func:`convolve_psf`).

Noise: background-limited white Gaussian noise. A depth m_lim at n_σ in a circular aperture of diameter d
means σ_ap = f_lim / n_σ with f_lim = 3631 Jy · 10^(−0.4 m_lim); with independent pixels the per-pixel σ is
σ_ap · √(A_pixel / A_ap), A_ap = π d²/4 (:func:`noise_sigma_jy`). Correlated (drizzle) noise is not modelled.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

from darkclusters.photometry.filters import abmag_to_jy
from darkclusters.projection.geometry import MapGeometry

__all__ = ["add_noise", "bin_to_pixels", "convolve_psf", "noise_sigma_jy", "psf_kernel"]

_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def bin_to_pixels(
    x_arcsec: np.ndarray, y_arcsec: np.ndarray, flux: np.ndarray, geometry: MapGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """Sum each source's flux into its nearest pixel (module docstring), per band.

    x_arcsec, y_arcsec: (N,) sky positions [arcsec] (x right, y up, map centre at 0). flux: (N, B) per band.
    Sources off the map are dropped. Returns (image, variance), each (B, H, W) float64: the summed flux and
    the sum of squared fluxes per pixel (the shot-noise variance of a sum of discrete sources).
    """
    x = np.asarray(x_arcsec, dtype=np.float64)
    y = np.asarray(y_arcsec, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    if x.ndim != 1 or y.shape != x.shape or flux.ndim != 2 or len(flux) != len(x):
        raise ValueError(f"need x, y of shape (N,) and flux (N, B), got {x.shape}, {y.shape}, {flux.shape}")
    n = geometry.npix
    row, col, inside = geometry.pixel_index(x, y)
    index = row[inside] * n + col[inside]
    image = np.empty((flux.shape[1], n, n))
    variance = np.empty_like(image)
    for b in range(flux.shape[1]):
        f = flux[inside, b]
        image[b] = np.bincount(index, weights=f, minlength=n * n).reshape(n, n)
        variance[b] = np.bincount(index, weights=f * f, minlength=n * n).reshape(n, n)
    return image, variance


def psf_kernel(
    fwhm_arcsec: float,
    pixel_arcsec: float,
    *,
    profile: str = "moffat",
    moffat_beta: float = 2.5,
    radius_fwhm: float = 8.0,
) -> np.ndarray:
    """Pixel-integrated, unit-sum PSF kernel (K, K), K odd, centred on the middle pixel (module docstring).

    fwhm_arcsec: FWHM [arcsec] > 0. pixel_arcsec: pixel side [arcsec] > 0. profile: "moffat" or "gaussian".
    moffat_beta: β > 1. radius_fwhm: half-size of the kernel in FWHM (the kernel reaches at least one pixel).
    """
    if not fwhm_arcsec > 0 or not pixel_arcsec > 0:
        raise ValueError(f"fwhm_arcsec={fwhm_arcsec} and pixel_arcsec={pixel_arcsec} must be > 0")
    if profile not in ("moffat", "gaussian"):
        raise ValueError(f"profile={profile!r} must be 'moffat' or 'gaussian'")
    if profile == "moffat" and not moffat_beta > 1:
        raise ValueError(f"moffat_beta={moffat_beta} must be > 1")
    if not radius_fwhm > 0:
        raise ValueError(f"radius_fwhm={radius_fwhm} must be > 0")
    half = max(1, int(np.ceil(radius_fwhm * fwhm_arcsec / pixel_arcsec - 0.5)))
    size = 2 * half + 1
    sub = int(np.clip(np.ceil(4.0 * pixel_arcsec / fwhm_arcsec), 3, 64))  # ≥ 4 sub-pixels per FWHM
    t = ((np.arange(size * sub) + 0.5) / sub - size / 2) * pixel_arcsec  # sub-pixel centres [arcsec]
    r2 = t[None, :] ** 2 + t[:, None] ** 2
    if profile == "gaussian":
        values = np.exp(-0.5 * r2 / (fwhm_arcsec / _FWHM_PER_SIGMA) ** 2)
    else:
        alpha = fwhm_arcsec / (2.0 * np.sqrt(2.0 ** (1.0 / moffat_beta) - 1.0))
        values = (1.0 + r2 / alpha**2) ** (-moffat_beta)
    values[r2 > (half + 0.5) ** 2 * pixel_arcsec**2] = 0.0  # circular cut
    kernel = values.reshape(size, sub, size, sub).sum(axis=(1, 3))
    return kernel / kernel.sum()


def convolve_psf(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve (..., H, W) with a unit-sum kernel (K, K), K odd; output same shape, zero padding outside.

    Flux that the kernel spreads beyond the map edge is lost, as on a detector; flux is otherwise conserved.
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 != 1:
        raise ValueError(f"kernel must be square with an odd side, got {kernel.shape}")
    if kernel.shape == (1, 1):
        return image * kernel[0, 0]
    k = kernel.reshape((1,) * (image.ndim - 2) + kernel.shape)
    return fftconvolve(image, k, mode="same", axes=(-2, -1))


def noise_sigma_jy(
    depth_abmag: float, pixel_arcsec: float, *, n_sigma: float = 5.0, aperture_diameter_arcsec: float = 0.4
) -> float:
    """Per-pixel 1σ [Jy] of white sky noise for an n_σ point-source depth in an aperture (module doc)."""
    if not pixel_arcsec > 0 or not n_sigma > 0 or not aperture_diameter_arcsec > 0:
        raise ValueError("pixel_arcsec, n_sigma and aperture_diameter_arcsec must be > 0")
    sigma_aperture = float(abmag_to_jy(depth_abmag)) / n_sigma
    area_aperture = np.pi * aperture_diameter_arcsec**2 / 4.0
    return sigma_aperture * float(np.sqrt(pixel_arcsec**2 / area_aperture))


def add_noise(image: np.ndarray, sigma_jy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """image (B, H, W) plus Gaussian noise of per-band σ ``sigma_jy`` (B,) [Jy], drawn from ``rng``."""
    image = np.asarray(image, dtype=np.float64)
    sigma = np.asarray(sigma_jy, dtype=np.float64)
    if image.ndim != 3 or sigma.shape != (image.shape[0],) or np.any(sigma < 0):
        raise ValueError(f"need image (B, H, W) and sigma_jy (B,) >= 0, got {image.shape}, {sigma.shape}")
    return image + rng.normal(size=image.shape) * sigma[:, None, None]

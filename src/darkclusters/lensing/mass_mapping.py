"""Weak-lensing mass maps, the classical baselines: binned shear, Kaiser–Squires and a Wiener filter.

Maps are ``(..., H, W)`` indexed ``[row = y, col = x]`` with pixel (i, j) centred at ((j + ½ − W/2)·p,
(i + ½ − H/2)·p) [arcsec] (``darkclusters.projection.geometry``). Fourier conventions are numpy's unnormalised
``fft2``: f̂(k) = Σ_x f(x) e^{−2πi k·x}, so white noise of variance σ² per pixel has ⟨|n̂(k)|²⟩ = N_pix σ².

* :func:`bin_shear_catalog` averages a catalog's ellipticities per pixel, rescaled to the reference source
  redshift z_ref (inverse-variance weights r² for e/r, r = (D_ls/D_s)/(D_ls/D_s)_ref).
* :func:`kaiser_squires` is the KS inverse (Kaiser & Squires 1993) of ``operators.convergence_from_shear``,
  lenspack's ``ks93`` convention, zero mean.
* :func:`wiener_filter` weights the KS map by S/(S + N) per Fourier mode (e.g. Lanusse et al. 2016), with the
  signal power S(k) from :func:`measure_power_spectrum` on training κ maps at z_ref and the white shape-noise
  power N = N_pix σ_e² / (n_gal A_pix) of :func:`shear_noise_power`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from darkclusters.lensing.operators import check_pixel, convergence_from_shear

__all__ = [
    "bin_shear_catalog",
    "kaiser_squires",
    "measure_power_spectrum",
    "shear_noise_power",
    "wiener_filter",
]


def kaiser_squires(g1_map: Any, g2_map: Any, *, pad_factor: float = 1) -> tuple[Any, Any]:
    """Kaiser–Squires mass map (κE, κB) from gridded shear (g1, g2), each (..., H, W).

    κ̂E = (p1 ĝ1 + p2 ĝ2)/k², κ̂B = −(p2 ĝ1 − p1 ĝ2)/k², p1 = kx² − ky², p2 = 2 kx ky; zero mean (the
    mass-sheet degeneracy leaves the mean free). pad_factor 1 (default) is lenspack's periodic ``ks93``; > 1
    zero-pads the shear. Uses the reduced shear as an estimate of γ (g ≈ γ where κ ≪ 1). Returns maps with
    the inputs' shape and type (numpy or torch).
    """
    return convergence_from_shear(g1_map, g2_map, pad_factor=pad_factor)


def bin_shear_catalog(
    catalog: dict[str, Any], shape: tuple[int, int], pixel_arcsec: float, *, to_reference: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean shear per pixel of an (H, W) grid of side ``pixel_arcsec`` [arcsec] centred on the origin.

    catalog: ``x_arcsec``, ``y_arcsec``, ``e1``, ``e2`` (N,) and, for ``to_reference``, ``ratio_to_ref`` r
    (as written by ``weak.make_weak_lensing_catalog``). With ``to_reference`` each source's e/r estimates the
    shear at z_ref with noise σ_e/r, so the pixel value is the inverse-variance mean Σ r e / Σ r² and sources
    with r = 0 (in front of the lens) drop out; otherwise the plain mean of e. Sources outside the grid are
    ignored; empty pixels hold 0. The grid may be coarser than the κ map (e.g. a 4× binning).

    Returns (g1, g2, counts), each (H, W) float64: counts is the effective number of sources per pixel,
    Σ r² (the plain count without ``to_reference``), so that σ_e²/counts is each pixel's noise variance.
    """
    height, width = (int(n) for n in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape={shape} must hold two positive sizes (H, W)")
    pixel = check_pixel(pixel_arcsec)
    x = np.asarray(catalog["x_arcsec"], dtype=np.float64)
    y = np.asarray(catalog["y_arcsec"], dtype=np.float64)
    e1 = np.asarray(catalog["e1"], dtype=np.float64)
    e2 = np.asarray(catalog["e2"], dtype=np.float64)
    weight = np.asarray(catalog["ratio_to_ref"], dtype=np.float64) if to_reference else np.ones_like(x)
    col = np.floor(x / pixel + width / 2).astype(np.int64)
    row = np.floor(y / pixel + height / 2).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    index = (row * width + col)[inside]
    w = weight[inside]
    size = height * width
    # With to_reference: Σ r·e and Σ r² (estimator e/r with weight r²); otherwise Σ e and the count.
    norm = np.bincount(index, weights=w * w, minlength=size)
    sum1 = np.bincount(index, weights=w * e1[inside], minlength=size)
    sum2 = np.bincount(index, weights=w * e2[inside], minlength=size)
    filled = norm > 0
    safe = np.where(filled, norm, 1.0)
    g1 = np.where(filled, sum1 / safe, 0.0).reshape(height, width)
    g2 = np.where(filled, sum2 / safe, 0.0).reshape(height, width)
    return g1, g2, norm.reshape(height, width)


def measure_power_spectrum(kappa_maps: Any, *, isotropic: bool = True) -> np.ndarray:
    """Signal power S(k) = ⟨|fft2(κ − κ̄)|²⟩ over training maps, on numpy's (H, W) fft2 frequency grid.

    kappa_maps: (M, H, W) (or (..., H, W), all leading dimensions averaged) convergence maps at z_ref, each
    minus its mean. ``isotropic`` averages over annuli of |k| of width 1/max(H, W) cycles per pixel (κ of a
    cluster sample has no preferred direction), which removes most of the sampling noise of few maps.
    Returns (H, W) float64, unnormalised as numpy's fft2 (module docstring), S(0) = 0.
    """
    maps = np.asarray(kappa_maps, dtype=np.float64)
    if maps.ndim < 2 or maps.shape[-1] < 1 or maps.shape[-2] < 1:
        raise ValueError(f"kappa_maps must have shape (..., H, W); got {maps.shape}")
    height, width = maps.shape[-2:]
    maps = maps.reshape(-1, height, width)
    maps = maps - maps.mean(axis=(-2, -1), keepdims=True)
    power = np.mean(np.abs(np.fft.fft2(maps)) ** 2, axis=0)
    if not isotropic:
        return power
    k = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :])
    ring = np.rint(k * max(height, width)).astype(np.int64)
    totals = np.bincount(ring.ravel(), weights=power.ravel())
    counts = np.bincount(ring.ravel())
    return (totals / np.maximum(counts, 1))[ring]


def shear_noise_power(shape: tuple[int, int], sigma_e: float, galaxies_per_pixel: Any) -> float:
    """White shape-noise power N = N_pix σ_e² / n̄ of a binned shear map, in numpy's unnormalised fft2 units.

    n̄ = n_gal A_pix is the mean (effective) number of sources per pixel; pass a number, or the ``counts``
    map of :func:`bin_shear_catalog`, whose non-empty pixels give σ² as the mean of σ_e²/counts (empty pixels
    carry no noise). Each KS component (κE, κB) inherits the per-component noise power unchanged (|p|² = k⁴).
    """
    height, width = (int(n) for n in shape)
    sigma = float(sigma_e)
    if not sigma >= 0:
        raise ValueError(f"sigma_e={sigma_e} must be >= 0")
    counts = np.asarray(galaxies_per_pixel, dtype=np.float64)
    if counts.ndim == 0:
        if not counts > 0:
            raise ValueError(f"galaxies_per_pixel={galaxies_per_pixel} must be > 0")
        return height * width * sigma**2 / float(counts)
    filled = counts > 0
    if not filled.any():
        raise ValueError("galaxies_per_pixel has no non-empty pixel")
    return height * width * float(np.sum(sigma**2 / counts[filled])) / counts.size


def wiener_filter(g1_map: Any, g2_map: Any, signal_power: Any, noise_power: Any) -> np.ndarray:
    """Wiener-filtered convergence κ̂_WF = S/(S + N) · κ̂_KS, the minimum-variance linear estimate of κ
    for a Gaussian field of power S(k) in white noise of power N (e.g. Lanusse et al. 2016).

    g1_map, g2_map: (..., H, W) binned shear at z_ref (:func:`bin_shear_catalog`). signal_power: S(k) on the
    (H, W) fft2 grid (:func:`measure_power_spectrum`), noise_power: N, a number or (H, W)
    (:func:`shear_noise_power`), both in numpy's unnormalised fft2 units. Modes with S + N = 0 are set to 0
    by a mask. Returns the E-mode κ (..., H, W), zero mean, float64 numpy.
    """
    kappa_e, _ = kaiser_squires(np.asarray(g1_map, dtype=np.float64), np.asarray(g2_map, dtype=np.float64))
    signal = np.asarray(signal_power, dtype=np.float64)
    noise = np.asarray(noise_power, dtype=np.float64)
    if signal.shape != kappa_e.shape[-2:]:
        raise ValueError(f"signal_power {signal.shape} must match the map shape {kappa_e.shape[-2:]}")
    if np.any(signal < 0) or np.any(noise < 0):
        raise ValueError("signal_power and noise_power must be >= 0")
    total = signal + noise
    gain = np.where(total > 0, signal / np.where(total > 0, total, 1.0), 0.0)
    return np.fft.ifft2(np.fft.fft2(kappa_e) * gain).real

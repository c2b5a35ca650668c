"""Fourier-space and summary statistics of maps: P(k), cross-spectra, b(k), r(k), ρ_c(ℓ), PDF and peaks.

Implements Hsu et al. (seed 002, §4.3, eqs. 13–14): b(k) = √(P_gen/P_sim) and
r(k) = P_sim×gen / √(P_sim P_gen), with k in h/Mpc for maps with a pixel side in physical kpc, and the
small/large-scale split at k = 2 h/Mpc of their Table 1; and Boruah et al. (seed 001, §3.1): the
cross-correlation coefficient ρ_c(ℓ) of weak-lensing maps with a pixel side in arcmin, their power spectra,
one-point PDF and peak counts.

Normalisation (one convention for every spectrum here). For a map f of H×W pixels of side p (area A = HWp²),
f̂(k) = p² Σ_x f(x) e^{−ik·x} approximates the continuous Fourier transform and

    P_fg(k) = Re[f̂(k) ĝ*(k)] / A = p² Re[F(k) G*(k)] / (HW),   F = numpy's unnormalised fft2,

averaged over the modes in each |k| bin. White noise of variance σ² then has P(k) = σ²·p² at every k, and
Σ_k P(k)/A over all modes equals the map's mean square (Parseval). Wavenumbers are angular,
k = 2π/λ (numpy ``2π·fftfreq``). The k = 0 mode never enters a bin. Maps are treated as periodic (no
apodisation), as in the seed papers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "ARCMIN_PER_RAD",
    "angular_power_spectrum",
    "bias_and_correlation",
    "binned_cross_spectrum",
    "cross_correlation_ell",
    "cross_spectrum_hmpc",
    "default_k_edges",
    "one_point_pdf",
    "peak_counts",
    "power_spectrum_hmpc",
    "scale_split_means",
]

ARCMIN_PER_RAD = 180.0 * 60.0 / np.pi


def default_k_edges(shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """Linear |k| bins of width k_f = 2π/(n·p), n = min(H, W): edges (m + ½)·k_f for m = 0 … n/2.

    Bin m ≥ 1 is centred on m·k_f, the first excludes k = 0 and the last ends at the Nyquist k_N = π/p.
    pixel_size in any length unit; k in radians per that unit.
    """
    if pixel_size <= 0:
        raise ValueError(f"pixel_size={pixel_size} must be > 0")
    n = min(shape[-2:])
    k_f = 2.0 * np.pi / (n * pixel_size)
    return (np.arange(n // 2 + 1) + 0.5) * k_f


def binned_cross_spectrum(
    a: np.ndarray, b: np.ndarray, *, pixel_size: float, k_edges: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Azimuthally binned cross-spectrum P_ab(k) = p² Re[A(k) B*(k)]/(HW), mean over modes in each bin.

    a, b: ``(..., H, W)`` maps (``b = a`` gives the auto-spectrum); pixel_size: p in any length unit u.
    k_edges: increasing bin edges in rad/u (default :func:`default_k_edges`). Returns (k_mean ``(n,)``, the
    mean |k| of the modes in each bin; P ``(..., n)`` in [a]·[b]·u²; n_modes ``(n,)``). Bins without modes
    give NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"maps must share one (..., H, W) shape; got {a.shape} and {b.shape}")
    if pixel_size <= 0:
        raise ValueError(f"pixel_size={pixel_size} must be > 0")
    h, w = a.shape[-2:]
    edges = default_k_edges((h, w), pixel_size) if k_edges is None else np.asarray(k_edges, np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"k_edges={k_edges} must be increasing with >= 2 edges")
    ky = 2.0 * np.pi * np.fft.fftfreq(h, d=pixel_size)
    kx = 2.0 * np.pi * np.fft.fftfreq(w, d=pixel_size)
    kmag = np.hypot(ky[:, None], kx[None, :]).ravel()
    n = edges.size - 1
    idx = np.digitize(kmag, edges) - 1
    ok = (idx >= 0) & (idx < n) & (kmag > 0)
    idx = idx[ok]
    fa = np.fft.fft2(a)
    fb = fa if b is a else np.fft.fft2(b)
    power = (fa * np.conj(fb)).real * pixel_size**2 / (h * w)
    flat = power.reshape(-1, h * w)[:, ok]
    count = np.bincount(idx, minlength=n).astype(np.float64)
    sums = np.stack([np.bincount(idx, weights=row, minlength=n) for row in flat])
    with np.errstate(invalid="ignore", divide="ignore"):
        k_mean = np.bincount(idx, weights=kmag[ok], minlength=n) / count
        spec = sums / count
    return k_mean, spec.reshape(*a.shape[:-2], n), count


def _pixel_mpc_h(pixel_kpc: float, h: float) -> float:
    if pixel_kpc <= 0:
        raise ValueError(f"pixel_kpc={pixel_kpc} must be > 0")
    if not 0 < h < 2:
        raise ValueError(f"h={h} must be the dimensionless Hubble parameter (0 < h < 2)")
    return pixel_kpc * 1e-3 * h  # physical kpc → Mpc/h


def power_spectrum_hmpc(
    sigma: np.ndarray, *, pixel_kpc: float, h: float, k_edges: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """P(k) of a map with pixel side ``pixel_kpc`` (physical kpc): k in h/Mpc, P in [map]²·(Mpc/h)².

    sigma: ``(..., H, W)``; h: H0/(100 km/s/Mpc); k_edges in h/Mpc. Returns (k ``(n,)``, P ``(..., n)``).
    """
    k, p, _ = binned_cross_spectrum(sigma, sigma, pixel_size=_pixel_mpc_h(pixel_kpc, h), k_edges=k_edges)
    return k, p


def cross_spectrum_hmpc(
    a: np.ndarray, b: np.ndarray, *, pixel_kpc: float, h: float, k_edges: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-spectrum P_ab(k) of two maps, k in h/Mpc (as :func:`power_spectrum_hmpc`)."""
    k, p, _ = binned_cross_spectrum(a, b, pixel_size=_pixel_mpc_h(pixel_kpc, h), k_edges=k_edges)
    return k, p


def bias_and_correlation(
    generated: np.ndarray,
    simulated: np.ndarray,
    *,
    pixel_kpc: float,
    h: float,
    k_edges: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bias b(k) = √(P_gen/P_sim) and correlation r(k) = P_sim×gen/√(P_sim P_gen) (seed 002, eqs. 13–14).

    generated, simulated: ``(..., H, W)`` maps on one grid (pixel side ``pixel_kpc``, physical kpc), broadcast
    against each other (e.g. S samples ``(S, H, W)`` against one truth ``(H, W)``); each leading index is
    scored on its own. Returns (k ``(n,)`` in h/Mpc, b ``(..., n)``, r ``(..., n)``).
    """
    shape = np.broadcast_shapes(np.shape(generated), np.shape(simulated))
    generated, simulated = np.broadcast_to(generated, shape), np.broadcast_to(simulated, shape)
    p_mpc = _pixel_mpc_h(pixel_kpc, h)
    k, p_gen, _ = binned_cross_spectrum(generated, generated, pixel_size=p_mpc, k_edges=k_edges)
    _, p_sim, _ = binned_cross_spectrum(simulated, simulated, pixel_size=p_mpc, k_edges=k_edges)
    _, p_x, _ = binned_cross_spectrum(simulated, generated, pixel_size=p_mpc, k_edges=k_edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        return k, np.sqrt(p_gen / p_sim), p_x / np.sqrt(p_sim * p_gen)


def scale_split_means(
    k: np.ndarray, values: np.ndarray, *, k_split: float = 2.0
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """(small-scale, large-scale) means of a binned statistic: unweighted mean over bins with k ≥ k_split and
    over bins with k < k_split (seed 002, Table 1 uses k_split = 2 h/Mpc). NaN bins are ignored.

    k: ``(n,)``; values: ``(..., n)``. Returns two arrays of shape ``(...)`` (floats for one map).
    """
    k = np.asarray(k, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape[-1] != k.size:
        raise ValueError(f"values last axis {vals.shape[-1]} != number of k bins {k.size}")
    small, large = k >= k_split, k < k_split
    if not small.any() or not large.any():
        raise ValueError(f"k_split={k_split} leaves no bin on one side of k in [{k.min()}, {k.max()}]")
    out = np.nanmean(vals[..., small], axis=-1), np.nanmean(vals[..., large], axis=-1)
    return tuple(float(o) if o.ndim == 0 else o for o in out)  # type: ignore[return-value]


def angular_power_spectrum(
    kappa: np.ndarray, *, pixel_arcmin: float, ell_edges: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Flat-sky C_ℓ of a map with pixel side ``pixel_arcmin``: ℓ = |k| in rad⁻¹, C_ℓ in [map]²·sr.

    kappa: ``(..., H, W)``. Returns (ℓ ``(n,)``, C_ℓ ``(..., n)``); white noise of variance σ² has
    C_ℓ = σ²·Ω_pix.
    """
    if pixel_arcmin <= 0:
        raise ValueError(f"pixel_arcmin={pixel_arcmin} must be > 0")
    ell, c, _ = binned_cross_spectrum(
        kappa, kappa, pixel_size=pixel_arcmin / ARCMIN_PER_RAD, k_edges=ell_edges
    )
    return ell, c


def cross_correlation_ell(
    a: np.ndarray, b: np.ndarray, *, pixel_arcmin: float, ell_edges: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """ρ_c(ℓ) = C_ab(ℓ)/√(C_aa(ℓ) C_bb(ℓ)) of two maps (Boruah et al., seed 001, §3.1, Fig. 2).

    a, b: ``(..., H, W)`` with pixel side ``pixel_arcmin``. Returns (ℓ ``(n,)``, ρ_c ``(..., n)``).
    """
    if pixel_arcmin <= 0:
        raise ValueError(f"pixel_arcmin={pixel_arcmin} must be > 0")
    p = pixel_arcmin / ARCMIN_PER_RAD
    ell, c_ab, _ = binned_cross_spectrum(a, b, pixel_size=p, k_edges=ell_edges)
    _, c_aa, _ = binned_cross_spectrum(a, a, pixel_size=p, k_edges=ell_edges)
    _, c_bb, _ = binned_cross_spectrum(b, b, pixel_size=p, k_edges=ell_edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ell, c_ab / np.sqrt(c_aa * c_bb)


def _smooth(maps: np.ndarray, smoothing_pixels: float) -> np.ndarray:
    if smoothing_pixels < 0:
        raise ValueError(f"smoothing_pixels={smoothing_pixels} must be >= 0")
    if smoothing_pixels == 0:
        return maps
    sig = (0.0,) * (maps.ndim - 2) + (smoothing_pixels, smoothing_pixels)
    return ndimage.gaussian_filter(maps, sigma=sig, mode="wrap")


def one_point_pdf(
    kappa: np.ndarray, *, bin_edges: Sequence[float], smoothing_pixels: float = 0.0
) -> np.ndarray:
    """Normalised histogram (probability density) of pixel values, after an optional Gaussian smoothing of
    standard deviation ``smoothing_pixels`` (periodic), as the one-point PDF of seed 001, Fig. 2.

    kappa: ``(..., H, W)``; all leading maps are pooled. Returns ``(n,)`` densities over ``bin_edges``
    (values outside the edges are dropped, so the densities integrate to the fraction inside).
    """
    vals = _smooth(np.asarray(kappa, dtype=np.float64), smoothing_pixels)
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bin_edges={bin_edges} must be increasing with >= 2 edges")
    counts, _ = np.histogram(vals, bins=edges)
    return counts / (vals.size * np.diff(edges))


def peak_counts(
    kappa: np.ndarray,
    *,
    bin_edges: Sequence[float],
    smoothing_pixels: float = 0.0,
    noise_sigma: float | None = None,
) -> np.ndarray:
    """Histogram of peak heights: a peak is a pixel strictly above its 8 neighbours (not on the map border).

    Heights are in the map unit, or in signal-to-noise ν = value/noise_sigma when ``noise_sigma`` is given
    (the usual weak-lensing peak statistic, seed 001, Fig. 2). kappa: ``(..., H, W)``, each map smoothed by a
    Gaussian of ``smoothing_pixels`` first; counts are summed over leading maps. Returns ``(n,)`` counts.
    """
    maps = _smooth(np.asarray(kappa, dtype=np.float64), smoothing_pixels)
    if maps.ndim < 2 or min(maps.shape[-2:]) < 3:
        raise ValueError(f"maps must be (..., H, W) with H, W >= 3; got {maps.shape}")
    if noise_sigma is not None:
        if noise_sigma <= 0:
            raise ValueError(f"noise_sigma={noise_sigma} must be > 0")
        maps = maps / noise_sigma
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bin_edges={bin_edges} must be increasing with >= 2 edges")
    centre = maps[..., 1:-1, 1:-1]
    is_peak = np.ones(centre.shape, bool)
    h, w = maps.shape[-2:]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_peak &= centre > maps[..., 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
    counts, _ = np.histogram(centre[is_peak], bins=edges)
    return counts

"""Eight rest-frame magnitudes → an SED per star particle → observed HST band fluxes in Jy.

The paper (App. A.1) converts each star particle's ``GFM_StellarPhotometrics`` to Jy "accounting for dust
attenuation and redshift" through the HST filter curves. This module owns that conversion:

1. Vega → AB for TNG's U, B, V, K (Blanton & Roweis 2007, AJ 133, 734, Table 1): m_AB = m_Vega + Δ with
   Δ = +0.79 (U), −0.09 (B), +0.02 (V), +1.85 (K); g, r, i, z are already AB (:func:`tng_magnitudes_to_ab`).
2. SED: the absolute AB magnitude M_k of band k is the f_ν at 10 pc at its pivot wavelength λ_k,
   F_k = 3631 Jy · 10^(−0.4 M_k). ln f_ν is interpolated linearly in ln λ between the eight knots (a
   piecewise power law f_ν ∝ λ^α), and the two end segments are extended as power laws: blueward of U with the
   U–B slope, redward of K with the z–K slope. f_ν = 0 below the Lyman limit, 912 Å (:func:`log_sed_weights`).
   The z–K gap (8950–21600 Å, where F125W falls at z < 0.4) holds the near-infrared bump of cool stars that a
   straight chord misses by ~0.15–0.2 mag; there the SED adds δ(λ), the offset of a 10-Gyr, Z = 0.02 BC03 SSP
   (as in :mod:`darkclusters.photometry.ssp`, smoothed by σ = 0.03 in ln λ) from its own z–K chord, 0 at both
   knots and ≈ −0.2 to −0.36 mag between (:func:`nir_shape_correction_mag`). This is one fixed shape, so
   the SED stays linear in the eight magnitudes.
3. Dust: f_ν(λ) e^{−τ_λ} in the rest frame (:mod:`darkclusters.photometry.dust`).
4. Redshift: a source at redshift z and luminosity distance D_L seen at observed wavelength λ_o has
       f_ν,obs(λ_o) = (1 + z) (10 pc / D_L)² f_ν,10pc(λ_o / (1 + z))
   (Hogg et al. 2002, astro-ph/0210394, eq. 4 with L_ν = 4π (10 pc)² f_ν,10pc: the (1+z) is the compression
   of the emitted frequency interval; for z = 0 and D_L = 10 pc this is the absolute magnitude itself).
5. Band average of a photon-counting detector with throughput T (Fukugita et al. 1996):
       ⟨f_ν⟩ = ∫ f_ν,obs(λ_o) T(λ_o) dλ_o/λ_o / ∫ T dλ_o/λ_o,
   evaluated on ``n_wavelengths`` points uniform in ln λ over the band's support (trapezoid rule).

Vectorised: ln f_ν on every band's grid is one matrix product (N, 8) @ (8, G) of the magnitudes with fixed
interpolation weights, so a million stars take 1–2 s on one core (no per-particle loop).
Accuracy, measured against full BC03 SSP spectra (ages 0.1–10 Gyr, Z = 0.004 and 0.02) redshifted through the
HST curves: |Δm| ≤ 0.11 mag in all three bands at z = 0.2 and 0.5 and in F125W and F814W at z = 1; F606W at
z = 1 samples 2350–3750 Å rest, blueward of U, where the extrapolation errs by up to 0.09 mag for old and
0.29 mag for 0.1-Gyr populations. The Sun's spectrum (sedpy's Kurucz model) through its eight bands gives
F125W, F606W, F814W to within 0.03 mag of its direct integration.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from darkclusters.photometry.dust import optical_depth
from darkclusters.photometry.filters import AB_ZERO_POINT_JY, HST_BANDS, REST_BANDS, passband

__all__ = [
    "LYMAN_LIMIT_AA",
    "VEGA_TO_AB",
    "band_fluxes_jy",
    "log_sed_weights",
    "nir_shape_correction_mag",
    "rest_frame_knots_aa",
    "sed_fnu_jy",
    "tng_magnitudes_to_ab",
]

#: m_AB − m_Vega of TNG's (U, B, V, K, g, r, i, z) (Blanton & Roweis 2007, Table 1; g, r, i, z are AB).
VEGA_TO_AB = np.array([0.79, -0.09, 0.02, 1.85, 0.0, 0.0, 0.0, 0.0])
#: Hydrogen ionisation edge [Å]: no stellar flux escapes blueward of it.
LYMAN_LIMIT_AA = 911.8
# δ(λ) [mag] on 17 points uniform in ln λ from the z to the K knot (module docstring, step 2).
_NIR_DELTA_MAG = (
    0.0, -0.093, -0.161, -0.198, -0.192, -0.199, -0.212, -0.217, -0.206,
    -0.231, -0.306, -0.356, -0.337, -0.233, -0.137, -0.061, 0.0,
)  # fmt: skip
_LN_AB = np.log(AB_ZERO_POINT_JY)
_MAG_TO_LN = -0.4 * np.log(10.0)


def tng_magnitudes_to_ab(mag: np.ndarray) -> np.ndarray:
    """TNG GFM_StellarPhotometrics (..., 8) (U, B, V, K Vega; g, r, i, z AB) → all-AB magnitudes (..., 8)."""
    mag = np.asarray(mag, dtype=np.float64)
    if mag.shape[-1:] != (8,):
        raise ValueError(f"mag must have 8 columns (U, B, V, K, g, r, i, z), got shape {mag.shape}")
    return mag + VEGA_TO_AB


@cache
def rest_frame_knots_aa() -> np.ndarray:
    """Pivot wavelengths [Å] (8,) of the rest-frame bands, in :data:`REST_BANDS` order (U, B, V, K, g, r, i,
    z)."""
    knots = np.array([passband(b).pivot_aa for b in REST_BANDS])
    knots.setflags(write=False)
    return knots


def log_sed_weights(wavelength_rest_aa: np.ndarray) -> np.ndarray:
    """Weights W (8, G) with ln f_ν(λ_g) = Σ_k W[k, g] ln F_k for the eight knots in REST_BANDS order.

    Linear interpolation in ln λ between neighbouring knots (sorted by wavelength), linear extrapolation of
    the first (U–B) and last (z–K) segments; each column sums to 1.
    wavelength_rest_aa: (G,) rest wavelengths [Å] > 0.
    """
    lam = np.asarray(wavelength_rest_aa, dtype=np.float64)
    if lam.ndim != 1 or np.any(lam <= 0):
        raise ValueError("wavelength_rest_aa must be 1-D and > 0")
    knots = rest_frame_knots_aa()
    order = np.argsort(knots)
    x = np.log(knots[order])
    t = np.log(lam)
    seg = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
    u = (t - x[seg]) / (x[seg + 1] - x[seg])  # < 0 or > 1 on the extrapolated ends
    weights = np.zeros((8, len(lam)))
    cols = np.arange(len(lam))
    weights[order[seg], cols] = 1.0 - u
    weights[order[seg + 1], cols] = u
    return weights


def sed_fnu_jy(abs_mag_ab: np.ndarray, wavelength_rest_aa: np.ndarray) -> np.ndarray:
    """Rest-frame f_ν [Jy] at 10 pc of the piecewise power-law SED (module docstring, step 2).

    abs_mag_ab: (N, 8) absolute AB magnitudes (U, B, V, K, g, r, i, z). wavelength_rest_aa: (G,) [Å].
    Returns (N, G); zero below the Lyman limit.
    """
    mags = _check_mags(abs_mag_ab)
    lam = np.asarray(wavelength_rest_aa, dtype=np.float64)
    fnu = np.exp(_LN_AB + _MAG_TO_LN * (mags @ log_sed_weights(lam) + nir_shape_correction_mag(lam)))
    return np.where(lam >= LYMAN_LIMIT_AA, fnu, 0.0)


def nir_shape_correction_mag(wavelength_rest_aa: np.ndarray) -> np.ndarray:
    """δ(λ) [mag] added to the interpolated SED between the z and K knots, 0 outside (module docstring).

    wavelength_rest_aa: (G,) rest wavelengths [Å]. Returns (G,) magnitude offsets (negative: brighter).
    """
    lam = np.asarray(wavelength_rest_aa, dtype=np.float64)
    knots = rest_frame_knots_aa()
    lo, hi = np.log(knots[REST_BANDS.index("z")]), np.log(knots[REST_BANDS.index("K")])
    nodes = np.linspace(lo, hi, len(_NIR_DELTA_MAG))
    return np.interp(np.log(lam), nodes, _NIR_DELTA_MAG, left=0.0, right=0.0)


def band_fluxes_jy(
    abs_mag_ab: np.ndarray,
    *,
    redshift: float,
    luminosity_distance_mpc: float,
    bands: tuple[str, ...] = HST_BANDS,
    tau_v: np.ndarray | None = None,
    dust_exponent: float = -0.7,
    n_wavelengths: int = 64,
    chunk: int = 16384,
) -> np.ndarray:
    """Observed band-averaged f_ν [Jy] of each star in each band (module docstring, steps 2–5).

    abs_mag_ab: (N, 8) rest-frame absolute AB magnitudes (U, B, V, K, g, r, i, z), dust-free.
    redshift: z >= 0 of the source. luminosity_distance_mpc: D_L [Mpc] > 0 (1e-5 Mpc = 10 pc with z = 0
    returns the absolute magnitudes' fluxes). bands: names known to :func:`passband`.
    tau_v: (N,) rest-frame V-band optical depths, or None for no dust; τ_λ = τ_V (λ/5500 Å)^dust_exponent.
    n_wavelengths: integration points per band (uniform in ln λ); chunk: stars per matrix product.
    Returns (N, len(bands)) float64 [Jy].
    """
    mags = _check_mags(abs_mag_ab)
    if not np.isfinite(redshift) or redshift < 0:
        raise ValueError(f"redshift={redshift} must be finite and >= 0")
    if not np.isfinite(luminosity_distance_mpc) or luminosity_distance_mpc <= 0:
        raise ValueError(f"luminosity_distance_mpc={luminosity_distance_mpc} must be finite and > 0")
    if n_wavelengths < 8:
        raise ValueError(f"n_wavelengths={n_wavelengths} must be >= 8")
    if chunk < 1:
        raise ValueError(f"chunk={chunk} must be >= 1")
    if tau_v is not None:
        tau_v = np.asarray(tau_v, dtype=np.float64)
        if tau_v.shape != (len(mags),) or np.any(tau_v < 0):
            raise ValueError(f"tau_v must have shape ({len(mags)},) and be >= 0, got {tau_v.shape}")
    weights, offset, lam_rest, quad = _band_grids(tuple(bands), float(redshift), int(n_wavelengths))
    kappa = optical_depth(lam_rest, 1.0, dust_exponent)  # (B·G,) τ_λ per unit τ_V
    scale = (1.0 + redshift) * (1e-5 / luminosity_distance_mpc) ** 2  # (1+z) (10 pc / D_L)²
    out = np.empty((len(mags), len(bands)))
    for start in range(0, len(mags), chunk):
        stop = min(start + chunk, len(mags))
        log_f = mags[start:stop] @ weights  # (n, B·G): −0.4 ln10 × interpolated magnitude
        log_f += offset
        if tau_v is not None:
            log_f -= tau_v[start:stop, None] * kappa[None, :]
        np.exp(log_f, out=log_f)
        out[start:stop] = log_f @ quad  # block-diagonal quadrature: one column per band
    return out * scale


@cache
def _band_grids(
    bands: tuple[str, ...], redshift: float, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed arrays of :func:`band_fluxes_jy` for B bands on n observed wavelengths each (uniform in ln λ over
    the band's support, shifted to the rest frame): the magnitude weights −0.4 ln10 W (8, B·n), the constant
    ln 3631 − 0.4 ln10 δ (B·n,), the rest wavelengths (B·n,) [Å] and the block-diagonal quadrature (B·n, B)
    holding T dlnλ / ∫ T dlnλ (trapezoid rule; zero below the Lyman limit)."""
    lam_rest = []
    quad = np.zeros((len(bands) * n, len(bands)))
    for b, name in enumerate(bands):
        band = passband(name)
        lo, hi = band.support_aa()
        lam_obs = np.exp(np.linspace(np.log(lo), np.log(hi), n))
        w = np.interp(lam_obs, band.wavelength_aa, band.transmission, left=0.0, right=0.0)
        w[[0, -1]] *= 0.5  # trapezoid end points on the uniform ln λ grid
        quad[b * n : (b + 1) * n, b] = w / w.sum()
        lam_rest.append(lam_obs / (1.0 + redshift))
    lam = np.concatenate(lam_rest)
    quad[lam < LYMAN_LIMIT_AA] = 0.0
    offset = _LN_AB + _MAG_TO_LN * nir_shape_correction_mag(lam)
    return _MAG_TO_LN * log_sed_weights(lam), offset, lam, quad


def _check_mags(abs_mag_ab: np.ndarray) -> np.ndarray:
    mags = np.asarray(abs_mag_ab, dtype=np.float64)
    if mags.ndim != 2 or mags.shape[1] != 8:
        raise ValueError(f"abs_mag_ab must have shape (N, 8), got {mags.shape}")
    if not np.all(np.isfinite(mags)):
        raise ValueError("abs_mag_ab must be finite (drop wind-phase cells and stars without photometry)")
    return mags

"""Filter curves, pivot wavelengths and AB zero points of the HST and rest-frame bands.

Owns the passbands the photometry stage integrates through, all read from the curves shipped with
``astro-sedpy`` (``sedpy.observate.load_filters``; wavelength in Å, total system throughput per photon):

* the three HST bands of the paper (§4.1, App. A.1): WFC3/IR F125W, ACS/WFC F606W, ACS/WFC F814W;
* the eight rest-frame bands of TNG's ``GFM_StellarPhotometrics`` (U, B, V, K, g, r, i, z). TNG used Buser
  U, B, V and Palomar K; sedpy ships the close Bessell U, B, V and 2MASS Ks curves, whose pivot wavelengths
  serve as the knots of the SED (:mod:`darkclusters.photometry.sed`).

AB magnitudes (Oke & Gunn 1983): m_AB = −2.5 log10(f_ν / 3631 Jy). The band-averaged f_ν of a photon-counting
detector with throughput T(λ) is ⟨f_ν⟩ = ∫ f_ν T dλ/λ / ∫ T dλ/λ, and its pivot wavelength
λ_p = [∫ T λ dλ / ∫ T dλ/λ]^½ (Tokunaga & Vacca 2005, eq. A11), the λ at which ⟨f_λ⟩ = ⟨f_ν⟩ c/λ_p².
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

__all__ = [
    "AB_ZERO_POINT_JY",
    "HST_BANDS",
    "REST_BANDS",
    "SEDPY_NAMES",
    "Passband",
    "abmag_to_jy",
    "jy_to_abmag",
    "passband",
    "pivot_wavelength_aa",
]

#: Flux density of an AB magnitude of zero [Jy] (Oke & Gunn 1983).
AB_ZERO_POINT_JY = 3631.0
#: The HST bands of the paper's images, in the order of the image channel axis.
HST_BANDS = ("F125W", "F606W", "F814W")
#: The bands of TNG's GFM_StellarPhotometrics, in its column order (U, B, V, K Vega; g, r, i, z AB).
REST_BANDS = ("U", "B", "V", "K", "g", "r", "i", "z")
#: sedpy filter names of every band this package knows.
SEDPY_NAMES: dict[str, str] = {
    "F125W": "wfc3_ir_f125w",
    "F606W": "acs_wfc_f606w",
    "F814W": "acs_wfc_f814w",
    "U": "bessell_U",
    "B": "bessell_B",
    "V": "bessell_V",
    "K": "twomass_Ks",
    "g": "sdss_g0",
    "r": "sdss_r0",
    "i": "sdss_i0",
    "z": "sdss_z0",
}


@dataclass(frozen=True, eq=False)
class Passband:
    """One filter: wavelengths [Å] (M,) ascending and total throughput T (M,) per photon, from sedpy.

    ``ab_minus_vega`` [mag] is m_AB − m_Vega of the band (from sedpy's STIS Vega spectrum);
    ``solar_abs_mag_ab`` [mag] the Sun's absolute AB magnitude in it (sedpy's Kurucz 1993 solar spectrum).
    """

    name: str
    sedpy_name: str
    wavelength_aa: np.ndarray
    transmission: np.ndarray
    ab_minus_vega: float
    solar_abs_mag_ab: float

    @property
    def pivot_aa(self) -> float:
        """Pivot wavelength λ_p [Å] (module docstring)."""
        return pivot_wavelength_aa(self.wavelength_aa, self.transmission)

    def support_aa(self, threshold: float = 1e-3) -> tuple[float, float]:
        """(λ_min, λ_max) [Å] where T exceeds ``threshold`` × max T: the range that carries the flux."""
        inside = self.wavelength_aa[self.transmission > threshold * self.transmission.max()]
        return float(inside.min()), float(inside.max())


def pivot_wavelength_aa(wavelength_aa: np.ndarray, transmission: np.ndarray) -> float:
    """Pivot wavelength λ_p = [∫ T λ dλ / ∫ T dλ/λ]^½ [Å] of a throughput curve T(λ) (Tokunaga & Vacca 2005).

    wavelength_aa: (M,) ascending [Å]; transmission: (M,) photon throughput (any normalisation).
    """
    lam = np.asarray(wavelength_aa, dtype=np.float64)
    t = np.asarray(transmission, dtype=np.float64)
    if lam.ndim != 1 or lam.shape != t.shape or len(lam) < 2 or np.any(np.diff(lam) <= 0):
        raise ValueError("wavelength_aa must be 1-D ascending and transmission of the same shape")
    return float(np.sqrt(np.trapezoid(t * lam, lam) / np.trapezoid(t / lam, lam)))


@cache
def passband(name: str) -> Passband:
    """The :class:`Passband` of a band name in :data:`SEDPY_NAMES` (e.g. ``"F814W"``, ``"K"``); cached."""
    if name not in SEDPY_NAMES:
        raise ValueError(f"unknown band {name!r} (known: {sorted(SEDPY_NAMES)})")
    # imported lazily: sedpy reads its Vega and Sun spectra on import
    from sedpy.observate import load_filters

    (flt,) = load_filters([SEDPY_NAMES[name]])
    lam = np.asarray(flt.wavelength, dtype=np.float64)
    t = np.asarray(flt.transmission, dtype=np.float64)
    lam.setflags(write=False)
    t.setflags(write=False)
    # sedpy's ab_to_vega is m_Vega − m_AB; we store m_AB − m_Vega
    return Passband(name, SEDPY_NAMES[name], lam, t, -float(flt.ab_to_vega), float(flt.solar_ab_mag))


def abmag_to_jy(mag_ab: np.ndarray | float) -> np.ndarray:
    """f_ν [Jy] = 3631 Jy · 10^(−0.4 m_AB); magnitudes of any shape."""
    return AB_ZERO_POINT_JY * 10.0 ** (-0.4 * np.asarray(mag_ab, dtype=np.float64))


def jy_to_abmag(flux_jy: np.ndarray | float) -> np.ndarray:
    """m_AB = −2.5 log10(f_ν / 3631 Jy); flux densities [Jy] > 0 of any shape (≤ 0 gives +inf or nan)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2.5 * np.log10(np.asarray(flux_jy, dtype=np.float64) / AB_ZERO_POINT_JY)

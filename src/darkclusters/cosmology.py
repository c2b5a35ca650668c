"""Cosmology helpers built on astropy: the simulations' cosmologies and conversions between time variables.

Lensing quantities (Σcr, D_ls/D_s, arcsec ↔ kpc) join this module with the lensing stage.
"""

from __future__ import annotations

import numpy as np
from astropy.cosmology import FlatLambdaCDM

__all__ = ["SIMBA_COSMOLOGY", "TNG_COSMOLOGY", "age_gyr_at_scale_factor", "flat_lcdm"]


def flat_lcdm(hubble_h: float, omega_m: float, omega_b: float | None = None) -> FlatLambdaCDM:
    """Flat ΛCDM with H0 = 100 h km/s/Mpc and matter density Ωm (baryons Ωb if given); CMB temperature 2.7255
    K."""
    if not 0 < hubble_h < 2:
        raise ValueError(f"hubble_h={hubble_h} is not a plausible dimensionless Hubble parameter")
    if not 0 < omega_m <= 1:
        raise ValueError(f"omega_m={omega_m} must lie in (0, 1]")
    return FlatLambdaCDM(H0=100.0 * hubble_h, Om0=omega_m, Ob0=omega_b, Tcmb0=2.7255)


#: Planck 2015 as used by IllustrisTNG (Ωm=0.3089, ΩΛ=0.6911, Ωb=0.0486, h=0.6774).
TNG_COSMOLOGY = flat_lcdm(0.6774, 0.3089, 0.0486)
#: SIMBA m100n1024 (Ωm=0.3, ΩΛ=0.7, Ωb=0.048, h=0.68).
SIMBA_COSMOLOGY = flat_lcdm(0.68, 0.3, 0.048)


def age_gyr_at_scale_factor(cosmology: FlatLambdaCDM, scale_factor: np.ndarray | float) -> np.ndarray:
    """Cosmic time [Gyr] at scale factor a (> 0), i.e. the age of the universe when a star with birth a
    formed.

    astropy integrates per element (seconds for 1e5 stars), so the age is tabulated once per cosmology on 4096
    points uniform in ln a over [1e-4, 1] and interpolated; the interpolation error is below 1e-5 Gyr for a >
    0.01.
    """
    a = np.asarray(scale_factor, dtype=np.float64)
    if np.any(a <= 0):
        raise ValueError("scale_factor must be > 0 (wind-phase cells with a <= 0 must be dropped first)")
    if np.any(a > 1.0 + 1e-12):
        raise ValueError("scale_factor must be <= 1")
    ln_a, age = _age_table(cosmology)
    return np.interp(np.log(np.maximum(a, _A_MIN)), ln_a, age)


_A_MIN = 1e-4


_AGE_TABLES: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _age_table(cosmology: FlatLambdaCDM) -> tuple[np.ndarray, np.ndarray]:
    """(ln a grid, age [Gyr]) for a cosmology, cached by its repr (astropy cosmologies are not hashable)."""
    key = repr(cosmology)
    if key not in _AGE_TABLES:
        ln_a = np.linspace(np.log(_A_MIN), 0.0, 4096)
        _AGE_TABLES[key] = (ln_a, np.asarray(cosmology.age(1.0 / np.exp(ln_a) - 1.0).to_value("Gyr")))
    return _AGE_TABLES[key]

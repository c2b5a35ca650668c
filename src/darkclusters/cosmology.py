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
    formed."""
    a = np.asarray(scale_factor, dtype=np.float64)
    if np.any(a <= 0):
        raise ValueError("scale_factor must be > 0 (wind-phase cells with a <= 0 must be dropped first)")
    return np.asarray(cosmology.age(1.0 / a - 1.0).to_value("Gyr"))

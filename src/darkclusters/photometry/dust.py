"""Dust attenuation of star particles: the age-dependent two-component screen of Charlot & Fall (2000).

Neither TNG's ``GFM_StellarPhotometrics`` nor the SSP table of :mod:`darkclusters.photometry.ssp` include
dust. The paper (App. A.1) attenuates the binned light without naming a model. We use Charlot & Fall (2000,
ApJ 539, 718), the unresolved part of the dust model Nelson et al. (2018, MNRAS 475, 624) apply to TNG:

    τ_λ = τ_V (λ / 5500 Å)^n,  n = −0.7,   τ_V = τ_V,ISM + τ_V,BC · [age < t_BC],

the diffuse ISM attenuating every star and the birth cloud only stars younger than t_BC = 10 Myr.
Charlot & Fall's fiducial values are τ_V = 1.0 for young stars with a fraction μ = 0.3 in the ISM, i.e.
τ_V,ISM = 0.3 and τ_V,BC = 0.7. The attenuation acts in the rest frame of the emitting star:
f_ν → f_ν e^{−τ_λ}. Cluster members are mostly gas-poor early types, so the ISM term is an upper bound; it is
set in the config.
"""

from __future__ import annotations

import numpy as np

__all__ = ["V_BAND_WAVELENGTH_AA", "charlot_fall_tau_v", "optical_depth"]

#: Reference wavelength of τ_V [Å] (Charlot & Fall 2000).
V_BAND_WAVELENGTH_AA = 5500.0


def charlot_fall_tau_v(
    age_gyr: np.ndarray,
    *,
    tau_v_ism: float = 0.3,
    tau_v_birth_cloud: float = 0.7,
    birth_cloud_age_gyr: float = 0.01,
) -> np.ndarray:
    """V-band optical depth of each star: τ_V,ISM + τ_V,BC for age < t_BC, else τ_V,ISM (Charlot & Fall 2000).

    age_gyr: (N,) stellar ages [Gyr] >= 0. tau_v_ism, tau_v_birth_cloud: optical depths >= 0.
    birth_cloud_age_gyr: t_BC [Gyr] >= 0. Returns (N,) float64.
    """
    age = np.asarray(age_gyr, dtype=np.float64)
    if np.any(age < 0):
        raise ValueError("age_gyr must be >= 0 everywhere")
    for name, value in [
        ("tau_v_ism", tau_v_ism),
        ("tau_v_birth_cloud", tau_v_birth_cloud),
        ("birth_cloud_age_gyr", birth_cloud_age_gyr),
    ]:
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name}={value} must be finite and >= 0")
    return tau_v_ism + tau_v_birth_cloud * (age < birth_cloud_age_gyr)


def optical_depth(wavelength_aa: np.ndarray, tau_v: np.ndarray | float, exponent: float = -0.7) -> np.ndarray:
    """τ_λ = τ_V (λ / 5500 Å)^exponent (Charlot & Fall 2000, exponent −0.7); broadcasts λ [Å] against τ_V."""
    lam = np.asarray(wavelength_aa, dtype=np.float64)
    if np.any(lam <= 0):
        raise ValueError("wavelength_aa must be > 0")
    return np.asarray(tau_v, dtype=np.float64) * (lam / V_BAND_WAVELENGTH_AA) ** exponent

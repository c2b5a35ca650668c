"""Cosmology helpers built on astropy: the simulations' cosmologies, conversions between time variables, and
the lensing distances (Σcr, D_ls/D_s, arcsec ↔ kpc) that turn angles and κ into physical units.
"""

from __future__ import annotations

import numpy as np
from astropy import constants as _const
from astropy import units as _units
from astropy.cosmology import FLRW, FlatLambdaCDM

from darkclusters.projection.geometry import kpc_per_arcsec

__all__ = [
    "SIMBA_COSMOLOGY",
    "TNG_COSMOLOGY",
    "age_gyr_at_scale_factor",
    "arcsec_to_kpc",
    "distance_ratio",
    "flat_lcdm",
    "kpc_to_arcsec",
    "sigma_crit_msun_kpc2",
]


def flat_lcdm(hubble_h: float, omega_m: float, omega_b: float | None = None) -> FlatLambdaCDM:
    """Flat ΛCDM with H0 = 100 h km/s/Mpc and matter density Ωm (baryons Ωb if given); CMB temperature 2.7255
    K."""
    if not 0 < hubble_h < 2:
        raise ValueError(f"hubble_h={hubble_h} is not a plausible dimensionless Hubble parameter")
    if not 0 < omega_m <= 1:
        raise ValueError(f"omega_m={omega_m} must lie in (0, 1]")
    if omega_b is None:  # astropy rejects Ob0=None: leave the baryon density unset
        return FlatLambdaCDM(H0=100.0 * hubble_h, Om0=omega_m, Tcmb0=2.7255)
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


# --- lensing distances -------------------------------------------------------------------------------------

#: c² / (4πG) in Msun/kpc: Σcr = C2_OVER_4PI_G · D_s / (D_l · D_ls) with distances in kpc.
C2_OVER_4PI_G_MSUN_PER_KPC = float(
    (_const.c**2 / (4.0 * np.pi * _const.G)).to_value(_units.Msun / _units.kpc)
)


def _lens_source_redshifts(z_lens: float, z_source: np.ndarray | float) -> tuple[float, np.ndarray]:
    """Validated (z_lens, z_source as a float64 array); raises ValueError naming the bad argument."""
    zl = float(z_lens)
    if not np.isfinite(zl) or zl <= 0:
        raise ValueError(f"z_lens={z_lens} must be a finite redshift > 0")
    zs = np.asarray(z_source, dtype=np.float64)
    if not np.all(np.isfinite(zs)) or np.any(zs < 0):
        raise ValueError("z_source must hold finite redshifts >= 0")
    return zl, zs


def _lensing_distances_kpc(
    cosmology: FLRW, zl: float, zs: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(D_l, D_s, D_ls, behind) [kpc]: D_ls = D_A(z_l, z_s) for sources behind the lens (z_s > z_l), or 0."""
    behind = zs > zl
    zs_safe = np.where(behind, zs, zl + 1.0)  # astropy's D_A(z1, z2) is only asked for z2 > z1
    d_l = float(cosmology.angular_diameter_distance(zl).to_value("kpc"))
    d_s = np.asarray(cosmology.angular_diameter_distance(zs_safe).to_value("kpc"))
    d_ls = np.asarray(cosmology.angular_diameter_distance(zl, zs_safe).to_value("kpc"))
    return d_l, d_s, np.where(behind, d_ls, 0.0), behind


def distance_ratio(cosmology: FLRW, z_lens: float, z_source: np.ndarray | float) -> np.ndarray | float:
    """Lensing efficiency D_ls / D_s of sources at ``z_source`` behind a lens at ``z_lens`` (dimensionless).

    κ and γ scale with it: a map made for z_ref rescales to z_s by (D_ls/D_s)(z_s) / (D_ls/D_s)(z_ref).
    Vectorised in z_source (float in, float out; array in, array out); 0 for z_s ≤ z_l (not lensed).
    D_ls = ``cosmology.angular_diameter_distance(z_l, z_s)`` (astropy ≥ 7; ``..._z1z2`` is deprecated).
    """
    zl, zs = _lens_source_redshifts(z_lens, z_source)
    _, d_s, d_ls, behind = _lensing_distances_kpc(cosmology, zl, zs)
    ratio = np.where(behind, d_ls / d_s, 0.0)
    return float(ratio) if ratio.ndim == 0 else ratio


def sigma_crit_msun_kpc2(cosmology: FLRW, z_lens: float, z_source: np.ndarray | float) -> np.ndarray | float:
    """Critical surface density Σcr = c² D_s / (4πG D_l D_ls) [physical Msun/kpc²], so that κ = Σ / Σcr.

    Distances are angular-diameter distances (D_ls from ``angular_diameter_distance(z_l, z_s)``). Vectorised
    in z_source (float in, float out); Σcr = +inf for z_s ≤ z_l, i.e. κ = 0 for sources in front of the lens.
    Raises ValueError for z_lens ≤ 0 or negative / non-finite z_source. Reference (FlatΛCDM H0=70, Ωm=0.3,
    z_l=0.439): z_s=1 → 2.898e9, z_s=2 → 2.105e9 Msun/kpc² (2.898e15, 2.105e15 Msun/Mpc²).
    """
    zl, zs = _lens_source_redshifts(z_lens, z_source)
    d_l, d_s, d_ls, behind = _lensing_distances_kpc(cosmology, zl, zs)
    safe_d_ls = np.where(behind, d_ls, 1.0)
    sigma = np.where(behind, C2_OVER_4PI_G_MSUN_PER_KPC * d_s / (d_l * safe_d_ls), np.inf)
    return float(sigma) if sigma.ndim == 0 else sigma


def arcsec_to_kpc(cosmology: FLRW, redshift: float, arcsec: np.ndarray | float) -> np.ndarray | float:
    """Physical kpc spanned by ``arcsec`` at ``redshift`` (``projection.geometry.kpc_per_arcsec``)."""
    return np.asarray(arcsec, dtype=np.float64) * kpc_per_arcsec(cosmology, redshift)


def kpc_to_arcsec(cosmology: FLRW, redshift: float, kpc: np.ndarray | float) -> np.ndarray | float:
    """Angle [arcsec] spanned by ``kpc`` physical kpc at ``redshift`` (inverse of :func:`arcsec_to_kpc`)."""
    return np.asarray(kpc, dtype=np.float64) / kpc_per_arcsec(cosmology, redshift)

"""Toy stellar populations for SYNTHETIC clusters: magnitudes, mass loss, birth times and metallicities.

Everything here is a deliberately simple, documented *toy* model used to give synthetic star particles
plausible-looking properties. It is NOT a stellar-population-synthesis code (no isochrones, no spectra, no
dust) and must never be used to interpret real data. It owns:

* :func:`toy_magnitudes` — rest-frame absolute magnitudes in the 8 bands of TNG's ``GFM_StellarPhotometrics``
  (U, B, V, K Vega; g, r, i, z AB) from a power-law mass-to-light ratio in age and metallicity;
* :func:`mass_loss_fraction` — the fraction of the initial mass returned to the ISM (Chabrier-IMF-like);
* :func:`sample_birth_times` — birth times from a truncated delayed-τ star-formation history;
* :func:`scale_factor_at_time` — cosmic time → scale factor for a given astropy cosmology;
* :func:`population_properties` — all of the above for a set of star particles;
* :func:`mean_log_metallicity`, :func:`particle_counts`, :func:`wind_cells` — galaxy metallicities, star
  particles per galaxy, and TNG-like wind-phase cells.

Metallicities are mass fractions M_Z/M with TNG's solar value Z_sun = 0.0127.
"""

from __future__ import annotations

import numpy as np
from astropy.cosmology import FLRW
from scipy.special import gammainc, gammaincinv

__all__ = [
    "BANDS",
    "SOLAR_ABS_MAG",
    "Z_SUN",
    "mass_loss_fraction",
    "mean_log_metallicity",
    "particle_counts",
    "population_properties",
    "sample_birth_times",
    "scale_factor_at_time",
    "toy_magnitudes",
    "wind_cells",
]

#: Band order of the (N, 8) magnitude arrays, as TNG's GFM_StellarPhotometrics.
BANDS = ("U", "B", "V", "K", "g", "r", "i", "z")
#: Absolute magnitudes of the Sun in BANDS (U,B,V,K Vega; g,r,i,z AB), Willmer (2018, ApJS 236, 47).
SOLAR_ABS_MAG = np.array([5.61, 5.48, 4.83, 3.28, 5.11, 4.65, 4.53, 4.50])
#: Solar metallicity (mass fraction) used by IllustrisTNG.
Z_SUN = 0.0127

# Toy mass-to-light ratios (Msun/Lsun per unit *initial* mass) of a 10-Gyr, solar-metallicity population,
# chosen to give the colours of old cluster ellipticals: U-B ≈ 0.5, B-V ≈ 0.95, V-K ≈ 3.2 (Vega);
# g-r ≈ 0.75, r-i ≈ 0.4, i-z ≈ 0.35 (AB).
_ML_REF = np.array([9.3, 6.6, 5.0, 1.09, 5.24, 4.01, 3.10, 2.31])
# Power-law slopes d ln(M/L) / d ln(age): blue bands fade fastest, so young populations are blue.
_ML_AGE_SLOPE = np.array([1.2, 1.0, 0.8, 0.55, 0.95, 0.8, 0.72, 0.65])
# Power-law slopes d ln(M/L) / d ln(Z): metal-rich populations are redder (line blanketing).
_ML_Z_SLOPE = np.array([0.45, 0.35, 0.25, 0.05, 0.32, 0.22, 0.17, 0.13])
_AGE_REF_GYR = 10.0
_AGE_RANGE_GYR = (1e-3, 20.0)
_Z_RANGE = (1e-4, 0.1)


def toy_magnitudes(initial_mass_msun: np.ndarray, age_gyr: np.ndarray, metallicity: np.ndarray) -> np.ndarray:
    """Toy rest-frame absolute magnitudes of simple stellar populations (SYNTHETIC data only, not an SPS).

    L_band = M_init / (M/L)_band with (M/L)_band = (M/L)_ref,band (age / 10 Gyr)^γ_band (Z / Z_sun)^ζ_band
    and M_band = M_sun,band − 2.5 log10(L_band / L_sun); age is clipped to [1 Myr, 20 Gyr], Z to [1e-4, 0.1].
    γ is largest in the blue bands, so young populations are blue; ζ > 0 makes metal-rich ones redder.

    initial_mass_msun: (N,) initial stellar masses [Msun], > 0. age_gyr: (N,) ages [Gyr], > 0.
    metallicity: (N,) mass fractions M_Z/M, >= 0. Returns (N, 8) float32 magnitudes in :data:`BANDS` order.
    """
    mass = np.asarray(initial_mass_msun, dtype=np.float64)
    age = np.asarray(age_gyr, dtype=np.float64)
    z = np.asarray(metallicity, dtype=np.float64)
    if mass.ndim != 1 or age.shape != mass.shape or z.shape != mass.shape:
        raise ValueError(
            f"initial_mass_msun, age_gyr, metallicity must be 1-D of equal length, got shapes "
            f"{mass.shape}, {age.shape}, {z.shape}"
        )
    if not np.all(mass > 0):
        raise ValueError("initial_mass_msun must be > 0 everywhere")
    if not np.all(age > 0):
        raise ValueError("age_gyr must be > 0 everywhere")
    if not np.all(z >= 0):
        raise ValueError("metallicity must be >= 0 everywhere")
    log_age = np.log10(np.clip(age, *_AGE_RANGE_GYR) / _AGE_REF_GYR)
    log_z = np.log10(np.clip(z, *_Z_RANGE) / Z_SUN)
    log_ml = np.log10(_ML_REF) + np.outer(log_age, _ML_AGE_SLOPE) + np.outer(log_z, _ML_Z_SLOPE)
    log_lum = np.log10(mass)[:, None] - log_ml
    return (SOLAR_ABS_MAG - 2.5 * log_lum).astype(np.float32)


def mass_loss_fraction(age_gyr: np.ndarray) -> np.ndarray:
    """Fraction of a population's initial mass returned to the ISM by stellar evolution (toy, Chabrier-like).

    f = 0.33 + 0.10 log10(age / 1 Gyr), clipped to [0, 0.45]: ≈ 0.23 at 0.1 Gyr, 0.33 at 1 Gyr, 0.43 at
    10 Gyr, close to Bruzual & Charlot (2003) for a Chabrier (2003) IMF. age_gyr: (N,) [Gyr] > 0.
    Returns (N,).
    """
    age = np.asarray(age_gyr, dtype=np.float64)
    if not np.all(age > 0):
        raise ValueError("age_gyr must be > 0 everywhere")
    return np.clip(0.33 + 0.10 * np.log10(age), 0.0, 0.45)


def sample_birth_times(
    rng: np.random.Generator, tau_gyr: np.ndarray, t_start_gyr: float, t_obs_gyr: float
) -> np.ndarray:
    """Birth times [Gyr of cosmic time] from a delayed-τ history ψ(t) ∝ (t − t_start) exp(−(t − t_start)/τ).

    The history is truncated at the observation time t_obs, so every star is younger than the universe:
    t_start < t_birth < t_obs. tau_gyr: (N,) e-folding times [Gyr] > 0, one per star. Returns (N,) float64.
    """
    tau = np.asarray(tau_gyr, dtype=np.float64)
    if not np.all(tau > 0):
        raise ValueError("tau_gyr must be > 0 everywhere")
    if not 0 <= t_start_gyr < t_obs_gyr:
        raise ValueError(f"t_start_gyr={t_start_gyr} must lie in [0, t_obs_gyr={t_obs_gyr})")
    span = t_obs_gyr - t_start_gyr
    p_max = gammainc(2.0, span / tau)  # CDF of the Gamma(2, τ) delay at the truncation
    u = rng.uniform(0.0, 1.0, size=tau.shape) * p_max
    delay = tau * gammaincinv(2.0, u)
    return t_start_gyr + np.clip(delay, 1e-6 * span, span * (1.0 - 1e-6))


def scale_factor_at_time(cosmology: FLRW, t_gyr: np.ndarray) -> np.ndarray:
    """Scale factor a(t) at cosmic times t [Gyr] (N,), by interpolating the cosmology's age(z) on a grid.

    Valid for times between the age at z = 50 and today; raises ValueError outside.
    """
    t = np.asarray(t_gyr, dtype=np.float64)
    z_grid = np.concatenate([[0.0], np.geomspace(1e-4, 50.0, 600)])
    age_grid = cosmology.age(z_grid).to_value("Gyr")  # decreasing with z
    if t.size and (t.min() < age_grid[-1] or t.max() > age_grid[0] * (1 + 1e-9)):
        raise ValueError(f"t_gyr must lie in [{age_grid[-1]:.3f}, {age_grid[0]:.3f}] Gyr")
    log_a = np.interp(t, age_grid[::-1], -np.log1p(z_grid[::-1]))
    return np.exp(log_a)


def population_properties(
    rng: np.random.Generator,
    cosmology: FLRW,
    redshift: float,
    mass_msun: np.ndarray,
    tau_gyr: np.ndarray,
    log_z_mean: np.ndarray,
    z_scatter_dex: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Toy properties of star particles observed at ``redshift``: birth times from :func:`sample_birth_times`
    (histories start at z = 20), metallicities Z = Z_sun 10^(log_z_mean + N(0, z_scatter_dex)), initial masses
    from :func:`mass_loss_fraction` and magnitudes from :func:`toy_magnitudes`.

    mass_msun, tau_gyr, log_z_mean: (N,) current masses [Msun], SFH e-folding times [Gyr] and mean
    log10(Z / Z_sun). Returns formation scale factors (N,), metallicities (N,), initial masses [Msun] (N,) and
    magnitudes (N, 8) float32.
    """
    mass = np.asarray(mass_msun, dtype=np.float64)
    if not np.all(mass > 0) or np.shape(tau_gyr) != mass.shape or np.shape(log_z_mean) != mass.shape:
        raise ValueError("mass_msun must be > 0 and tau_gyr, log_z_mean must have its shape")
    t_obs = float(cosmology.age(redshift).to_value("Gyr"))
    t_birth = sample_birth_times(rng, tau_gyr, float(cosmology.age(20.0).to_value("Gyr")), t_obs)
    age = t_obs - t_birth
    metallicity = Z_SUN * 10.0 ** (np.asarray(log_z_mean) + z_scatter_dex * rng.normal(size=mass.shape))
    initial = mass / (1.0 - mass_loss_fraction(age))
    return (
        scale_factor_at_time(cosmology, t_birth),
        metallicity,
        initial,
        toy_magnitudes(initial, age, metallicity),
    )


def mean_log_metallicity(mstar_msun: np.ndarray) -> np.ndarray:
    """Mean log10(Z / Z_sun) of galaxies of stellar mass mstar_msun (N,) [Msun]: a toy mass–metallicity
    relation close to Gallazzi et al. (2005), 0.05 + 0.3 log10(M_* / 1e11 Msun) clipped to [-1, 0.3]."""
    return np.clip(0.05 + 0.3 * np.log10(np.maximum(mstar_msun, 1.0) / 1e11), -1.0, 0.3)


def particle_counts(
    rng: np.random.Generator, mstar_msun: np.ndarray, particle_mass_msun: float
) -> tuple[np.ndarray, np.ndarray]:
    """Star particles per galaxy for stellar masses M (N,) [Msun] and target particle mass m [Msun]:
    round(M/m) particles of mass M/n when M >= m, else one particle of mass m with probability M/m (unbiased
    in mass; unresolved galaxies often end up dark, as in simulations). Returns counts (N,) int64 and particle
    masses (N,) [Msun]."""
    mstar = np.asarray(mstar_msun, dtype=np.float64)
    resolved = mstar >= particle_mass_msun
    lucky = rng.uniform(size=mstar.shape) < mstar / particle_mass_msun
    n = np.where(resolved, np.rint(mstar / particle_mass_msun), lucky).astype(np.int64)
    return n, np.where(resolved, mstar / np.maximum(n, 1), particle_mass_msun)


def wind_cells(
    rng: np.random.Generator,
    centre_kpc: np.ndarray,
    size_kpc: np.ndarray,
    vel_km_s: np.ndarray,
    redshift: float,
    mass_msun: float,
    z_scatter_dex: float,
) -> dict[str, np.ndarray]:
    """Wind-phase gas cells as TNG stores them among PartType4: formation_a = −a_launch <= 0 (launched in
    the last ~5 % of the expansion), magnitudes 99, a tiny equal mass_msun. centre_kpc (N, 3), size_kpc (N,)
    and vel_km_s (N, 3) describe each cell's host galaxy; cells scatter about it (Gaussian, 200 km/s).
    Returns columns pos, vel, mass, a, z (metallicity), init (initial mass), phot (N, 8) float32."""
    n = len(size_kpc)
    mass = np.full(n, mass_msun)
    return {
        "pos": centre_kpc + rng.normal(size=(n, 3)) * np.asarray(size_kpc)[:, None],
        "vel": vel_km_s + rng.normal(0.0, 200.0, (n, 3)),
        "mass": mass,
        "a": -rng.uniform(0.95, 1.0, n) / (1.0 + redshift),
        "z": Z_SUN * 10.0 ** (z_scatter_dex * rng.normal(size=n)),
        "init": mass,
        "phot": np.full((n, 8), 99.0, np.float32),
    }

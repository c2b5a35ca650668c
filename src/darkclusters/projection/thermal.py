"""Gas thermodynamics for the tSZ and X-ray truth maps: temperature, electrons, Compton-y and bremsstrahlung.

Per gas particle (physical units in, CGS inside), following the standard IllustrisTNG recipe (Nelson et al.
2019, "The IllustrisTNG simulations: public data release", FAQ) and Hsu et al. (seed 002, §2.3–2.4):

* mean molecular weight μ = 4/(1 + 3X_H + 4X_H x_e) [m_p], X_H = 0.76, x_e = n_e/n_H (ElectronAbundance);
* temperature T = (γ − 1) u μ m_p / k_B, γ = 5/3, u the specific internal energy;
* electrons N_e = x_e X_H m / m_p, density n_e = x_e X_H ρ / m_p;
* thermal SZ: y = σ_T/(m_e c²) ∫ P_e dl with P_e = n_e k_B T (seed 002 eq. 4). A particle holds the electron
  thermal energy N_e k_B T, so its contribution to the pixel-averaged y is σ_T/(m_e c²) · N_e k_B T / A_pixel;
  :func:`tsz_weight_kpc2` returns σ_T N_e k_B T/(m_e c²) [kpc²] (deposit, then divide by the pixel area);
* X-ray (bolometric thermal bremsstrahlung, Rybicki & Lightman 1979 eq. 5.15b; Sarazin 1988; seed 002 eq. 6):
  ε = C g_ff T^½ n_e Σ_i Z_i² n_i, C = 1.4 × 10⁻²⁷ erg s⁻¹ cm³ K^−½, g_ff ≈ 1.2 (frequency-averaged Gaunt
  factor). For fully ionised H + He, Σ_i Z_i² n_i = n_H + 4 n_He = ρ/m_p (metals neglected). A particle of
  volume m/ρ then has L = ε m/ρ = C g_ff T^½ x_e X_H ρ m / m_p² [erg s⁻¹].
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BREMSSTRAHLUNG_C_CGS",
    "GAMMA",
    "X_H",
    "bremsstrahlung_luminosity_erg_s",
    "electron_count",
    "gas_temperature_k",
    "hot_gas_mask",
    "mean_molecular_weight",
    "tsz_weight_kpc2",
]

X_H = 0.76  # hydrogen mass fraction (TNG, SIMBA)
GAMMA = 5.0 / 3.0  # adiabatic index of a monatomic ideal gas
BREMSSTRAHLUNG_C_CGS = 1.4e-27  # erg s⁻¹ cm³ K^−½ (Rybicki & Lightman 1979, eq. 5.15b)

K_B_ERG_K = 1.380649e-16  # Boltzmann constant (exact, SI 2019)
M_P_G = 1.67262192369e-24  # proton mass (CODATA 2018)
M_E_C2_ERG = 8.1871057769e-7  # electron rest energy m_e c² (CODATA 2018)
SIGMA_T_CM2 = 6.6524587321e-25  # Thomson cross-section (CODATA 2018)
MSUN_G = 1.98840987e33  # solar mass (IAU 2015 nominal GM / CODATA G, as astropy)
KPC_CM = 3.0856775814913673e21  # kiloparsec
KEV_K = 1.160451812e7  # kelvin per keV (k_B T = 1 keV)
_KM2_S2_TO_CM2_S2 = 1.0e10


def mean_molecular_weight(electron_abundance: np.ndarray) -> np.ndarray:
    """μ [m_p] = 4/(1 + 3X_H + 4 X_H x_e) for x_e = n_e/n_H; ≈ 0.588 for fully ionised gas (x_e ≈ 1.158)."""
    x_e = np.asarray(electron_abundance, dtype=np.float64)
    return 4.0 / (1.0 + 3.0 * X_H + 4.0 * X_H * x_e)


def gas_temperature_k(internal_energy_km2_s2: np.ndarray, electron_abundance: np.ndarray) -> np.ndarray:
    """T [K] = (γ − 1) u μ m_p / k_B, with u [km² s⁻²] the specific internal energy (TNG recipe)."""
    u = np.asarray(internal_energy_km2_s2, dtype=np.float64) * _KM2_S2_TO_CM2_S2
    return (GAMMA - 1.0) * u * mean_molecular_weight(electron_abundance) * M_P_G / K_B_ERG_K


def electron_count(mass_msun: np.ndarray, electron_abundance: np.ndarray) -> np.ndarray:
    """N_e = x_e X_H m / m_p: free electrons in a gas particle of mass m [Msun] (dimensionless count)."""
    m = np.asarray(mass_msun, dtype=np.float64)
    return np.asarray(electron_abundance, dtype=np.float64) * X_H * m * (MSUN_G / M_P_G)


def tsz_weight_kpc2(
    mass_msun: np.ndarray, internal_energy_km2_s2: np.ndarray, electron_abundance: np.ndarray
) -> np.ndarray:
    """σ_T N_e k_B T / (m_e c²) [kpc²] per particle: its Compton-y times the area it is spread over.

    Deposited with the particle's kernel and divided by the pixel area [kpc²] this gives the pixel-averaged
    y = σ_T/(m_e c²) ∫ n_e k_B T dl, so ∫ y dA = σ_T/(m_e c²) Σ N_e k_B T exactly.
    """
    t = gas_temperature_k(internal_energy_km2_s2, electron_abundance)
    n_e = electron_count(mass_msun, electron_abundance)
    return SIGMA_T_CM2 / KPC_CM**2 * n_e * K_B_ERG_K * t / M_E_C2_ERG


def bremsstrahlung_luminosity_erg_s(
    mass_msun: np.ndarray,
    density_msun_kpc3: np.ndarray,
    internal_energy_km2_s2: np.ndarray,
    electron_abundance: np.ndarray,
    *,
    gaunt_factor: float = 1.2,
) -> np.ndarray:
    """Bolometric free–free luminosity L = ε m/ρ = C g_ff T^½ x_e X_H ρ m / m_p² [erg s⁻¹] (module doc)."""
    if not gaunt_factor > 0:
        raise ValueError(f"gaunt_factor={gaunt_factor} must be > 0")
    rho = np.asarray(density_msun_kpc3, dtype=np.float64) * (MSUN_G / KPC_CM**3)  # g cm⁻³
    m = np.asarray(mass_msun, dtype=np.float64) * MSUN_G
    x_e = np.asarray(electron_abundance, dtype=np.float64)
    t = gas_temperature_k(internal_energy_km2_s2, electron_abundance)
    return BREMSSTRAHLUNG_C_CGS * gaunt_factor * np.sqrt(t) * x_e * X_H * rho * m / M_P_G**2


def hot_gas_mask(
    temperature_k: np.ndarray,
    star_formation_rate_msun_yr: np.ndarray | None,
    *,
    t_min_kev: float,
    exclude_star_forming: bool,
) -> np.ndarray:
    """Gas that emits X-rays: k_B T > t_min_kev and, optionally, not star-forming (SFR = 0).

    Star-forming gas follows the effective equation of state of the sub-grid ISM model (Springel & Hernquist
    2003) and its temperature is not a physical X-ray temperature; X-ray mocks drop it (e.g. Truong et al.
    2018). Without a star-formation-rate field every particle counts as not star-forming.
    """
    if t_min_kev < 0:
        raise ValueError(f"t_min_kev={t_min_kev} must be >= 0")
    hot = np.asarray(temperature_k, dtype=np.float64) > t_min_kev * KEV_K
    if exclude_star_forming and star_formation_rate_msun_yr is not None:
        hot &= np.asarray(star_formation_rate_msun_yr, dtype=np.float64) <= 0
    return hot

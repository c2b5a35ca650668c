"""A halo-model generator of ONE SYNTHETIC galaxy cluster as particles: dark matter, gas, stars, black holes.

All data made here are SYNTHETIC, drawn from published scaling relations so that mass-mapping code gets
realistic-looking input with a known truth; nothing is simulated. This module owns the physics; writers
elsewhere put the particles into TNG / SIMBA formats. Units are physical: kpc (from the halo centre), Msun,
km/s, (km/s)².

* host DM: triaxial NFW (Navarro, Frenk & White 1997), c200c of Duffy et al. (2008) with log-normal scatter,
  minus the mean profile of the resolved subhalos so that the total DM stays NFW;
* subhalos: dN/dln m ∝ m^−α (Springel et al. 2008; Giocoli et al. 2010), the anti-biased radial distribution
  of Gao et al. (2004), Plummer clumps truncated at the Jacobi radius;
* galaxies: the Moster, Naab & White (2013) stellar-to-halo relation at infall mass with log-normal scatter, a
  dark-occupation probability at low mass, a Hernquist (1990) BCG and an NFW-like intracluster light (ICL);
* ICM: Vikhlinin et al. (2006) density and temperature shapes, T_X from the M500–T relation of Arnaud,
  Pointecouteau & Pratt (2005), fully ionised gas with X_H = 0.76;
* velocities: isotropic Gaussians with the Evrard et al. (2008) σ_DM(M200c, z);
* black holes: M_BH ≈ 1.4e-3 M_* (Häring & Rix 2004) with scatter; stellar populations: :mod:`.stellar_pop`.

Inside the sphere of radius R200c the stellar and gas masses are f_*(M) M200c and f_gas(M) M200c (each with a
log-normal scatter; BCG + ICL fill what the satellites leave) and the host DM makes the total exactly M200c.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from astropy.cosmology import FLRW
from scipy.optimize import brentq

from darkclusters.simulations.synthetic import stellar_pop

__all__ = ["HaloModelParams", "SyntheticCluster", "concentration_mass_relation", "make_cluster", "r200c_kpc"]

G_KPC_KMS2_MSUN = 4.30091727e-6  # gravitational constant [kpc (km/s)² / Msun]
X_H = 0.76  # hydrogen mass fraction (TNG)
ICM_ELECTRON_ABUNDANCE = 1.0 + (1.0 - X_H) / (2.0 * X_H)  # n_e / n_H of fully ionised H + He ≈ 1.158
KEV_ERG, PROTON_MASS_G = 1.602176634e-9, 1.67262192e-24
_GAO_A, _GAO_ALPHA, _GAO_BETA = 0.244, 2.0, 2.75  # Gao et al. (2004) eq. 4
_SHMF_NORM_LO = 1e-4  # subhalo_mass_fraction counts subhalos with m / M200c in [1e-4, subhalo_max_mass_m200c]
_ICL_CONCENTRATION_FACTOR = 2.0  # the ICL follows an NFW twice as concentrated as the host DM
_BCG_TRUNCATION_R200C = 0.1  # the Hernquist BCG is cut at this radius
_BCG_DISPERSION, _ICL_DISPERSION = 0.35, 0.8  # 1-D stellar velocity dispersions / σ_DM
_GAS_TURBULENT_DISPERSION = 0.15  # 1-D gas velocity dispersion / σ_DM (ICM turbulence)
_GAS_TEMPERATURE_SCATTER_DEX = 0.04  # cell-to-cell temperature fluctuations
_BH_SCATTER_DEX = 0.3  # scatter of M_BH at fixed M_*


@dataclass(frozen=True)
class HaloModelParams:
    """Parameters of the synthetic cluster model: plain numbers; masses in Msun, radii in units of R200c."""

    dm_particle_mass_msun: float = 1e9  # uniform DM particle mass [Msun]
    gas_particle_mass_msun: float = 2e8  # target gas cell mass [Msun] (all cells of a cluster equal)
    star_particle_mass_msun: float = 1e8  # target current star particle mass [Msun]
    r_max_r200c: float = 3.0  # particles are generated out to this ellipsoidal radius [R200c]
    fof_radius_r200c: float = 2.0  # inside this ellipsoidal radius: FoF group members [R200c]
    fuzz_radius_r200c: float = 1.6  # smooth host matter beyond this, inside the FoF, is fuzz (-1) [R200c]
    concentration_scatter_dex: float = 0.11  # log-normal scatter of c200c about Duffy et al. (2008) [dex]
    axis_ratio_ca_mean: float = 0.6  # mean c/a of the host DM (Jing & Suto 2002); b/a uniform in [c/a, 1]
    axis_ratio_ca_scatter: float = 0.08  # Gaussian scatter of c/a
    gas_axis_ratio_power: float = 0.5  # gas axis ratios = DM ratios ** this (the ICM is rounder)
    subhalo_mass_fraction: float = 0.10  # M200c fraction in subhalos with 1e-4 < m/M200c < max inside R200c
    subhalo_mf_slope: float = 0.9  # α of dN/dln m ∝ m^-α, in (0, 1)
    subhalo_max_mass_m200c: float = 0.1  # largest subhalo mass [M200c]
    subhalo_min_mass_msun: float = 1e10  # smallest subhalo mass [Msun], at least subhalo_min_particles
    subhalo_min_particles: int = 20  # minimum DM particles per subhalo
    subhalo_plummer_scale: float = 0.1  # subhalo Plummer scale / its own r200c (before tidal truncation)
    subhalo_retained_fraction: float = 0.2  # bound mass / infall mass, for the stellar-to-halo relation
    shmr_scatter_dex: float = 0.25  # log-normal scatter of M_* at fixed infall mass [dex]
    dark_subhalo_mass_msun: float = 3e10  # P(dark) = 1 / (1 + (m_sub / this)²) [Msun]
    star_fraction_1e15: float = 0.0125  # mean M_*(<R200c) / M200c at 1e15 Msun (satellites + BCG + ICL)
    star_fraction_slope: float = -0.1  # d ln f_* / d ln M200c
    star_fraction_scatter_dex: float = 0.05  # cluster-to-cluster log-normal scatter of f_* [dex]
    central_min_star_share: float = 0.3  # BCG + ICL hold at least this share of M_*(<R200c)
    icl_share: float = 0.5  # share of the central stellar mass in the ICL (the rest is the BCG)
    bcg_effective_radius_r200c: float = 0.015  # projected half-mass radius of the BCG [R200c]
    star_tau_min_gyr: float = 0.7  # delayed-τ SFH e-folding time, log-uniform per galaxy [Gyr]; BCG: min
    star_tau_max_gyr: float = 3.0  # upper end of that range [Gyr]
    metallicity_scatter_dex: float = 0.2  # particle metallicity scatter about the galaxy mean [dex]
    wind_cell_fraction: float = 0.02  # fraction of PartType4 entries that are wind-phase cells
    gas_fraction_1e15: float = 0.11  # mean M_gas(<R200c) / M200c at 1e15 Msun
    gas_fraction_slope: float = 0.04  # d ln f_gas / d ln M200c
    gas_fraction_scatter_dex: float = 0.02  # cluster-to-cluster log-normal scatter of f_gas [dex]
    gas_core_radius_r200c: float = 0.1  # β-model core radius r_c [R200c]
    gas_beta: float = 2.0 / 3.0  # β-model slope
    gas_steepening_radius_r200c: float = 1.0  # Vikhlinin et al. (2006) steepening radius r_s [R200c]
    gas_steepening_epsilon: float = 1.5  # Vikhlinin et al. (2006) steepening strength ε
    gas_smoothing_neighbours: int = 64  # kernel neighbours N: h = (3 N m / (4π ρ))^(1/3)
    bh_min_stellar_mass_msun: float = 1e10  # galaxies above this stellar mass host a BH [Msun]
    bh_to_stellar_mass: float = 1.4e-3  # mean M_BH / M_* (Häring & Rix 2004)

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
                raise ValueError(f"{f.name}={v!r} must be a finite number")
            if f.name in _INTEGERS and v != int(v):
                raise ValueError(f"{f.name}={v!r} must be an integer")
            if not f.name.endswith("_slope") and (v < 0 or (v == 0 and f.name not in _MAY_BE_ZERO)):
                raise ValueError(f"{f.name}={v!r} must be {'>= 0' if f.name in _MAY_BE_ZERO else '> 0'}")
            if (f.name in _BELOW_ONE and not v < 1) or (f.name in _AT_MOST_ONE and not v <= 1):
                raise ValueError(f"{f.name}={v!r} must be {'< 1' if f.name in _BELOW_ONE else '<= 1'}")
        if not self.subhalo_mf_slope > 0:
            raise ValueError(f"subhalo_mf_slope={self.subhalo_mf_slope} must lie in (0, 1)")
        if not 1 <= self.fuzz_radius_r200c <= self.fof_radius_r200c <= self.r_max_r200c:
            raise ValueError(
                f"need 1 <= fuzz_radius_r200c={self.fuzz_radius_r200c} <= fof_radius_r200c="
                f"{self.fof_radius_r200c} <= r_max_r200c={self.r_max_r200c}"
            )
        if self.star_tau_min_gyr > self.star_tau_max_gyr:
            raise ValueError(f"star_tau_min_gyr={self.star_tau_min_gyr} must be <= star_tau_max_gyr")


_INTEGERS = frozenset({"subhalo_min_particles", "gas_smoothing_neighbours"})
_MAY_BE_ZERO = frozenset(
    {f.name for f in fields(HaloModelParams) if f.name.endswith(("_scatter_dex", "_share", "_ca_scatter"))}
    | {"subhalo_mass_fraction", "wind_cell_fraction", "gas_axis_ratio_power"}
)
_BELOW_ONE = frozenset(
    {"subhalo_mf_slope", "icl_share", "central_min_star_share", "wind_cell_fraction", "subhalo_mass_fraction"}
)
_AT_MOST_ONE = frozenset({"subhalo_retained_fraction", "axis_ratio_ca_mean"})


@dataclass
class SyntheticCluster:
    """One SYNTHETIC cluster, physical units, centred. Per species (N particles): *_pos_kpc (N, 3) [kpc],
    *_vel_km_s (N, 3) [km/s], *_mass_msun (N,) [Msun], *_subhalo (N,) int32 labels (0 central, k >= 1
    satellite k, -1 FoF fuzz, -2 outside the FoF group). Subhalo arrays: one row per subhalo, row 0 = the
    central at the origin, satellites by decreasing DM mass. Stars with star_formation_a <= 0: wind cells."""

    m200c_msun: float  # nominal M200c [Msun]
    r200c_kpc: float  # [kpc]
    concentration: float  # c200c drawn for this cluster (relation × scatter)
    redshift: float
    axis_ratios: tuple[float, float]  # (b/a, c/a) of the host DM
    kt_x_kev: float  # ICM temperature T_X from the M500–T relation [keV]
    seed: int
    dm_pos_kpc: np.ndarray
    dm_vel_km_s: np.ndarray
    dm_mass_msun: np.ndarray  # all equal to dm_particle_mass_msun
    dm_subhalo: np.ndarray
    gas_pos_kpc: np.ndarray
    gas_vel_km_s: np.ndarray
    gas_mass_msun: np.ndarray  # all equal, close to gas_particle_mass_msun
    gas_subhalo: np.ndarray
    gas_internal_energy_km2_s2: np.ndarray  # (N,) specific thermal energy u [(km/s)²]
    gas_electron_abundance: np.ndarray  # (N,) n_e / n_H
    gas_density_msun_kpc3: np.ndarray  # (N,) [Msun / kpc³]
    gas_smoothing_length_kpc: np.ndarray  # (N,) [kpc]
    star_pos_kpc: np.ndarray
    star_vel_km_s: np.ndarray
    star_mass_msun: np.ndarray
    star_subhalo: np.ndarray
    star_initial_mass_msun: np.ndarray  # (N,) [Msun]
    star_formation_a: np.ndarray  # (N,) scale factor at birth; <= 0 for wind-phase cells
    star_metallicity: np.ndarray  # (N,) M_Z / M
    star_photometrics: np.ndarray  # (N, 8) float32 U, B, V, K (Vega), g, r, i, z (AB); 99 for wind cells
    bh_pos_kpc: np.ndarray
    bh_vel_km_s: np.ndarray
    bh_mass_msun: np.ndarray
    bh_subhalo: np.ndarray
    subhalo_pos_kpc: np.ndarray  # (Nsub, 3) [kpc]
    subhalo_vel_km_s: np.ndarray  # (Nsub, 3) bulk velocities [km/s]
    subhalo_dm_mass_msun: np.ndarray  # (Nsub,) DM mass with the label [Msun]
    subhalo_stellar_mass_msun: np.ndarray  # (Nsub,) stellar mass with the label, winds excluded [Msun]
    subhalo_dark: np.ndarray  # (Nsub,) bool: no star particles


def concentration_mass_relation(m200c_msun: float, redshift: float, h: float = 0.6774) -> float:
    """Mean c200c of Duffy et al. (2008, MNRAS 390, L64; NFW, full sample, z = 0-2):
    c200c = 5.71 (M200c / 2e12 h⁻¹ Msun)^−0.084 (1 + z)^−0.47. m200c_msun [Msun]; h = H0 / (100 km/s/Mpc)."""
    if not m200c_msun > 0:
        raise ValueError(f"m200c_msun={m200c_msun} must be > 0")
    if not redshift >= 0:
        raise ValueError(f"redshift={redshift} must be >= 0")
    if not h > 0:
        raise ValueError(f"h={h} must be > 0")
    return float(5.71 * (m200c_msun * h / 2e12) ** -0.084 * (1.0 + redshift) ** -0.47)


def _rho_crit(redshift: float, cosmology: FLRW) -> float:
    """Critical density ρ_crit(z) [Msun / kpc³]."""
    return float(cosmology.critical_density(redshift).to_value("Msun / kpc3"))


def r200c_kpc(m200c_msun: float, redshift: float, cosmology: FLRW) -> float:
    """R200c [physical kpc]: the radius of mean enclosed density 200 ρ_crit(z) for m200c_msun [Msun]."""
    if not m200c_msun > 0:
        raise ValueError(f"m200c_msun={m200c_msun} must be > 0")
    if not redshift >= 0:
        raise ValueError(f"redshift={redshift} must be >= 0")
    return float(np.cbrt(3.0 * m200c_msun / (800.0 * np.pi * _rho_crit(redshift, cosmology))))


def _nfw_m(y: np.ndarray | float) -> np.ndarray:
    """NFW enclosed-mass shape m(y) = ln(1 + y) − y / (1 + y), y = r / r_s."""
    return np.log1p(y) - y / (1.0 + y)


def _gao_cumulative(x: np.ndarray | float, c: float) -> np.ndarray:
    """Subhalo N(<x) / N(<R200c), x = r / R200c: (1 + ac) x^β / (1 + ac x^α), Gao et al. (2004) eq. 4."""
    ac = _GAO_A * c
    return (1.0 + ac) * np.power(x, _GAO_BETA) / (1.0 + ac * np.power(x, _GAO_ALPHA))


def _moster_shmr(m_halo: np.ndarray, z: float) -> np.ndarray:
    """Stellar mass [Msun] for halo mass m_halo [Msun]: Moster, Naab & White (2013, MNRAS 428, 3121) eq. 2."""
    w = z / (1.0 + z)
    m1, norm = 10.0 ** (11.590 + 1.195 * w), 0.0351 - 0.0247 * w
    beta, gamma = 1.376 - 0.826 * w, 0.608 + 0.329 * w
    return m_halo * 2.0 * norm / ((m_halo / m1) ** -beta + (m_halo / m1) ** gamma)


def _inverse_cdf(rng: np.random.Generator, r_grid: np.ndarray, m_grid: np.ndarray, n: int) -> np.ndarray:
    """n radii drawn from the tabulated enclosed mass m_grid(r_grid) (non-decreasing, starting at 0)."""
    return np.interp(rng.uniform(0.0, m_grid[-1], n), m_grid, r_grid)


def _plummer_radii(rng: np.random.Generator, a: np.ndarray, r_t: np.ndarray) -> np.ndarray:
    """Radii [kpc] from Plummer profiles of scale a cut at r_t (equal-shape arrays, one per particle)."""
    u = (r_t**2 / (r_t**2 + a**2)) ** 1.5 * (1.0 - rng.uniform(size=a.shape))
    return a / np.sqrt(u ** (-2.0 / 3.0) - 1.0)


@dataclass
class _Frame:
    """Host geometry shared by every component: R200c [kpc], shape (b/a, c/a), orientation, random stream."""

    rng: np.random.Generator
    r200: float
    ba: float
    ca: float
    rot: np.ndarray  # (3, 3) rotation, world = body @ rot.T

    def axes(self, power: float = 1.0) -> np.ndarray:
        """Axis lengths (a, b, c) with abc = 1 for axis ratios raised to ``power`` (0 = sphere)."""
        ratios = np.array([1.0, self.ba**power, self.ca**power])
        return ratios / np.cbrt(ratios.prod())

    def place(self, r: np.ndarray, power: float = 1.0) -> np.ndarray:
        """(N, 3) positions [kpc] at ellipsoidal radii r (N,) [kpc] in random directions."""
        v = self.rng.normal(size=(len(r), 3))
        v *= (r / np.sqrt(np.einsum("ij,ij->i", v, v)))[:, None]
        return np.einsum("ij,kj->ik", v, self.rot * self.axes(power))  # einsum: faster than @ for (N, 3)

    def ell_radius(self, pos: np.ndarray, power: float = 1.0) -> np.ndarray:
        """Ellipsoidal radius [kpc] of (N, 3) positions for the shape ``power``."""
        body = np.einsum("ij,jk->ik", pos, self.rot / self.axes(power))
        return np.sqrt(np.einsum("ij,ij->i", body, body))

    def labels(self, pos: np.ndarray, p: HaloModelParams) -> np.ndarray:
        """Labels of smooth host material: 0 central, -1 fuzz, -2 outside the FoF ellipsoid."""
        r_e = self.ell_radius(pos) / self.r200
        fuzz = np.where(r_e < p.fof_radius_r200c, -1, -2)
        return np.where(r_e < p.fuzz_radius_r200c, 0, fuzz).astype(np.int32)

    def inside(self, pos: np.ndarray) -> np.ndarray:
        """Boolean mask of positions inside the sphere of radius R200c."""
        return np.einsum("ij,ij->i", pos, pos) < self.r200**2

    def split_sample(
        self, r_grid: np.ndarray, m_grid: np.ndarray, n_in: int, power: float = 1.0
    ) -> np.ndarray:
        """Positions from the enclosed-mass profile m_grid(r_grid) [kpc], stretched by the shape ``power``,
        with exactly n_in inside the R200c sphere, the outside count in proportion (exact enclosed mass)."""
        p_in = max(float(np.interp(self.r200, r_grid, m_grid) / m_grid[-1]), 1e-3)
        pool = np.empty((0, 3))
        while True:
            pool = np.concatenate(
                [pool, self.place(_inverse_cdf(self.rng, r_grid, m_grid, int(1.1 * n_in / p_in) + 64), power)]
            )
            inside = self.inside(pool)
            n_pool_in = int(inside.sum())
            n_out = round(n_in * (len(pool) - n_pool_in) / max(n_pool_in, 1))
            if n_pool_in >= n_in and len(pool) - n_pool_in >= n_out:
                return np.concatenate([pool[inside][:n_in], pool[~inside][:n_out]])


def _satellites(
    fr: _Frame, p: HaloModelParams, m200: float, z: float, conc: float, rho_c: float, sigma_dm: float
) -> tuple[dict[str, np.ndarray], float]:
    """Subhalos from dN/dln m = A (m/M200c)^-α, Gao et al. (2004) radii, Plummer DM cut at the Jacobi radius,
    galaxies from the Moster et al. (2013) SHMR at infall mass. Returns per-subhalo columns (K subhalos by
    decreasing mass: mass, pos, vel, label [-2 outside the FoF], mstar [0 if dark], r_eff [kpc], tau [Gyr]),
    their particles (dm_idx/star_idx: subhalo index per particle, dm_pos, dm_vel, star_pos, star_vel,
    star_mass) and the expected DM mass [Msun] of resolved subhalos inside R200c (for the host profile)."""
    rng, r200, alpha, x_hi = fr.rng, fr.r200, p.subhalo_mf_slope, p.subhalo_max_mass_m200c
    x_lo = max(p.subhalo_min_mass_msun, p.subhalo_min_particles * p.dm_particle_mass_msun) / m200
    amp = p.subhalo_mass_fraction * (1 - alpha) / (x_hi ** (1 - alpha) - _SHMF_NORM_LO ** (1 - alpha))
    n_exp_in, m_exp_in = 0.0, 0.0
    if x_lo < x_hi:
        n_exp_in = amp / alpha * (x_lo**-alpha - x_hi**-alpha)
        m_exp_in = amp / (1 - alpha) * (x_hi ** (1 - alpha) - x_lo ** (1 - alpha)) * m200
    n_sub = int(rng.poisson(n_exp_in * _gao_cumulative(p.r_max_r200c, conc)))
    u = rng.uniform(size=n_sub)
    mass = m200 * (x_lo**-alpha - u * (x_lo**-alpha - x_hi**-alpha)) ** (-1 / alpha)
    x_grid = np.concatenate([[0.0], np.geomspace(1e-4, p.r_max_r200c, 2000)])
    pos = fr.place(_inverse_cdf(rng, x_grid * r200, _gao_cumulative(x_grid, conc), n_sub))
    dist = np.maximum(np.linalg.norm(pos, axis=1), 1e-3 * r200)
    m_host = m200 * _nfw_m(dist * conc / r200) / _nfw_m(conc)
    # Tidal stripping: the Jacobi radius is at most a third of the distance, i.e. m <= M_host(<d) / 9;
    # subhalos stripped below the resolution limit dissolve into the host. Then sort by decreasing mass.
    mass = np.minimum(mass, m_host / 9.0)
    keep = np.flatnonzero(mass >= x_lo * m200)
    keep = keep[np.argsort(-mass[keep], kind="stable")]
    mass, pos, dist, m_host, n_sub = mass[keep], pos[keep], dist[keep], m_host[keep], len(keep)
    r_vir = np.cbrt(3.0 * mass / (800.0 * np.pi * rho_c))
    r_t = np.minimum(dist * np.cbrt(mass / (3.0 * m_host)), r_vir)  # Jacobi radius, at most r200c(m)
    a_dm = np.minimum(p.subhalo_plummer_scale * r_vir, 0.5 * r_t)
    sigma_int = np.sqrt(np.pi / 32.0 * G_KPC_KMS2_MSUN * mass / a_dm)  # Plummer mass-weighted 1-D dispersion
    vel = rng.normal(0.0, sigma_dm, (n_sub, 3))
    in_fof = fr.ell_radius(pos) < p.fof_radius_r200c * r200
    label = np.where(in_fof, np.cumsum(in_fof), -2).astype(np.int32)

    dm_idx = np.repeat(np.arange(n_sub), np.rint(mass / p.dm_particle_mass_msun).astype(np.int64))
    sph = _Frame(rng, 1.0, 1.0, 1.0, np.eye(3))
    dm_pos = pos[dm_idx] + sph.place(_plummer_radii(rng, a_dm[dm_idx], r_t[dm_idx]))
    dm_vel = vel[dm_idx] + rng.normal(size=(len(dm_idx), 3)) * sigma_int[dm_idx, None]

    scatter = 10.0 ** (p.shmr_scatter_dex * rng.normal(size=n_sub))
    mstar = _moster_shmr(mass / p.subhalo_retained_fraction, z) * scatter
    mstar[rng.uniform(size=n_sub) < 1.0 / (1.0 + (mass / p.dark_subhalo_mass_msun) ** 2)] = 0.0
    n_star, m_part = stellar_pop.particle_counts(rng, mstar, p.star_particle_mass_msun)
    r_eff = np.clip(4.0 * (np.maximum(mstar, 1.0) / 1e11) ** 0.56, 0.3, 30.0)  # R_e–M_*, Shen et al. (2003)
    star_idx = np.repeat(np.arange(n_sub), n_star)
    r_star = _plummer_radii(rng, r_eff[star_idx], np.minimum(10.0 * r_eff, r_t)[star_idx])
    star_vel = vel[star_idx] + rng.normal(size=(len(star_idx), 3)) * 0.5 * sigma_int[star_idx, None]
    tau = np.exp(rng.uniform(np.log(p.star_tau_min_gyr), np.log(p.star_tau_max_gyr), n_sub))
    star_pos, star_mass = pos[star_idx] + sph.place(r_star), m_part[star_idx]
    return {
        "mass": mass, "pos": pos, "vel": vel, "label": label, "mstar": mstar, "r_eff": r_eff, "tau": tau,
        "dm_idx": dm_idx, "dm_pos": dm_pos, "dm_vel": dm_vel, "star_idx": star_idx, "star_pos": star_pos,
        "star_vel": star_vel, "star_mass": star_mass,
    }, m_exp_in  # fmt: skip


def _icm(
    fr: _Frame, p: HaloModelParams, m200: float, m_gas_in: float, conc: float, ez: float, h: float
) -> tuple[dict[str, np.ndarray], float]:
    """Hot gas. Density: Vikhlinin et al. (2006, ApJ 640, 691) eq. 3 without its second β component,
    ρ ∝ (1 + (r/r_c)²)^(−3β/2) (1 + (r/r_s)³)^(−ε/6), with m_gas_in [Msun] inside R200c. Temperature: T_X
    from Arnaud et al. (2005, A&A 441, 893), M500 = 3.84e14 h70⁻¹ Msun (kT / 5 keV)^1.71 / E(z), times the
    universal profile of Vikhlinin et al. (2006) eq. 6; u = (3/2) kT / (μ m_p), μ of fully ionised gas (TNG).
    Returns the gas columns (pos, mass, u, rho, hsml) and T_X [keV]."""
    rng, r200, power = fr.rng, fr.r200, p.gas_axis_ratio_power
    rc, rsteep, eps = p.gas_core_radius_r200c, p.gas_steepening_radius_r200c, p.gas_steepening_epsilon

    def shape(x: np.ndarray) -> np.ndarray:
        return (1 + (x / rc) ** 2) ** (-1.5 * p.gas_beta) * (1 + (x / rsteep) ** 3) ** (-eps / 6)

    x_grid = np.concatenate([[0.0], np.geomspace(1e-4, p.r_max_r200c, 4000)])
    x_mid = 0.5 * (x_grid[1:] + x_grid[:-1])
    cum = np.concatenate([[0.0], np.cumsum(4 * np.pi * x_mid**2 * shape(x_mid) * np.diff(x_grid))])
    n_in = max(1, round(m_gas_in / p.gas_particle_mass_msun))
    pos = fr.split_sample(x_grid * r200, cum, n_in, power)
    mass = np.full(len(pos), m_gas_in / n_in)
    x = fr.ell_radius(pos, power) / r200
    rho = shape(x) * mass.sum() / (cum[-1] * r200**3)
    hsml = np.cbrt(3.0 * p.gas_smoothing_neighbours * mass / (4.0 * np.pi * rho))
    x500 = brentq(lambda y: _nfw_m(conc * y) / _nfw_m(conc) / y**3 - 2.5, 1e-3, 1.0)  # R500c / R200c
    m500 = m200 * _nfw_m(conc * x500) / _nfw_m(conc)
    kt_x = 5.0 * (ez * m500 / (3.84e14 * 0.7 / h)) ** (1.0 / 1.71)
    y = (x / x500 / 0.045) ** 1.9
    t_shape = 1.35 * (y + 0.45) / (y + 1.0) / (1.0 + (x / x500 / 0.6) ** 2) ** 0.45
    kt = kt_x * t_shape * 10.0 ** (_GAS_TEMPERATURE_SCATTER_DEX * rng.normal(size=len(pos)))
    mu = 4.0 / (1.0 + 3.0 * X_H + 4.0 * X_H * ICM_ELECTRON_ABUNDANCE)  # mean molecular weight / m_p
    u = 1.5 * kt * KEV_ERG / (mu * PROTON_MASS_G) * 1e-10  # (cm/s)² → (km/s)²
    return {"pos": pos, "mass": mass, "u": u, "rho": rho, "hsml": hsml}, float(kt_x)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix (3, 3) (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def make_cluster(
    m200c_msun: float, redshift: float, cosmology: FLRW, params: HaloModelParams, seed: int
) -> SyntheticCluster:
    """Generate one SYNTHETIC cluster of mass m200c_msun [Msun] at ``redshift``, deterministic given ``seed``.

    cosmology: astropy FLRW (ρ_crit(z), E(z), ages); params: the model; seed: integer >= 0. Particle counts
    scale as mass / particle mass. The relations used are listed in the module docstring.
    """
    if not isinstance(cosmology, FLRW):
        raise ValueError(f"cosmology must be an astropy FLRW cosmology, got {type(cosmology).__name__}")
    if not isinstance(params, HaloModelParams):
        raise ValueError(f"params must be a HaloModelParams, got {type(params).__name__}")
    if not 1e11 <= m200c_msun <= 1e16:
        raise ValueError(f"m200c_msun={m200c_msun} must lie in [1e11, 1e16] Msun")
    if not 0 <= redshift <= 6:
        raise ValueError(f"redshift={redshift} must lie in [0, 6]")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    p, m200, z = params, float(m200c_msun), float(redshift)
    rng = np.random.default_rng(seed)
    r200, rho_c = r200c_kpc(m200, z, cosmology), _rho_crit(z, cosmology)
    h, ez = cosmology.H0.value / 100.0, float(cosmology.efunc(z))
    conc = float(
        concentration_mass_relation(m200, z, h) * 10.0 ** (p.concentration_scatter_dex * rng.normal())
    )
    sigma_dm = 1082.9 * (h * ez * m200 / 1e15) ** 0.3361  # Evrard et al. (2008) 1-D DM dispersion [km/s]
    ca = float(np.clip(p.axis_ratio_ca_mean + p.axis_ratio_ca_scatter * rng.normal(), 0.35, 1.0))
    fr = _Frame(rng, r200, float(rng.uniform(ca, 1.0)), ca, _random_rotation(rng))
    sats, m_sub_exp_in = _satellites(fr, p, m200, z, conc, rho_c, sigma_dm)
    m_sat_stars_in = float(sats["star_mass"][fr.inside(sats["star_pos"])].sum())

    # Central galaxy: BCG (Hernquist 1990) + ICL (NFW), filling f_*(M) M200c inside the R200c sphere (at least
    # central_min_star_share of it).
    mstar_target = p.star_fraction_1e15 * (m200 / 1e15) ** p.star_fraction_slope * m200
    mstar_target *= 10.0 ** (p.star_fraction_scatter_dex * rng.normal())
    m_central = max(mstar_target - m_sat_stars_in, p.central_min_star_share * mstar_target)
    m_bcg, m_icl = (1.0 - p.icl_share) * m_central, p.icl_share * m_central
    a_bcg = 0.551 * p.bcg_effective_radius_r200c * r200  # projected R_e = 1.815 a
    n_bcg = max(1, round(m_bcg / p.star_particle_mass_msun))
    r_cut = _BCG_TRUNCATION_R200C * r200
    s = np.sqrt(rng.uniform(size=n_bcg)) * r_cut / (r_cut + a_bcg)  # Hernquist M(<r) ∝ (r / (r + a))²
    n_icl = max(1, round(m_icl / p.star_particle_mass_msun))
    x_icl = np.concatenate([[0.0], np.geomspace(1e-4, 1.0, 2000)])
    icl_pos = fr.split_sample(x_icl * r200, _nfw_m(_ICL_CONCENTRATION_FACTOR * conc * x_icl), n_icl)
    n_c = n_bcg + len(icl_pos)
    log_tau = np.log([p.star_tau_min_gyr, p.star_tau_max_gyr])
    disp = np.concatenate([np.full(n_bcg, _BCG_DISPERSION), np.full(len(icl_pos), _ICL_DISPERSION)])
    central = {
        "pos": np.concatenate([fr.place(a_bcg * s / (1.0 - s)), icl_pos]),
        "vel": rng.normal(size=(n_c, 3)) * (sigma_dm * disp[:, None]),
        "mass": np.concatenate([np.full(n_bcg, m_bcg / n_bcg), np.full(len(icl_pos), m_icl / n_icl)]),
        "label": np.zeros(n_c, np.int32),
        "tau": np.concatenate(
            [np.full(n_bcg, p.star_tau_min_gyr), np.exp(rng.uniform(*log_tau, len(icl_pos)))]
        ),
        "log_z": np.concatenate(
            [np.full(n_bcg, stellar_pop.mean_log_metallicity(np.array(m_bcg))), np.full(len(icl_pos), -0.3)]
        ),
    }
    i = sats["star_idx"]
    satellite_stars = {key: sats[f"star_{key}"] for key in ("pos", "vel", "mass")}
    satellite_stars |= {
        "label": sats["label"][i],
        "tau": sats["tau"][i],
        "log_z": stellar_pop.mean_log_metallicity(sats["mstar"][i]),
    }
    stars = _concat([central, satellite_stars])
    stars["a"], stars["z"], stars["init"], stars["phot"] = stellar_pop.population_properties(
        rng, cosmology, z, stars["mass"], stars.pop("tau"), stars.pop("log_z"), p.metallicity_scatter_dex
    )

    # Wind-phase cells: in luminous FoF satellites, or in the central galaxy when there are none.
    n_wind = round(p.wind_cell_fraction / (1.0 - p.wind_cell_fraction) * len(stars["mass"]))
    lum = np.flatnonzero((np.bincount(i, minlength=len(sats["mass"])) > 0) & (sats["label"] > 0))
    host = rng.integers(1, len(lum) + 1, n_wind) if len(lum) else np.zeros(n_wind, np.int64)
    centre, size = np.append(np.zeros((1, 3)), sats["pos"][lum], 0), np.append(a_bcg, sats["r_eff"][lum])
    winds = stellar_pop.wind_cells(
        rng, centre[host], size[host], np.append(np.zeros((1, 3)), sats["vel"][lum], 0)[host], z,
        1e-2 * p.star_particle_mass_msun, p.metallicity_scatter_dex,
    )  # fmt: skip
    winds["label"] = np.append(0, sats["label"][lum]).astype(np.int32)[host]
    stars = _concat([stars, winds])

    # Black holes: one per galaxy above bh_min_stellar_mass_msun (M_BH ≈ 1.4e-3 M_*), the central one largest.
    has_bh = sats["mstar"] >= p.bh_min_stellar_mass_msun
    m_bh = p.bh_to_stellar_mass * np.append(m_bcg, sats["mstar"][has_bh])
    m_bh *= 10.0 ** (_BH_SCATTER_DEX * rng.normal(size=len(m_bh)))
    m_bh[0] = max(m_bh[0], 1.2 * m_bh[1:].max(initial=0.0))
    bh_pos = np.concatenate([np.zeros((1, 3)), sats["pos"][has_bh]])

    # Hot gas, then the smooth host DM: the total DM follows the NFW shape minus the mean subhalo profile, and
    # the host takes whatever makes the mass inside the R200c sphere equal to M200c.
    m_gas_in = p.gas_fraction_1e15 * (m200 / 1e15) ** p.gas_fraction_slope * m200
    m_gas_in *= 10.0 ** (p.gas_fraction_scatter_dex * rng.normal())
    gas, kt_x = _icm(fr, p, m200, m_gas_in, conc, ez, h)
    m_dm = p.dm_particle_mass_msun
    m_other_in = (
        m_gas_in + m_sat_stars_in + m_central + m_dm * fr.inside(sats["dm_pos"]).sum()
        + m_bh[fr.inside(bh_pos)].sum() + winds["mass"][fr.inside(winds["pos"])].sum()
    )  # fmt: skip
    if m200 - m_other_in < 0.2 * m200:
        raise ValueError(
            "params leave < 20 % of M200c for the smooth host DM: lower the subhalo/gas/star fractions"
        )
    x = np.concatenate([[0.0], np.geomspace(1e-5, p.r_max_r200c, 4000)])
    dm_total = (m200 - m_gas_in - mstar_target) * _nfw_m(conc * x) / _nfw_m(conc)
    step = np.diff(dm_total) - m_sub_exp_in * np.diff(_gao_cumulative(x, conc))
    host_cum = np.concatenate([[0.0], np.cumsum(np.maximum(step, 0.1 * np.diff(dm_total)))])
    host_pos = fr.split_sample(x * r200, host_cum, round((m200 - m_other_in) / m_dm))
    dm_label = np.concatenate([fr.labels(host_pos, p), sats["label"][sats["dm_idx"]]])
    dm_mass = np.full(len(dm_label), m_dm)

    # Subhalo catalogue: row 0 the central, row k satellite k (FoF members, by decreasing DM mass).
    in_fof = sats["label"] > 0
    n_cat = 1 + int(in_fof.sum())
    real = (stars["a"] > 0) & (stars["label"] >= 0)
    sub_mstar = np.bincount(stars["label"][real], stars["mass"][real], n_cat)
    sub_mdm = np.bincount(np.maximum(dm_label, 0), dm_mass * (dm_label >= 0), n_cat)
    return SyntheticCluster(
        m200c_msun=m200, r200c_kpc=r200, concentration=conc, redshift=z, axis_ratios=(fr.ba, fr.ca),
        kt_x_kev=kt_x, seed=int(seed),
        dm_pos_kpc=np.concatenate([host_pos, sats["dm_pos"]]),
        dm_vel_km_s=np.concatenate([rng.normal(0.0, sigma_dm, (len(host_pos), 3)), sats["dm_vel"]]),
        dm_mass_msun=dm_mass, dm_subhalo=dm_label,
        gas_pos_kpc=gas["pos"], gas_mass_msun=gas["mass"],
        gas_vel_km_s=rng.normal(0.0, _GAS_TURBULENT_DISPERSION * sigma_dm, gas["pos"].shape),
        gas_subhalo=fr.labels(gas["pos"], p), gas_internal_energy_km2_s2=gas["u"],
        gas_electron_abundance=np.full(len(gas["mass"]), ICM_ELECTRON_ABUNDANCE),
        gas_density_msun_kpc3=gas["rho"], gas_smoothing_length_kpc=gas["hsml"],
        star_pos_kpc=stars["pos"], star_vel_km_s=stars["vel"], star_mass_msun=stars["mass"],
        star_subhalo=stars["label"].astype(np.int32), star_initial_mass_msun=stars["init"],
        star_formation_a=stars["a"], star_metallicity=stars["z"], star_photometrics=stars["phot"],
        bh_pos_kpc=bh_pos, bh_vel_km_s=np.append(np.zeros((1, 3)), sats["vel"][has_bh], 0), bh_mass_msun=m_bh,
        bh_subhalo=np.append(0, sats["label"][has_bh]).astype(np.int32),
        subhalo_pos_kpc=np.concatenate([np.zeros((1, 3)), sats["pos"][in_fof]]),
        subhalo_vel_km_s=np.concatenate([np.zeros((1, 3)), sats["vel"][in_fof]]),
        subhalo_dm_mass_msun=sub_mdm, subhalo_stellar_mass_msun=sub_mstar, subhalo_dark=sub_mstar <= 0,
    )  # fmt: skip

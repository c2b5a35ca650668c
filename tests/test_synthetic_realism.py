"""Physical realism of the SYNTHETIC cluster generator (halo_model) and its toy stellar populations.

A population of low-resolution synthetic clusters (M200c log-uniform in 1e14-1e15 Msun, z in 0.2-0.5) is
checked against what a cluster cosmologist expects: baryon budgets inside R200c, the spherical-overdensity
mass, the concentration-mass relation, satellite counts, scatter between light and mass, stellar ages and
colours.
Every quantity is measured from the particles, independently of the generator's internals. Population criteria
(fractions of clusters inside a range) rather than per-cluster ones are used where the model has intrinsic
cluster-to-cluster scatter; the seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM
from scipy.optimize import minimize_scalar
from scipy.stats import spearmanr

from darkclusters.simulations.synthetic.halo_model import (
    HaloModelParams,
    SyntheticCluster,
    concentration_mass_relation,
    make_cluster,
    r200c_kpc,
)
from darkclusters.simulations.synthetic.stellar_pop import BANDS, Z_SUN, toy_magnitudes

COSMOLOGY = FlatLambdaCDM(H0=67.74, Om0=0.3089, Ob0=0.0486)
# Low resolution for speed. At this DM particle mass the smallest subhalo (20 particles) is 1e12 Msun, so the
# dark-occupation scale is raised to that mass to exercise the dark-subhalo branch.
LOW_RES = HaloModelParams(
    dm_particle_mass_msun=5e10,
    gas_particle_mass_msun=1e10,
    star_particle_mass_msun=2e9,
    dark_subhalo_mass_msun=1e12,
)
N_CLUSTERS = 24


def _population(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Masses log-uniform in [1e14, 1e15] Msun and redshifts uniform in [0.2, 0.5]."""
    rng = np.random.default_rng(seed)
    return 10.0 ** rng.uniform(14.0, 15.0, n), rng.uniform(0.2, 0.5, n)


@pytest.fixture(scope="module")
def clusters() -> list[SyntheticCluster]:
    masses, redshifts = _population(N_CLUSTERS, seed=2024)
    return [
        make_cluster(m, z, COSMOLOGY, LOW_RES, seed=1000 + i)
        for i, (m, z) in enumerate(zip(masses, redshifts, strict=True))
    ]


def _rho_crit(z: float) -> float:
    return float(COSMOLOGY.critical_density(z).to_value("Msun / kpc3"))


def _mass_in_sphere(pos: np.ndarray, mass: np.ndarray, radius: float) -> float:
    return float(mass[np.linalg.norm(pos, axis=1) < radius].sum())


def _real_stars(c: SyntheticCluster) -> np.ndarray:
    """Mask of genuine star particles (wind-phase cells have formation_a <= 0)."""
    return c.star_formation_a > 0


def _fraction_in_range(values: np.ndarray, lo: float, hi: float) -> float:
    return float(np.mean((values >= lo) & (values <= hi)))


def test_stellar_mass_within_r200c_is_one_to_two_percent(clusters: list[SyntheticCluster]) -> None:
    """M_*(<R200c) / M200c from the particles (winds excluded): median in [1 %, 2 %], >= 90 % of clusters."""
    f_star = np.array(
        [
            _mass_in_sphere(c.star_pos_kpc[_real_stars(c)], c.star_mass_msun[_real_stars(c)], c.r200c_kpc)
            / c.m200c_msun
            for c in clusters
        ]
    )
    assert 0.01 <= np.median(f_star) <= 0.02, f_star
    assert _fraction_in_range(f_star, 0.01, 0.02) >= 0.9, f_star


def test_gas_mass_within_r200c_is_nine_to_twelve_percent(clusters: list[SyntheticCluster]) -> None:
    """M_gas(<R200c) / M200c: median in [9 %, 12 %], >= 90 % of the clusters inside that range."""
    f_gas = np.array(
        [_mass_in_sphere(c.gas_pos_kpc, c.gas_mass_msun, c.r200c_kpc) / c.m200c_msun for c in clusters]
    )
    assert 0.09 <= np.median(f_gas) <= 0.12, f_gas
    assert _fraction_in_range(f_gas, 0.09, 0.12) >= 0.9, f_gas


def _spherical_overdensity_mass(c: SyntheticCluster) -> float:
    """M200c from all particles: the enclosed mass at the outermost radius where <ρ> >= 200 ρ_crit(z)."""
    pos = np.concatenate([c.dm_pos_kpc, c.gas_pos_kpc, c.star_pos_kpc, c.bh_pos_kpc])
    mass = np.concatenate([c.dm_mass_msun, c.gas_mass_msun, c.star_mass_msun, c.bh_mass_msun])
    r = np.linalg.norm(pos, axis=1)
    order = np.argsort(r)
    r, m_enc = r[order], np.cumsum(mass[order])
    with np.errstate(divide="ignore"):
        above = np.nonzero(m_enc / (4.0 / 3.0 * np.pi * r**3) >= 200.0 * _rho_crit(c.redshift))[0]
    return float(m_enc[above[-1]])


def test_spherical_overdensity_mass_matches_nominal(clusters: list[SyntheticCluster]) -> None:
    """The SO M200c measured from the particles of all species agrees with the nominal M200c within 5 %."""
    ratio = np.array([_spherical_overdensity_mass(c) / c.m200c_msun for c in clusters])
    assert np.all(np.abs(ratio - 1.0) < 0.05), ratio


def _fit_nfw_concentration(c: SyntheticCluster) -> float:
    """c200c of the NFW shape best fitting the DM radial distribution in 0.05-1 R200c (binned likelihood)."""
    x = np.linalg.norm(c.dm_pos_kpc, axis=1) / c.r200c_kpc
    edges = np.geomspace(0.05, 1.0, 21)
    counts, _ = np.histogram(x, edges)

    def neg_log_like(log_c: float) -> float:
        conc = 10.0**log_c
        m = np.log1p(conc * edges) - conc * edges / (1.0 + conc * edges)
        return -float(np.sum(counts * np.log(np.diff(m) / (m[-1] - m[0]))))

    return float(10.0 ** minimize_scalar(neg_log_like, bounds=(-0.3, 1.5), method="bounded").x)


def test_fitted_concentrations_follow_the_relation_with_its_scatter() -> None:
    """NFW fits to all the DM (host + subhalos) of 10 well-resolved clusters: the drawn c200c is recovered
    (median |log residual| < 0.06 dex; substructure adds scatter), and the log residuals about Duffy et al.
    (2008) have |mean| < 2.5σ/√N and an rms consistent with σ = 0.11 dex (0.5σ-1.6σ)."""
    params = dataclasses.replace(LOW_RES, dm_particle_mass_msun=5e9, gas_particle_mass_msun=5e9)
    masses, redshifts = _population(10, seed=7)
    resid_relation, resid_own = [], []
    for i, (m, z) in enumerate(zip(masses, redshifts, strict=True)):
        c = make_cluster(m, z, COSMOLOGY, params, seed=500 + i)
        c_fit = _fit_nfw_concentration(c)
        resid_relation.append(np.log10(c_fit / concentration_mass_relation(m, z, h=0.6774)))
        resid_own.append(np.log10(c_fit / c.concentration))
    resid_relation, sigma, n = np.asarray(resid_relation), params.concentration_scatter_dex, len(masses)
    assert np.median(np.abs(resid_own)) < 0.06, resid_own
    assert abs(resid_relation.mean()) < 2.5 * sigma / np.sqrt(n), resid_relation
    assert 0.5 * sigma < np.sqrt(np.mean(resid_relation**2)) < 1.6 * sigma, resid_relation


def test_drawn_concentrations_scatter_about_the_relation(clusters: list[SyntheticCluster]) -> None:
    """log10(c / c_Duffy(M, z)) over the population: |mean| < 2.5σ/√N, rms in 0.6σ-1.45σ (about ±3 standard
    errors for N = 24), σ = 0.11 dex."""
    resid = np.log10(
        [c.concentration / concentration_mass_relation(c.m200c_msun, c.redshift) for c in clusters]
    )
    sigma = LOW_RES.concentration_scatter_dex
    assert abs(resid.mean()) < 2.5 * sigma / np.sqrt(len(resid)), resid
    assert 0.6 * sigma < np.sqrt(np.mean(resid**2)) < 1.45 * sigma, resid


def test_satellite_count_grows_with_host_mass(clusters: list[SyntheticCluster]) -> None:
    n_sat = [len(c.subhalo_pos_kpc) - 1 for c in clusters]
    rho = spearmanr([c.m200c_msun for c in clusters], n_sat).statistic
    assert rho > 0.5, (rho, n_sat)


def test_particle_counts_scale_with_mass() -> None:
    small = make_cluster(1e14, 0.3, COSMOLOGY, LOW_RES, seed=3)
    big = make_cluster(1e15, 0.3, COSMOLOGY, LOW_RES, seed=3)
    for species in ("dm", "gas", "star"):
        ratio = len(getattr(big, f"{species}_mass_msun")) / len(getattr(small, f"{species}_mass_msun"))
        assert 6.0 < ratio < 14.0, (species, ratio)


def _arrays(c: SyntheticCluster) -> dict[str, np.ndarray]:
    return {
        f.name: getattr(c, f.name)
        for f in dataclasses.fields(c)
        if isinstance(getattr(c, f.name), np.ndarray)
    }


def test_interface_shapes_dtypes_and_labels(clusters: list[SyntheticCluster]) -> None:
    """The per-species arrays the TNG / SIMBA writers consume: shapes, dtypes and subhalo labels in range."""
    extra = {
        "gas": ("internal_energy_km2_s2", "electron_abundance", "density_msun_kpc3", "smoothing_length_kpc"),
        "star": ("initial_mass_msun", "formation_a", "metallicity"),
        "dm": (),
        "bh": (),
    }
    for c in clusters[:5]:
        n_sub = len(c.subhalo_pos_kpc)
        assert c.subhalo_stellar_mass_msun.shape == c.subhalo_dark.shape == (n_sub,)
        np.testing.assert_array_equal(c.subhalo_pos_kpc[0], 0.0)
        for species, fields in extra.items():
            n = len(getattr(c, f"{species}_mass_msun"))
            for name in ("pos_kpc", "vel_km_s"):
                assert getattr(c, f"{species}_{name}").shape == (n, 3)
                assert getattr(c, f"{species}_{name}").dtype == np.float64
            for name in ("mass_msun", *fields):
                assert getattr(c, f"{species}_{name}").shape == (n,)
            labels = getattr(c, f"{species}_subhalo")
            assert labels.dtype == np.int32
            assert labels.min() >= -2
            assert labels.max() < n_sub
        assert c.star_photometrics.shape == (len(c.star_mass_msun), 8)
        assert c.star_photometrics.dtype == np.float32
        assert set(np.unique(c.dm_subhalo)) >= {-2, -1, 0}


def test_same_seed_is_identical_and_different_seed_differs() -> None:
    a = _arrays(make_cluster(3e14, 0.3, COSMOLOGY, LOW_RES, seed=11))
    b = _arrays(make_cluster(3e14, 0.3, COSMOLOGY, LOW_RES, seed=11))
    c = _arrays(make_cluster(3e14, 0.3, COSMOLOGY, LOW_RES, seed=12))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["dm_pos_kpc"][:100], c["dm_pos_kpc"][:100])
    assert not np.array_equal(a["star_photometrics"][:100], c["star_photometrics"][:100])


def test_light_does_not_trace_mass(clusters: list[SyntheticCluster]) -> None:
    """Satellite M_*/M_DM scatters by >= 0.15 dex about a power law; dark subhalos exist, at low mass."""
    log_mdm, log_mstar, dark_mdm, lum_mdm = [], [], [], []
    for c in clusters:
        mdm, mstar, dark = c.subhalo_dm_mass_msun[1:], c.subhalo_stellar_mass_msun[1:], c.subhalo_dark[1:]
        np.testing.assert_array_equal(dark, mstar <= 0)
        log_mdm += list(np.log10(mdm[~dark]))
        log_mstar += list(np.log10(mstar[~dark]))
        dark_mdm += list(mdm[dark])
        lum_mdm += list(mdm[~dark])
    slope, intercept = np.polyfit(log_mdm, log_mstar, 1)
    scatter = np.std(np.asarray(log_mstar) - (slope * np.asarray(log_mdm) + intercept))
    assert scatter >= 0.15, scatter
    assert len(dark_mdm) >= 5, len(dark_mdm)
    assert np.median(dark_mdm) < np.median(lum_mdm)
    assert not any(c.subhalo_dark[0] for c in clusters)


def test_stellar_ages_and_wind_cells(clusters: list[SyntheticCluster]) -> None:
    """Stars are born after the Big Bang and before the snapshot; 1-3 % of PartType4 entries are wind cells
    (formation_a <= 0, tiny mass, magnitudes 99); cluster stars are old; metallicities are around solar."""
    for c in clusters:
        real = _real_stars(c)
        a_obs = 1.0 / (1.0 + c.redshift)
        z_birth = 1.0 / c.star_formation_a[real] - 1.0
        age = COSMOLOGY.age(c.redshift).value - COSMOLOGY.age(z_birth).value
        assert np.all(c.star_formation_a[real] < a_obs)
        assert np.all(age > 0)
        assert np.all(age < COSMOLOGY.age(c.redshift).value)
        assert np.median(age) > 5.0, np.median(age)
        assert 0.01 <= np.mean(~real) <= 0.03, np.mean(~real)
        assert np.all(c.star_formation_a[~real] <= 0)
        assert np.all(c.star_photometrics[~real] == 99.0)
        assert np.all(c.star_mass_msun[~real] < 0.1 * np.median(c.star_mass_msun[real]))
        assert np.all(np.isfinite(c.star_photometrics[real]))
        assert np.all(c.star_photometrics[real] < 5.0)  # absolute magnitudes of >= 1e6 Msun populations
        loss = 1.0 - c.star_mass_msun[real] / c.star_initial_mass_msun[real]
        assert 0.3 <= np.median(loss) <= 0.45, np.median(loss)
        assert 0.3 < np.median(c.star_metallicity[real]) / Z_SUN < 3.0


def test_icm_temperature_and_thermodynamics(clusters: list[SyntheticCluster]) -> None:
    """kT_X from the M–T relation (a few keV at 1e14, ~7-10 keV at 1e15 Msun); u = (3/2) kT / (μ m_p)."""
    mu = 4.0 / (1.0 + 3.0 * 0.76 + 4.0 * 0.76 * 1.158)
    kev_per_u = mu * 1.67262192e-24 * 1e10 / 1.5 / 1.602176634e-9  # keV per (km/s)²
    for c in clusters:
        np.testing.assert_allclose(c.gas_electron_abundance, 1.158, atol=0.01)
        kt = c.gas_internal_energy_km2_s2 * kev_per_u
        core = np.linalg.norm(c.gas_pos_kpc, axis=1) < 0.5 * c.r200c_kpc
        assert 0.5 * c.kt_x_kev < np.median(kt[core]) < 1.5 * c.kt_x_kev
        expected = 2.0 * (c.m200c_msun / 1e14) ** (2.0 / 3.0)  # ~ self-similar, a few keV at 1e14 Msun
        assert 0.6 * expected < c.kt_x_kev < 1.8 * expected, (c.m200c_msun, c.kt_x_kev)
        assert np.all(c.gas_density_msun_kpc3 > 0)
        assert np.all(c.gas_smoothing_length_kpc > 0)


def test_black_holes(clusters: list[SyntheticCluster]) -> None:
    for c in clusters:
        assert c.bh_subhalo[0] == 0
        assert np.all(c.bh_pos_kpc[0] == 0)
        assert c.bh_mass_msun[0] == c.bh_mass_msun.max()
        assert 1e-4 < c.bh_mass_msun[0] / c.subhalo_stellar_mass_msun[0] < 1e-2


def test_toy_magnitudes_colours() -> None:
    """A 10-Gyr solar population has B−V in 0.8-1.1 and g−r in 0.6-0.85; a 0.1-Gyr one is bluer; metal-rich
    populations are redder; magnitudes brighten by 2.5 mag per factor 10 in mass."""
    b, v, g, r = (BANDS.index(band) for band in ("B", "V", "g", "r"))
    mags = toy_magnitudes(
        np.array([1e10, 1e10, 1e10, 1e11]), np.array([10.0, 0.1, 10.0, 10.0]), Z_SUN * np.array([1, 1, 3, 1])
    )
    assert mags.shape == (4, 8)
    assert mags.dtype == np.float32
    assert 0.8 <= mags[0, b] - mags[0, v] <= 1.1
    assert 0.6 <= mags[0, g] - mags[0, r] <= 0.85
    assert mags[1, b] - mags[1, v] < mags[0, b] - mags[0, v] - 0.3
    assert mags[1, g] - mags[1, r] < mags[0, g] - mags[0, r]
    assert mags[2, b] - mags[2, v] > mags[0, b] - mags[0, v]
    np.testing.assert_allclose(mags[0] - mags[3], 2.5, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"m200c_msun": -1.0}, "m200c_msun"),
        ({"redshift": -0.1}, "redshift"),
        ({"seed": -3}, "seed"),
        ({"cosmology": "Planck15"}, "cosmology"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {
        "m200c_msun": 1e14, "redshift": 0.3, "cosmology": COSMOLOGY, "params": LOW_RES, "seed": 0,
    }  # fmt: skip
    with pytest.raises(ValueError, match=name):
        make_cluster(**(args | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dm_particle_mass_msun", 0.0),
        ("subhalo_mf_slope", 1.2),
        ("icl_share", 1.0),
        ("fof_radius_r200c", 5.0),
    ],
)
def test_bad_params_raise_value_error_naming_them(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        HaloModelParams(**{field: value})


def test_r200c_matches_the_definition() -> None:
    r = r200c_kpc(1e15, 0.3, COSMOLOGY)
    np.testing.assert_allclose(1e15 / (4.0 / 3.0 * np.pi * r**3), 200.0 * _rho_crit(0.3), rtol=1e-10)
    np.testing.assert_allclose(concentration_mass_relation(2e12 / 0.6774, 0.0), 5.71, rtol=1e-12)

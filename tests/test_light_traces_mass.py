"""Light-traces-mass baseline: dPIE formulas against lenstronomy and quadrature, and mass recovery on
synthetic clusters of dPIE galaxies whose light is proportional to their mass."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from darkclusters.baselines import light_traces_mass as ltm
from darkclusters.evaluation.metrics import pearson

PIX_KPC = 4.0
NPIX = 192
R_CORE_STAR, R_CUT_STAR = 0.5, 30.0  # kpc at L*
UPSILON_TRUE = 2.0e10  # Msun per unit image flux
M_STAR = 1.0e11  # Msun at L*


def test_dpie_sigma_matches_lenstronomy_pjaffe():
    # lenstronomy's PJAFFE is the spherical dPIE with sigma0 the central κ (reference/lensing.md)
    lens_model = pytest.importorskip("lenstronomy.LensModel.lens_model").LensModel(["PJAFFE"])
    r = np.array([0.0, 0.3, 1.0, 5.0, 40.0, 300.0])
    sigma0, a, s = 0.8, 0.7, 50.0
    want = lens_model.kappa(r, np.zeros_like(r), [{"sigma0": sigma0, "Ra": a, "Rs": s}])
    got = ltm.dpie_sigma(r, sigma0=sigma0, r_core_kpc=a, r_cut_kpc=s)
    np.testing.assert_allclose(got, want, rtol=1e-6)  # lenstronomy floors R at 1e-6 (or so) inside the core
    assert got[0] == pytest.approx(sigma0)


def test_dpie_projected_mass_by_quadrature():
    sigma0, a, s = 3.0e8, 1.5, 40.0
    for r in (0.5, 10.0, 200.0):
        want, _ = integrate.quad(
            lambda x: 2 * np.pi * x * ltm.dpie_sigma(x, sigma0=sigma0, r_core_kpc=a, r_cut_kpc=s),
            0,
            r,
            points=[a, s],
            limit=200,
        )
        assert ltm.dpie_mass_2d(r, sigma0=sigma0, r_core_kpc=a, r_cut_kpc=s) == pytest.approx(want, rel=1e-8)
    total = ltm.dpie_mass_2d(1e9, sigma0=sigma0, r_core_kpc=a, r_cut_kpc=s)
    assert total == pytest.approx(2 * np.pi * sigma0 * a * s, rel=1e-6)
    with pytest.raises(ValueError, match="r_core_kpc < r_cut_kpc"):
        ltm.dpie_sigma(1.0, sigma0=1.0, r_core_kpc=2.0, r_cut_kpc=1.0)


def test_render_keeps_the_mass_of_a_sub_pixel_core():
    # core 0.1 px: pixel-centre sampling would give the central pixel Σ0·p², ≈ 50× its true mass
    a, s, mass = 0.1 * PIX_KPC, 3.0 * PIX_KPC, 1.0e11
    sigma = ltm.render_dpie_galaxies(
        (NPIX, NPIX),
        pixel_kpc=PIX_KPC,
        x_kpc=[1.3],
        y_kpc=[-0.7],
        mass_msun=[mass],
        r_core_kpc=[a],
        r_cut_kpc=[s],
    )
    sigma0 = mass / (2 * np.pi * a * s)
    inscribed = ltm.dpie_mass_2d(NPIX / 2 * PIX_KPC - 2, sigma0=sigma0, r_core_kpc=a, r_cut_kpc=s)
    got = sigma.sum() * PIX_KPC**2
    assert inscribed < got < mass  # between the inscribed-circle mass and the total
    # the pixel holding the centre against a brute-force 400² sub-pixel integral of the analytic Σ
    sub = (np.arange(400) + 0.5) / 400 * PIX_KPC
    xs, ys = np.meshgrid(sub, sub - PIX_KPC)  # pixel (row 95, col 96) spans x ∈ [0, p], y ∈ [−p, 0]
    brute = ltm.dpie_sigma(np.hypot(xs - 1.3, ys + 0.7), sigma0=sigma0, r_core_kpc=a, r_cut_kpc=s).mean()
    assert sigma[NPIX // 2 - 1, NPIX // 2] == pytest.approx(brute, rel=2e-3)
    # the mass in a 5×5 block around the centre against the aperture mass of the same area (circular check)
    ring = ltm.dpie_mass_2d(10 * PIX_KPC, sigma0=sigma0, r_core_kpc=a, r_cut_kpc=s)
    yy, xx = np.mgrid[:NPIX, :NPIX]
    r_pix = np.hypot((xx + 0.5 - NPIX / 2) * PIX_KPC - 1.3, (yy + 0.5 - NPIX / 2) * PIX_KPC + 0.7)
    assert sigma[r_pix < 10 * PIX_KPC].sum() * PIX_KPC**2 == pytest.approx(ring, rel=0.02)


def _synthetic_cluster(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True Σ [Msun/kpc²], its F814W-like image (light = Σ/Υ + noise) and the galaxies' (x, y) [kpc].

    Independent of the baseline's renderer: Σ is sampled at 3×3 sub-pixel centres of the analytic dPIE.
    """
    rng = np.random.default_rng(seed)
    n_gal = 25
    lum = 10 ** rng.uniform(np.log10(0.05), np.log10(2.0), n_gal)  # L/L*
    pos = []
    while len(pos) < n_gal:  # well separated and inside the field, so deblending is not what is tested
        p = rng.uniform(-0.4, 0.4, 2) * NPIX * PIX_KPC
        if all(np.hypot(*(p - q)) > 25 * PIX_KPC / 2 for q in pos):
            pos.append(p)
    pos = np.array(pos)
    sub = 3
    c = (np.arange(NPIX * sub) + 0.5 - NPIX * sub / 2) * PIX_KPC / sub
    sigma_fine = np.zeros((NPIX * sub, NPIX * sub))
    for (x0, y0), lam in zip(pos, lum, strict=True):
        a, s = R_CORE_STAR * np.sqrt(lam), R_CUT_STAR * np.sqrt(lam)
        r2 = (c[None, :] - x0) ** 2 + (c[:, None] - y0) ** 2
        sigma0 = M_STAR * lam / (2 * np.pi * a * s)
        sigma_fine += sigma0 * a * s / (s - a) * (1 / np.sqrt(a**2 + r2) - 1 / np.sqrt(s**2 + r2))
    sigma = sigma_fine.reshape(NPIX, sub, NPIX, sub).mean(axis=(1, 3))
    light = sigma * PIX_KPC**2 / UPSILON_TRUE  # flux per pixel ∝ mass per pixel
    image = light + 1e-3 * light.max() * rng.standard_normal(light.shape) + 0.05 * light.max()
    return sigma, image, pos


@pytest.fixture(scope="module")
def clusters() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [_synthetic_cluster(seed) for seed in range(6)]


LTM_KW = {"l_star": M_STAR / UPSILON_TRUE, "r_core_star_kpc": R_CORE_STAR, "r_cut_star_kpc": R_CUT_STAR}


def test_detection_finds_the_galaxies(clusters):
    _, image, pos = clusters[0]
    cat = ltm.detect_galaxies(image, thresh=3.0)
    x = (cat["x_pix"].to_numpy() + 0.5 - NPIX / 2) * PIX_KPC
    y = (cat["y_pix"].to_numpy() + 0.5 - NPIX / 2) * PIX_KPC
    d = np.hypot(x[None, :] - pos[:, 0:1], y[None, :] - pos[:, 1:2]).min(axis=1)
    assert np.mean(d < 0.6 * PIX_KPC) > 0.9  # ≥ 90 % of the galaxies found at their position (x right, y up)


def test_ltm_recovers_the_total_mass_of_held_out_clusters(clusters):
    train, test = clusters[:4], clusters[4:]
    upsilon = ltm.calibrate_mass_to_light(
        [im for _, im, _ in train], [sg for sg, _, _ in train], pixel_kpc=PIX_KPC, **LTM_KW
    )
    assert (
        0.5 * UPSILON_TRUE < upsilon < 2.0 * UPSILON_TRUE
    )  # fluxes miss light below threshold; Υ absorbs it
    for sigma_true, image, _ in test:
        est = ltm.ltm_sigma_map(image, pixel_kpc=PIX_KPC, mass_to_light=upsilon, **LTM_KW)
        m_true, m_est = sigma_true.sum() * PIX_KPC**2, est.sum() * PIX_KPC**2
        assert m_est == pytest.approx(m_true, rel=0.05)
        assert pearson(est, sigma_true) > 0.9


def test_ltm_with_a_wrong_calibration_misses_the_mass(clusters):
    sigma_true, image, _ = clusters[5]
    est = ltm.ltm_sigma_map(image, pixel_kpc=PIX_KPC, mass_to_light=0.5 * UPSILON_TRUE, **LTM_KW)
    assert est.sum() < 0.7 * sigma_true.sum()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="mass_to_light"):
        ltm.ltm_sigma_map(np.zeros((8, 8)), pixel_kpc=1.0, mass_to_light=-1.0)
    assert len(ltm.detect_galaxies(np.zeros((64, 64)))) == 0  # nothing to detect
    with pytest.raises(ValueError, match="no galaxy detected"):
        ltm.calibrate_mass_to_light([np.zeros((64, 64))], [np.ones((64, 64))], pixel_kpc=1.0)
    with pytest.raises(ValueError, match="as many images"):
        ltm.calibrate_mass_to_light([np.zeros((8, 8))], [], pixel_kpc=1.0)

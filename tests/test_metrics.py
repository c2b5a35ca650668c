"""Map metrics against hand-computed values and independent references (numpy, scipy, scikit-image)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from darkclusters.evaluation import metrics as m


@pytest.fixture
def maps() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    truth = ndimage.gaussian_filter(rng.random((3, 48, 40)), sigma=(0, 2, 2))
    return truth + 0.05 * rng.standard_normal(truth.shape), truth


def test_identical_maps_are_perfect(maps):
    _, truth = maps
    assert np.all(np.isinf(m.psnr(truth, truth)))
    np.testing.assert_allclose(m.ssim(truth, truth), 1.0)
    np.testing.assert_allclose(m.pearson(truth, truth), 1.0)
    assert m.psnr(truth[0], truth[0]) == np.inf


def test_psnr_hand_computed():
    truth = np.linspace(0.0, 2.0, 100).reshape(10, 10)  # range L = 2
    est = truth + 0.1  # MSE = 0.01
    assert m.psnr(est, truth) == pytest.approx(10 * np.log10(4.0 / 0.01))
    assert m.psnr(est, truth, data_range=4.0) == pytest.approx(10 * np.log10(16.0 / 0.01))
    # a fixed data-set range shifts PSNR by 20 log10(L_dataset / L_map)
    shift = m.psnr(est, truth, data_range=20.0) - m.psnr(est, truth)
    assert shift == pytest.approx(20 * np.log10(10.0))


def test_ssim_matches_scikit_image(maps):
    est, truth = maps
    got = m.ssim(est, truth, data_range=1.5)
    want = [structural_similarity(t, e, data_range=1.5) for e, t in zip(est, truth, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_ssim_of_constant_images_by_hand():
    # x = a, y = a + c everywhere: σ terms vanish, SSIM = (2a(a+c) + C1)/(a² + (a+c)² + C1), C1 = (0.01 L)².
    a, c, big = 0.5, 0.1, 1.0
    c1 = (0.01 * big) ** 2
    want = (2 * a * (a + c) + c1) / (a**2 + (a + c) ** 2 + c1)
    got = m.ssim(np.full((16, 16), a + c), np.full((16, 16), a), data_range=big)
    assert got == pytest.approx(want, rel=1e-12)
    assert got < 1


def test_ssim_of_a_constant_shift_by_hand():
    # y = x + c: contrast–structure term is exactly 1, SSIM = mean of the luminance term over the 7×7 windows
    # that do not touch the border.
    rng = np.random.default_rng(3)
    x = rng.random((32, 32))
    c, big = 0.3, 1.3
    mu = ndimage.uniform_filter(x, size=7)[3:-3, 3:-3]
    c1 = (0.01 * big) ** 2
    want = np.mean((2 * mu * (mu + c) + c1) / (mu**2 + (mu + c) ** 2 + c1))
    assert m.ssim(x + c, x, data_range=big) == pytest.approx(want, rel=1e-10)


def test_pearson_against_numpy_and_mask(maps):
    est, truth = maps
    want = [np.corrcoef(e.ravel(), t.ravel())[0, 1] for e, t in zip(est, truth, strict=True)]
    np.testing.assert_allclose(m.pearson(est, truth), want, rtol=1e-12)
    assert m.pearson(-truth[0], truth[0]) == pytest.approx(-1.0)
    mask = np.zeros(truth.shape[-2:], bool)
    mask[:20, :25] = True
    want_m = np.corrcoef(est[0][mask], truth[0][mask])[0, 1]
    assert m.pearson(est[0], truth[0], mask=mask) == pytest.approx(want_m, rel=1e-12)


def test_bad_arguments_raise():
    a = np.zeros((8, 8))
    with pytest.raises(ValueError, match="shape"):
        m.psnr(a, np.zeros((8, 9)))
    with pytest.raises(ValueError, match="data_range"):
        m.psnr(a, a, data_range=0.0)
    with pytest.raises(ValueError, match="pixel_kpc"):
        m.total_mass(a, pixel_kpc=-1.0)


def test_dataset_data_range():
    assert m.dataset_data_range([np.array([[1.0, 3.0]]), np.array([[-2.0, 0.5]])]) == pytest.approx(5.0)


def _galaxy_image(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    img = 10.0 + rng.normal(0.0, 1.0, (64, 64))  # background 10, σ_noise 1
    yy, xx = np.mgrid[:64, :64]
    img += 50.0 * np.exp(-((xx - 20) ** 2 + (yy - 40) ** 2) / (2 * 2.0**2))  # a galaxy at col 20, row 40
    return img, 0.5  # pixel_arcsec


def test_heldout_mask_excludes_light_and_lensing_images():
    rng = np.random.default_rng(5)
    img, pix = _galaxy_image(rng)
    sl = np.array([[5.0, -5.0]])  # arcsec from the map centre: col = 5/0.5 + 32 − ½, row = 22 − ½
    mask = m.heldout_mask(
        img, pixel_arcsec=pix, k_sigma=4.0, dilate_arcsec=1.0, sl_positions_arcsec=sl, sl_radius_arcsec=2.0
    )
    assert not mask[40, 20]  # the galaxy's centre
    assert not mask[40, 25]  # 5 px out: 50·exp(−25/8) ≈ 2.2 < 4σ, excluded by the 2 px dilation
    assert mask[40, 29]  # 9 px out: beyond the dilated footprint (4.5 px + 2 px)
    assert not mask[21, 41]
    assert not mask[22, 42]
    assert not mask[22, 45]  # 1.8″ from it
    assert mask[22, 48]  # 3.3″ from it, far from light
    assert mask[5, 5]
    assert mask[60, 60]
    assert 0.8 < mask.mean() < 0.99
    # a core cut removes the centre
    core = m.heldout_mask(img, pixel_arcsec=pix, core_radius_arcsec=5.0)
    assert not core[32, 32]
    assert core[5, 5]


def test_heldout_mask_bright_pixels_are_excluded_even_without_dilation():
    rng = np.random.default_rng(6)
    img, pix = _galaxy_image(rng)
    mask = m.heldout_mask(img, pixel_arcsec=pix, k_sigma=3.0, dilate_arcsec=0.0)
    bkg, sig = m.robust_background(img)
    assert bkg == pytest.approx(10.0, abs=0.1)
    assert sig == pytest.approx(1.0, abs=0.1)
    assert not np.any(mask & (img - bkg >= 3.0 * sig))


def test_heldout_rmse_by_hand():
    truth = np.zeros((4, 4))
    est = np.zeros((4, 4))
    est[0, 0], est[3, 3] = 3.0, 4.0
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = mask[3, 3] = mask[1, 1] = mask[2, 2] = True
    assert m.heldout_rmse(est, truth, mask) == pytest.approx(np.sqrt((9 + 16) / 4))


def test_total_and_aperture_mass():
    sigma = np.zeros((20, 20))
    sigma[10, 10] = 5.0  # pixel centre at (0.5, 0.5)·p
    sigma[0, 0] = 1.0  # a corner pixel, far out
    p = 2.0
    assert m.total_mass(sigma, pixel_kpc=p) == pytest.approx(6.0 * p**2)
    got = m.aperture_mass(sigma, pixel_kpc=p, radii_kpc=[1.0, 2.0, 100.0])
    np.testing.assert_allclose(got, [0.0, 5.0 * p**2, 6.0 * p**2])
    # a uniform sheet: M(<R) → πR²Σ to within one ring of pixels
    sheet = np.full((200, 200), 3.0)
    r = 60.0
    got = m.aperture_mass(sheet, pixel_kpc=1.0, radii_kpc=[r])[0]
    assert abs(got - np.pi * r**2 * 3.0) < 2 * np.pi * r * 3.0


def test_radial_profile_by_hand():
    p = 1.5
    n = 40
    x = (np.arange(n) + 0.5 - n / 2) * p
    r = np.hypot(x[None, :], x[:, None])
    sigma = np.stack([3.0 + 2.0 * r, np.exp(-r / 10.0)])
    r_mean, prof = m.radial_profile(sigma, pixel_kpc=p, bin_edges_kpc=np.arange(0.0, 30.0, 3.0))
    np.testing.assert_allclose(prof[0], 3.0 + 2.0 * r_mean, rtol=1e-12)  # linear in r: exact
    np.testing.assert_allclose(prof[1], np.exp(-r_mean / 10.0), rtol=0.02)
    assert prof.shape == (2, 9)


def test_map_scores_bundle(maps):
    est, truth = maps
    mask = np.ones(truth.shape[-2:], bool)
    got = m.map_scores(est[0], truth[0], data_range=2.0, heldout=mask)
    assert set(got) == {"psnr", "ssim", "pcc", "heldout_rmse"}
    assert got["psnr"] == pytest.approx(m.psnr(est[0], truth[0], data_range=2.0))
    assert got["heldout_rmse"] == pytest.approx(np.sqrt(np.mean((est[0] - truth[0]) ** 2)))

"""KS and Wiener baselines (darkclusters.baselines.shear_inversion): an analytic Gaussian lens recovered from
its analytic shear, Wiener → KS at zero noise and → the mass-sheet constant at huge noise, the grid helpers
against exact cases, and the calibration + prediction files of tiny synthetic clusters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from astropy.cosmology import FlatLambdaCDM

from darkclusters.baselines.shear_inversion import (
    MassMappingCalibration,
    bin_factor,
    block_mean,
    calibrate_mass_mapping_files,
    gaussian_smooth,
    invert_catalog,
    predict_mass_map_file,
    upsample_bilinear,
)
from darkclusters.cosmology import sigma_crit_msun_kpc2
from darkclusters.io import write_nested
from darkclusters.lensing.weak import make_weak_lensing_catalog

COSMO = FlatLambdaCDM(H0=70, Om0=0.3)
NO_SMOOTHING = {"ks_smoothing_arcsec": 0.0}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _grid(n: int, pixel: float) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(n) + 0.5 - n / 2) * pixel
    return np.meshgrid(c, c)


def gaussian_lens(
    n: int, pixel: float, kappa0: float, s: float, centre: tuple[float, float] = (0.0, 0.0)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """κ = κ0 exp(−θ²/2s²) and its analytic shear: γ_t = κ̄(<θ) − κ(θ) with κ̄ = κ0 (2s²/θ²)(1 − e^(−θ²/2s²)),
    γ1 = −γ_t cos 2φ, γ2 = −γ_t sin 2φ (independent of the package's operators); θ from ``centre``
    [arcsec]."""
    x, y = _grid(n, pixel)
    x, y = x - centre[0], y - centre[1]
    r2 = x**2 + y**2
    kappa = kappa0 * np.exp(-r2 / (2 * s**2))
    mean_inside = kappa0 * 2 * s**2 / r2 * (1 - np.exp(-r2 / (2 * s**2)))
    gamma_t = mean_inside - kappa
    phi = np.arctan2(y, x)
    return kappa, -gamma_t * np.cos(2 * phi), -gamma_t * np.sin(2 * phi)


def _pixel_catalog(n: int, pixel: float, g1: np.ndarray, g2: np.ndarray, sigma_e: float = 0.0) -> dict:
    """One noiseless source at every map-pixel centre, at z_ref (r = 1)."""
    x, y = _grid(n, pixel)
    ones = np.ones(n * n)
    return {"x_arcsec": x.ravel(), "y_arcsec": y.ravel(), "e1": g1.ravel(), "e2": g2.ravel(),
            "ratio_to_ref": ones, "sigma_e": sigma_e * ones}  # fmt: skip


def _calibration(n: int, pixel: float, factor: int, kappa_mean: float, signal: np.ndarray | None = None):
    coarse = n // factor
    signal = np.ones((coarse, coarse)) if signal is None else signal
    return MassMappingCalibration(fov="fovX", z_ref=2.0, shape=(n, n), pixel_arcsec=pixel, factor=factor,
                                  kappa_mean=kappa_mean, signal_power=signal)  # fmt: skip


def test_kaiser_squires_recovers_an_analytic_lens_up_to_the_training_constant() -> None:
    n, pixel, factor = 128, 2.0, 4
    kappa, g1, g2 = gaussian_lens(n, pixel, 0.3, 20.0)
    catalog = _pixel_catalog(n, pixel, g1, g2)
    cal = _calibration(n, pixel, factor, kappa_mean=0.123)
    ks = invert_catalog(catalog, cal, method="KS", mm_cfg=NO_SMOOTHING)
    assert ks.shape == (n, n)
    assert ks.mean() == pytest.approx(0.123, abs=1e-12)  # the documented constant, exactly
    # with the constant set to the true field mean, KS is κ (binning, bilinear upsampling, periodic edges)
    ks = invert_catalog(
        catalog, _calibration(n, pixel, factor, kappa.mean()), method="KS", mm_cfg=NO_SMOOTHING
    )
    err = ks - kappa
    assert np.sqrt(np.mean(err**2)) < 0.03 * 0.3  # measured 0.017 of the peak
    assert np.abs(err[32:96, 32:96]).max() < 0.08 * 0.3  # measured 0.054 (the peak, smoothed by binning)
    flipped = invert_catalog({**catalog, "e1": -catalog["e1"]}, cal, method="KS", mm_cfg=NO_SMOOTHING)
    assert np.abs(flipped - kappa).max() > 0.5 * 0.3  # a wrong sign convention is caught


def test_sources_are_rescaled_to_the_reference_redshift() -> None:
    """A source at r = 2 (twice the lensing efficiency of z_ref) shows twice the shear: after the e/r
    rescaling the map equals that of sources at z_ref."""
    n, pixel = 64, 2.0
    _, g1, g2 = gaussian_lens(n, pixel, 0.2, 12.0)
    cal = _calibration(n, pixel, 2, 0.0)
    ref = invert_catalog(_pixel_catalog(n, pixel, g1, g2), cal, method="KS")
    far = _pixel_catalog(n, pixel, 2 * g1, 2 * g2)
    far["ratio_to_ref"] = far["ratio_to_ref"] * 2
    np.testing.assert_allclose(invert_catalog(far, cal, method="KS"), ref, atol=1e-12)


def test_wiener_is_ks_at_zero_noise_and_the_constant_at_huge_noise() -> None:
    n, pixel, factor = 64, 3.0, 2
    rng = np.random.default_rng(4)
    _, g1, g2 = gaussian_lens(n, pixel, 0.3, 15.0)
    # off-centre training lenses: a map symmetric about the field centre has no power at the Nyquist modes
    training = np.stack(
        [
            gaussian_lens(n, pixel, rng.uniform(0.1, 0.5), rng.uniform(8, 25), tuple(rng.uniform(-9, 9, 2)))[
                0
            ]
            for _ in range(6)
        ]
    )
    from darkclusters.lensing.mass_mapping import measure_power_spectrum

    cal = _calibration(n, pixel, factor, 0.05, measure_power_spectrum(block_mean(training, factor)))
    ks = invert_catalog(_pixel_catalog(n, pixel, g1, g2), cal, method="KS", mm_cfg=NO_SMOOTHING)
    wiener = invert_catalog(_pixel_catalog(n, pixel, g1, g2, sigma_e=0.0), cal, method="Wiener")
    np.testing.assert_allclose(wiener, ks, atol=1e-10)
    noisy = invert_catalog(_pixel_catalog(n, pixel, g1, g2, sigma_e=1e6), cal, method="Wiener")
    np.testing.assert_allclose(noisy, 0.05, atol=1e-9)
    assert np.ptp(ks) > 0.2  # the zero-noise map does carry the lens
    empty = {k: v[:0] for k, v in _pixel_catalog(n, pixel, g1, g2).items()}
    np.testing.assert_allclose(invert_catalog(empty, cal, method="Wiener"), 0.05)  # no source: the prior


def test_grid_helpers_on_exact_cases() -> None:
    assert bin_factor((512, 512), 225 / 512, 15.0) == 32  # 15″ / 0.44″ = 34 → 32 (14.1″)
    assert bin_factor((64, 64), 225 / 64, 15.0) == 4
    assert bin_factor((30, 45), 1.0, 4.0) == 5  # divisors of gcd 15: 1, 3, 5, 15; log-nearest to 4 is 5
    assert bin_factor((32, 32), 10.0, 1.0) == 1
    maps = np.arange(2 * 4 * 6, dtype=float).reshape(2, 4, 6)
    np.testing.assert_allclose(block_mean(maps, 2)[1, 0, 0], np.mean([24, 25, 30, 31]))
    with pytest.raises(ValueError, match="divide"):
        block_mean(maps, 4)
    # bilinear interpolation reproduces a linear ramp between the outer coarse centres
    coarse_x = (np.arange(8) + 0.5 - 4) * 4.0  # coarse centres in fine-pixel units (factor 4)
    coarse = np.broadcast_to(0.3 * coarse_x + 1.0, (8, 8))
    fine = upsample_bilinear(coarse, 4)
    fine_x = np.arange(32) + 0.5 - 16
    inner = (fine_x >= coarse_x[0]) & (fine_x <= coarse_x[-1])
    np.testing.assert_allclose(fine[5, inner], 0.3 * fine_x[inner] + 1.0, atol=1e-6)
    np.testing.assert_allclose(fine[5, 0], coarse[0, 0])  # beyond the outer centre: the edge value
    # the Fourier Gaussian keeps the mean and spreads a delta as exp(−d²/2σ²) (periodic images negligible)
    delta = np.zeros((64, 64))
    delta[32, 32] = 1.0
    smooth = gaussian_smooth(delta, 3.0)
    assert smooth.sum() == pytest.approx(1.0)
    assert smooth[32, 35] / smooth[32, 32] == pytest.approx(np.exp(-9 / 18), rel=1e-6)


# --- files of tiny synthetic clusters ---------------------------------------------------------------------


N, PIX, FOV, Z_REF = 48, 4.0, "fovX", 2.0
CHANNELS = ["total", "dm", "gas", "stars", "bh"]


def _cluster_files(tmp_path: Path, name: str, rng: np.random.Generator, z_lens: float) -> tuple[Path, Path]:
    """Truth maps (2 views of a cored isothermal Σ) and an observation file with its weak-lensing catalogs
    (kinematic σ_e = 0.03 and conventional 0.26, same sources), Σcr from the cosmology module."""
    x, y = _grid(N, PIX)
    sigma_crit = sigma_crit_msun_kpc2(COSMO, z_lens, Z_REF)
    sigma = np.zeros((2, len(CHANNELS), N, N))
    catalogs = []
    for v in range(2):
        theta_e, core = rng.uniform(15, 30), rng.uniform(8, 15)
        kappa = (
            0.5 * theta_e / np.sqrt(core**2 + (x - rng.uniform(-8, 8)) ** 2 + (y - rng.uniform(-8, 8)) ** 2)
        )
        sigma[v, 0] = kappa * sigma_crit
        kw = {"z_lens": z_lens, "z_ref": Z_REF, "cosmology": COSMO, "seed": int(rng.integers(1 << 30)),
              "density_per_arcmin2": 200.0, "exclude_radius_arcsec": 10.0}  # fmt: skip
        catalogs.append({regime: make_weak_lensing_catalog(kappa, PIX, shape_noise=regime, **kw)
                         for regime in ("kinematic", "conventional")})  # fmt: skip
    maps, obs = tmp_path / f"{name}_maps.h5", tmp_path / f"{name}_obs.h5"
    with h5py.File(maps, "w") as f:
        f[f"{FOV}/sigma"] = sigma
        f[f"{FOV}/sigma"].attrs.update({"channels": CHANNELS, "units": "Msun kpc^-2"})
    with h5py.File(obs, "w") as f:
        g = f.create_group(f"photometry/{FOV}")
        g.attrs.update({"pixel_arcsec": PIX, "pixel_kpc": 12.0})
        g["images"] = np.zeros((2, 3, N, N))
        f.create_group("lensing").attrs.update(
            {"z_lens": z_lens, "z_ref": Z_REF, "sigma_crit_ref_msun_kpc2": sigma_crit}
        )
        for v, cats in enumerate(catalogs):
            for regime, cat in cats.items():
                write_nested(f.create_group(f"lensing/{FOV}/view_{v:03d}/weak_{regime}"), cat)
    return maps, obs


def test_calibration_and_prediction_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    train = [_cluster_files(tmp_path, f"t{i}", rng, z_lens=0.3) for i in range(3)]
    cal_path = tmp_path / "cal.json"
    cal = calibrate_mass_mapping_files(train, cal_path, fov=FOV, z_ref=Z_REF, mm_cfg={"bin_arcsec": 8.0})
    doc = json.loads(cal_path.read_text())
    assert (doc["bin_factor"], doc["coarse_shape"], doc["n_views"]) == (2, [24, 24], 6)
    # κ̄_train by hand: Σ / Σcr(0.3, 2) from the cosmology module, averaged over the 6 training views
    by_hand = []
    for maps, _ in train:
        with h5py.File(maps) as f:
            by_hand += list(
                f[f"{FOV}/sigma"][:, 0].mean(axis=(-2, -1)) / sigma_crit_msun_kpc2(COSMO, 0.3, Z_REF)
            )
    assert cal.kappa_mean == pytest.approx(np.mean(by_hand), rel=1e-6)
    assert np.asarray(doc["signal_power"]).shape == (24, 24)

    maps, obs = _cluster_files(tmp_path, "test", rng, z_lens=0.5)
    with h5py.File(maps) as f:
        truth = f[f"{FOV}/sigma"][:, 0]
    sigma_crit = sigma_crit_msun_kpc2(COSMO, 0.5, Z_REF)
    kw = {"fov": FOV, "z_ref": Z_REF, "mm_cfg": {"bin_arcsec": 8.0}}
    pcc = {}
    for method in ("KS", "Wiener"):
        for regime in ("kinematic", "conventional"):
            out = predict_mass_map_file(obs, cal_path, tmp_path / f"{method}_{regime}.h5", method=method,
                                        weak_regime=regime, **kw)  # fmt: skip
            with h5py.File(out) as f:
                mean = f["mean"][()]
                assert f["mean"].attrs["units"] == "Msun kpc^-2"
                assert f.attrs["method"] == method
                assert f.attrs["sigma_crit_ref_msun_kpc2"] == pytest.approx(sigma_crit)
            assert mean.shape == truth.shape == (2, N, N)
            # Σ in Msun kpc⁻²: the field mean is κ̄_train Σcr(z_lens, z_ref) of the TEST cluster
            np.testing.assert_allclose(mean.mean(axis=(-2, -1)), cal.kappa_mean * sigma_crit, rtol=1e-9)
            pcc[method, regime] = np.mean(
                [np.corrcoef(m.ravel(), t.ravel())[0, 1] for m, t in zip(mean, truth, strict=True)]
            )
    assert pcc["KS", "kinematic"] > 0.8, pcc
    assert pcc["Wiener", "kinematic"] > 0.8, pcc
    assert pcc["Wiener", "conventional"] > 0.6, pcc  # measured 0.80 (0.88 kinematic)
    with pytest.raises(KeyError, match="weak_regime"):
        predict_mass_map_file(obs, cal_path, tmp_path / "x.h5", method="KS", weak_regime="nope", **kw)
    with pytest.raises(ValueError, match=r"lensing\.z_ref"):
        predict_mass_map_file(obs, cal_path, tmp_path / "x.h5", method="KS", weak_regime="kinematic",
                              fov=FOV, z_ref=3.0)  # fmt: skip
    with pytest.raises(ValueError, match="method"):
        predict_mass_map_file(obs, cal_path, tmp_path / "x.h5", method="LTM", weak_regime="kinematic", **kw)

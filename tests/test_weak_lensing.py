"""Lensing distances, weak-lensing mock catalogs and the weak-lensing likelihood, against references
(lensing.md's numbers, lenstronomy's LensCosmo and analytic shear, scipy's Gamma distribution) and properties
(minimum at the true κ, gradients against finite differences)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from astropy.cosmology import FlatLambdaCDM, Planck18
from lenstronomy.Cosmo.lens_cosmo import LensCosmo
from lenstronomy.LensModel.lens_model import LensModel
from scipy import stats
from scipy.special import gamma as gamma_function

from darkclusters.cosmology import arcsec_to_kpc, distance_ratio, kpc_to_arcsec, sigma_crit_msun_kpc2
from darkclusters.lensing.weak import SHAPE_NOISE, make_weak_lensing_catalog, sample_source_redshifts
from darkclusters.lensing.weak_likelihood import WeakLensingLikelihood

COSMO = FlatLambdaCDM(H0=70, Om0=0.3)
N, PIXEL, Z_LENS, Z_REF = 64, 4.0, 0.4, 1.0


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_sigma_crit_and_distance_ratio_reference_values() -> None:
    """lensing.md: FlatΛCDM(70, 0.3), z_l = 0.439 → 5.678 kpc/″; z_s = 1: D_ls/D_s = 0.4899, Σcr = 2.898e15
    Msun/Mpc²; z_s = 2: 0.6746, 2.105e15; Planck18 z_s = 2: 2.047e15 — and lenstronomy's LensCosmo."""
    sigma = sigma_crit_msun_kpc2(COSMO, 0.439, np.array([1.0, 2.0]))
    np.testing.assert_allclose(sigma * 1e6, [2.898e15, 2.105e15], rtol=1e-3)
    np.testing.assert_allclose(
        distance_ratio(COSMO, 0.439, np.array([1.0, 2.0])), [0.4899, 0.6746], rtol=1e-3
    )
    assert sigma_crit_msun_kpc2(Planck18, 0.439, 2.0) * 1e6 == pytest.approx(2.047e15, rel=1e-3)
    assert sigma_crit_msun_kpc2(COSMO, 0.439, 2.0) * 1e6 == pytest.approx(
        LensCosmo(0.439, 2.0, COSMO).sigma_crit,
        rel=1e-3,  # lenstronomy's own G, c, Msun
    )
    assert arcsec_to_kpc(COSMO, 0.439, 1.0) == pytest.approx(5.678, rel=1e-3)
    assert kpc_to_arcsec(COSMO, 0.439, arcsec_to_kpc(COSMO, 0.439, 3.0)) == pytest.approx(3.0)


def test_sources_in_front_of_the_lens_are_unlensed() -> None:
    z = np.array([0.1, 0.439, 0.44, 3.0])
    sigma = sigma_crit_msun_kpc2(COSMO, 0.439, z)
    assert np.isinf(sigma[:2]).all()
    assert np.isfinite(sigma[2:]).all()
    np.testing.assert_array_equal(distance_ratio(COSMO, 0.439, z)[:2], [0.0, 0.0])
    assert isinstance(distance_ratio(COSMO, 0.439, 1.0), float)
    with pytest.raises(ValueError, match="z_lens"):
        sigma_crit_msun_kpc2(COSMO, 0.0, 1.0)
    with pytest.raises(ValueError, match="z_source"):
        distance_ratio(COSMO, 0.4, np.array([1.0, -1.0]))


def test_source_redshift_sampler_matches_analytic_distribution() -> None:
    """p(z) ∝ z² exp[−(z/z0)^1.5]: median z0 · (Gamma(2) median)^(2/3) = 1.412 z0; mean z0 Γ(8/3)/Γ(2)."""
    z0, beta, alpha = 0.7, 1.5, 2.0
    z = sample_source_redshifts(np.random.default_rng(0), 200_000, alpha=alpha, z0=z0, beta=beta)
    median = z0 * stats.gamma((alpha + 1) / beta).median() ** (1 / beta)
    assert median == pytest.approx(1.412 * z0, rel=1e-3)
    assert np.median(z) == pytest.approx(median, rel=5e-3)
    mean = z0 * gamma_function((alpha + 2) / beta) / gamma_function((alpha + 1) / beta)
    assert z.mean() == pytest.approx(mean, rel=5e-3)
    with pytest.raises(ValueError, match="z0"):
        sample_source_redshifts(np.random.default_rng(0), 5, z0=-1.0)


def nfw_kappa() -> tuple[LensModel, list[dict], np.ndarray]:
    """A tapered NFW κ map at z_ref (pixel means): inside the taper its shear is lenstronomy's analytic."""
    model = LensModel(["NFW"])
    kwargs = [{"Rs": 30.0, "alpha_Rs": 8.0, "center_x": 0.0, "center_y": 0.0}]
    c = (np.arange(N) + 0.5 - N / 2) * PIXEL
    x, y = np.meshgrid(c, c)
    offsets = ((np.arange(4) + 0.5) / 4 - 0.5) * PIXEL
    kappa = np.mean([model.kappa(x + a, y + b, kwargs) for a in offsets for b in offsets], axis=0)
    r_max = 0.98 * N * PIXEL / 2
    taper = 0.5 * (1 + np.cos(np.pi * np.clip((np.hypot(x, y) - 0.8 * r_max) / (0.2 * r_max), 0, 1)))
    return model, kwargs, kappa * taper


@pytest.fixture(scope="module")
def nfw() -> tuple[LensModel, list[dict], np.ndarray]:
    return nfw_kappa()


def catalog(kappa: np.ndarray, seed: int = 1, **kwargs: object) -> dict[str, np.ndarray]:
    options = {
        "z_lens": Z_LENS,
        "z_ref": Z_REF,
        "cosmology": COSMO,
        "seed": seed,
        "exclude_radius_arcsec": 15.0,
    }
    return make_weak_lensing_catalog(kappa, PIXEL, **{**options, **kwargs})


def test_noise_free_catalog_reproduces_reduced_shear(nfw: tuple[LensModel, list[dict], np.ndarray]) -> None:
    """e = g = γ_s/(1 − κ_s) at each source, against lenstronomy's analytic γ, κ rescaled by D_ls/D_s."""
    model, kwargs, kappa = nfw
    cat = catalog(kappa, shape_noise=0.0, density_per_arcmin2=60.0)
    x, y = cat["x_arcsec"], cat["y_arcsec"]
    ratio = distance_ratio(COSMO, Z_LENS, cat["z_s"]) / distance_ratio(COSMO, Z_LENS, Z_REF)
    fxx, fxy, _, fyy = model.hessian(x, y, kwargs)
    k, g1, g2 = 0.5 * (fxx + fyy) * ratio, 0.5 * (fxx - fyy) * ratio, fxy * ratio
    ref1, ref2 = g1 / (1 - k), g2 / (1 - k)
    r = np.hypot(x, y)
    # Bilinear interpolation of the map's shear is within 2 % of the local value beyond ~8 px from the cusp.
    used = (r >= 8 * PIXEL) & (r < 0.6 * 0.98 * N * PIXEL / 2) & cat["lensed"]
    assert used.sum() > 50
    error = np.hypot(cat["e1"] - ref1, cat["e2"] - ref2)[used] / np.hypot(ref1, ref2)[used]
    assert error.max() < 0.02
    np.testing.assert_array_equal(cat["e1"], cat["g1_true"])
    assert (np.hypot(x, y) >= 15.0).all()
    assert not cat["lensed"].all()  # some sources lie in front of the lens ...
    assert (cat["g1_true"][~cat["lensed"]] == 0).all()  # ... and are not sheared
    np.testing.assert_allclose(cat["ratio_to_ref"], ratio)


def test_catalog_counts_noise_and_seeding(nfw: tuple[LensModel, list[dict], np.ndarray]) -> None:
    kappa = nfw[2]
    cat = catalog(kappa, seed=5, shape_noise="conventional")
    area_arcmin2 = ((N * PIXEL) ** 2 - np.pi * 15.0**2) / 3600.0
    expected = 30.0 * area_arcmin2
    assert abs(cat["x_arcsec"].size - expected) < 5 * np.sqrt(expected)
    noise = np.concatenate([cat["e1"] - cat["g1_true"], cat["e2"] - cat["g2_true"]])
    assert noise.std() == pytest.approx(SHAPE_NOISE["conventional"], rel=0.06)
    again = catalog(kappa, seed=5, shape_noise="conventional")
    for key, value in cat.items():
        np.testing.assert_array_equal(again[key], value)
    assert not np.array_equal(catalog(kappa, seed=6)["x_arcsec"][:10], cat["x_arcsec"][:10])
    with pytest.raises(ValueError, match="shape_noise"):
        catalog(kappa, shape_noise="optimistic")
    with pytest.raises(ValueError, match="z_ref"):
        catalog(kappa, z_ref=0.3)


@pytest.fixture(scope="module")
def noise_free(nfw: tuple[LensModel, list[dict], np.ndarray]) -> dict[str, np.ndarray]:
    """A noise-free catalog whose σ_e is set to the conventional value (weights of the exact term)."""
    cat = catalog(nfw[2], seed=2, shape_noise=0.0)
    return {**cat, "sigma_e": np.full_like(cat["sigma_e"], SHAPE_NOISE["conventional"])}


@pytest.mark.parametrize("mode", ["rbf", "sources"])
def test_likelihood_is_minimal_at_the_true_kappa(
    mode: str, nfw: tuple[LensModel, list[dict], np.ndarray], noise_free: dict[str, np.ndarray]
) -> None:
    kappa = nfw[2]
    likelihood = WeakLensingLikelihood(noise_free, (N, N), PIXEL, mode=mode)
    candidates = np.stack([kappa, 0.9 * kappa, 1.1 * kappa, np.roll(kappa, 2, axis=1)])
    values = likelihood.nll(torch.tensor(candidates))
    assert values.shape == (4,)
    assert values[0] < values[1:].min()
    assert isinstance(likelihood.nll(candidates), np.ndarray)  # numpy in, numpy out


@pytest.mark.parametrize("mode", ["rbf", "sources"])
def test_likelihood_gradient_matches_finite_differences(
    mode: str, nfw: tuple[LensModel, list[dict], np.ndarray], noise_free: dict[str, np.ndarray]
) -> None:
    """The directional derivative ⟨∇nll, v⟩ equals a central difference along a smooth random direction v."""
    likelihood = WeakLensingLikelihood(noise_free, (N, N), PIXEL, mode=mode)
    kappa = torch.tensor(0.8 * nfw[2], requires_grad=True)
    (gradient,) = torch.autograd.grad(likelihood.nll(kappa).sum(), kappa)
    rng = np.random.default_rng(0)
    direction = torch.tensor(
        np.fft.ifft2(np.fft.fft2(rng.normal(size=(N, N))) * np.exp(-(np.arange(N) ** 2) / 50.0)).real
    )
    step = 1e-4
    with torch.no_grad():
        numeric = (likelihood.nll(kappa + step * direction) - likelihood.nll(kappa - step * direction)) / (
            2 * step
        )
    analytic = (gradient * direction).sum()
    assert float(analytic) == pytest.approx(float(numeric.sum()), rel=1e-5)


def test_likelihood_views_batches_and_dtypes(nfw: tuple[LensModel, list[dict], np.ndarray]) -> None:
    """Two catalogs (views): κ (2, H, W) → (2,), (3, 2, H, W) → (3, 2); float32 follows κ."""
    kappa = nfw[2]
    views = [catalog(kappa, seed=s) for s in (3, 4)]
    for mode in ("rbf", "sources"):
        likelihood = WeakLensingLikelihood(views, (N, N), PIXEL, mode=mode, weight=2.0)
        pair = torch.tensor(np.stack([kappa, kappa]), dtype=torch.float32)
        values = likelihood.nll(pair)
        assert values.shape == (2,)
        assert values.dtype == torch.float32
        assert likelihood.nll(pair.expand(3, 2, N, N)).shape == (3, 2)
        single = WeakLensingLikelihood(views[1], (N, N), PIXEL, mode=mode, weight=2.0)
        assert float(single.nll(pair[1])[0]) == pytest.approx(float(values[1]), rel=1e-5)
        with pytest.raises(ValueError, match="views"):
            likelihood.nll(torch.zeros(3, N, N))


def test_rbf_downsampling_and_bad_arguments(noise_free: dict[str, np.ndarray]) -> None:
    direct = WeakLensingLikelihood(noise_free, (N, N), PIXEL)
    coarse = WeakLensingLikelihood(noise_free, (N, N), PIXEL, rbf_downsample=2)
    used = direct.pixel_weights[0] > 0
    difference = coarse.dense_shear[0][:, used] - direct.dense_shear[0][:, used]
    assert np.sqrt(np.mean(difference**2)) < 0.1 * np.sqrt(np.mean(direct.dense_shear[0][:, used] ** 2))
    with pytest.raises(ValueError, match="mode"):
        WeakLensingLikelihood(noise_free, (N, N), PIXEL, mode="exact")
    with pytest.raises(ValueError, match="kappa"):
        direct.nll(torch.zeros(1, N, N + 1))
    with pytest.raises(ValueError, match="sigma_e"):
        WeakLensingLikelihood(
            {**noise_free, "sigma_e": np.zeros(noise_free["x_arcsec"].size)}, (N, N), PIXEL, mode="sources"
        )

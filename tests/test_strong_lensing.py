"""Strong lensing against independent references: analytic SIS images, lenstronomy's image solver and Sérsic
light, exact source-redshift CDFs by quadrature, and finite differences for the likelihood's gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from astropy.cosmology import FlatLambdaCDM
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LensModel.Solver.lens_equation_solver import LensEquationSolver
from lenstronomy.LightModel.light_model import LightModel
from scipy import integrate, stats

from darkclusters.lensing.interpolate import sample_field
from darkclusters.lensing.operators import deflection_field
from darkclusters.lensing.sersic import (
    lensed_sersic_image,
    render_arcs,
    sersic_amp_for_flux,
    sersic_ellipse,
    sersic_total_flux,
)
from darkclusters.lensing.strong import (
    caustic_region,
    critical_curve_mask,
    find_images,
    make_strong_lensing_catalog,
    truncated_source_redshifts,
)
from darkclusters.lensing.strong_likelihood import StrongLensingLikelihood

COSMO = FlatLambdaCDM(H0=70.0, Om0=0.3)
Z_LENS, Z_REF = 0.4, 2.0
CATALOG_KW = {
    "z_lens": Z_LENS,
    "z_ref": Z_REF,
    "cosmology": COSMO,
    "n_systems_range": (1, 30),
    "source_redshifts": {"alpha": 2.0, "z0": 1.0, "beta": 1.5},
    "z_source_max": 5.0,
}


def grid(n: int, pixel: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres (x, y) [arcsec], (n, n), [row = y, col = x], the package convention."""
    c = (np.arange(n) + 0.5 - n / 2) * pixel
    return np.meshgrid(c, c, indexing="xy")


def nie_kappa(n: int, pixel: float, theta_e: float = 12.0) -> np.ndarray:
    """κ of lenstronomy's cored, elliptical NIE on the pixel centres (an independent, analytic lens)."""
    x, y = grid(n, pixel)
    kw = [{"theta_E": theta_e, "e1": 0.12, "e2": -0.05, "s_scale": 2.0, "center_x": 0.4, "center_y": -0.3}]
    return LensModel(["NIE"]).kappa(x, y, kw)


@pytest.fixture(scope="module")
def mock() -> dict:
    """A catalogue behind a 96² NIE κ map (1″ pixels) with its κ and deflection at z_ref."""
    kappa = nie_kappa(96, 1.0)
    catalog = make_strong_lensing_catalog(kappa, 1.0, seed=11, **CATALOG_KW)
    alpha_x, alpha_y = deflection_field(kappa, 1.0)
    return {"kappa": kappa, "catalog": catalog, "alpha": (alpha_x, alpha_y), "pixel": 1.0}


# ---------------------------------------------------------------- Sérsic light


def test_sersic_matches_lenstronomy() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-3, 3, 500), rng.uniform(-3, 3, 500)
    light = LightModel(["SERSIC_ELLIPSE"])
    for n_sersic in (0.7, 1.0, 2.5, 4.0):
        kw = {
            "amp": 3.2,
            "R_sersic": 0.6,
            "n_sersic": n_sersic,
            "e1": 0.2,
            "e2": -0.1,
            "center_x": 0.3,
            "center_y": -0.2,
        }
        expected = light.surface_brightness(x, y, [kw])
        np.testing.assert_allclose(sersic_ellipse(x, y, **kw), expected, rtol=1e-6)


def test_sersic_total_flux_is_the_integral_of_the_profile() -> None:
    x, y = grid(1500, 0.02)  # ±15″: the profile has fallen below 1e-9 of the total per pixel
    kw = {"amp": 2.0, "R_sersic": 0.8, "n_sersic": 1.5, "e1": 0.25, "e2": 0.1}
    numeric = sersic_ellipse(x, y, **kw).sum() * 0.02**2
    assert sersic_total_flux(2.0, 0.8, 1.5) == pytest.approx(numeric, rel=1e-4)
    assert sersic_total_flux(sersic_amp_for_flux(5.0, 0.8, 1.5), 0.8, 1.5) == pytest.approx(5.0, rel=1e-12)


def test_sersic_gradients_in_every_parameter() -> None:
    x = torch.linspace(-1.0, 1.3, 7, dtype=torch.float64)
    y = torch.linspace(0.9, -0.8, 7, dtype=torch.float64)
    params = torch.tensor([1.5, 0.7, 1.3, 0.1, -0.2, 0.05, 0.1], dtype=torch.float64, requires_grad=True)

    def profile(p: torch.Tensor) -> torch.Tensor:
        return sersic_ellipse(
            x, y, amp=p[0], R_sersic=p[1], n_sersic=p[2], e1=p[3], e2=p[4], center_x=p[5], center_y=p[6]
        )

    assert torch.autograd.gradcheck(profile, (params,))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"R_sersic": -1.0}, "R_sersic"),
        ({"n_sersic": 0.1}, "n_sersic"),
        ({"e1": 0.8, "e2": 0.7}, "ellipticity"),
    ],
)
def test_sersic_rejects_bad_parameters(kwargs: dict, name: str) -> None:
    params = {"amp": 1.0, "R_sersic": 1.0, "n_sersic": 1.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        sersic_ellipse(np.zeros(3), np.zeros(3), **params)


def test_unlensed_image_holds_the_total_flux() -> None:
    zero = np.zeros((64, 64))
    image = lensed_sersic_image(
        zero,
        zero,
        0.25,
        amp=sersic_amp_for_flux(7.0, 0.5, 1.0),
        R_sersic=0.5,
        n_sersic=1.0,
        e1=0.2,
        center_x=0.3,
        center_y=0.1,
        supersample=4,
    )
    assert image.sum() == pytest.approx(7.0, rel=2e-3)
    assert np.unravel_index(image.argmax(), image.shape) == (32, 33)  # y = +0.125″, x = 0.375″: the centre


def test_lensed_image_matches_lenstronomy_ray_shooting() -> None:
    pixel = 0.4
    x, y = grid(48, pixel)
    lens = LensModel(["SIS", "SHEAR"])
    kw_lens = [{"theta_E": 4.0, "center_x": 0.7, "center_y": -0.4}, {"gamma1": 0.05, "gamma2": -0.03}]
    alpha_x, alpha_y = lens.alpha(x, y, kw_lens)
    kw_light = {
        "amp": 2.0,
        "R_sersic": 0.8,
        "n_sersic": 1.2,
        "e1": 0.1,
        "e2": 0.2,
        "center_x": 0.9,
        "center_y": 0.3,
    }
    beta_x, beta_y = lens.ray_shooting(x, y, kw_lens)
    expected = LightModel(["SERSIC_ELLIPSE"]).surface_brightness(beta_x, beta_y, [kw_light]) * pixel**2
    # one ray per pixel centre, where the bilinear deflection equals the map exactly
    image = lensed_sersic_image(alpha_x, alpha_y, pixel, **kw_light, supersample=1)
    np.testing.assert_allclose(image, expected, rtol=1e-6, atol=1e-12 * expected.max())


# ---------------------------------------------------------------- image finding


def test_sis_images_are_the_analytic_ones() -> None:
    theta_e, pixel = 10.0, 0.5
    x, y = grid(128, pixel)
    kw = [{"theta_E": theta_e, "center_x": 0.0, "center_y": 0.0}]
    alpha_x, alpha_y = LensModel(["SIS"]).alpha(x, y, kw)
    for beta_x, beta_y in [(1.0, 0.5), (-3.0, 2.0), (0.2, -6.0)]:
        beta = np.hypot(beta_x, beta_y)
        xi, yi, mu = find_images(alpha_x, alpha_y, pixel, beta_x, beta_y, min_abs_magnification=0.05)
        assert len(xi) == 2
        r = np.hypot(xi, yi) * np.sign(xi * beta_x + yi * beta_y)  # signed radius along the source direction
        # bilinear α of the SIS has a radial error ≈ θ_E p²/(8r²): 0.016″ at r = 4″, so allow 0.05 pixel
        np.testing.assert_allclose(r, [theta_e + beta, -(theta_e - beta)], atol=0.05 * pixel)
        off_line = np.abs(xi * beta_y - yi * beta_x) / np.hypot(xi, yi)  # distance from the source's line
        np.testing.assert_allclose(off_line, 0.0, atol=0.05 * pixel)
        # μ from central differences of α: relative error ~ (p/r)², 1.5 % at r = 8 pixels
        np.testing.assert_allclose(mu, [(theta_e + beta) / beta, -(theta_e - beta) / beta], rtol=0.02)
    xi, _, mu = find_images(alpha_x, alpha_y, pixel, 13.0, 0.0, min_abs_magnification=0.05)
    assert len(xi) == 1
    assert xi[0] == pytest.approx(23.0, abs=0.01)
    assert mu[0] == pytest.approx(23.0 / 13.0, rel=0.01)


def test_images_match_lenstronomy_solver_for_epl_with_shear() -> None:
    pixel, n = 0.5, 128
    x, y = grid(n, pixel)
    lens = LensModel(["EPL", "SHEAR"])
    kw = [
        {"theta_E": 10.0, "gamma": 1.9, "e1": 0.15, "e2": -0.05, "center_x": 0.5, "center_y": -0.3},
        {"gamma1": 0.03, "gamma2": 0.02},
    ]
    alpha_x, alpha_y = lens.alpha(x, y, kw)
    solver = LensEquationSolver(lens)
    counts = []
    for beta_x, beta_y in [(0.1, 0.05), (0.3, -0.4), (1.5, 0.2), (-2.0, 2.5), (0.0, 1.0)]:
        xi, yi, mu = find_images(alpha_x, alpha_y, pixel, beta_x, beta_y, min_abs_magnification=0.1)
        xl, yl = solver.image_position_from_source(
            beta_x, beta_y, kw, min_distance=0.1, search_window=n * pixel, precision_limit=1e-10
        )
        mul = lens.magnification(xl, yl, kw)
        keep = np.abs(mul) >= 0.1
        xl, yl, mul = xl[keep], yl[keep], mul[keep]
        assert len(xi) == len(xl)
        counts.append(len(xi))
        for k in range(len(xl)):
            nearest = np.argmin(np.hypot(xi - xl[k], yi - yl[k]))
            assert np.hypot(xi[nearest] - xl[k], yi[nearest] - yl[k]) < 0.02
            assert mu[nearest] == pytest.approx(mul[k], rel=0.03)
    assert 4 in counts  # a quad and ...
    assert 2 in counts  # ... a double were both exercised


def test_no_caustic_means_no_multiple_images() -> None:
    shape = nie_kappa(64, 1.0, theta_e=5.0)
    kappa = 0.2 * shape / shape.max()  # κ ≤ 0.2 everywhere: no critical curve
    alpha_x, alpha_y = deflection_field(kappa, 1.0)
    assert not critical_curve_mask(alpha_x, alpha_y, 1.0).any()
    assert caustic_region(alpha_x, alpha_y, 1.0) is None
    assert len(find_images(alpha_x, alpha_y, 1.0, 1.0, 2.0)[0]) == 1


# ---------------------------------------------------------------- mock catalogue


def test_every_image_maps_back_to_its_source(mock: dict) -> None:
    families, images = mock["catalog"]["families"], mock["catalog"]["images"]
    assert len(families["family_id"]) >= 3
    assert np.all(families["n_images"] >= 2)
    assert np.all(families["z_source"] > Z_LENS + 0.1)
    assert np.all(images["parity"] == np.sign(images["magnification"]))
    alpha_x, alpha_y = mock["alpha"]
    fam = images["family_id"]
    scale = families["deflection_scale"][fam]
    x, y = images["x_arcsec"], images["y_arcsec"]
    beta_x = x - scale * sample_field(alpha_x, x, y, mock["pixel"])
    beta_y = y - scale * sample_field(alpha_y, x, y, mock["pixel"])
    miss = np.hypot(beta_x - families["beta_x_arcsec"][fam], beta_y - families["beta_y_arcsec"][fam])
    assert miss.max() < 1.01e-3 * mock["pixel"]
    z_s = families["z_source"]
    ratio = COSMO.angular_diameter_distance(Z_LENS, z_s) / COSMO.angular_diameter_distance(z_s)
    ratio_ref = COSMO.angular_diameter_distance(Z_LENS, Z_REF) / COSMO.angular_diameter_distance(Z_REF)
    np.testing.assert_allclose(families["deflection_scale"], (ratio / ratio_ref).value, rtol=1e-10)


def test_same_seed_same_catalog(mock: dict) -> None:
    again = make_strong_lensing_catalog(mock["kappa"], 1.0, seed=11, **CATALOG_KW)
    other = make_strong_lensing_catalog(mock["kappa"], 1.0, seed=12, **CATALOG_KW)
    for table in ("families", "images"):
        for key, value in mock["catalog"][table].items():
            np.testing.assert_array_equal(again[table][key], value)
    assert not np.array_equal(other["families"]["z_source"], mock["catalog"]["families"]["z_source"])


def test_number_of_systems_grows_with_lens_strength(mock: dict) -> None:
    catalogs = [
        make_strong_lensing_catalog(f * mock["kappa"], 1.0, seed=5, **CATALOG_KW) for f in (0.6, 1, 1.6)
    ]
    counts = [len(c["families"]["family_id"]) for c in catalogs]
    assert counts[0] < counts[1] < counts[2]
    weak = make_strong_lensing_catalog(0.1 * mock["kappa"] / mock["kappa"].max(), 1.0, seed=5, **CATALOG_KW)
    assert len(weak["families"]["family_id"]) == 0
    assert len(weak["images"]["x_arcsec"]) == 0


def test_source_redshifts_follow_the_truncated_distribution() -> None:
    z0, beta, z_min, z_max = 1.0, 1.5, 0.6, 4.0
    z = truncated_source_redshifts(np.random.default_rng(3), 4000, z_min=z_min, z_max=z_max, z0=z0, beta=beta)
    assert z.min() > z_min
    assert z.max() <= z_max

    def density(t: float) -> float:
        return t**2 * np.exp(-((t / z0) ** beta))

    norm = integrate.quad(density, z_min, z_max)[0]

    def cdf(t: np.ndarray) -> np.ndarray:
        return np.array([integrate.quad(density, z_min, v)[0] for v in np.atleast_1d(t)]) / norm

    assert stats.kstest(z, cdf).pvalue > 1e-3
    assert len(truncated_source_redshifts(np.random.default_rng(3), 0, z_min=z_min, z_max=z_max)) == 0


def test_arcs_sit_on_the_recorded_images(mock: dict) -> None:
    families, images = mock["catalog"]["families"], mock["catalog"]["images"]
    fluxes = np.outer(np.ones(len(families["family_id"])), [1.0, 2.0])
    arcs = render_arcs(families, *mock["alpha"], mock["pixel"], band_fluxes=fluxes, supersample=2)
    assert arcs.shape == (2, 96, 96)
    np.testing.assert_allclose(arcs[1], 2.0 * arcs[0], rtol=1e-12)
    x, y = grid(96, mock["pixel"])
    near = np.zeros((96, 96), dtype=bool)
    for xi, yi in zip(images["x_arcsec"], images["y_arcsec"], strict=True):
        near |= np.hypot(x - xi, y - yi) < 4.0
    assert arcs[0][near].sum() > 0.9 * arcs[0].sum()


# ---------------------------------------------------------------- likelihood


def test_geometric_likelihood_is_minimal_at_the_true_kappa(mock: dict) -> None:
    like = StrongLensingLikelihood(mock["catalog"], mock["pixel"], weight_geometric=1.0, weight_photometric=0)
    kappa = torch.as_tensor(np.stack([0.8, 1.0, 1.2])[:, None, None] * mock["kappa"])
    loss = like.nll(kappa)
    assert loss.shape == (3,)
    assert loss[1] < 1e-6
    assert loss[0] > 1e3 * loss[1] + 1e-3
    assert loss[2] > 1e3 * loss[1] + 1e-3
    assert like.nll(mock["kappa"]) == pytest.approx(float(loss[1]))  # numpy in, numpy out


def test_photometric_likelihood_is_minimal_at_the_true_kappa(mock: dict) -> None:
    families = mock["catalog"]["families"]
    fluxes = np.ones((len(families["family_id"]), 1))
    arcs = render_arcs(families, *mock["alpha"], mock["pixel"], band_fluxes=fluxes, supersample=2)
    like = StrongLensingLikelihood(
        mock["catalog"], mock["pixel"], weight_geometric=0, arc_images=arcs, band_fluxes=fluxes, supersample=2
    )
    loss = like.nll(torch.as_tensor(np.stack([0.9, 1.0, 1.1])[:, None, None] * mock["kappa"]))
    assert loss[1] < 1e-4 * loss[0]
    assert loss[1] < 1e-4 * loss[2]


def test_likelihood_gradient_matches_finite_differences() -> None:
    kappa = nie_kappa(40, 1.2, theta_e=9.0)
    catalog = make_strong_lensing_catalog(kappa, 1.2, seed=2, **CATALOG_KW)
    assert len(catalog["families"]["family_id"]) >= 2
    families = catalog["families"]
    fluxes = np.ones((len(families["family_id"]), 1))
    arcs = render_arcs(families, *deflection_field(kappa, 1.2), 1.2, band_fluxes=fluxes, supersample=1)
    like = StrongLensingLikelihood(
        catalog, 1.2, weight_geometric=1.0, weight_photometric=30.0, arc_images=arcs, band_fluxes=fluxes
    )
    rng = np.random.default_rng(0)
    k0 = torch.as_tensor(0.95 * kappa + 0.02 * rng.standard_normal(kappa.shape)).requires_grad_(True)
    (grad,) = torch.autograd.grad(like.nll(k0[None]).sum(), k0)
    for _ in range(3):
        direction = torch.as_tensor(rng.standard_normal(kappa.shape))
        eps = 1e-5
        with torch.no_grad():
            fd = (like.nll((k0 + eps * direction)[None]) - like.nll((k0 - eps * direction)[None])) / (2 * eps)
        assert float((grad * direction).sum()) == pytest.approx(float(fd[0]), rel=1e-5, abs=1e-10)


def test_likelihood_follows_kappa_dtype_and_batch(mock: dict) -> None:
    like = StrongLensingLikelihood(mock["catalog"], mock["pixel"])
    kappa = torch.as_tensor(mock["kappa"], dtype=torch.float32).expand(2, 2, 96, 96)
    out = like.nll(kappa)
    assert out.shape == (2, 2)
    assert out.dtype == torch.float32


@pytest.mark.gpu
def test_likelihood_on_cuda_matches_cpu(mock: dict) -> None:
    families = mock["catalog"]["families"]
    fluxes = np.ones((len(families["family_id"]), 1))
    arcs = render_arcs(families, *mock["alpha"], mock["pixel"], band_fluxes=fluxes, supersample=1)
    like = StrongLensingLikelihood(mock["catalog"], mock["pixel"], arc_images=arcs, band_fluxes=fluxes)
    kappa = torch.as_tensor(np.stack([0.9, 1.1])[:, None, None] * mock["kappa"])
    on_gpu = like.nll(kappa.cuda())
    assert on_gpu.device.type == "cuda"
    torch.testing.assert_close(on_gpu.cpu(), like.nll(kappa), rtol=1e-9, atol=1e-12)


def test_bad_arguments_raise(mock: dict) -> None:
    alpha_x, alpha_y = mock["alpha"]
    with pytest.raises(ValueError, match="alpha_x"):
        find_images(alpha_x, alpha_y[:-1], 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="pixel_arcsec"):
        find_images(alpha_x, alpha_y, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="n_systems_range"):
        make_strong_lensing_catalog(mock["kappa"], 1.0, seed=1, **{**CATALOG_KW, "n_systems_range": (5, 2)})
    with pytest.raises(ValueError, match="band_fluxes"):
        render_arcs(mock["catalog"]["families"], alpha_x, alpha_y, 1.0, band_fluxes=np.ones(3))
    with pytest.raises(ValueError, match="arc_images"):
        StrongLensingLikelihood(mock["catalog"], 1.0, arc_images=np.zeros((1, 96, 96)))
    with pytest.raises(ValueError, match="z_min"):
        truncated_source_redshifts(np.random.default_rng(0), 3, z_min=3.0, z_max=0.5)
    with pytest.raises(ValueError, match="probability"):
        truncated_source_redshifts(np.random.default_rng(0), 3, z_min=40.0, z_max=50.0)

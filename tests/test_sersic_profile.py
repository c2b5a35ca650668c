"""The shared Sérsic profile (darkclusters.profiles.sersic) against independent references.

References: numerical quadrature of the rendered profile over the plane (total flux, half-light radius),
a brute-force fine-pixel render, the photometry's semi-major-axis formula written out with scipy, the
40-digit mpmath roots for b_n and db_n/dn, and the numpy path against the torch path.
"""

from __future__ import annotations

import itertools

import mpmath
import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import gammaincinv

from darkclusters.lensing.sersic import half_light_parameters, lenstronomy_bn
from darkclusters.photometry.sersic import SersicShape, sersic_image
from darkclusters.profiles.sersic import (
    elliptical_radius,
    ellipticity_from_axis_ratio,
    sersic_amp_for_flux,
    sersic_bn,
    sersic_radial,
    sersic_surface_brightness,
    sersic_total_flux,
)

#: (n, q, major-axis angle [rad]) of the flux checks: the indices the brief asks for, all with q < 1.
SHAPES = [(0.5, 0.55, 0.3), (1.0, 0.4, 2.0), (4.0, 0.7, -0.8)]


def _plane_integral(func, r_max) -> float:
    """∫_0^{2π} dφ ∫_0^{r_max(φ)} r f(r cos φ, r sin φ) dr: adaptive quadrature in r (``quad_vec``, split at
    decades of r so the n = 4 cusp and tail are both resolved) on 256 angles, the periodic trapezoid rule
    (spectrally accurate for this smooth periodic integrand) in φ. f is vectorised; r_max(φ) → radii."""
    phis = (np.arange(256) + 0.5) * (2 * np.pi / 256)
    top = r_max(phis)
    c, s = np.cos(phis) * top, np.sin(phis) * top

    def integrand(t: float) -> np.ndarray:  # r = t · r_max(φ), dr = r_max dt
        return t * top**2 * func(t * c, t * s)

    edges = [0.0] + [e for e in (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 0.1) if e * top.max() < 1e4] + [1.0]
    radial = sum(
        integrate.quad_vec(integrand, lo, hi, epsabs=0, epsrel=1e-11, limit=500)[0]
        for lo, hi in itertools.pairwise(edges)
    )
    return float(radial.mean() * 2 * np.pi)


@pytest.mark.parametrize(("n", "q", "phi"), SHAPES)
def test_total_flux_and_half_light_radius_by_quadrature(n: float, q: float, phi: float) -> None:
    """∫∫ I dx dy over the plane equals the analytic total flux; the ellipse R ≤ r_eff holds half of it."""
    e1, e2 = ellipticity_from_axis_ratio(q, phi)
    kw = {"amp": 2.5, "r_eff": 0.7, "n": n, "e1": float(e1), "e2": float(e2)}

    def surface(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sersic_surface_brightness(x, y, **kw)

    total = float(sersic_total_flux(kw["amp"], kw["r_eff"], n))
    # the n = 4 profile still holds ~1e-14 of its light beyond 1e5 r_eff
    assert _plane_integral(surface, lambda p: np.full_like(p, 1e5)) == pytest.approx(total, rel=1e-8)
    # R is homogeneous of degree 1 in (Δx, Δy): the ellipse R = r_eff lies at r = r_eff / R(cos φ, sin φ)
    inside = _plane_integral(
        surface, lambda p: kw["r_eff"] / elliptical_radius(np.cos(p), np.sin(p), e1=e1, e2=e2)
    )
    assert inside == pytest.approx(total / 2, rel=1e-8)


@pytest.mark.parametrize(("n", "q", "phi"), SHAPES)
def test_finely_rendered_profile_holds_the_analytic_flux(n: float, q: float, phi: float) -> None:
    """The profile rendered on a fine log-polar grid about its centre (x = e^s cos φ, y = e^s sin φ, area
    element e^(2s) ds dφ; 10⁻⁸ to 10⁵ r_eff, so the n = 4 cusp and tail are both resolved) sums to the
    analytic total flux, in numpy and in torch alike."""
    e1, e2 = ellipticity_from_axis_ratio(q, phi)
    centre = {"center_x": 0.13, "center_y": -0.21}
    kw = {"r_eff": 1.2, "n": n, "e1": float(e1), "e2": float(e2), **centre}
    amp = float(sersic_amp_for_flux(3.0, kw["r_eff"], n))
    s_grid = np.linspace(np.log(1e-8), np.log(1e5), 3000)
    phis = (np.arange(360) + 0.5) * (2 * np.pi / 360)
    r = np.exp(s_grid)[:, None]
    x, y = centre["center_x"] + r * np.cos(phis), centre["center_y"] + r * np.sin(phis)
    image = sersic_surface_brightness(x, y, amp=amp, **kw)
    image_torch = sersic_surface_brightness(torch.as_tensor(x), torch.as_tensor(y), amp=amp, **kw)
    np.testing.assert_allclose(image_torch.numpy(), image, rtol=1e-12)
    flux = integrate.trapezoid((image * r**2).sum(axis=1) * (2 * np.pi / len(phis)), s_grid)
    assert flux == pytest.approx(3.0, rel=1e-6)


def test_numpy_and_torch_paths_agree() -> None:
    """Every function gives the same float64 numbers from numpy and from torch (rtol 1e-12), broadcasting."""
    rng = np.random.default_rng(7)
    x, y = rng.uniform(-4, 4, (3, 500)), rng.uniform(-4, 4, (3, 500))
    n = np.array([0.5, 1.0, 4.0])[:, None]
    q, phi = np.array([0.3, 0.8, 1.0])[:, None], np.array([0.2, -1.1, 0.0])[:, None]
    e1, e2 = ellipticity_from_axis_ratio(q, phi)
    kw = {"amp": np.array([[1.5], [0.2], [7.0]]), "r_eff": np.array([[0.4], [1.3], [2.2]]), "n": n}
    geometry = {"e1": e1, "e2": e2, "center_x": 0.3, "center_y": -0.7}

    def as_torch(value):
        return torch.as_tensor(value, dtype=torch.float64) if isinstance(value, np.ndarray) else value

    def agree(numpy_out, torch_out) -> None:
        assert isinstance(numpy_out, np.ndarray)
        assert isinstance(torch_out, torch.Tensor)
        assert torch_out.dtype == torch.float64
        np.testing.assert_allclose(torch_out.numpy(), numpy_out, rtol=1e-12, atol=0)

    t = {k: as_torch(v) for k, v in {**kw, **geometry}.items()}
    agree(sersic_surface_brightness(x, y, **kw, **geometry), sersic_surface_brightness(as_torch(x), y, **t))
    agree(elliptical_radius(x, y, **geometry), elliptical_radius(as_torch(x), as_torch(y), **geometry))
    radius = elliptical_radius(x, y, **geometry)
    agree(sersic_radial(radius, **kw), sersic_radial(as_torch(radius), **{k: t[k] for k in kw}))
    agree(sersic_bn(n), sersic_bn(as_torch(n)))
    agree(sersic_total_flux(kw["amp"], kw["r_eff"], n), sersic_total_flux(t["amp"], t["r_eff"], t["n"]))
    agree(sersic_amp_for_flux(2.0, kw["r_eff"], n), sersic_amp_for_flux(2.0, t["r_eff"], t["n"]))
    for a, b in zip(
        ellipticity_from_axis_ratio(q, phi), ellipticity_from_axis_ratio(as_torch(q), phi), strict=True
    ):
        agree(a, b)


def test_photometry_shapes_keep_their_semi_major_meaning() -> None:
    """``SersicShape`` (the stored icl_shapes: semi-major a_e, q, θ) renders the profile of the photometry's
    own convention, I_e exp{−b_n [(R/a_e)^{1/n} − 1]} with R² = x'² + (y'/q)², written out here with scipy."""
    shape = SersicShape(0.4, -0.3, 2.0, 2.5, 0.45, 0.7)
    npix, pixel, over = 60, 0.25, 3
    b = gammaincinv(2 * shape.n, 0.5)
    sub = ((np.arange(npix * over) + 0.5) / over - npix / 2) * pixel
    dx, dy = sub[None, :] - shape.x0_arcsec, sub[:, None] - shape.y0_arcsec
    c, s = np.cos(shape.theta_rad), np.sin(shape.theta_rad)
    radius = np.hypot(dx * c + dy * s, (-dx * s + dy * c) / shape.q)
    profile = np.exp(-b * ((radius / shape.r_eff_arcsec) ** (1 / shape.n) - 1))
    # total of I_e = 1 with the factor q of the semi-major convention (Graham & Driver 2005, eq. 4 times q)
    from scipy.special import gamma

    unit_flux = 2 * np.pi * shape.n * shape.q * shape.r_eff_arcsec**2 * np.exp(b) * b ** (-2 * shape.n)
    unit_flux *= gamma(2 * shape.n)
    expected = profile.reshape(npix, over, npix, over).mean(axis=(1, 3)) * pixel**2 * (5.0 / unit_flux)
    np.testing.assert_allclose(
        sersic_image(npix, pixel, shape, flux=5.0, oversample=over), expected, rtol=1e-12
    )


def test_lenstronomy_parameters_are_the_same_profile() -> None:
    """The lensing catalogue's (amp, R_sersic) with the linear b_n and the shared (I_e, r_eff) with the exact
    b_n give the same surface brightness; r_eff exceeds R_sersic by the documented 1.5 % at n = 0.5."""
    n = np.array([0.5, 1.0, 2.0, 4.0])
    i_e, r_eff = half_light_parameters(3.0, 0.6, n)
    radius = np.geomspace(1e-3, 30.0, 200)[:, None]
    b_lin = lenstronomy_bn(n)
    lenstronomy = 3.0 * np.exp(-b_lin * ((radius / 0.6) ** (1 / n) - 1))
    np.testing.assert_allclose(sersic_radial(radius, amp=i_e, r_eff=r_eff, n=n), lenstronomy, rtol=1e-12)
    assert r_eff[0] / 0.6 == pytest.approx(1.015, abs=0.002)


def test_bn_and_its_derivative_match_high_precision_roots() -> None:
    """b_n and d b_n/dn (torch path: scipy root, central-difference derivative) against mpmath's 40-digit root
    of P(2n, b) = ½ and its numerical derivative."""
    mpmath.mp.dps = 40

    def root(n: float) -> mpmath.mpf:
        half = mpmath.mpf(1) / 2
        return mpmath.findroot(lambda b: mpmath.gammainc(2 * n, 0, b, regularized=True) - half, 2 * n - 1 / 3)

    values = [0.5, 1.0, 4.0, 8.0]
    n = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    b = sersic_bn(n)
    (grad,) = torch.autograd.grad(b.sum(), n)
    np.testing.assert_allclose(b.detach().numpy(), [float(root(v)) for v in values], rtol=1e-13)
    np.testing.assert_allclose(grad.numpy(), [float(mpmath.diff(root, v)) for v in values], rtol=1e-9)


def test_gradients_in_every_parameter() -> None:
    x = torch.linspace(-1.0, 1.3, 7, dtype=torch.float64)
    y = torch.linspace(0.9, -0.8, 7, dtype=torch.float64)
    params = torch.tensor([1.5, 0.7, 1.3, 0.1, -0.2, 0.05, 0.1], dtype=torch.float64, requires_grad=True)

    def profile(p: torch.Tensor) -> torch.Tensor:
        return sersic_surface_brightness(
            x, y, amp=p[0], r_eff=p[1], n=p[2], e1=p[3], e2=p[4], center_x=p[5], center_y=p[6], softening=1e-4
        )

    assert torch.autograd.gradcheck(profile, (params,))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"r_eff": 0.0}, "r_eff"), ({"n": -1.0}, "Sérsic index"), ({"e1": 0.8, "e2": 0.7}, "ellipticity")],
)
def test_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    params = {"amp": 1.0, "r_eff": 1.0, "n": 1.0, **kwargs}
    for x in (np.zeros(3), torch.zeros(3, dtype=torch.float64)):
        with pytest.raises(ValueError, match=match):
            sersic_surface_brightness(x, x, **params)
    with pytest.raises(ValueError, match="axis ratio"):
        ellipticity_from_axis_ratio(1.2, 0.0)

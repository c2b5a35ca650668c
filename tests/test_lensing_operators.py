"""Lensing operators and map sampling against independent references (lenstronomy's analytic profiles and grid
integrals, lenspack's KS inversion) and exact properties (axis transposition, gradients, dtypes)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from lenspack.image.inversion import ks93
from lenstronomy.LensModel.convergence_integrals import deflection_from_kappa_grid
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.Util.param_util import ellipticity2phi_q

from darkclusters.lensing import operators
from darkclusters.lensing.interpolate import inside_field, sample_field
from darkclusters.lensing.operators import (
    convergence_from_shear,
    deflection_field,
    magnification,
    potential,
    reduced_shear,
    shear_field,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Small FFTs run fastest single-threaded (and do not fight other processes for the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grid(n: int, pixel: float, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (x, y) [arcsec] of an (n, width) map, [row = y, col = x]."""
    width = n if width is None else width
    x = (np.arange(width) + 0.5 - width / 2) * pixel
    y = (np.arange(n) + 0.5 - n / 2) * pixel
    return np.meshgrid(x, y)


def pixel_mean_kappa(
    model: LensModel, kwargs: list[dict], x: np.ndarray, y: np.ndarray, pixel: float
) -> np.ndarray:
    """κ averaged over each pixel (4 × 4 sub-samples; 32 × 32 on the 6 × 6 pixels around the cusp)."""
    offsets = ((np.arange(4) + 0.5) / 4 - 0.5) * pixel
    kappa = np.mean([model.kappa(x + a, y + b, kwargs) for a in offsets for b in offsets], axis=0)
    fine = ((np.arange(32) + 0.5) / 32 - 0.5) * pixel
    fa, fb = np.meshgrid(fine, fine)
    core = (np.abs(x) < 3 * pixel) & (np.abs(y) < 3 * pixel)
    kappa[core] = [
        model.kappa(xc + fa, yc + fb, kwargs).mean() for xc, yc in zip(x[core], y[core], strict=True)
    ]
    return kappa


PROFILES = {
    "NFW": ({"Rs": 20.0, "alpha_Rs": 6.0}, 0.0, 0.0),
    "SIS": ({"theta_E": 10.0}, 0.0, 0.0),
    "EPL": ({"theta_E": 10.0, "gamma": 2.2, "e1": 0.15, "e2": 0.05}, 0.15, 0.05),
}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_deflection_shear_potential_match_lenstronomy_profiles(name: str) -> None:
    """α, γ (and ψ up to a constant) of analytic κ grids within 1 % of lenstronomy's analytic answer.

    κ is tapered to 0 towards the map edge along its own iso-κ ellipses: the removed mass is a sum of
    homoeoids, which deflect nothing inside them, so inside the taper the analytic α, γ are exact."""
    n, pixel = 128, 0.5
    params, e1, e2 = PROFILES[name]
    model, kwargs = LensModel([name]), [{**params, "center_x": 0.0, "center_y": 0.0}]
    x, y = grid(n, pixel)
    phi, q = ellipticity2phi_q(e1, e2)
    xr, yr = np.cos(phi) * x + np.sin(phi) * y, -np.sin(phi) * x + np.cos(phi) * y
    r_ell = np.sqrt(q * xr**2 + yr**2 / q)  # lenstronomy's elliptical radius: κ is constant on it
    r_max = 0.98 * np.sqrt(q) * n * pixel / 2
    taper = 0.5 * (1 + np.cos(np.pi * np.clip((r_ell - 0.8 * r_max) / (0.2 * r_max), 0, 1)))
    kappa = pixel_mean_kappa(model, kwargs, x, y, pixel) * taper

    alpha_x, alpha_y = deflection_field(kappa, pixel)
    gamma1, gamma2 = shear_field(kappa)
    psi = potential(kappa, pixel)
    ref_ax, ref_ay = model.alpha(x, y, kwargs)
    fxx, fxy, _, fyy = model.hessian(x, y, kwargs)
    ref_g1, ref_g2 = 0.5 * (fxx - fyy), fxy
    ref_psi = model.potential(x, y, kwargs)

    inner = (r_ell < 0.6 * r_max) & (np.hypot(x, y) >= 12 * pixel)
    err_alpha = np.hypot(alpha_x - ref_ax, alpha_y - ref_ay) / np.hypot(ref_ax, ref_ay)
    err_gamma = np.hypot(gamma1 - ref_g1, gamma2 - ref_g2) / np.hypot(ref_g1, ref_g2)
    assert err_alpha[inner].max() < 0.01
    assert err_gamma[inner].max() < 0.01
    offset = (psi - ref_psi)[inner]
    assert np.ptp(offset) < 0.01 * np.ptp(ref_psi[inner])


def test_fourier_shear_is_accurate_on_smooth_kappa() -> None:
    """Gaussian κ (σ = 6 px), γ_t = M(<r)/(πr²) − κ: Fourier KS within 1e-3 of the peak, the kernel 1e-2."""
    n, sigma = 96, 6.0
    x, y = grid(n, 1.0)
    r2 = x**2 + y**2
    kappa = np.exp(-r2 / (2 * sigma**2))
    gamma_t = 2 * sigma**2 * (1 - np.exp(-r2 / (2 * sigma**2))) / r2 - kappa
    ref1, ref2 = -gamma_t * (x**2 - y**2) / r2, -gamma_t * 2 * x * y / r2
    peak = np.hypot(ref1, ref2).max()
    for method, pad, tolerance in (("fourier", 4, 1e-3), ("kernel", 2, 1e-2)):
        g1, g2 = shear_field(kappa, pad_factor=pad, method=method)
        assert np.hypot(g1 - ref1, g2 - ref2).max() < tolerance * peak, method


def test_deflection_matches_lenstronomy_grid_integral() -> None:
    """Our pixel-integrated kernel and lenstronomy's point kernel (``deflection_from_kappa_grid``) agree."""
    rng = np.random.default_rng(3)
    x, y = grid(64, 0.7)
    kappa = sum(
        a * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s**2))
        for a, cx, cy, s in zip(
            rng.uniform(0.2, 1, 4),
            rng.uniform(-10, 10, 4),
            rng.uniform(-10, 10, 4),
            rng.uniform(2, 5, 4),
            strict=True,
        )
    )
    ours = np.stack(deflection_field(kappa, 0.7))
    reference = np.stack(deflection_from_kappa_grid(kappa, 0.7))
    assert np.abs(ours - reference).max() < 2e-3 * np.abs(reference).max()


@pytest.mark.parametrize("method", ["kernel", "fourier"])
def test_transposing_kappa_swaps_alpha_and_flips_gamma1(method: str) -> None:
    """x ↔ y: α_x(κᵀ) = α_y(κ)ᵀ, α_y(κᵀ) = α_x(κ)ᵀ, γ1(κᵀ) = −γ1(κ)ᵀ, γ2(κᵀ) = γ2(κ)ᵀ, exactly."""
    kappa = np.random.default_rng(0).random((40, 40))
    ax, ay = deflection_field(kappa, 0.3)
    tax, tay = deflection_field(kappa.T, 0.3)
    np.testing.assert_allclose(tax, ay.T, atol=1e-12)
    np.testing.assert_allclose(tay, ax.T, atol=1e-12)
    g1, g2 = shear_field(kappa, method=method)
    tg1, tg2 = shear_field(kappa.T, method=method)
    np.testing.assert_allclose(tg1, -g1.T, atol=1e-12)
    np.testing.assert_allclose(tg2, g2.T, atol=1e-12)
    assert np.abs(g1).max() > 0.01  # the check is not vacuous


def test_orientation_against_lenspack_and_lenstronomy() -> None:
    """An off-centre elliptical lens: our KS inverse is lenspack's ks93, and both κ→γ and γ→κ correlate with
    lenstronomy's analytic fields, while the transposed (axes-swapped) layout does not."""
    n, pixel = 96, 1.0
    x, y = grid(n, pixel)
    model = LensModel(["SIE"])
    kwargs = [{"theta_E": 8.0, "e1": 0.3, "e2": -0.1, "center_x": 12.0, "center_y": -7.0}]
    kappa = model.kappa(x, y, kwargs)
    fxx, fxy, _, fyy = model.hessian(x, y, kwargs)
    ref_g1, ref_g2 = 0.5 * (fxx - fyy), fxy

    kappa_e, kappa_b = convergence_from_shear(ref_g1, ref_g2)
    lp_e, lp_b = ks93(ref_g1, ref_g2)
    np.testing.assert_allclose(kappa_e, lp_e, atol=1e-10)
    np.testing.assert_allclose(kappa_b, lp_b, atol=1e-10)

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        inner = np.hypot(x - 12, y + 7) > 3
        return float(np.corrcoef(a[inner], b[inner])[0, 1])

    assert corr(kappa_e, kappa) > 0.9
    swapped_e, _ = ks93(ref_g1.T, ref_g2.T)
    assert corr(swapped_e.T, kappa) < 0.5
    g1, g2 = shear_field(kappa)
    assert corr(g1, ref_g1) > 0.95  # not 1: the map holds only part of the (infinite) SIE's mass
    assert corr(g2, ref_g2) > 0.95


def test_kaiser_squires_round_trip() -> None:
    """κ → γ → κ: exact (up to the mean) for periodic Fourier KS; with the defaults (finite-field shear, no
    shear known outside the map) within 1 % of the peak in the inner 60 %, up to a constant (mass sheet)."""
    x, y = grid(64, 1.0)
    kappa = np.exp(-((x - 3) ** 2 + (y + 5) ** 2) / 30.0) + 0.5 * np.exp(-((x + 8) ** 2 + y**2) / 12.0)
    g1, g2 = shear_field(kappa, pad_factor=1, method="fourier")
    kappa_e, kappa_b = convergence_from_shear(g1, g2)
    np.testing.assert_allclose(kappa_e, kappa - kappa.mean(), atol=1e-12)
    assert np.abs(kappa_b).max() < 1e-12
    kappa_e, kappa_b = convergence_from_shear(*shear_field(kappa))
    inner = np.hypot(x, y) < 0.3 * 64
    residual = (kappa_e - kappa)[inner]
    assert np.abs(residual - residual.mean()).max() < 0.01 * kappa.max()
    assert np.abs(kappa_b).max() < 0.05 * kappa.max()


def test_magnification_matches_lenstronomy() -> None:
    """μ = 1/((1 − κ)² − |γ|²) against lenstronomy's analytic magnification, away from critical curves."""
    n, pixel = 128, 0.5
    model, kwargs = LensModel(["NFW"]), [{"Rs": 20.0, "alpha_Rs": 3.0, "center_x": 0.0, "center_y": 0.0}]
    x, y = grid(n, pixel)
    r = np.hypot(x, y)
    taper = 0.5 * (1 + np.cos(np.pi * np.clip((r - 0.8 * 31.4) / (0.2 * 31.4), 0, 1)))
    kappa = pixel_mean_kappa(model, kwargs, x, y, pixel) * taper
    mu = magnification(kappa, pixel)
    reference = model.magnification(x, y, kwargs)
    inner = (r < 18) & (r > 6)
    assert np.abs(mu / reference - 1)[inner].max() < 0.01


def test_reduced_shear_branches() -> None:
    """g = γ/(1 − κ) where |g| < 1; 1/g* beyond; continuous across |g| = 1; no NaN at κ = 1."""
    g1, g2 = reduced_shear(np.array([0.1, 0.3]), np.array([0.05, 0.4]), np.array([0.2, 0.6]))
    np.testing.assert_allclose(g1[0], 0.1 / 0.8)
    np.testing.assert_allclose(g2[0], 0.05 / 0.8)
    g = complex(0.3, 0.4) / 0.4  # |g| = 1.25: the image of a round source has ellipticity 1/g*
    np.testing.assert_allclose([g1[1], g2[1]], [(1 / g.conjugate()).real, (1 / g.conjugate()).imag])
    edge = reduced_shear(np.array([0.5 - 1e-9, 0.5 + 1e-9]), np.zeros(2), np.array([0.5, 0.5]))
    np.testing.assert_allclose(edge[0], [1.0, 1.0], atol=1e-8)
    kappa = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    out = reduced_shear(
        torch.tensor([0.2, 0.1], dtype=torch.float64), torch.zeros(2, dtype=torch.float64), kappa
    )
    out[0].sum().backward()
    assert torch.isfinite(kappa.grad).all()


def test_gradcheck_float64() -> None:
    """Autograd matches finite differences for every operator (small non-square maps)."""
    rng = np.random.default_rng(1)
    kappa = torch.tensor(rng.random((2, 6, 7)) * 0.3, dtype=torch.float64, requires_grad=True)
    g1, g2 = (
        torch.tensor(rng.normal(size=(6, 7)) * 0.1, dtype=torch.float64, requires_grad=True) for _ in "12"
    )
    checks = {
        "deflection": lambda k: deflection_field(k, 0.4),
        "shear_kernel": lambda k: shear_field(k),
        "shear_fourier": lambda k: shear_field(k, method="fourier"),
        "potential": lambda k: potential(k, 0.4),
        "magnification": lambda k: magnification(k),
        "reduced_shear": lambda k: reduced_shear(*shear_field(k), k),
    }
    for name, fn in checks.items():
        assert torch.autograd.gradcheck(fn, (kappa,)), name
    assert torch.autograd.gradcheck(lambda a, b: convergence_from_shear(a, b, pad_factor=2), (g1, g2))


def test_numpy_torch_dtypes_and_batches() -> None:
    """numpy in → numpy out; float32 stays float32 (≈ float64); batches equal the per-map results."""
    kappa = np.random.default_rng(2).random((2, 3, 16, 20)) * 0.5
    ax64, ay64 = deflection_field(kappa, 0.5)
    assert isinstance(ax64, np.ndarray)
    assert ax64.dtype == np.float64
    assert ax64.shape == kappa.shape
    ax32, _ = deflection_field(kappa.astype(np.float32), 0.5)
    assert ax32.dtype == np.float32
    np.testing.assert_allclose(ax32, ax64, rtol=1e-4, atol=1e-5 * np.abs(ax64).max())
    single = deflection_field(kappa[1, 2], 0.5)
    np.testing.assert_allclose(ax64[1, 2], single[0], atol=1e-12)
    np.testing.assert_allclose(ay64[1, 2], single[1], atol=1e-12)
    tensor = torch.tensor(kappa, dtype=torch.float32)
    for result in (
        *shear_field(tensor),
        potential(tensor, 0.5),
        magnification(tensor),
        *deflection_field(tensor, 1),
    ):
        assert isinstance(result, torch.Tensor)
        assert result.dtype == torch.float32
        assert result.shape == tensor.shape
    integers = deflection_field(np.ones((8, 8), dtype=np.int64), 1.0)[0]
    assert integers.dtype == np.float64
    assert np.isfinite(deflection_field(kappa[0, 0, ::-1], 0.5)[0]).all()  # negative strides are copied


def test_cpu_loop_path_equals_batched_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large grids run map by map on the CPU: same results and gradients as one batched transform."""
    kappa = torch.tensor(np.random.default_rng(7).random((2, 3, 10, 12)), requires_grad=True)
    batched = (*deflection_field(kappa, 0.5), *shear_field(kappa), potential(kappa, 0.5))
    monkeypatch.setattr(operators, "_CPU_LOOP_MIN_CELLS", 0)
    looped = (*deflection_field(kappa, 0.5), *shear_field(kappa), potential(kappa, 0.5))
    for a, b in zip(batched, looped, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda k: deflection_field(k, 0.5), (kappa[:1, :1, :6, :5].detach().requires_grad_(),)
    )


def test_cached_kernels_hold_no_graph() -> None:
    kappa = torch.rand(12, 12, dtype=torch.float64, requires_grad=True)
    deflection_field(kappa, 1.0)[0].sum().backward()
    operators._deflection_kernel_fft.cache_clear()
    deflection_field(kappa, 1.0)
    deflection_field(kappa * 2, 1.0)
    info = operators._deflection_kernel_fft.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    cached = operators._deflection_kernel_fft(12, 12, (24, 24), kappa.device, kappa.dtype)
    assert not cached.requires_grad
    assert cached.grad_fn is None


def test_bad_arguments_are_named() -> None:
    kappa = np.zeros((8, 8))
    with pytest.raises(ValueError, match="pixel_arcsec"):
        deflection_field(kappa, 0.0)
    with pytest.raises(ValueError, match="pad_factor"):
        deflection_field(kappa, 1.0, pad_factor=1.5)
    with pytest.raises(ValueError, match="pad_factor"):
        shear_field(kappa, pad_factor=0.5, method="fourier")
    with pytest.raises(ValueError, match="method"):
        shear_field(kappa, method="fft")
    with pytest.raises(ValueError, match="kappa"):
        shear_field(np.zeros(8))
    with pytest.raises(ValueError, match="kappa"):
        potential(torch.zeros(8, 8, dtype=torch.int64), 1.0)
    with pytest.raises(ValueError, match="g1"):
        convergence_from_shear(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="padding_mode"):
        sample_field(kappa, np.zeros(2), np.zeros(2), 1.0, padding_mode="reflect")


def test_sample_field_convention() -> None:
    """Pixel centres (x_j, y_i) give field[i, j] (non-square: no axis mix-up); linear fields are exact."""
    height, width, pixel = 6, 9, 0.5
    field = np.random.default_rng(4).random((height, width))
    x, y = grid(height, pixel, width)
    np.testing.assert_allclose(sample_field(field, x, y, pixel), field, atol=1e-12)
    assert sample_field(field, x[2, 7], y[2, 7], pixel) == pytest.approx(field[2, 7])
    plane = 0.3 + 2.0 * x - 1.5 * y
    rng = np.random.default_rng(5)
    px, py = rng.uniform(x.min(), x.max(), 30), rng.uniform(y.min(), y.max(), 30)
    np.testing.assert_allclose(sample_field(plane, px, py, pixel), 0.3 + 2.0 * px - 1.5 * py, atol=1e-12)
    outside = np.array([10.0, 0.0])
    assert sample_field(field, outside, np.zeros(2), pixel)[0] == pytest.approx(field[2:4, -1].mean())
    assert sample_field(field, outside, np.zeros(2), pixel, padding_mode="zeros")[0] == 0.0
    np.testing.assert_array_equal(inside_field(outside, np.zeros(2), (height, width), pixel), [False, True])


def test_sample_field_shapes_and_gradients() -> None:
    rng = np.random.default_rng(6)
    fields = torch.tensor(rng.random((3, 8, 8)), dtype=torch.float64, requires_grad=True)
    px = torch.tensor(rng.uniform(-1.5, 1.5, 5), dtype=torch.float64, requires_grad=True)
    py = torch.tensor(rng.uniform(-1.5, 1.5, 5), dtype=torch.float64, requires_grad=True)
    assert sample_field(fields, px, py, 0.5).shape == (3, 5)  # shared points
    per_map = sample_field(fields, px.expand(3, 5) * 0.5, py.expand(3, 5), 0.5)
    assert per_map.shape == (3, 5)
    np.testing.assert_allclose(per_map[1].detach(), sample_field(fields[1], px * 0.5, py, 0.5).detach())
    with pytest.raises(ValueError, match="broadcast"):
        sample_field(fields, px.expand(4, 5), py.expand(4, 5), 0.5)
    assert torch.autograd.gradcheck(lambda f, a, b: sample_field(f, a, b, 0.5), (fields, px, py))
    assert isinstance(
        sample_field(fields.detach().numpy(), px.detach().numpy(), py.detach().numpy(), 0.5), np.ndarray
    )


@pytest.mark.gpu
def test_operators_on_cuda_match_cpu() -> None:
    kappa = torch.rand(2, 64, 64, dtype=torch.float32)
    for fn in (lambda k: deflection_field(k, 0.5), shear_field, lambda k: (potential(k, 0.5),)):
        cpu = fn(kappa)
        gpu = fn(kappa.cuda())
        for a, b in zip(cpu, gpu, strict=True):
            assert b.device.type == "cuda"
            torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-4 * a.abs().max().item())

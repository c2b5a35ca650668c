"""Weak-lensing mass-mapping baselines: KS against lenspack, shear binning by hand, the fft2 noise-power
convention by simulation, and a Wiener filter that beats KS on a noisy mock."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from astropy.cosmology import FlatLambdaCDM
from lenspack.image.inversion import ks93

from darkclusters.lensing.mass_mapping import (
    bin_shear_catalog,
    kaiser_squires,
    measure_power_spectrum,
    shear_noise_power,
    wiener_filter,
)
from darkclusters.lensing.weak import make_weak_lensing_catalog

COSMO = FlatLambdaCDM(H0=70, Om0=0.3)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_kaiser_squires_is_lenspack_ks93() -> None:
    g1, g2 = np.random.default_rng(0).normal(size=(2, 24, 30))
    ours = kaiser_squires(g1, g2)
    reference = ks93(g1, g2)
    for a, b in zip(ours, reference, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_bin_shear_catalog_by_hand() -> None:
    """x picks the column, y the row; weights r² on e/r; empty pixels are 0; outside sources are dropped."""
    catalog = {
        "x_arcsec": np.array([-1.5, -1.2, 0.5, 0.5, 9.0]),
        "y_arcsec": np.array([0.5, 0.9, -0.5, -0.5, 0.0]),
        "e1": np.array([0.1, 0.3, 0.2, -0.2, 1.0]),
        "e2": np.array([0.0, 0.1, 0.4, 0.4, 1.0]),
        "ratio_to_ref": np.array([1.0, 0.5, 2.0, 0.0, 1.0]),
    }
    g1, g2, counts = bin_shear_catalog(catalog, (2, 4), 1.0, to_reference=False)
    # Columns span x ∈ [-2, -1), [-1, 0), [0, 1), [1, 2); rows y ∈ [-1, 0), [0, 1).
    np.testing.assert_allclose(counts, [[0, 0, 2, 0], [2, 0, 0, 0]])
    np.testing.assert_allclose(g1[1, 0], 0.2)
    np.testing.assert_allclose(g2[0, 2], 0.4)
    assert g1[0, 0] == 0.0
    g1, _, counts = bin_shear_catalog(catalog, (2, 4), 1.0)
    np.testing.assert_allclose(counts[1, 0], 1.0 + 0.25)
    np.testing.assert_allclose(g1[1, 0], (0.1 * 1.0 + 0.3 * 0.5) / 1.25)
    np.testing.assert_allclose(g1[0, 2], 0.2 / 2.0)  # the r = 0 source drops out


def test_noise_power_convention_by_simulation() -> None:
    """Pure shape noise, binned and KS-inverted: ⟨|fft2 κE|²⟩ = N_pix σ_e² ⟨1/n⟩ (shear_noise_power), and a
    white map's measured power is N_pix σ² (numpy's unnormalised fft2)."""
    shape, pixel, sigma = (32, 32), 8.0, 0.26
    catalog = make_weak_lensing_catalog(
        np.zeros((64, 64)),
        4.0,
        z_lens=0.3,
        z_ref=1.0,
        cosmology=COSMO,
        seed=11,
        density_per_arcmin2=600.0,
        shape_noise=sigma,
        exclude_radius_arcsec=0.0,
    )
    g1, g2, counts = bin_shear_catalog(catalog, shape, pixel, to_reference=False)
    assert (counts > 0).all()
    kappa_e, _ = kaiser_squires(g1, g2)
    power = np.abs(np.fft.fft2(kappa_e)) ** 2
    expected = shear_noise_power(shape, sigma, counts)
    assert power.ravel()[1:].mean() == pytest.approx(expected, rel=0.1)
    white = np.random.default_rng(1).normal(0.0, 0.3, size=(40, 32, 32))
    for isotropic in (False, True):
        measured = measure_power_spectrum(white, isotropic=isotropic)
        assert measured.ravel()[1:].mean() == pytest.approx(32 * 32 * 0.09, rel=0.05)
        assert measured[0, 0] == pytest.approx(0.0, abs=1e-9)


def cored_isothermal(rng: np.random.Generator, n: int, pixel: float) -> np.ndarray:
    """A random elliptical cored isothermal κ (θ_E 15–30″, core 5–15″, q 0.6–1, centre within ±10″)."""
    c = (np.arange(n) + 0.5 - n / 2) * pixel
    x, y = np.meshgrid(c, c)
    theta_e, core, q, phi = (
        rng.uniform(15, 30),
        rng.uniform(5, 15),
        rng.uniform(0.6, 1),
        rng.uniform(0, np.pi),
    )
    dx, dy = x - rng.uniform(-10, 10), y - rng.uniform(-10, 10)
    xr, yr = np.cos(phi) * dx + np.sin(phi) * dy, -np.sin(phi) * dx + np.cos(phi) * dy
    return 0.5 * theta_e / np.sqrt(core**2 + q * xr**2 + yr**2 / q)


def test_wiener_filter_beats_kaiser_squires_on_a_noisy_mock() -> None:
    n, pixel, factor = 64, 4.0, 2
    rng = np.random.default_rng(3)

    def coarse(kappa: np.ndarray) -> np.ndarray:
        return kappa.reshape(*kappa.shape[:-2], n // factor, factor, n // factor, factor).mean(axis=(-3, -1))

    training = coarse(np.stack([cored_isothermal(rng, n, pixel) for _ in range(40)]))
    truth = cored_isothermal(rng, n, pixel)
    catalog = make_weak_lensing_catalog(
        truth,
        pixel,
        z_lens=0.3,
        z_ref=1.0,
        cosmology=COSMO,
        seed=4,
        shape_noise="conventional",
        exclude_radius_arcsec=0.0,
    )
    shape = (n // factor, n // factor)
    g1, g2, counts = bin_shear_catalog(catalog, shape, pixel * factor)
    signal = measure_power_spectrum(training)
    noise = shear_noise_power(shape, 0.26, counts)
    reference = coarse(truth) - coarse(truth).mean()
    ks_error = np.sqrt(np.mean((kaiser_squires(g1, g2)[0] - reference) ** 2))
    wf_error = np.sqrt(np.mean((wiener_filter(g1, g2, signal, noise) - reference) ** 2))
    assert wf_error < 0.6 * ks_error  # measured 0.44
    with pytest.raises(ValueError, match="signal_power"):
        wiener_filter(g1, g2, signal[:-1], noise)

"""Spectra against analytic expectations: white noise, signal + noise, wave positions in h/Mpc and ℓ."""

from __future__ import annotations

import numpy as np
import pytest

from darkclusters.evaluation import spectra as s

H = 0.7  # the dimensionless Hubble parameter of these tests


def test_white_noise_power_is_flat_at_sigma2_pixel_area():
    rng = np.random.default_rng(0)
    sig, pixel_kpc = 2.5, 100.0
    noise = sig * rng.standard_normal((8, 128, 128))
    k, p = s.power_spectrum_hmpc(noise, pixel_kpc=pixel_kpc, h=H)
    _, _, n_modes = s.binned_cross_spectrum(noise[0], noise[0], pixel_size=pixel_kpc * 1e-3 * H)
    want = sig**2 * (pixel_kpc * 1e-3 * H) ** 2  # σ² × pixel area in (Mpc/h)²
    mean_p = p.mean(axis=0)
    # each bin averages n_modes/2 independent complex modes (f(−k) = f(k)*) of 8 maps: χ² scatter
    tol = 4.0 / np.sqrt(n_modes / 2 * 8)
    assert np.all(np.abs(mean_p / want - 1) < tol)
    assert np.sum(mean_p * n_modes) / np.sum(n_modes) / want == pytest.approx(1.0, abs=0.01)
    assert k[0] > 0
    assert np.all(np.diff(k) > 0)


def test_angular_power_of_white_noise_and_parseval():
    rng = np.random.default_rng(1)
    kappa = 0.3 * rng.standard_normal((64, 64))
    pix = 2.0  # arcmin
    _ell, c = s.angular_power_spectrum(kappa[None], pixel_arcmin=pix)
    omega = (pix / s.ARCMIN_PER_RAD) ** 2
    assert np.mean(c) / (0.09 * omega) == pytest.approx(1.0, abs=0.05)
    # Parseval with this normalisation: Σ over all modes of P/A = mean square
    _, p_all, n_modes = s.binned_cross_spectrum(kappa, kappa, pixel_size=1.0, k_edges=[1e-9, 10.0])
    dc = np.abs(np.fft.fft2(kappa)[0, 0]) ** 2 / kappa.size
    assert (p_all[0] * n_modes[0] + dc) / kappa.size == pytest.approx(np.mean(kappa**2), rel=1e-10)


def test_wave_lands_at_its_wavenumber_in_h_per_mpc():
    n, pixel_kpc, periods = 64, 100.0, 8
    x = np.arange(n)
    wave = np.cos(2 * np.pi * periods * x / n)[None, :] * np.ones((n, 1))
    _k, p = s.power_spectrum_hmpc(wave, pixel_kpc=pixel_kpc, h=H)
    edges = s.default_k_edges((n, n), pixel_kpc * 1e-3 * H)
    k_wave = 2 * np.pi * periods / (n * pixel_kpc * 1e-3 * H)  # h/Mpc
    i = np.argmax(p)
    assert edges[i] < k_wave < edges[i + 1]
    assert k_wave == pytest.approx(periods * (edges[1] - edges[0]), rel=1e-12)  # bin m is centred on m·k_f


def test_wave_lands_at_its_multipole():
    n, pix, periods = 64, 1.0, 8
    y = np.arange(n)
    wave = np.cos(2 * np.pi * periods * y / n)[:, None] * np.ones((1, n))
    ell, c = s.angular_power_spectrum(wave, pixel_arcmin=pix)
    ell_wave = 2 * np.pi * s.ARCMIN_PER_RAD / (n * pix / periods)  # ℓ = 2π/λ, λ = 8′ → 2700
    assert ell_wave == pytest.approx(2700.0)
    assert abs(ell[np.argmax(c)] - ell_wave) < 0.5 * ell_wave / periods


def test_identical_scaled_and_flipped_maps():
    rng = np.random.default_rng(2)
    sim = rng.standard_normal((2, 32, 32))
    _k, b, r = s.bias_and_correlation(sim, sim, pixel_kpc=50.0, h=H)
    np.testing.assert_allclose(b, 1.0, rtol=1e-12)
    np.testing.assert_allclose(r, 1.0, rtol=1e-12)
    _, b2, r2 = s.bias_and_correlation(2.0 * sim, sim, pixel_kpc=50.0, h=H)
    np.testing.assert_allclose(b2, 2.0, rtol=1e-12)
    np.testing.assert_allclose(r2, 1.0, rtol=1e-12)
    _, _, r3 = s.bias_and_correlation(-sim, sim, pixel_kpc=50.0, h=H)
    np.testing.assert_allclose(r3, -1.0, rtol=1e-12)
    _ell, rho = s.cross_correlation_ell(sim, sim, pixel_arcmin=1.0)
    np.testing.assert_allclose(rho, 1.0, rtol=1e-12)


def test_correlation_of_signal_plus_white_noise_is_analytic():
    # Signal: a Gaussian field with mode amplitudes T(k); noise: white of variance σ_n². For each bin the
    # expectation is r = ⟨P_S⟩/√(⟨P_S⟩(⟨P_S⟩ + P_N)) = √(S/(S+N)), with ⟨P_S⟩ = p²·mean T² over the bin's
    # modes and P_N = σ_n² p².
    rng = np.random.default_rng(3)
    n, batch, p_kpc, sig_n = 64, 32, 100.0, 0.5
    p = p_kpc * 1e-3 * H
    kk = 2 * np.pi * np.fft.fftfreq(n, d=p)
    kmag = np.hypot(kk[:, None], kk[None, :])
    transfer = 1.0 / (1.0 + (kmag / 6.0) ** 2)  # falls below the noise at k ≈ 6 h/Mpc
    white = rng.standard_normal((batch, n, n))
    signal = np.fft.ifft2(np.fft.fft2(white) * transfer).real
    gen = signal + sig_n * rng.standard_normal(signal.shape)
    edges = s.default_k_edges((n, n), p)
    k, p_ss, n_modes = s.binned_cross_spectrum(signal, signal, pixel_size=p, k_edges=edges)
    _, p_gg, _ = s.binned_cross_spectrum(gen, gen, pixel_size=p, k_edges=edges)
    _, p_sg, _ = s.binned_cross_spectrum(signal, gen, pixel_size=p, k_edges=edges)
    r_measured = p_sg.mean(0) / np.sqrt(p_ss.mean(0) * p_gg.mean(0))
    idx = np.digitize(kmag.ravel(), edges) - 1
    mean_t2 = np.array([np.mean(transfer.ravel()[idx == i] ** 2) for i in range(len(k))])
    s_k, n_k = p**2 * mean_t2, sig_n**2 * p**2
    r_expected = np.sqrt(s_k / (s_k + n_k))
    # scatter of a correlation estimate over N_eff = n_modes/2 · batch independent modes: (1 − r²)/√N_eff
    tol = 4.0 * (1 - r_expected**2) / np.sqrt(n_modes / 2 * batch)
    assert np.all(np.abs(r_measured - r_expected) < tol)
    assert np.mean(np.abs(r_measured - r_expected)) < 0.02
    assert r_expected[-1] < 0.5 < r_expected[0]  # the test spans both regimes
    # per-map r is below 1 wherever there is noise
    _, _, r = s.bias_and_correlation(gen, signal, pixel_kpc=p_kpc, h=H)
    assert np.all(r < 1)


def test_scale_split_means_by_hand():
    k = np.array([1.0, 1.5, 2.0, 3.0])
    v = np.array([[1.0, 2.0, 3.0, 5.0], [0.0, 0.0, np.nan, 1.0]])
    small, large = s.scale_split_means(k, v, k_split=2.0)
    np.testing.assert_allclose(small, [4.0, 1.0])
    np.testing.assert_allclose(large, [1.5, 0.0])
    with pytest.raises(ValueError, match="k_split"):
        s.scale_split_means(k, v, k_split=10.0)


def test_one_point_pdf_of_gaussian_noise():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 128, 128))
    edges = np.linspace(-4, 4, 33)
    pdf = s.one_point_pdf(x, bin_edges=edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    np.testing.assert_allclose(pdf, np.exp(-(centres**2) / 2) / np.sqrt(2 * np.pi), atol=0.01)
    assert np.sum(pdf * np.diff(edges)) == pytest.approx(1.0, abs=1e-3)


def test_peak_counts_by_hand():
    kappa = np.zeros((40, 40))
    yy, xx = np.mgrid[:40, :40]
    for (cy, cx), height in [((10, 10), 1.0), ((10, 30), 2.0), ((30, 20), 5.0)]:
        kappa += height * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    counts = s.peak_counts(kappa, bin_edges=[0.5, 1.5, 2.5, 10.0])
    np.testing.assert_array_equal(counts, [1, 1, 1])
    counts_snr = s.peak_counts(kappa, bin_edges=[0.5, 1.5, 2.5, 10.0], noise_sigma=0.5)
    np.testing.assert_array_equal(counts_snr, [0, 1, 2])  # ν = 2, 4, 10
    assert s.peak_counts(kappa[None].repeat(3, 0), bin_edges=[0.0, 10.0])[0] == 9

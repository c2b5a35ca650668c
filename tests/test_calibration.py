"""Calibration scores on Gaussian toys with known posteriors, and TARP against the ``tarp`` package."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from darkclusters.evaluation import calibration as c


def _gaussian_toy(
    rng: np.random.Generator,
    n_sims: int,
    n_dims: int,
    n_samples: int,
    *,
    shift: float = 0.0,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """θ ~ N(0, I); y = θ + N(0, s² I); exact posterior N(y/(1 + s²), s²/(1 + s²) I).

    ``shift`` (in posterior σ) biases the samples, ``scale`` multiplies their spread (1: calibrated).
    """
    s2 = 0.5**2
    theta = rng.standard_normal((n_sims, n_dims))
    y = theta + np.sqrt(s2) * rng.standard_normal(theta.shape)
    mu, sd = y / (1 + s2), np.sqrt(s2 / (1 + s2))
    samples = mu + sd * (shift + scale * rng.standard_normal((n_samples, n_sims, n_dims)))
    return samples, theta


def test_standardized_errors_of_a_calibrated_posterior():
    rng = np.random.default_rng(0)
    n = 20
    mean = rng.standard_normal((64, 64))
    sd = 0.1 + rng.random((64, 64))
    truth = mean + sd * rng.standard_normal(mean.shape)
    samples = mean + sd * rng.standard_normal((n, *mean.shape))
    z = c.standardized_errors(samples, truth)
    assert c.fraction_within(z) == pytest.approx(c.expected_fraction_within(n), abs=0.02)
    assert c.expected_fraction_within(10**9) == pytest.approx(0.6827, abs=1e-4)
    # an under-confident posterior (σ three times too large) puts nearly everything inside ±1σ (seed 002)
    wide = mean + 3 * sd * rng.standard_normal((n, *mean.shape))
    assert c.fraction_within(c.standardized_errors(wide, truth)) > 0.95


def test_calibration_scores_of_a_calibrated_posterior():
    rng = np.random.default_rng(10)
    mean = rng.standard_normal((64, 64))
    sd = np.exp(rng.uniform(-2, 0, mean.shape))
    truth = mean + sd * rng.standard_normal(mean.shape)
    samples = mean + sd * rng.standard_normal((30, *mean.shape))
    got = c.calibration_scores(samples, truth)
    assert got["frac_within_1sigma"] == pytest.approx(c.expected_fraction_within(30), abs=0.02)
    assert abs(got["z_mean"]) < 0.05
    assert got["z_std"] == pytest.approx(1.0, abs=0.1)
    assert got["rmse_sigma_pcc"] > 0.95


def test_standardized_errors_by_hand_and_bad_input():
    samples = np.array([[1.0, 0.0], [3.0, 0.0]])  # mean (2, 0), std (√2, 0)
    z = c.standardized_errors(samples, np.array([0.0, 1.0]))
    assert z[0] == pytest.approx(2 / np.sqrt(2))
    assert np.isnan(z[1])
    with pytest.raises(ValueError, match="n_samples"):
        c.standardized_errors(samples[:1], np.zeros(2))
    with pytest.raises(ValueError, match="truth shape"):
        c.standardized_errors(samples, np.zeros(3))


def test_rmse_sigma_relation_tracks_calibration():
    rng = np.random.default_rng(1)
    n = 20
    sd = np.exp(rng.uniform(-3, 0, (128, 128)))
    mean = rng.standard_normal(sd.shape)
    truth = mean + sd * np.sqrt(1 + 1 / n) * rng.standard_normal(sd.shape)
    out = c.rmse_sigma_relation(mean, sd, truth, n_bins=16)
    assert out["pearson"] > 0.99
    assert out["slope"] == pytest.approx(np.sqrt(1 + 1 / n), rel=0.03)
    over = c.rmse_sigma_relation(mean, sd / 2, truth, n_bins=16)  # over-confident: σ half the error
    assert over["slope"] == pytest.approx(2 * np.sqrt(1 + 1 / n), rel=0.03)


@pytest.mark.parametrize("references", ["prior", "uniform"])
def test_tarp_calibrated_toy_lies_on_the_diagonal(references):
    rng = np.random.default_rng(2)
    samples, theta = _gaussian_toy(rng, n_sims=400, n_dims=5, n_samples=100)
    ecp, alpha = c.tarp_coverage(samples, theta, references=references, seed=3, num_alpha_bins=20)
    assert alpha[0] == 0.0
    assert alpha[-1] == 1.0
    assert ecp.shape == alpha.shape
    assert c.tarp_max_deviation(ecp, alpha) < 0.1


@pytest.mark.parametrize(("shift", "scale"), [(2.0, 1.0), (0.0, 0.3), (0.0, 3.0)])
def test_tarp_biased_or_miscalibrated_toy_is_off_the_diagonal(shift, scale):
    rng = np.random.default_rng(4)
    samples, theta = _gaussian_toy(rng, n_sims=400, n_dims=5, n_samples=100, shift=shift, scale=scale)
    ecp, alpha = c.tarp_coverage(samples, theta, references="prior", seed=5, num_alpha_bins=20)
    assert c.tarp_max_deviation(ecp, alpha) > 0.2


def test_tarp_chunking_does_not_change_the_answer(tmp_path):
    rng = np.random.default_rng(6)
    samples, theta = _gaussian_toy(rng, n_sims=30, n_dims=50, n_samples=20)
    whole = c.tarp_credibility(samples, theta, references="uniform", seed=7)
    chunked = c.tarp_credibility(samples, theta, references="uniform", seed=7, chunk_elements=64)
    np.testing.assert_array_equal(whole, chunked)
    manhattan = c.tarp_credibility(
        samples, theta, references="prior", seed=7, metric="manhattan", chunk_elements=100
    )
    assert manhattan.shape == (30,)
    assert np.all((manhattan >= 0) & (manhattan <= 1))


def test_tarp_reads_a_memmap_in_bounded_memory(tmp_path):
    # 20 samples × 8 maps of 128² in float32 on disk: a float64 copy would take 21 MB; chunks keep it ≪ that.
    n_samples, n_sims, n_dims = 20, 8, 128 * 128
    rng = np.random.default_rng(8)
    mm = np.lib.format.open_memmap(
        tmp_path / "s.npy", mode="w+", dtype=np.float32, shape=(n_samples, n_sims, n_dims)
    )
    theta = rng.standard_normal((n_sims, n_dims)).astype(np.float32)
    for i in range(n_samples):
        mm[i] = theta + rng.standard_normal((n_sims, n_dims)).astype(np.float32)
    mm.flush()
    samples = np.load(tmp_path / "s.npy", mmap_mode="r")
    tracemalloc.start()
    f = c.tarp_credibility(samples, theta, references="prior", seed=0, chunk_elements=2**15)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert f.shape == (n_sims,)
    assert peak < 6e6  # references (1 MB) + a few 0.26 MB blocks, not the 21 MB of samples in float64


def test_tarp_matches_the_tarp_package():
    tarp = pytest.importorskip("tarp")
    rng = np.random.default_rng(9)
    samples, theta = _gaussian_toy(rng, n_sims=200, n_dims=4, n_samples=50, shift=0.5)
    refs = rng.uniform(-2, 2, theta.shape)
    f = c.tarp_credibility(samples, theta, references=refs)
    ecp_pkg, alpha_pkg = tarp.get_tarp_coverage(
        samples.copy(), theta.copy(), references=refs.copy(), num_alpha_bins=20, norm=False, seed=0
    )
    # tarp 0.1.1 histograms f over [min f, max f] (a bug fixed in 0.1.3): ecp[i] = fraction of f < alpha[i]
    # below the top edge, 1 at it. Compare on its own α grid.
    ours = np.mean(f[:, None] < alpha_pkg[None, :-1], axis=0)
    np.testing.assert_allclose(ecp_pkg[:-1], ours, atol=1e-12)
    ecp, alpha = c.tarp_coverage(samples, theta, references=refs, num_alpha_bins=20)
    np.testing.assert_allclose(ecp[1:-1], [np.mean(f < a) for a in alpha[1:-1]])


def test_tarp_bad_arguments():
    samples = np.zeros((5, 3, 2))
    with pytest.raises(ValueError, match="theta shape"):
        c.tarp_coverage(samples, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="references"):
        c.tarp_coverage(samples, np.zeros((3, 2)), references="random")
    with pytest.raises(ValueError, match="metric"):
        c.tarp_coverage(samples, np.zeros((3, 2)), metric="cosine")

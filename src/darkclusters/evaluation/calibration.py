"""Calibration of posterior samples: standardized errors, the RMSE–σ relation and TARP coverage.

* Standardized pixel errors ε = (S̄_gen − S_sim)/σ_gen and the fraction inside ±1σ (Hsu et al., seed 002,
  eq. 12 and Fig. 6; they find 99.5 % inside, an under-confident model).
* RMSE of the posterior mean against the predicted σ, binned by σ, and their correlation (DarkClusters paper,
  seed 000, §6.1 and Fig. 3).
* TARP expected coverage (Lemos, Coogan et al. 2023, arXiv:2302.03026, Algorithm 1; used by Boruah et al.,
  seed 001, §3.1), written here in chunks over simulations and dimensions so that 100 samples of 512² maps
  never need to be in memory at once (the ``tarp`` package holds everything in float64: ~21 GB).

Shapes: posterior samples of map-valued quantities are ``(n_samples, ..., H, W)``; TARP works on flattened
vectors, samples ``(n_samples, n_sims, n_dims)`` and truths ``(n_sims, n_dims)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

__all__ = [
    "calibration_scores",
    "expected_fraction_within",
    "fraction_within",
    "rmse_sigma_relation",
    "standardized_errors",
    "tarp_coverage",
    "tarp_credibility",
    "tarp_max_deviation",
]


def standardized_errors(samples: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """ε = (mean − truth)/std over the sample axis (seed 002, eq. 12), std with ddof = 1.

    samples: ``(n_samples, ...)`` with n_samples ≥ 2; truth: ``(...)``. Returns ``(...)``; NaN where the
    samples do not vary (σ = 0).
    """
    s = np.asarray(samples, dtype=np.float64)
    t = np.asarray(truth, dtype=np.float64)
    if s.ndim < 1 or s.shape[0] < 2:
        raise ValueError(f"samples must be (n_samples >= 2, ...); got shape {s.shape}")
    if s.shape[1:] != t.shape:
        raise ValueError(
            f"samples shape {s.shape} does not match truth shape {t.shape} after the sample axis"
        )
    std = s.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std > 0, (s.mean(axis=0) - t) / std, np.nan)


def fraction_within(z: np.ndarray, *, k: float = 1.0) -> float:
    """Fraction of finite standardized errors with |ε| < k (NaN entries are ignored)."""
    if k <= 0:
        raise ValueError(f"k={k} must be > 0")
    z = np.asarray(z, dtype=np.float64)
    finite = np.isfinite(z)
    if not finite.any():
        raise ValueError("z has no finite entry")
    return float(np.mean(np.abs(z[finite]) < k))


def expected_fraction_within(n_samples: int, *, k: float = 1.0) -> float:
    """The calibrated value of :func:`fraction_within`: P(|ε| < k) for ε = (x̄ − θ)/σ with n samples from the
    true posterior N(θ̂, σ²). x̄ − θ ~ N(0, σ²(1 + 1/n)), so P = erf(k / √(2(1 + 1/n))) (σ is estimated, which
    this neglects); 0.683 for n → ∞ and k = 1.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples} must be >= 1")
    return float(special.erf(k / np.sqrt(2.0 * (1.0 + 1.0 / n_samples))))


def rmse_sigma_relation(
    mean: np.ndarray, std: np.ndarray, truth: np.ndarray, *, n_bins: int = 20
) -> dict[str, Any]:
    """RMSE of the posterior mean against the predicted σ (seed 000, Fig. 3).

    Pixels (pooled over all maps) are grouped into ``n_bins`` quantile bins of predicted σ; in each bin
    σ̄ = √(mean σ²) and RMSE = √(mean (mean − truth)²). A calibrated posterior gives RMSE ≈ σ̄·√(1 + 1/n) for
    n samples. mean, std, truth: one shape ``(..., H, W)`` (any shape). Returns a dict with ``sigma`` and
    ``rmse`` (``(n_bins,)``), ``pearson`` (correlation of the binned RMSE with σ̄) and ``slope``
    (least-squares RMSE/σ̄ through the origin).
    """
    m, s, t = (np.asarray(a, dtype=np.float64).ravel() for a in (mean, std, truth))
    if not (m.shape == s.shape == t.shape):
        raise ValueError(f"mean, std and truth sizes differ: {m.size}, {s.size}, {t.size}")
    if n_bins < 2 or n_bins > m.size:
        raise ValueError(f"n_bins={n_bins} must be in [2, number of pixels = {m.size}]")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise ValueError("std must be finite and >= 0")
    order = np.argsort(s, kind="stable")
    groups = np.array_split(order, n_bins)
    sigma = np.array([np.sqrt(np.mean(s[g] ** 2)) for g in groups])
    rmse = np.array([np.sqrt(np.mean((m[g] - t[g]) ** 2)) for g in groups])
    pcc = float(np.corrcoef(sigma, rmse)[0, 1]) if np.ptp(sigma) > 0 and np.ptp(rmse) > 0 else float("nan")
    slope = float(np.sum(sigma * rmse) / np.sum(sigma**2)) if np.any(sigma > 0) else float("nan")
    return {"sigma": sigma, "rmse": rmse, "pearson": pcc, "slope": slope}


def calibration_scores(samples: np.ndarray, truth: np.ndarray, *, n_bins: int = 20) -> dict[str, float]:
    """Per-sample calibration scores keyed as ``tables.CALIBRATION_METRICS`` (TARP aside, which needs many
    sims): ``frac_within_1sigma``, ``z_mean``, ``z_std`` of the standardized errors and ``rmse_sigma_pcc``,
    the correlation of binned RMSE with predicted σ. samples: ``(n_samples, H, W)``; truth: ``(H, W)``.
    """
    s = np.asarray(samples, dtype=np.float64)
    z = standardized_errors(s, truth)
    finite = z[np.isfinite(z)]
    rel = rmse_sigma_relation(s.mean(axis=0), s.std(axis=0, ddof=1), truth, n_bins=n_bins)
    return {
        "frac_within_1sigma": fraction_within(z),
        "z_mean": float(finite.mean()),
        "z_std": float(finite.std()),
        "rmse_sigma_pcc": rel["pearson"],
    }


def _blocks(n_samples: int, n_sims: int, n_dims: int, chunk_elements: int) -> tuple[int, int]:
    """(sims per block, dims per block) so that one float64 block of samples holds ≤ chunk_elements values."""
    if n_samples * n_dims <= chunk_elements:
        return max(1, chunk_elements // (n_samples * n_dims)), n_dims
    return 1, max(1, chunk_elements // n_samples)


def _references(theta: Any, references: str | np.ndarray, seed: int | None, dims_block: int) -> np.ndarray:
    n_sims, n_dims = theta.shape
    if isinstance(references, np.ndarray):
        if references.shape != (n_sims, n_dims):
            raise ValueError(f"references shape {references.shape} != (n_sims, n_dims) = {(n_sims, n_dims)}")
        return np.asarray(references, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if references == "prior":
        if n_sims < 2:
            raise ValueError("references='prior' needs n_sims >= 2 (each reference is another sim's truth)")
        # A random derangement: sim j's reference is the truth of sim perm[j] ≠ j, a draw from the prior
        # that is independent of θ_j.
        perm = rng.permutation(n_sims)
        shift = rng.integers(1, n_sims)
        partner = np.empty(n_sims, dtype=np.int64)
        partner[perm] = perm[(np.arange(n_sims) + shift) % n_sims]
        return np.stack([np.asarray(theta[int(p)], dtype=np.float64) for p in partner])
    if references == "uniform":
        lo = np.empty(n_dims)
        hi = np.empty(n_dims)
        for d0 in range(0, n_dims, dims_block):
            block = np.asarray(theta[:, d0 : d0 + dims_block], dtype=np.float64)
            lo[d0 : d0 + dims_block] = block.min(axis=0)
            hi[d0 : d0 + dims_block] = block.max(axis=0)
        return lo + (hi - lo) * rng.random((n_sims, n_dims))
    raise ValueError(f"references={references!r} must be 'prior', 'uniform' or an (n_sims, n_dims) array")


def tarp_credibility(
    samples: Any,
    theta: Any,
    *,
    references: str | np.ndarray = "prior",
    seed: int | None = 0,
    metric: str = "euclidean",
    chunk_elements: int = 2**23,
) -> np.ndarray:
    """TARP credibility level of each truth: f_j = (1/n) Σ_i 1[d(θ̃_ij, r_j) < d(θ_j, r_j)], shape (n_sims,).

    samples: ``(n_samples, n_sims, n_dims)``, theta: ``(n_sims, n_dims)``; any array-likes that support numpy
    slicing (numpy arrays, ``np.memmap``, ``h5py.Dataset``), read ``chunk_elements`` float64 values at a time.
    references (r_j, one per sim): ``"prior"`` (default) — the truth of another, randomly paired sim (a
    draw from the prior that is independent of θ_j, as Boruah et al. draw references from the prior);
    ``"uniform"`` — uniform on the per-dimension range [min_j θ_j, max_j θ_j] of the truths (as ``tarp`` does
    with ``references="random", norm=True``, up to that affine normalisation); or an explicit
    ``(n_sims, n_dims)`` array. The reference array is held in memory (n_sims·n_dims float64). metric:
    ``"euclidean"`` (default; the squared L2 of Boruah et al. ranks identically) or ``"manhattan"``.
    """
    n_samples, n_sims, n_dims = samples.shape
    if np.shape(theta) != (n_sims, n_dims):
        raise ValueError(f"theta shape {np.shape(theta)} != (n_sims, n_dims) = {(n_sims, n_dims)}")
    if metric not in ("euclidean", "manhattan"):
        raise ValueError(f"metric={metric!r} must be 'euclidean' or 'manhattan'")
    if chunk_elements < n_samples:
        raise ValueError(f"chunk_elements={chunk_elements} must be >= n_samples={n_samples}")
    sims_block, dims_block = _blocks(n_samples, n_sims, n_dims, chunk_elements)
    refs = _references(theta, references, seed, max(1, chunk_elements // n_sims))
    f = np.empty(n_sims)
    for j0 in range(0, n_sims, sims_block):
        j1 = min(n_sims, j0 + sims_block)
        d_samples = np.zeros((n_samples, j1 - j0))
        d_theta = np.zeros(j1 - j0)
        for d0 in range(0, n_dims, dims_block):
            d1 = min(n_dims, d0 + dims_block)
            ref = refs[j0:j1, d0:d1]
            diff_s = np.asarray(samples[:, j0:j1, d0:d1], dtype=np.float64) - ref[None]
            diff_t = np.asarray(theta[j0:j1, d0:d1], dtype=np.float64) - ref
            if metric == "euclidean":
                d_samples += np.einsum("ijd,ijd->ij", diff_s, diff_s)
                d_theta += np.einsum("jd,jd->j", diff_t, diff_t)
            else:
                d_samples += np.abs(diff_s).sum(axis=-1)
                d_theta += np.abs(diff_t).sum(axis=-1)
        # Squared distances rank as distances, so no square root is needed.
        f[j0:j1] = np.mean(d_samples < d_theta[None], axis=0)
    return f


def tarp_coverage(
    samples: Any,
    theta: Any,
    *,
    references: str | np.ndarray = "prior",
    seed: int | None = 0,
    metric: str = "euclidean",
    num_alpha_bins: int | None = None,
    chunk_elements: int = 2**23,
) -> tuple[np.ndarray, np.ndarray]:
    """TARP expected coverage probability (Lemos et al. 2023, Algorithm 1), computed in chunks.

    ECP(α) = (1/n_sims) Σ_j 1[f_j < α], f_j from :func:`tarp_credibility` (same arguments). α runs over
    ``num_alpha_bins + 1`` equally spaced values on [0, 1] (default num_alpha_bins = max(n_sims // 10, 1),
    as ``tarp``). A calibrated posterior gives ECP(α) ≈ α; an over-confident one lies below the diagonal,
    an under-confident one above it, a biased one off it. Returns (ecp, alpha), each (num_alpha_bins + 1,).
    """
    f = tarp_credibility(
        samples, theta, references=references, seed=seed, metric=metric, chunk_elements=chunk_elements
    )
    n_bins = max(f.size // 10, 1) if num_alpha_bins is None else num_alpha_bins
    if n_bins < 1:
        raise ValueError(f"num_alpha_bins={num_alpha_bins} must be >= 1")
    alpha = np.linspace(0.0, 1.0, n_bins + 1)
    ecp = np.mean(f[:, None] < alpha[None, :], axis=0)
    return ecp, alpha


def tarp_max_deviation(ecp: np.ndarray, alpha: np.ndarray) -> float:
    """max_α |ECP(α) − α|: the distance of a TARP curve from the diagonal (0 for perfect calibration)."""
    ecp = np.asarray(ecp, dtype=np.float64)
    alpha = np.asarray(alpha, dtype=np.float64)
    if ecp.shape != alpha.shape:
        raise ValueError(f"ecp shape {ecp.shape} != alpha shape {alpha.shape}")
    return float(np.max(np.abs(ecp - alpha)))

"""Posterior samples from a conditional prior alone: plain EDM sampling of p(x | cond), no likelihood.

This is the sampler of the conditional-score approaches (Hsu et al.; Park et al.): a denoiser trained on
(mass, light) pairs with the light concatenated to its input, sampled with the deterministic Heun solver of
Karras et al. (2022, Algorithm 2) from per-sample seeded noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from darkclusters.diffusion.samplers.heun import Denoiser, check_cond, sample_heun
from darkclusters.diffusion.samplers.rng import PerSampleGenerator
from darkclusters.diffusion.samplers.schedules import edm_sigmas

__all__ = ["sample_conditional", "sample_shape"]


def sample_shape(shape: Sequence[int], n_samples: int) -> tuple[int, ...]:
    """Per-sample ``(C, H, W)`` from ``shape``, given as ``(C, H, W)`` or ``(B, C, H, W)`` (B = n_samples)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) == 4:
        if shape[0] != n_samples:
            raise ValueError(f"shape={shape} has batch {shape[0]} but {n_samples} seeds were given")
        shape = shape[1:]
    if len(shape) != 3 or any(n < 1 for n in shape):
        raise ValueError(f"shape={shape} must be (C, H, W) or (B, C, H, W) with positive sizes")
    return shape


def sample_conditional(
    denoise: Denoiser,
    shape: Sequence[int],
    *,
    cond: torch.Tensor | None,
    seeds: Sequence[int],
    n_steps: int = 18,  # Heun steps N; 2N − 1 network calls per sample (EDM default)
    sigma_min: float = 0.002,  # smallest nonzero noise level [normalised data units] (EDM default)
    sigma_max: float = 80.0,  # initial noise level [normalised data units] (EDM default)
    rho: float = 7.0,  # poly-ρ exponent of the schedule (Karras et al. 2022, eq. 5)
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """Samples of p(x | cond) by EDM Heun sampling (Karras et al. 2022, Algorithm 2, no churn).

    denoise: ``denoise(x, sigma, cond) -> x0_hat``. shape: ``(C, H, W)`` per sample (or ``(B, C, H, W)``).
    cond: ``(B, Cc, H, W)`` conditioning given to every network call (None for an unconditional model).
    seeds: one seed per sample (B = len(seeds)); sample b depends only on seeds[b]. device, dtype: of the
    samples; default cond's device (else CPU) and torch's default dtype. Returns ``(B, C, H, W)`` in
    normalised data units.
    """
    seeds = list(seeds)
    if device is None:
        device = cond.device if isinstance(cond, torch.Tensor) else torch.device("cpu")
    dtype = dtype or torch.get_default_dtype()
    per_sample = sample_shape(shape, len(seeds))
    check_cond(cond, len(seeds))
    sigmas = edm_sigmas(n_steps, sigma_min, sigma_max, rho, device=device, dtype=dtype)
    noise = PerSampleGenerator(seeds, device=device).randn(per_sample, dtype=dtype)
    return sample_heun(denoise, noise * sigmas[0], sigmas, cond=cond, callback=callback)

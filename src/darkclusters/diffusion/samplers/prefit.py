"""Likelihood-only pre-fit and the quadratic pull term of the DarkClusters "DAPS-LL" sampler.

The published DarkClusters code first fits the mass map to the (strong-lensing) likelihood alone, by Adam
from noise with a total-variation penalty (~1000 steps, lr 1.26e-3, TV weight 0.0102), then replaces that
likelihood term inside DAPS by a quadratic pull towards the fit, 50·mean((x_fit − x)²). This module provides
both pieces; the samplers stay free of any lensing code (``nll`` is any differentiable ``nll(x) -> (B,)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from darkclusters.diffusion.samplers.conditional import sample_shape
from darkclusters.diffusion.samplers.heun import check_finite
from darkclusters.diffusion.samplers.rng import PerSampleGenerator

__all__ = ["add_nll", "likelihood_prefit", "quadratic_pull", "total_variation"]

NLL = Callable[[torch.Tensor], torch.Tensor]


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per sample: mean |x[i, j+1] − x[i, j]| + mean |x[i+1, j] − x[i, j]|.

    x: ``(B, C, H, W)``; returns ``(B,)`` in x's units per pixel (means over channels and pixel pairs).
    """
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    dx = (
        (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
        if x.shape[-1] > 1
        else x.new_zeros(x.shape[0])
    )
    dy = (
        (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
        if x.shape[-2] > 1
        else x.new_zeros(x.shape[0])
    )
    return dx + dy


def likelihood_prefit(
    nll: NLL,
    shape: Sequence[int],
    *,
    seeds: Sequence[int],
    n_steps: int = 1000,  # Adam iterations (DarkClusters: ~1000)
    lr: float = 1.26e-3,  # Adam learning rate (DarkClusters sweep value)
    tv_weight: float = 0.0102,  # weight of total_variation(x) added to nll(x) (DarkClusters sweep value)
    init_std: float = 1.0,  # x starts as init_std·N(0, I) per sample [normalised data units]
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """Minimise nll(x) + tv_weight·TV(x) by Adam (Kingma & Ba 2015) from per-sample seeded noise.

    nll: differentiable ``nll(x) -> (B,)``. shape: ``(C, H, W)`` per sample (or ``(B, C, H, W)``). seeds: one
    per sample; Adam's update is elementwise, so sample b depends only on seeds[b]. callback: after each step
    ``{"i", "loss" (B,), "x"}``. Returns x_fit ``(B, C, H, W)``, detached. Raises SamplerDivergedError on a
    non-finite loss or state.
    """
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 0:
        raise ValueError(f"n_steps={n_steps!r} must be an integer >= 0")
    for name, value in (("lr", lr), ("tv_weight", tv_weight), ("init_std", init_std)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value!r} must be a finite number >= 0")
    seeds = list(seeds)
    per_sample = sample_shape(shape, len(seeds))
    dtype = dtype or torch.get_default_dtype()
    gen = PerSampleGenerator(seeds, device=device)
    x = (gen.randn(per_sample, dtype=dtype) * init_std).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    with torch.enable_grad():
        for i in range(n_steps):
            optimizer.zero_grad(set_to_none=True)
            value = nll(x)
            if value.shape != (x.shape[0],):
                raise ValueError(f"nll must return shape ({x.shape[0]},), got {tuple(value.shape)}")
            loss = value + tv_weight * total_variation(x) if tv_weight > 0 else value
            loss.sum().backward()
            check_finite(loss, sampler="likelihood_prefit", step=i, sigma=0.0, term="loss")
            optimizer.step()
            check_finite(x, sampler="likelihood_prefit", step=i, sigma=0.0, term="state")
            if callback is not None:
                callback({"i": i, "loss": loss.detach(), "x": x.detach()})
    return x.detach()


def quadratic_pull(x_fit: torch.Tensor, *, weight: float = 50.0) -> NLL:
    """The pull term x ↦ weight·mean((x_fit − x)²) per sample, ``(B,)`` (DarkClusters DAPS-LL: weight 50).

    x_fit: ``(B, C, H, W)`` (e.g. from :func:`likelihood_prefit`), detached and captured; x has its shape.
    """
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"weight={weight!r} must be a finite number >= 0")
    target = x_fit.detach()

    def pull(x: torch.Tensor) -> torch.Tensor:
        if x.shape != target.shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, the pre-fit {tuple(target.shape)}")
        return weight * (target.to(x) - x).square().flatten(1).mean(1)

    return pull


def add_nll(*terms: NLL) -> NLL:
    """Sum of negative log-likelihood terms, each ``(B,)``, e.g. weak lensing + ``quadratic_pull(x_fit)``."""
    if not terms:
        raise ValueError("add_nll needs at least one term")

    def total(x: torch.Tensor) -> torch.Tensor:
        return sum((term(x) for term in terms[1:]), start=terms[0](x))

    return total

"""Diffusion posterior sampling (DPS; Chung et al. 2023) with Boruah et al.'s likelihood scaling (DES-Y3).

The posterior score is approximated as ∇ log p(x_σ | y) ≈ ∇ log p(x_σ) − A(σ)·ζ·∇_{x_σ} nll(x̂_0(x_σ)), the
gradient taken through the denoiser x̂_0 = D(x_σ; σ) (Chung et al. 2023, eq. 10). Boruah et al. (DES-Y3, §2.1)
multiply the likelihood gradient by A(t) = sigmoid((t̄ − t)/σ_t) on the DDPM index t (t̄ = 500, σ_t = 20), which
switches the likelihood off at high noise where DPS drives samples out of distribution. Here A is evaluated on
EDM σ through the DDPM index of that σ: A(σ) = sigmoid((t̄ − t(σ))/σ_t), t(σ) from
``schedules.edm_sigma_to_ddpm_index`` (sigmoid β schedule by default; t = 500 ↔ σ ≈ 0.62, 700 ↔ 1.45).

Each step from σ_i to σ_{i+1} on the EDM schedule (Karras et al. 2022, eq. 5) is either the ancestral
(DDPM, η = 1) step x ← x̂_0 + (σ_{i+1}²/σ_i²)(x − x̂_0) + σ_{i+1}√(1 − σ_{i+1}²/σ_i²)·ε, the exact reverse
transition for a Gaussian x_0 (Boruah et al. use DDIM with η = 1), or an Euler step of the probability-flow
ODE. The likelihood then moves x by the step's score weight: −A·ζ·(σ_i² − σ_{i+1}²)·∇nll (ancestral, matching
Boruah's β_t = 1 − ᾱ_t/ᾱ_{t−1} in VP units) or −A·ζ·σ_i(σ_i − σ_{i+1})·∇nll (ODE). ζ = 1 is the plain
posterior score; ``nll`` is a proper negative log-likelihood (e.g. ½χ²).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from darkclusters.diffusion.samplers.conditional import sample_shape
from darkclusters.diffusion.samplers.heun import Denoiser, check_cond, check_fields, check_finite
from darkclusters.diffusion.samplers.rng import PerSampleGenerator
from darkclusters.diffusion.samplers.schedules import DDPM_BETA_SCHEDULES, edm_sigma_to_ddpm_index, edm_sigmas

__all__ = ["DPSConfig", "likelihood_scale", "sample_dps"]

NLL = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DPSConfig:
    """DPS hyper-parameters; σ in normalised data units, t̄ and σ_t in DDPM index units (Boruah et al.)."""

    n_steps: int = 1000  # EDM steps N, then σ_N = 0 (Boruah et al.: 1000 DDIM steps); 1 forward+backward each
    sigma_min: float = 0.002  # last nonzero noise level (EDM default)
    sigma_max: float = 80.0  # initial noise level (EDM default)
    rho: float = 7.0  # poly-ρ exponent of the schedule (Karras et al. 2022, eq. 5)
    zeta: float = 1.0  # multiplier of the likelihood step; 1 = plain posterior score
    likelihood_scaling: bool = True  # multiply by A(σ) of Boruah et al.; False: A = 1
    t_bar: float = 500.0  # DDPM index where A = ½ (Boruah et al. t̄; per tomographic bin 150…500)
    t_width: float = 20.0  # DDPM-index width of the sigmoid (Boruah et al. σ_t; 20 or 70)
    ddpm_schedule: str = "sigmoid"  # β schedule that maps the DDPM index to σ (schedules.DDPM_BETA_SCHEDULES)
    ddpm_timesteps: int = 1000  # T of that DDPM
    stochastic: bool = True  # ancestral (DDPM η = 1) steps; False: Euler probability-flow ODE steps
    min_scale: float = 0.0  # skip the likelihood (and its backward pass) where A(σ)·ζ < min_scale
    max_abs: float = 1e4  # |x| above this (data units; σ_max = 80 noise reaches ~400) raises

    def __post_init__(self) -> None:
        check_fields(
            self,
            integers={"n_steps": 1, "ddpm_timesteps": 2},
            positive=("sigma_min", "sigma_max", "rho", "t_width", "max_abs"),
            nonnegative=("zeta", "t_bar", "min_scale"),
            flags=("likelihood_scaling", "stochastic"),
            unbounded=("max_abs",),
        )
        if self.sigma_min > self.sigma_max:
            raise ValueError(f"DPSConfig.sigma_min={self.sigma_min} exceeds sigma_max={self.sigma_max}")
        if self.ddpm_schedule not in DDPM_BETA_SCHEDULES:
            raise ValueError(
                f"DPSConfig.ddpm_schedule={self.ddpm_schedule!r} not in {sorted(DDPM_BETA_SCHEDULES)}"
            )


def likelihood_scale(sigma: torch.Tensor | float, cfg: DPSConfig) -> torch.Tensor:
    """A(σ) = sigmoid((t̄ − t(σ))/σ_t) (Boruah et al. §2.1) on EDM σ via the DDPM index t(σ); 1 if off."""
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if not cfg.likelihood_scaling:
        return torch.ones_like(sigma)
    t = edm_sigma_to_ddpm_index(sigma, schedule=cfg.ddpm_schedule, n_timesteps=cfg.ddpm_timesteps)
    return torch.sigmoid((cfg.t_bar - t) / cfg.t_width)


def _guided_denoise(
    denoise: Denoiser,
    x: torch.Tensor,
    s: float,
    cond: torch.Tensor | None,
    nll: NLL | None,
    step: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """x̂_0 = D(x; σ) and ∇_x nll(x̂_0(x)) through the denoiser (None without a likelihood)."""
    sigma = torch.tensor(s, device=x.device, dtype=x.dtype)
    if nll is None:
        with torch.no_grad():
            return denoise(x, sigma, cond), None
    with torch.enable_grad():
        x_req = x.detach().requires_grad_(True)
        x0 = denoise(x_req, sigma, cond)
        value = nll(x0)
        if value.shape != (x.shape[0],):
            raise ValueError(f"nll must return shape ({x.shape[0]},), got {tuple(value.shape)}")
        (grad,) = torch.autograd.grad(value.sum(), x_req)
    check_finite(value, sampler="dps", step=step, sigma=s, term="likelihood value")
    check_finite(grad, sampler="dps", step=step, sigma=s, term="likelihood gradient")
    return x0.detach(), grad


def sample_dps(
    denoise: Denoiser,
    shape: Sequence[int],
    *,
    cond: torch.Tensor | None,
    nll: NLL | None,
    seeds: Sequence[int],
    cfg: DPSConfig,
    callback: Callable[[dict[str, Any]], None] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Posterior samples by DPS (Chung et al. 2023, Alg. 1) with Boruah et al.'s likelihood scaling on EDM σ.

    denoise: ``denoise(x, sigma, cond) -> x0_hat``, differentiable in x. shape: ``(C, H, W)`` per sample (or
    ``(B, C, H, W)``). cond: ``(B, Cc, H, W)`` given to every network call (None: unconditional). nll:
    differentiable negative log-likelihood ``nll(x0) -> (B,)``; None samples the prior. seeds: one per sample.
    cfg: DPSConfig. callback: after each step ``{"i", "sigma", "sigma_next", "x", "denoised", "scale" (A·ζ),
    "nfe"}``. Returns ``(B, C, H, W)``. Per sample: n_steps network forward passes, each followed by a
    backward pass through the network (skipped where A·ζ < min_scale); memory holds one forward's activations.
    Raises SamplerDivergedError on NaN/Inf or |x| > cfg.max_abs.
    """
    if not isinstance(cfg, DPSConfig):
        raise ValueError(f"cfg must be a DPSConfig, got {type(cfg).__name__}")
    seeds = list(seeds)
    if device is None:
        device = cond.device if isinstance(cond, torch.Tensor) else torch.device("cpu")
    dtype = dtype or torch.get_default_dtype()
    per_sample = sample_shape(shape, len(seeds))
    check_cond(cond, len(seeds))
    gen = PerSampleGenerator(seeds, device=device)
    sigmas64 = edm_sigmas(cfg.n_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, dtype=torch.float64)
    scales = (likelihood_scale(sigmas64[:-1], cfg) * cfg.zeta).tolist()
    sigmas = sigmas64.tolist()
    x = gen.randn(per_sample, dtype=dtype) * sigmas[0]
    for i, scale in enumerate(scales):
        s, s_next = sigmas[i], sigmas[i + 1]
        guided = nll if (nll is not None and scale > 0 and scale >= cfg.min_scale) else None
        x0, grad = _guided_denoise(denoise, x, s, cond, guided, i)
        check_finite(x0, sampler="dps", step=i, sigma=s, term="denoiser output", max_abs=cfg.max_abs)
        if cfg.stochastic:  # ancestral step: mean of p(x_{σ'} | x_σ, x̂_0), variance σ'²(1 − σ'²/σ²)
            ratio = (s_next / s) ** 2
            x_next = x0 + ratio * (x - x0)
            if s_next > 0:
                x_next = x_next + s_next * math.sqrt(1.0 - ratio) * gen.randn_like(x)
            weight = s**2 - s_next**2  # score weight of the step (DDPM β_t in VE units)
        else:  # Euler step of dx/dσ = (x − D)/σ (Karras et al. 2022, eq. 4)
            x_next = x + (s_next - s) * (x - x0) / s
            weight = s * (s - s_next)
        if grad is not None:
            x_next = x_next - (scale * weight) * grad
        x = x_next
        check_finite(x, sampler="dps", step=i, sigma=s, term="sampler state", max_abs=cfg.max_abs)
        if callback is not None:
            callback(
                {
                    "i": i,
                    "sigma": s,
                    "sigma_next": s_next,
                    "x": x,
                    "denoised": x0,
                    "scale": scale,
                    "nfe": i + 1,
                }
            )
    return x

"""Decoupled Annealing Posterior Sampling (DAPS; Zhang et al. 2025, Algorithm 1) with an EDM denoiser.

Per annealing level σ_i (EDM poly-ρ from σ_max down to σ_min, then 0), DAPS

1. estimates x̂_0(x_i) by integrating the probability-flow ODE from σ_i down to a small σ in a few Euler
   (or Heun) steps, without gradients (every call receives ``cond``; the published DarkClusters DAPS lost it
   here);
2. samples x_0 | x_i, y by Langevin dynamics on U(x_0) = nll(x_0)/τ² + ‖x_0 − x̂_0‖²/(2σ_i²), i.e. the
   likelihood times the Gaussian approximation N(x̂_0, σ_i² I) of p(x_0 | x_i) (r_i = σ_i, as the official
   code has it):
   x ← x − η_i ∇U(x) + √(2η_i)·ε, with η_i = lr·(1 + (i/N)(lr_min_ratio − 1)), optionally ·σ_i²;
3. re-noises: x_{i+1} = x_0 + σ_{i+1}·ε.

Likelihood convention. ``nll(x0) -> (B,)`` enters as −log p(y | x_0) = nll(x_0)/τ². For Gaussian noise of
std τ pass the misfit ½‖A(x_0) − y‖² (the mathematically correct ½‖·‖²/τ²); for an nll that is already
normalised pass τ = 1. The official DAPS main branch uses ‖A(x_0) − y‖²/τ² (no ½), a data term twice as
strong: reproduce it with τ/√2. Non-finite values or |x| beyond ``max_abs`` raise SamplerDivergedError (the
official code returns zeros on NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from darkclusters.diffusion.samplers.conditional import sample_shape
from darkclusters.diffusion.samplers.heun import (
    Denoiser,
    SamplerDivergedError,
    check_cond,
    check_fields,
    check_finite,
    sample_euler,
    sample_heun,
)
from darkclusters.diffusion.samplers.rng import PerSampleGenerator
from darkclusters.diffusion.samplers.schedules import edm_sigmas, poly_rho_sigmas

__all__ = ["DAPSConfig", "daps_nfe", "sample_daps"]

NLL = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DAPSConfig:
    """DAPS hyper-parameters; defaults are the official DAPS code's (Zhang et al. 2025), σ in data units."""

    annealing_steps: int = 200  # N annealing levels σ_0 = σ_max … σ_{N−1} = σ_min, then σ_N = 0
    sigma_max: float = 100.0  # initial noise level; x_0 ~ N(0, σ_max² I)
    sigma_min: float = 0.1  # last nonzero annealing level
    rho: float = 7.0  # poly-ρ exponent of the annealing and inner-ODE schedules (Karras et al. 2022, eq. 5)
    ode_steps: int = 5  # steps of the inner probability-flow ODE estimate of x̂_0
    ode_sigma_min: float = 0.01  # the inner ODE stops here; its state is x̂_0
    ode_heun: bool = False  # Heun (2 calls per step) instead of Euler (1 call per step) for the inner ODE
    langevin_steps: int = 100  # Langevin steps per annealing level
    lr: float = 1e-4  # Langevin step size η at i = 0
    lr_min_ratio: float = 0.01  # η falls linearly in i to lr·lr_min_ratio at i = N
    scale_lr_by_sigma2: bool = False  # η_i ← η_i·σ_i² (the DarkClusters "DAPS-LL" setting)
    tau: float = 0.01  # likelihood scale: −log p(y | x_0) = nll(x_0)/τ² (module docstring)
    max_abs: float = 1e4  # |x| above this (data units; the σ_max = 100 start reaches ~500) raises

    def __post_init__(self) -> None:
        check_fields(
            self,
            integers={"annealing_steps": 1, "ode_steps": 1, "langevin_steps": 0},
            positive=(
                "sigma_max",
                "sigma_min",
                "rho",
                "ode_sigma_min",
                "lr",
                "lr_min_ratio",
                "tau",
                "max_abs",
            ),
            flags=("ode_heun", "scale_lr_by_sigma2"),
            unbounded=("max_abs",),
        )
        if self.sigma_min > self.sigma_max:
            raise ValueError(f"DAPSConfig.sigma_min={self.sigma_min} exceeds sigma_max={self.sigma_max}")


def daps_nfe(cfg: DAPSConfig) -> int:
    """Network calls a sample: ode_steps (Euler) or 2·ode_steps (Heun) a level; 1 at σ_i <= ode_sigma_min."""
    sigmas = edm_sigmas(cfg.annealing_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, dtype=torch.float64)
    per_level = cfg.ode_steps * (2 if cfg.ode_heun else 1)
    return sum(per_level if float(s) > cfg.ode_sigma_min else 1 for s in sigmas[:-1])


def _x0_estimate(
    denoise: Denoiser, x: torch.Tensor, sigma: float, cond: torch.Tensor | None, cfg: DAPSConfig, step: int
) -> torch.Tensor:
    """x̂_0(x_i): the PF-ODE from σ_i to ode_sigma_min in ode_steps poly-ρ steps (one D call below it)."""
    try:
        if sigma <= cfg.ode_sigma_min:
            with torch.no_grad():
                x0hat = denoise(x, torch.tensor(sigma, device=x.device, dtype=x.dtype), cond)
        else:
            sigmas = poly_rho_sigmas(
                sigma, cfg.ode_sigma_min, cfg.ode_steps + 1, cfg.rho, device=x.device, dtype=x.dtype
            )
            x0hat = (sample_heun if cfg.ode_heun else sample_euler)(denoise, x, sigmas, cond=cond)
    except SamplerDivergedError as err:
        term = f"inner ODE ({err.term}, ODE step {err.step} at sigma={err.sigma:.6g})"
        raise SamplerDivergedError("daps", step=step, sigma=sigma, term=term) from err
    check_finite(
        x0hat, sampler="daps", step=step, sigma=sigma, term="inner ODE estimate x0hat", max_abs=cfg.max_abs
    )
    return x0hat


_TERMS = ("likelihood value", "likelihood gradient", "Langevin state")


def _langevin(
    nll: NLL | None, x0hat: torch.Tensor, sigma: float, step: int, gen: PerSampleGenerator, cfg: DAPSConfig
) -> torch.Tensor:
    """Langevin dynamics on nll(x)/τ² + ‖x − x̂_0‖²/(2σ_i²) from x̂_0 (Zhang et al. 2025, Alg. 1, line 6)."""
    eta = cfg.lr * (1.0 + (step / cfg.annealing_steps) * (cfg.lr_min_ratio - 1.0))
    if cfg.scale_lr_by_sigma2:
        eta *= sigma**2
    inv_tau2, inv_r2, noise_scale = 1.0 / cfg.tau**2, 1.0 / sigma**2, math.sqrt(2.0 * eta)
    first_bad = torch.full((len(_TERMS),), -1, dtype=torch.long, device=x0hat.device)  # no host sync per step
    x = x0hat.clone()
    for k in range(cfg.langevin_steps):
        grad = (x - x0hat) * inv_r2  # Gaussian prior term: −∇ log N(x; x̂_0, σ_i² I)
        value_bad = grad_bad = torch.zeros((), dtype=torch.bool, device=x.device)
        if nll is not None:
            with torch.enable_grad():
                x_req = x.detach().requires_grad_(True)
                value = nll(x_req)
                if value.shape != (x.shape[0],):
                    raise ValueError(f"nll must return shape ({x.shape[0]},), got {tuple(value.shape)}")
                (g,) = torch.autograd.grad(value.sum(), x_req)
            value_bad, grad_bad = ~torch.isfinite(value.detach()).all(), ~torch.isfinite(g).all()
            grad = grad + g * inv_tau2  # −∇ log p(y | x) = ∇ nll / τ²
        x = x - eta * grad + noise_scale * gen.randn_like(x)
        state_bad = ~(x.abs() <= cfg.max_abs).all()  # NaN compares False: caught too
        bad = torch.stack([value_bad, grad_bad, state_bad])
        first_bad = torch.where((first_bad < 0) & bad, k, first_bad)
    first = first_bad.tolist()
    hits = [(k, j) for j, k in enumerate(first) if k >= 0]
    if hits:
        k, j = min(hits)
        detail = f"first at Langevin step {k} of {cfg.langevin_steps}"
        if j == 2:
            detail += f" (non-finite or |x| > {cfg.max_abs:.4g})"
        raise SamplerDivergedError("daps", step=step, sigma=sigma, term=_TERMS[j], detail=detail)
    return x


def sample_daps(
    denoise: Denoiser,
    shape: Sequence[int],
    *,
    cond: torch.Tensor | None,
    nll: NLL | None,
    seeds: Sequence[int],
    cfg: DAPSConfig,
    callback: Callable[[dict[str, Any]], None] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Posterior samples by DAPS (Zhang et al. 2025, Algorithm 1), as the official code runs it.

    denoise: ``denoise(x, sigma, cond) -> x0_hat``. shape: ``(C, H, W)`` per sample (or ``(B, C, H, W)``).
    cond: ``(B, Cc, H, W)`` conditioning given to every network call, the inner ODE included (None for an
    unconditional prior). nll: differentiable ``nll(x0) -> (B,)``; −log p(y | x0) = nll/τ² (module docstring);
    None samples the prior. seeds: one per sample; sample b depends only on seeds[b]. cfg: DAPSConfig.
    callback: after each level ``{"i", "sigma", "sigma_next", "x", "x0hat", "x0y", "nfe"}``. device, dtype:
    default cond's device (else CPU) and torch's default dtype. Returns ``(B, C, H, W)`` in data units.
    Network calls per sample: :func:`daps_nfe` (1000 with the defaults), no backward pass through the network.
    Raises SamplerDivergedError with the level, σ and term on NaN/Inf or |x| > cfg.max_abs.
    """
    if not isinstance(cfg, DAPSConfig):
        raise ValueError(f"cfg must be a DAPSConfig, got {type(cfg).__name__}")
    seeds = list(seeds)
    if device is None:
        device = cond.device if isinstance(cond, torch.Tensor) else torch.device("cpu")
    dtype = dtype or torch.get_default_dtype()
    per_sample = sample_shape(shape, len(seeds))
    check_cond(cond, len(seeds))
    gen = PerSampleGenerator(seeds, device=device)
    sigmas = edm_sigmas(
        cfg.annealing_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, dtype=torch.float64
    ).tolist()
    x = gen.randn(per_sample, dtype=dtype) * sigmas[0]
    per_level = cfg.ode_steps * (2 if cfg.ode_heun else 1)
    nfe = 0
    for i in range(cfg.annealing_steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        x0hat = _x0_estimate(denoise, x, sigma, cond, cfg, i)
        nfe += per_level if sigma > cfg.ode_sigma_min else 1
        x0y = _langevin(nll, x0hat, sigma, i, gen, cfg)
        x = x0y + sigma_next * gen.randn_like(x0y) if sigma_next > 0 else x0y  # σ_N = 0: return x_0
        if callback is not None:
            callback(
                {
                    "i": i,
                    "sigma": sigma,
                    "sigma_next": sigma_next,
                    "x": x,
                    "x0hat": x0hat,
                    "x0y": x0y,
                    "nfe": nfe,
                }
            )
    return x

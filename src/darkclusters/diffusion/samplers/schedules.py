"""Noise-level schedules: the EDM poly-ρ σ schedule and the DDPM-index ↔ EDM-σ conversion.

EDM (Karras et al. 2022, eq. 5) writes the noisy state as x_σ = x_0 + σ·ε with σ in the units of the
normalised data. A DDPM (Ho et al. 2020) writes x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε at integer index t = 0…T−1;
dividing by √ᾱ_t gives the EDM state with σ_t = √((1 − ᾱ_t)/ᾱ_t) (Karras et al. 2022, Table 1, VP column;
Song et al. 2021, VP ↔ VE). That is the conversion used to carry Boruah et al.'s likelihood scaling A(t),
defined on the DDPM index, over to EDM σ (see ``darkclusters.diffusion.samplers.dps``).

The β schedules are stated exactly:

* ``"sigmoid"`` — Jabri et al. (2022, Fig. 8) as in the ``denoising_diffusion_pytorch`` code that the DES-Y3
  DPS mass maps use, with start s = −5, end e = 3, τ = 1, T = 1000:
  ᾱ(u) = (v_e − sigmoid((u(e − s) + s)/τ))/(v_e − v_s), v_· = sigmoid(·/τ), u = t/T,
  β_t = clip(1 − ᾱ((t+1)/T)/ᾱ(t/T), 0, 0.999), ᾱ_t = Π_{j≤t}(1 − β_j). It gives
  σ(150) = 0.128, σ(450) = 0.505, σ(500) = 0.622, σ(700) = 1.449 for data in [−1, 1] (the values quoted in
  ``reference/diffusion.md``: 0.13, 0.51, 0.62, 1.45).
* ``"linear"`` — Ho et al. (2020): β_t = linspace(1e-4, 0.02, T)·(1000/T).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch

__all__ = [
    "DDPM_BETA_SCHEDULES",
    "ddpm_index_to_edm_sigma",
    "ddpm_sigmas",
    "edm_sigma_to_ddpm_index",
    "edm_sigmas",
    "poly_rho_sigmas",
]


def poly_rho_sigmas(
    sigma_start: float,
    sigma_end: float,
    n_points: int,
    rho: float = 7.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """σ_i = (σ_start^{1/ρ} + i/(n−1)·(σ_end^{1/ρ} − σ_start^{1/ρ}))^ρ, i = 0…n−1 (Karras et al. 2022, eq. 5).

    No final zero; ``n_points = 1`` gives ``[sigma_start]``. Computed in float64, returned as ``(n_points,)``
    in ``dtype`` (default: torch's default dtype) on ``device``. Works for increasing or decreasing ends.
    """
    if not isinstance(n_points, int) or isinstance(n_points, bool) or n_points < 1:
        raise ValueError(f"n_points={n_points!r} must be an integer >= 1")
    if not (sigma_start > 0 and sigma_end > 0 and math.isfinite(sigma_start) and math.isfinite(sigma_end)):
        raise ValueError(f"sigma_start={sigma_start}, sigma_end={sigma_end} must be finite and > 0")
    if not (rho > 0 and math.isfinite(rho)):
        raise ValueError(f"rho={rho} must be finite and > 0")
    if n_points == 1:
        out = torch.tensor([float(sigma_start)], dtype=torch.float64)
    else:
        frac = torch.arange(n_points, dtype=torch.float64) / (n_points - 1)
        a, b = sigma_start ** (1.0 / rho), sigma_end ** (1.0 / rho)
        out = (a + frac * (b - a)) ** rho
        out[0], out[-1] = sigma_start, sigma_end  # exact ends despite the power round trip
    return out.to(device=device, dtype=dtype or torch.get_default_dtype())


def edm_sigmas(
    n_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """EDM sampling schedule (Karras et al. 2022, eq. 5) with the final σ_N = 0 appended.

    n_steps: number of sampler steps N >= 1. σ_0 = sigma_max, σ_{N−1} = sigma_min, σ_N = 0, in normalised data
    units. Returns ``(n_steps + 1,)`` in ``dtype`` on ``device``. Defaults are EDM's (0.002, 80, ρ = 7).
    """
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r} must be an integer >= 1")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    sigmas = poly_rho_sigmas(sigma_max, sigma_min, n_steps, rho, device=device, dtype=dtype)
    return torch.cat([sigmas, sigmas.new_zeros(1)])  # σ_N = 0


def _linear_betas(n_timesteps: int) -> torch.Tensor:
    """Ho et al. (2020) linear β schedule, scaled by 1000/T as in ``denoising_diffusion_pytorch``."""
    scale = 1000.0 / n_timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, n_timesteps, dtype=torch.float64)


def _sigmoid_betas(n_timesteps: int, start: float = -5.0, end: float = 3.0, tau: float = 1.0) -> torch.Tensor:
    """Jabri et al. (2022) sigmoid schedule on ᾱ (module docstring), start −5, end 3, τ 1."""
    u = torch.linspace(0.0, 1.0, n_timesteps + 1, dtype=torch.float64)
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    alpha_bar = (v_end - torch.sigmoid((u * (end - start) + start) / tau)) / (v_end - v_start)
    alpha_bar = alpha_bar / alpha_bar[0]
    return torch.clip(1.0 - alpha_bar[1:] / alpha_bar[:-1], 0.0, 0.999)


DDPM_BETA_SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {
    "linear": _linear_betas,  # Ho et al. (2020)
    "sigmoid": _sigmoid_betas,  # Jabri et al. (2022); the DES-Y3 DPS mass-mapping code
}


@lru_cache(maxsize=8)
def _log_sigma_table(schedule: str, n_timesteps: int) -> torch.Tensor:
    if schedule not in DDPM_BETA_SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is not one of {sorted(DDPM_BETA_SCHEDULES)}")
    if not isinstance(n_timesteps, int) or isinstance(n_timesteps, bool) or n_timesteps < 2:
        raise ValueError(f"n_timesteps={n_timesteps!r} must be an integer >= 2")
    alpha_bar = torch.cumprod(1.0 - DDPM_BETA_SCHEDULES[schedule](n_timesteps), dim=0)
    return 0.5 * (torch.log1p(-alpha_bar) - torch.log(alpha_bar))  # ln σ_t, σ_t² = (1 − ᾱ_t)/ᾱ_t


def ddpm_sigmas(schedule: str = "sigmoid", n_timesteps: int = 1000) -> torch.Tensor:
    """EDM σ_t = √((1 − ᾱ_t)/ᾱ_t) of every DDPM index t = 0…T−1, ``(T,)`` float64, increasing."""
    return _log_sigma_table(schedule, n_timesteps).exp()


def _float_like(value: torch.Tensor | float) -> torch.Tensor:
    value = torch.as_tensor(value)
    return value if value.is_floating_point() else value.to(torch.get_default_dtype())


def ddpm_index_to_edm_sigma(
    t: torch.Tensor | float,
    *,
    schedule: str = "sigmoid",  # key of DDPM_BETA_SCHEDULES
    n_timesteps: int = 1000,  # T of the DDPM
) -> torch.Tensor:
    """EDM σ (normalised data units) of DDPM index t ∈ [0, T−1]; σ_t = √((1 − ᾱ_t)/ᾱ_t).

    Integer t is exact; fractional t interpolates ln σ linearly between neighbouring indices. Any shape;
    returns a tensor of t's shape on t's device (floating t keeps its dtype). t outside [0, T−1] raises.
    """
    t = _float_like(t)
    table = _log_sigma_table(schedule, n_timesteps).to(t.device)
    if torch.any(~torch.isfinite(t)) or torch.any(t < 0) or torch.any(t > n_timesteps - 1):
        raise ValueError(f"DDPM index must lie in [0, {n_timesteps - 1}], got {t}")
    t64 = t.to(torch.float64)
    i0 = torch.clamp(t64.floor().long(), max=n_timesteps - 2)  # left neighbour; t = T−1 uses the last segment
    frac = t64 - i0
    log_sigma = table[i0] + frac * (table[i0 + 1] - table[i0])
    return log_sigma.exp().to(t.dtype)


def edm_sigma_to_ddpm_index(
    sigma: torch.Tensor | float,
    *,
    schedule: str = "sigmoid",  # key of DDPM_BETA_SCHEDULES
    n_timesteps: int = 1000,  # T of the DDPM
) -> torch.Tensor:
    """Continuous DDPM index t(σ), the inverse of :func:`ddpm_index_to_edm_sigma` (ln σ interpolated in t).

    σ below σ_0 maps to 0 and σ above σ_{T−1} to T−1: those noise levels have no DDPM index, and the only use,
    A(t(σ)) of Boruah et al., is flat there. σ must be > 0. Returns a tensor of σ's shape, device and dtype.
    """
    sigma = _float_like(sigma)
    if torch.any(~(sigma > 0)):
        raise ValueError(f"sigma must be > 0 (NaN rejected), got {sigma}")
    table = _log_sigma_table(schedule, n_timesteps).to(sigma.device)
    log_sigma = torch.log(sigma.to(torch.float64)).clamp(table[0], table[-1])
    i1 = torch.searchsorted(table, log_sigma).clamp(1, n_timesteps - 1)  # table[i1−1] <= ln σ <= table[i1]
    lo, hi = table[i1 - 1], table[i1]
    t = (i1 - 1) + (log_sigma - lo) / (hi - lo)
    return t.to(sigma.dtype)

"""Probability-flow ODE integrators of EDM (Karras et al. 2022) and the divergence error every sampler raises.

The EDM probability-flow ODE is dx/dσ = (x − D(x; σ))/σ for a denoiser D(x; σ) ≈ E[x_0 | x_σ] (Karras et al.
2022, eq. 4 with σ(t) = t, s(t) = 1). :func:`sample_heun` is their Algorithm 2 without churn;
:func:`sample_euler` is the first-order version that DAPS (Zhang et al. 2025) uses for its inner x̂_0 estimate.

A denoiser is any callable ``denoise(x, sigma, cond) -> x0_hat`` with x ``(B, C, H, W)``, sigma a 0-d tensor
(on x's device and dtype) and cond ``(B, Cc, H, W)`` or None; every call here passes ``cond``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "Denoiser",
    "SamplerDivergedError",
    "check_cond",
    "check_fields",
    "check_finite",
    "check_sigmas",
    "sample_euler",
    "sample_heun",
]

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


class SamplerDivergedError(RuntimeError):
    """A sampler met NaN/Inf or |x| beyond its bound; ``sampler``, ``step``, ``sigma``, ``term`` say where."""

    def __init__(self, sampler: str, *, step: int, sigma: float, term: str, detail: str = "") -> None:
        self.sampler, self.step, self.sigma, self.term = sampler, step, sigma, term
        message = f"{sampler} diverged at step {step} (sigma={sigma:.6g}) in the {term}"
        super().__init__(f"{message}: {detail}" if detail else message)


def check_finite(
    value: torch.Tensor,
    *,
    sampler: str,
    step: int,
    sigma: float,
    term: str,
    max_abs: float = float("inf"),
) -> None:
    """Raise :class:`SamplerDivergedError` if ``value`` holds NaN/Inf or |value| > max_abs (one host sync)."""
    worst = value.detach().abs().amax() if value.numel() else value.new_zeros(())
    worst = float(worst)
    if worst != worst or worst == float("inf"):  # NaN, or ±Inf
        raise SamplerDivergedError(sampler, step=step, sigma=sigma, term=term, detail="non-finite values")
    if worst > max_abs:
        raise SamplerDivergedError(
            sampler,
            step=step,
            sigma=sigma,
            term=term,
            detail=f"max |value| = {worst:.4g} > bound {max_abs:.4g}",
        )


def check_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """Validate a σ schedule: 1-D, >= 2 values, finite, strictly decreasing, > 0 (the last may be 0)."""
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D tensor of >= 2 noise levels, got {sigmas!r}")
    if not bool(torch.isfinite(sigmas).all()) or bool((sigmas[:-1] <= 0).any()) or float(sigmas[-1]) < 0:
        raise ValueError(f"sigmas must be finite, > 0 (the last may be 0), got {sigmas.tolist()}")
    if bool((sigmas[1:] >= sigmas[:-1]).any()):
        raise ValueError(f"sigmas must be strictly decreasing, got {sigmas.tolist()}")
    return sigmas


def check_cond(cond: torch.Tensor | None, batch: int) -> None:
    """``cond`` is None or ``(B, Cc, H, W)`` with the sample batch B."""
    if cond is not None and (not isinstance(cond, torch.Tensor) or cond.ndim < 1 or cond.shape[0] != batch):
        shape = tuple(cond.shape) if isinstance(cond, torch.Tensor) else type(cond).__name__
        raise ValueError(f"cond must be None or a tensor with batch {batch} first, got {shape}")


def check_fields(
    obj: object,
    *,
    integers: dict[str, int] | None = None,
    positive: tuple[str, ...] = (),
    nonnegative: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    unbounded: tuple[str, ...] = (),
) -> None:
    """Validate a config dataclass: integers >= their minimum, finite numbers > 0 or >= 0, booleans.

    Names in ``unbounded`` may also be +inf (e.g. a divergence bound that is switched off). Raises ValueError
    naming the class, field and value.
    """
    owner = type(obj).__name__
    for name, minimum in (integers or {}).items():
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{owner}.{name}={value!r} must be an integer >= {minimum}")
    for names, strict in ((positive, True), (nonnegative, False)):
        for name in names:
            value = getattr(obj, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            finite = number and (math.isfinite(value) or (name in unbounded and value == math.inf))
            if not (finite and (value > 0 if strict else value >= 0)):
                raise ValueError(
                    f"{owner}.{name}={value!r} must be a finite number {'>' if strict else '>='} 0"
                )
    for name in flags:
        if not isinstance(getattr(obj, name), bool):
            raise ValueError(f"{owner}.{name}={getattr(obj, name)!r} must be True or False")


def _ode(
    name: str,
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    cond: torch.Tensor | None,
    callback: Callable[[dict[str, Any]], None] | None,
    *,
    second_order: bool,
) -> torch.Tensor:
    check_sigmas(sigmas)
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise ValueError(f"x must be a batched tensor, got {type(x).__name__}")
    check_cond(cond, x.shape[0])
    levels = sigmas.to(device=x.device, dtype=x.dtype)  # 0-d tensors handed to the denoiser
    values = sigmas.tolist()  # the same σ as Python floats for the step arithmetic, without device syncs
    nfe = 0
    with torch.no_grad():  # pure denoiser evaluations: nothing to differentiate
        for i, (s, s_next) in enumerate(itertools.pairwise(values)):
            denoised = denoise(x, levels[i], cond)
            nfe += 1
            d = (x - denoised) / s  # dx/dσ of the probability-flow ODE (Karras et al. 2022, eq. 4)
            x_next = x + (s_next - s) * d
            if second_order and s_next > 0:  # Heun correction, skipped on the final step to σ = 0
                d_next = (x_next - denoise(x_next, levels[i + 1], cond)) / s_next
                nfe += 1
                x_next = x + (s_next - s) * (0.5 * d + 0.5 * d_next)
            x = x_next
            check_finite(x, sampler=name, step=i, sigma=s, term="ODE state (denoiser output)")
            if callback is not None:
                callback({"i": i, "sigma": s, "sigma_next": s_next, "x": x, "denoised": denoised, "nfe": nfe})
    return x


def sample_heun(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    cond: torch.Tensor | None,
    generator: object | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """Deterministic EDM sampler: Algorithm 2 of Karras et al. (2022) without churn (S_churn = 0).

    denoise: ``denoise(x, sigma, cond) -> x0_hat``. x: ``(B, C, H, W)`` initial state at σ_0, i.e. already
    σ_0·ε (callers draw it with ``rng.PerSampleGenerator``). sigmas: ``(N+1,)`` strictly decreasing, usually
    ``edm_sigmas(N)`` ending with 0. cond: conditioning passed to every call (required keyword; None for an
    unconditional model). generator: accepted so all samplers share one call shape; churn-free Heun draws no
    noise and ignores it. callback: called after each step with ``{"i", "sigma", "sigma_next", "x",
    "denoised", "nfe"}``; "nfe" counts network calls so far, 2N − 1 in total when σ_N = 0 (35 for N = 18).
    Returns x at σ_N, shape of x. Raises SamplerDivergedError on a non-finite state.
    """
    del generator  # Algorithm 2 without churn is deterministic
    return _ode("heun", denoise, x, sigmas, cond, callback, second_order=True)


def sample_euler(
    denoise: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    cond: torch.Tensor | None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """First-order Euler steps of the EDM probability-flow ODE (Karras et al. 2022, eq. 4); N network calls.

    Same arguments and callback as :func:`sample_heun`; DAPS's inner x̂_0 estimate (Zhang et al. 2025).
    """
    return _ode("euler", denoise, x, sigmas, cond, callback, second_order=False)

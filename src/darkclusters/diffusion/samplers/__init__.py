"""Samplers of EDM diffusion priors: Heun (Karras et al. 2022), conditional, DAPS (Zhang et al. 2025), DPS
with likelihood scaling (Chung et al. 2023; Boruah et al.), and the likelihood pre-fit of DarkClusters'
DAPS-LL.

Every sampler is a plain function of a denoiser ``denoise(x, sigma, cond) -> x0_hat`` and passes the
conditioning ``cond`` (a required keyword) to every network call. Randomness is drawn per sample from its own
seed (``rng.PerSampleGenerator``). Likelihoods enter as ``nll(x0) -> (B,)`` callables built elsewhere.
"""

from darkclusters.diffusion.samplers.conditional import sample_conditional
from darkclusters.diffusion.samplers.daps import DAPSConfig, daps_nfe, sample_daps
from darkclusters.diffusion.samplers.dps import DPSConfig, likelihood_scale, sample_dps
from darkclusters.diffusion.samplers.heun import SamplerDivergedError, sample_euler, sample_heun
from darkclusters.diffusion.samplers.prefit import add_nll, likelihood_prefit, quadratic_pull, total_variation
from darkclusters.diffusion.samplers.rng import PerSampleGenerator
from darkclusters.diffusion.samplers.schedules import (
    ddpm_index_to_edm_sigma,
    ddpm_sigmas,
    edm_sigma_to_ddpm_index,
    edm_sigmas,
    poly_rho_sigmas,
)

__all__ = [
    "DAPSConfig",
    "DPSConfig",
    "PerSampleGenerator",
    "SamplerDivergedError",
    "add_nll",
    "daps_nfe",
    "ddpm_index_to_edm_sigma",
    "ddpm_sigmas",
    "edm_sigma_to_ddpm_index",
    "edm_sigmas",
    "likelihood_prefit",
    "likelihood_scale",
    "poly_rho_sigmas",
    "quadratic_pull",
    "sample_conditional",
    "sample_daps",
    "sample_dps",
    "sample_euler",
    "sample_heun",
    "total_variation",
]

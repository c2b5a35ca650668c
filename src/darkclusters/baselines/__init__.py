"""Classical baselines the diffusion reconstruction is compared with (DarkClusters paper, seed 000, §6.3).

``light_traces_mass``: Napier et al. (2023) — galaxies detected with sep on the F814W image, one
luminosity-scaled dPIE each, a 1:1 mass–light ratio calibrated on the training split.
"""

from darkclusters.baselines.light_traces_mass import (
    calibrate_mass_to_light,
    detect_galaxies,
    dpie_mass_2d,
    dpie_sigma,
    ltm_sigma_map,
    render_dpie_galaxies,
)

__all__ = [
    "calibrate_mass_to_light",
    "detect_galaxies",
    "dpie_mass_2d",
    "dpie_sigma",
    "ltm_sigma_map",
    "render_dpie_galaxies",
]

"""Pieces shared by the synthetic TNG and SIMBA writers: placed halos, species tables, spherical overdensity.

All of it is for SYNTHETIC data: the writers turn :class:`~.halo_model.SyntheticCluster` objects (physical
units, centred) into simulation files in the real on-disk formats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from darkclusters.simulations.synthetic.halo_model import SyntheticCluster

__all__ = [
    "FOF_FUZZ",
    "UNBOUND",
    "PlacedHalo",
    "cluster_species",
    "spherical_overdensity",
]

FOF_FUZZ = -1  # subhalo label: inside the FoF group, bound to no subhalo
UNBOUND = -2  # subhalo label: outside every FoF group


@dataclass
class PlacedHalo:
    """A synthetic cluster placed in the box: its centre (potential minimum) in comoving ckpc/h."""

    cluster: SyntheticCluster
    centre_ckpc_h: np.ndarray


def cluster_species(cluster: SyntheticCluster) -> dict[str, dict[str, np.ndarray]]:
    """The cluster's particles per species as plain column dicts (physical units, centred).

    Every species has pos_kpc (N,3), mass_msun (N,), vel_km_s (N,3), label (N,) int32 (subhalo label,
    FOF_FUZZ, UNBOUND); gas adds u_km2_s2, electron_abundance, density_msun_kpc3, hsml_kpc; stars add
    initial_mass_msun, formation_a, metallicity, photometrics (N,8); bh add bh_mass_msun.
    """
    c = cluster
    return {
        "gas": {
            "pos_kpc": c.gas_pos_kpc,
            "mass_msun": c.gas_mass_msun,
            "vel_km_s": c.gas_vel_km_s,
            "label": c.gas_subhalo,
            "u_km2_s2": c.gas_internal_energy_km2_s2,
            "electron_abundance": c.gas_electron_abundance,
            "density_msun_kpc3": c.gas_density_msun_kpc3,
            "hsml_kpc": c.gas_smoothing_length_kpc,
        },
        "dm": {
            "pos_kpc": c.dm_pos_kpc,
            "mass_msun": c.dm_mass_msun,
            "vel_km_s": c.dm_vel_km_s,
            "label": c.dm_subhalo,
        },
        "stars": {
            "pos_kpc": c.star_pos_kpc,
            "mass_msun": c.star_mass_msun,
            "vel_km_s": c.star_vel_km_s,
            "label": c.star_subhalo,
            "initial_mass_msun": c.star_initial_mass_msun,
            "formation_a": c.star_formation_a,
            "metallicity": c.star_metallicity,
            "photometrics": c.star_photometrics,
        },
        "bh": {
            "pos_kpc": c.bh_pos_kpc,
            "mass_msun": c.bh_mass_msun,
            "vel_km_s": c.bh_vel_km_s,
            "label": c.bh_subhalo,
            "bh_mass_msun": c.bh_mass_msun,
        },
    }


def spherical_overdensity(
    radius_kpc: np.ndarray, mass_msun: np.ndarray, rho_crit_msun_kpc3: float, delta: float
) -> tuple[float, float]:
    """Spherical-overdensity mass and radius: the largest r with mean enclosed density >= delta · ρ_crit.

    radius_kpc, mass_msun: (N,) distances from the centre and masses of all particles (physical).
    Returns (M_delta [Msun], R_delta [kpc]), as SUBFIND's Group_M_Crit200 for delta=200. Raises ValueError
    when no radius reaches the overdensity (too few particles near the centre).
    """
    order = np.argsort(radius_kpc)
    r = np.asarray(radius_kpc, dtype=np.float64)[order]
    m = np.cumsum(np.asarray(mass_msun, dtype=np.float64)[order])
    with np.errstate(divide="ignore"):
        mean_density = m / (4.0 / 3.0 * np.pi * r**3)
    above = np.nonzero(mean_density >= delta * rho_crit_msun_kpc3)[0]
    if len(above) == 0:
        raise ValueError(f"no radius encloses {delta} x rho_crit: the halo is unresolved")
    i = above[-1]
    return float(m[i]), float(r[i])

"""How the light-traces-mass statistic (paper App. C) depends on the parts of an HST-like image.

The realism check of the photometry compares PCC(Σ, F814W) (:func:`.pipeline.light_traces_mass_pcc`) with the
paper's 0.58–0.65 on TNG300-1. That number depends on choices the paper does not document: how much
background light and sky noise its images carry relative to the cluster (its backgrounds are unnamed real
HST mosaics), and the stellar content of the clusters. This module re-renders the F814W images of observed
clusters with one part changed at a time, so a reader can see which part moves the statistic:

* the cluster light scaled by a factor (a stand-in for larger stellar fractions: the F814W image is linear
  in the stars' fluxes, and the ICL is fitted to that light, so it scales with it);
* overrides of the ``photometry`` config section (fewer or no field galaxies, a deeper or no sky noise, both
  ICL components).

Each variant reuses the cluster's own seed and photometry config, read from the observation file's provenance
(``seed``, ``config_json``), and the same per-view random streams as the workflow, so the variant with no
change reproduces the file's images apart from the lensed arcs (which the workflow adds and this module
leaves out; their share of the light is small).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from darkclusters.cosmology import flat_lcdm
from darkclusters.photometry.filters import HST_BANDS
from darkclusters.photometry.pipeline import light_traces_mass_pcc, observe_view, stellar_fluxes_jy
from darkclusters.photometry.settings import photometry_config
from darkclusters.projection.geometry import MapGeometry, sky_coordinates
from darkclusters.seeding import derive_rng
from darkclusters.simulations.particles import read_particles

__all__ = ["DEFAULT_VARIANTS", "ImageVariant", "ltm_pcc_variants"]

_F814W = HST_BANDS.index("F814W")


@dataclass(frozen=True)
class ImageVariant:
    """One way of re-rendering the images: photometry config overrides and a scale of the cluster's light."""

    name: str
    description: str
    photometry: Mapping[str, Any] = field(default_factory=dict)  # deep-merged over the file's section
    cluster_light_scale: float = 1.0  # multiplies every star particle's flux [1]

    def __post_init__(self) -> None:
        if not self.cluster_light_scale > 0:
            raise ValueError(f"variant {self.name!r}: cluster_light_scale must be > 0")


DEFAULT_VARIANTS: tuple[ImageVariant, ...] = (
    ImageVariant("workflow", "the workflow's images (without the lensed arcs)"),
    ImageVariant("light_x2", "cluster light × 2 (stellar fractions at the high end of TNG300)", {}, 2.0),
    ImageVariant("light_x4", "cluster light × 4 (beyond any published stellar fraction)", {}, 4.0),
    ImageVariant(
        "counts_x0.5",
        "half the published field-galaxy counts",
        {"background": {"synthetic": {"counts_scale": 0.5}}},
    ),
    ImageVariant(
        "no_field_galaxies", "no field galaxies, sky noise kept", {"background": {"source": "none"}}
    ),
    ImageVariant(
        "depth_29",
        "sky noise at Frontier-Fields-like depth (29.0 AB, 5σ in 0.4″)",
        {"noise": {"depth_abmag": {"F125W": 28.7, "F606W": 29.0, "F814W": 29.0}}},
    ),
    ImageVariant("no_noise", "field galaxies kept, no sky noise", {"noise": {"enabled": False}}),
    ImageVariant(
        "cluster_only",
        "cluster stars + ICL only (no field galaxies, no noise)",
        {"background": {"source": "none"}, "noise": {"enabled": False}},
    ),
    ImageVariant(
        "icl_both",
        "both fitted ICL components added (the paper's literal wording)",
        {"icl": {"components": "both"}},
    ),
)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, Mapping) else value
    return out


def ltm_pcc_variants(
    particles_path: str | os.PathLike,
    maps_path: str | os.PathLike,
    observations_path: str | os.PathLike,
    *,
    fov: str = "fov225",
    variants: Sequence[ImageVariant] = DEFAULT_VARIANTS,
) -> dict[str, np.ndarray]:
    """PCC(Σ_total, F814W) per view (V,) for the observed images and for each re-rendered variant.

    particles_path / maps_path / observations_path: one cluster's particle file, truth maps and observation
    file from the workflow (same cluster, same snapshot). fov: the field of view (a group of both files).
    Returns {"observed": PCC of the file's own images, variant.name: PCC of the variant's images}.
    """
    with h5py.File(observations_path, "r") as obs:
        for key in ("seed", "config_json"):
            if key not in obs.attrs:
                raise KeyError(f"{observations_path}: no '{key}' provenance attribute")
        seed = int(obs.attrs["seed"])
        base_cfg = json.loads(obs.attrs["config_json"])
        if f"photometry/{fov}/images" not in obs:
            raise KeyError(f"{observations_path}: no photometry/{fov}/images")
        observed = obs[f"photometry/{fov}/images"][:, _F814W].astype(np.float64)
        directions = obs["directions"][()]
        grid = obs[f"photometry/{fov}"].attrs
        fov_arcsec, npix = float(grid["fov_arcsec"]), int(grid["npix"])
    with h5py.File(maps_path, "r") as maps:
        if f"{fov}/sigma" not in maps:
            raise KeyError(f"{maps_path}: no {fov}/sigma")
        sigma = maps[f"{fov}/sigma"][:, 0].astype(np.float64)  # channel 0: total
    if sigma.shape != observed.shape:
        raise ValueError(
            f"{maps_path} {fov}/sigma {sigma.shape} and {observations_path} images {observed.shape}"
        )
    particles = read_particles(particles_path)
    attrs = particles.attrs
    redshift = float(attrs["redshift"])
    cosmology = flat_lcdm(float(attrs["hubble_h"]), float(attrs["omega_m"]), float(attrs["omega_b"]))
    geometry = MapGeometry.at_redshift(fov_arcsec, npix, cosmology, redshift)
    skies = [sky_coordinates(particles.stars.pos_kpc, d) / geometry.kpc_per_arcsec for d in directions]
    out = {"observed": np.array([light_traces_mass_pcc(s, i) for s, i in zip(sigma, observed, strict=True)])}
    for variant in variants:
        cfg = photometry_config(_merge(base_cfg, variant.photometry))
        fluxes, _ = stellar_fluxes_jy(particles, cfg)
        fluxes = fluxes * variant.cluster_light_scale
        pcc = []
        for v, sky in enumerate(skies):
            rng = derive_rng(seed, "photometry", fov, v)  # the workflow's stream of this view
            image, _ = observe_view(sky[:, 0], sky[:, 1], fluxes, geometry=geometry, cfg=cfg, rng=rng)
            pcc.append(light_traces_mass_pcc(sigma[v], image[_F814W]))
        out[variant.name] = np.array(pcc)
    return out

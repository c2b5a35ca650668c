"""Extraction: one cluster at one snapshot → ``results/particles/{sim}/{snap}/{halo}.h5``.

Reads the halo with the real loaders (TNG: ``illustris_python.snapshot.loadHalo``; SIMBA: CAESAR index lists +
h5py), which return the FoF/CAESAR members centred on the potential minimum, unwrapped, in physical units;
keeps particles within ``radius_kpc``; flags a halo without stars (empty arrays, never a crash); writes
atomically with
provenance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from darkclusters.io import provenance
from darkclusters.simulations.catalog import simba_paths
from darkclusters.simulations.particles import ParticleSet, write_particles
from darkclusters.simulations.simba import load_simba_halo
from darkclusters.simulations.tng import load_tng_halo

__all__ = ["extract_cluster", "extract_cluster_file", "within_radius"]

log = logging.getLogger(__name__)


def within_radius(particles: ParticleSet, radius_kpc: float) -> ParticleSet:
    """The particles within ``radius_kpc`` (physical) of the centre, every species and field."""
    if radius_kpc <= 0:
        raise ValueError(f"radius_kpc={radius_kpc} must be > 0")
    kept = {
        name: sp.select(np.einsum("ij,ij->i", sp.pos_kpc, sp.pos_kpc) <= radius_kpc**2)
        for name, sp in particles.species().items()
    }
    return ParticleSet(**kept, attrs=dict(particles.attrs))


def extract_cluster(
    sim_cfg: Mapping[str, Any], base_path: str | Path, snap: int, halo_id: int, *, radius_kpc: float
) -> ParticleSet:
    """Load one halo with its simulation's loader, cut to ``radius_kpc`` (physical) and flag missing stars."""
    if sim_cfg["format"] == "tng":
        particles = load_tng_halo(base_path, snap, halo_id)
    else:
        snap_path, caesar_path = simba_paths(sim_cfg, base_path, snap)
        particles = load_simba_halo(snap_path, caesar_path, halo_id)
    radius = float(radius_kpc)
    cut = within_radius(particles, radius)
    cut.attrs.update(
        {
            "snapshot": int(snap),
            "radius_kpc": radius,
            "no_stars": int(len(cut.stars) == 0),
            "mass_outside_radius_msun": particles.total_mass_msun - cut.total_mass_msun,
        }
    )
    if len(cut.stars) == 0:
        log.warning(
            "%s snapshot %d halo %d: no stars within %g kpc, written flagged",
            base_path,
            snap,
            halo_id,
            radius,
        )
    return cut


def extract_cluster_file(
    *,
    sim_cfg: Mapping[str, Any],
    base_path: str | Path,
    extraction: Mapping[str, Any],
    catalog_path: str | Path,
    snap: int,
    halo_id: int,
    out_path: str | Path,
) -> ParticleSet:
    """Extract a catalogued cluster and write its particle file (identity and split from the catalog)."""
    catalog = pd.read_parquet(catalog_path)
    row = catalog[(catalog["snapshot"] == snap) & (catalog["halo_id"] == halo_id)]
    if len(row) != 1:
        raise KeyError(f"{catalog_path}: no selected cluster with snapshot {snap} and halo_id {halo_id}")
    particles = extract_cluster(sim_cfg, base_path, snap, halo_id, radius_kpc=extraction["radius_kpc"])
    for key in ("sim", "cluster_id", "split"):
        particles.attrs[key] = str(row[key].iloc[0])
    cfg = {"simulation": dict(sim_cfg), "extraction": dict(extraction)}
    inputs = [str(catalog_path), str(base_path)]
    write_particles(particles, out_path, provenance=provenance(cfg=cfg, seed=None, inputs=inputs))
    return particles

"""Build a whole SYNTHETIC simulation from its config block: a population of clusters written at each
snapshot.

The same clusters (same comoving centres, masses following M(z) = M(z_ref) exp(−β (z − z_ref)), Wechsler et
al. 2002) appear at every snapshot, each realised afresh with a seed derived from (master seed, simulation,
snapshot, halo), plus a few field groups below the cluster mass range. Cluster 0 sits at a box corner so that
it straddles
three box faces: every run exercises periodic unwrapping. ``truth.json`` beside the files records what was put
in.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from darkclusters.cosmology import SIMBA_COSMOLOGY, TNG_COSMOLOGY
from darkclusters.io import atomic_dir, provenance
from darkclusters.seeding import derive_rng, derive_seed
from darkclusters.simulations.synthetic.common import PlacedHalo
from darkclusters.simulations.synthetic.halo_model import HaloModelParams, make_cluster
from darkclusters.simulations.synthetic.simba_writer import write_simba_snapshot
from darkclusters.simulations.synthetic.tng_writer import write_tng_snapshot
from darkclusters.simulations.tng import TNG_SNAPSHOT_REDSHIFTS

__all__ = ["draw_population", "snapshot_redshift", "synthesize_simulation"]

REAL_BOX_CKPC_H = {"tng": 205000.0, "simba": 100000.0}  # TNG300-1 and SIMBA m100n1024
FIELD_HALO_MASS_RANGE_MSUN = (2e13, 6e13)
MIN_SEPARATION_CKPC_H = 12000.0  # centres this far apart (periodic) so that halos never overlap
CORNER_OFFSET_CKPC_H = np.array([-300.0, 200.0, -100.0])  # cluster 0 sits this close to the box corner


def snapshot_redshift(sim_cfg: Mapping[str, Any], snap: int) -> float:
    """Redshift of a synthetic snapshot: the config's ``synthetic.redshifts`` entry, else the TNG table."""
    given = sim_cfg["synthetic"]["redshifts"]
    if str(snap) in given:
        return float(given[str(snap)])
    if sim_cfg["format"] == "tng" and snap in TNG_SNAPSHOT_REDSHIFTS:
        return TNG_SNAPSHOT_REDSHIFTS[snap]
    raise KeyError(f"no redshift for synthetic snapshot {snap}: set synthetic.redshifts['{snap}']")


def _power_law_masses(
    rng: np.random.Generator, n: int, m_min: float, m_max: float, slope: float
) -> np.ndarray:
    """Draw n masses from dN/dlnM ∝ M^-slope on [m_min, m_max] by inverting the CDF in ln M."""
    u = rng.uniform(size=n)
    if slope == 0:
        return np.exp(np.log(m_min) + u * np.log(m_max / m_min))
    lo, hi = m_min**-slope, m_max**-slope
    return (lo + u * (hi - lo)) ** (-1.0 / slope)


def _place_centres(rng: np.random.Generator, n: int, box: float) -> np.ndarray:
    """n comoving centres [ckpc/h]: the first at a box corner, the rest uniform, ≥ MIN_SEPARATION apart."""
    centres = [np.mod(CORNER_OFFSET_CKPC_H, box)]
    tries = 0
    while len(centres) < n:
        tries += 1
        if tries > 100000:
            raise ValueError(f"cannot place {n} halos {MIN_SEPARATION_CKPC_H} ckpc/h apart in a {box} box")
        c = rng.uniform(0, box, size=3)
        d = np.abs(np.asarray(centres) - c)
        d = np.minimum(d, box - d)
        if np.all(np.linalg.norm(d, axis=1) >= MIN_SEPARATION_CKPC_H):
            centres.append(c)
    return np.asarray(centres)


def draw_population(name: str, sim_cfg: Mapping[str, Any], seed: int) -> dict[str, np.ndarray]:
    """Reference-snapshot masses [Msun] and comoving centres [ckpc/h] of the clusters and field halos."""
    syn = sim_cfg["synthetic"]
    box = syn["box_size_ckpc_h"] or REAL_BOX_CKPC_H[sim_cfg["format"]]
    rng = derive_rng(seed, "synthetic-population", name)
    clusters = _power_law_masses(
        rng, syn["n_clusters"], syn["m200c_min_msun"], syn["m200c_max_msun"], syn["mass_function_slope"]
    )
    field = np.exp(rng.uniform(*np.log(FIELD_HALO_MASS_RANGE_MSUN), size=syn["n_field_halos"]))
    masses = np.concatenate([np.sort(clusters)[::-1], field])
    return {"m200c_ref_msun": masses, "centre_ckpc_h": _place_centres(rng, len(masses), box), "box": box}


def synthesize_simulation(
    name: str,
    sim_cfg: Mapping[str, Any],
    *,
    seed: int,
    out_dir: str | Path,
    root_attrs: Mapping[str, str] | None = None,
) -> None:
    """Write every snapshot of synthetic simulation ``name`` into ``out_dir`` (atomically, as a whole).

    tng: ``out_dir/output/{snapdir,groups}_{snap:03d}`` and ``out_dir/postprocessing/offsets``; simba: the
    snapshot and CAESAR files named by ``snapshot_file``/``caesar_file``. Also ``out_dir/truth.json``: input
    masses, centres and the halo id each got at each snapshot.
    """
    syn = sim_cfg["synthetic"]
    fmt = sim_cfg["format"]
    if root_attrs is None:
        root_attrs = provenance(cfg=sim_cfg, seed=seed, simulation=name)
    cosmology = TNG_COSMOLOGY if fmt == "tng" else SIMBA_COSMOLOGY
    params = HaloModelParams(
        dm_particle_mass_msun=syn["dm_particle_mass_msun"],
        gas_particle_mass_msun=syn["gas_particle_mass_msun"],
        star_particle_mass_msun=syn["star_particle_mass_msun"],
        **syn["halo_model"],
    )
    population = draw_population(name, sim_cfg, seed)
    box = float(population["box"])
    ref = sim_cfg["reference_snapshot"]
    z_ref = snapshot_redshift(sim_cfg, ref if ref is not None else sim_cfg["snapshots"][0])
    truth: dict[str, Any] = {
        "note": "SYNTHETIC simulation written by darkclusters",
        "format": fmt,
        "box_size_ckpc_h": box,
        "reference_redshift": z_ref,
        "m200c_ref_msun": population["m200c_ref_msun"].tolist(),
        "centre_ckpc_h": population["centre_ckpc_h"].tolist(),
        "halo_model": dataclasses.asdict(params),
        "snapshots": {},
        "provenance": dict(root_attrs),
    }
    with atomic_dir(out_dir) as tmp:
        for snap in sim_cfg["snapshots"]:
            z = snapshot_redshift(sim_cfg, snap)
            growth = np.exp(-syn["mass_growth_beta"] * (z - z_ref))
            halos = [
                PlacedHalo(
                    make_cluster(m * growth, z, cosmology, params, seed=derive_seed(seed, name, snap, i)), c
                )
                for i, (m, c) in enumerate(
                    zip(population["m200c_ref_msun"], population["centre_ckpc_h"], strict=True)
                )
            ]
            if fmt == "tng":
                ids = write_tng_snapshot(
                    tmp / "output",
                    snap,
                    halos,
                    redshift=z,
                    cosmology=cosmology,
                    box_size_ckpc_h=box,
                    dm_particle_mass_msun=syn["dm_particle_mass_msun"],
                    n_snapshot_chunks=syn["n_snapshot_chunks"],
                    n_catalog_chunks=syn["n_catalog_chunks"],
                    root_attrs=root_attrs,
                )
            else:
                ids = write_simba_snapshot(
                    tmp / sim_cfg["snapshot_file"].format(snap=snap),
                    tmp / sim_cfg["caesar_file"].format(snap=snap),
                    halos,
                    redshift=z,
                    cosmology=cosmology,
                    box_size_ckpc_h=box,
                    seed=derive_seed(seed, name, snap, "order"),
                    root_attrs=root_attrs,
                )
            truth["snapshots"][str(snap)] = {
                "redshift": z,
                "m200c_input_msun": [h.cluster.m200c_msun for h in halos],
                "concentration": [h.cluster.concentration for h in halos],
                "halo_id": ids,
            }
        (tmp / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))

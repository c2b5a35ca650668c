"""Cluster selection and the train/val/test split by cluster.

For each snapshot of a simulation: read every halo's M200c (TNG: ``illustris_python.groupcat.loadHalos`` with
explicit fields; SIMBA: the CAESAR catalog with h5py), keep M200c ≥ ``m200c_min_msun``, most massive first, at
most ``max_clusters``. A *cluster* is one object across snapshots: a halo at another snapshot takes the
``cluster_id`` of the nearest reference-snapshot halo within ``match_radius_ckpc_h`` (comoving, periodic).
Clusters drift a few hundred ckpc/h between z = 1 and 0, far less than the separation of massive clusters; a
merger-tree match (SubLink) would be exact and is the documented upgrade. Splits are drawn per cluster from
the seed, so every view
and snapshot of a cluster shares one split, and the assignment does not depend on the order of the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from darkclusters.io import provenance, write_parquet
from darkclusters.seeding import derive_seed
from darkclusters.simulations.simba import load_caesar_halos, read_simba_header
from darkclusters.simulations.tng import load_tng_groups, read_tng_snapshot_header

__all__ = [
    "CATALOG_UNITS",
    "SPLITS",
    "assign_splits",
    "effective_selection",
    "load_halo_table",
    "select_clusters",
    "write_catalog",
]

SPLITS = ("train", "val", "test")
CATALOG_UNITS = {
    "m200c_msun": "Msun (no h)",
    "r200c_kpc": "kpc (physical)",
    "centre_x_ckpc_h": "ckpc/h (comoving, potential minimum)",
    "centre_y_ckpc_h": "ckpc/h (comoving, potential minimum)",
    "centre_z_ckpc_h": "ckpc/h (comoving, potential minimum)",
    "redshift": "dimensionless",
    "n_gas": "particles in the FoF group / CAESAR halo",
    "n_dm": "particles in the FoF group / CAESAR halo",
    "n_stars": "particles in the FoF group / CAESAR halo (TNG: wind cells included)",
    "n_bh": "particles in the FoF group / CAESAR halo",
}


def simba_paths(sim_cfg: Mapping[str, Any], base_path: str | Path, snap: int) -> tuple[Path, Path]:
    """(snapshot file, CAESAR file) of a SIMBA snapshot under ``base_path``."""
    base = Path(base_path)
    return base / sim_cfg["snapshot_file"].format(snap=snap), base / sim_cfg["caesar_file"].format(snap=snap)


def load_halo_table(
    sim_cfg: Mapping[str, Any], base_path: str | Path, snap: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every halo of one snapshot (physical units) and the snapshot's redshift, h, a and box size."""
    if sim_cfg["format"] == "tng":
        header = read_tng_snapshot_header(base_path, snap)
        table = load_tng_groups(base_path, snap)
    else:
        snap_path, caesar_path = simba_paths(sim_cfg, base_path, snap)
        header = read_simba_header(snap_path)
        table = load_caesar_halos(caesar_path, float(header["HubbleParam"]), float(header["Time"]))
    info = {
        "redshift": float(header["Redshift"]),
        "hubble_h": float(header["HubbleParam"]),
        "scale_factor": float(header["Time"]),
        "box_size_ckpc_h": float(header["BoxSize"]),
    }
    return table, info


def _largest_remainder(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Integer split sizes summing to n; every split with a positive fraction gets ≥ 1 when n allows."""
    raw = {s: fractions[s] * n for s in SPLITS}
    counts = {s: int(np.floor(v)) for s, v in raw.items()}
    for s in sorted(SPLITS, key=lambda s: raw[s] - counts[s], reverse=True)[: n - sum(counts.values())]:
        counts[s] += 1
    wanted = [s for s in SPLITS if fractions[s] > 0]
    if n >= len(wanted):
        for s in wanted:
            if counts[s] == 0:
                donor = max(wanted, key=lambda d: counts[d])
                counts[donor] -= 1
                counts[s] += 1
    return counts


def assign_splits(cluster_ids: list[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Map each distinct cluster id to train/val/test: ids ranked by a seeded hash, then cut by fractions."""
    unique = sorted(set(cluster_ids))
    ranked = sorted(unique, key=lambda cid: (derive_seed(seed, "split", cid), cid))
    counts = _largest_remainder(len(ranked), fractions)
    out: dict[str, str] = {}
    start = 0
    for split in SPLITS:
        for cid in ranked[start : start + counts[split]]:
            out[cid] = split
        start += counts[split]
    return out


def _centres(table: pd.DataFrame, box: float) -> np.ndarray:
    return np.mod(table[["centre_x_ckpc_h", "centre_y_ckpc_h", "centre_z_ckpc_h"]].to_numpy(float), box)


def effective_selection(sim_cfg: Mapping[str, Any], selection: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level ``selection`` block with the keys of ``sim_cfg["selection"]`` (if given) replacing it."""
    own = {k: v for k, v in (sim_cfg.get("selection") or {}).items() if v is not None or k == "max_clusters"}
    return {**selection, **own}


def select_clusters(
    name: str, sim_cfg: Mapping[str, Any], base_path: str | Path, selection: Mapping[str, Any], seed: int
) -> pd.DataFrame:
    """The catalog of selected clusters of simulation ``name`` over all its snapshots, with splits.

    sim_cfg: the simulation's validated config block; selection: the ``selection`` block (the simulation's own
    ``selection`` keys, if any, replace it: :func:`effective_selection`); seed: master seed.
    """
    sim, sel = sim_cfg, effective_selection(sim_cfg, selection)
    ref_snap = int(
        sim["reference_snapshot"] if sim["reference_snapshot"] is not None else sim["snapshots"][0]
    )
    ref_table, ref_info = load_halo_table(sim, base_path, ref_snap)
    box = ref_info["box_size_ckpc_h"]
    # Identity candidates: reference halos down to a tenth of the threshold (clusters grow with time).
    ref_candidates = ref_table[ref_table["m200c_msun"] >= 0.1 * sel["m200c_min_msun"]].reset_index(drop=True)
    tree = cKDTree(_centres(ref_candidates, box), boxsize=box) if len(ref_candidates) else None
    rows = []
    for snap in sim["snapshots"]:
        table, info = (ref_table, ref_info) if snap == ref_snap else load_halo_table(sim, base_path, snap)
        chosen = table[table["m200c_msun"] >= sel["m200c_min_msun"]].sort_values(
            "m200c_msun", ascending=False, kind="stable"
        )
        if sel["max_clusters"] is not None:
            chosen = chosen.head(sel["max_clusters"])
        chosen = chosen.copy()
        if snap == ref_snap:
            chosen["cluster_id"] = [f"{name}-{ref_snap:03d}-{h}" for h in chosen["halo_id"]]
        else:
            ids = []
            for hid, centre in zip(chosen["halo_id"], _centres(chosen, box), strict=True):
                dist, j = tree.query(centre) if tree is not None else (np.inf, -1)
                if dist <= sel["match_radius_ckpc_h"]:
                    ids.append(f"{name}-{ref_snap:03d}-{ref_candidates['halo_id'].iloc[j]}")
                else:
                    ids.append(f"{name}-{snap:03d}-{hid}")
            chosen["cluster_id"] = ids
        chosen.insert(0, "sim", name)
        chosen.insert(1, "format", sim["format"])
        chosen.insert(2, "snapshot", int(snap))
        chosen.insert(3, "redshift", info["redshift"])
        rows.append(chosen)
    catalog = pd.concat(rows, ignore_index=True)
    splits = assign_splits(catalog["cluster_id"].tolist(), sel["split_fractions"], seed)
    catalog["split"] = catalog["cluster_id"].map(splits)
    return catalog


def write_catalog(
    name: str,
    sim_cfg: Mapping[str, Any],
    base_path: str | Path,
    selection: Mapping[str, Any],
    seed: int,
    out_path: str | Path,
) -> pd.DataFrame:
    """Select clusters of ``name`` and write ``results/catalog/{name}.parquet`` with units and provenance."""
    catalog = select_clusters(name, sim_cfg, base_path, selection, seed)
    cfg = {"simulation": dict(sim_cfg), "selection": effective_selection(sim_cfg, selection)}
    meta = {"units": CATALOG_UNITS, **provenance(cfg=cfg, seed=seed, inputs=[str(base_path)])}
    write_parquet(catalog, out_path, metadata=meta)
    return catalog

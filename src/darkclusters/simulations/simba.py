"""SIMBA reader: CAESAR halo catalogs and halo particles from GIZMO snapshots, with h5py.

CAESAR (not on PyPI; the PyPI ``caesar`` is unrelated) is read directly: ``halo_data/dicts/masses.m200c``
[Msun], ``radii.r200c`` [comoving kpc, no h], ``minpotpos`` [comoving kpc, no h] and the per-type index lists
``halo_data/lists/{glist,dmlist,slist,bhlist}`` sliced by ``<list>_start:<list>_end``. Particles are then read
from the snapshot by those indices (h5py, runs of consecutive rows coalesced), which scales to the real
2e9-particle SIMBA-100 where a first ``yt`` index costs tens of minutes (../shared/reference/formats.md §2).
Units are converted
here to physical kpc, Msun and km/s, centred on ``minpotpos`` with periodic images unwrapped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from darkclusters.cosmology import age_gyr_at_scale_factor, flat_lcdm
from darkclusters.simulations.particles import ParticleSet, Species
from darkclusters.simulations.units import (
    code_density_to_msun_kpc3,
    code_length_to_kpc,
    code_mass_to_msun,
    code_velocity_to_km_s,
    header_attrs,
    unwrap_periodic,
)

__all__ = ["load_caesar_halos", "load_simba_halo", "read_indexed_rows", "read_simba_header"]

_LISTS = {"gas": ("glist", 0), "dm": ("dmlist", 1), "stars": ("slist", 4), "bh": ("bhlist", 5)}


def _open(path: str | Path, what: str) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SIMBA {what} not found: expected {path}")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise OSError(f"{path}: unreadable or truncated HDF5 file ({exc})") from exc


def read_simba_header(snapshot_path: str | Path) -> dict[str, Any]:
    """The GIZMO ``Header`` attributes of a SIMBA snapshot."""
    with _open(snapshot_path, "snapshot") as f:
        if "Header" not in f:
            raise KeyError(f"{snapshot_path}: no Header group (not a GIZMO snapshot)")
        return dict(f["Header"].attrs.items())


def load_caesar_halos(caesar_path: str | Path, hubble_h: float, scale_factor: float) -> pd.DataFrame:
    """All CAESAR halos as a table in the same columns as
    :func:`darkclusters.simulations.tng.load_tng_groups`.

    hubble_h, scale_factor: from the snapshot header (CAESAR positions are comoving kpc without h).
    """
    with _open(caesar_path, "CAESAR catalog") as f:
        if "halo_data" not in f:
            raise KeyError(f"{caesar_path}: no halo_data group (not a CAESAR catalog)")
        hd = f["halo_data"]
        try:
            pos = hd["minpotpos"][()] * hubble_h  # kpccm → ckpc/h
            m200 = hd["dicts/masses.m200c"][()]
            r200 = hd["dicts/radii.r200c"][()] * scale_factor  # comoving → physical kpc
            counts = {k: hd[k][()] for k in ("ngas", "ndm", "nstar", "nbh")}
        except KeyError as exc:
            raise KeyError(f"{caesar_path}: missing CAESAR field ({exc})") from None
    return pd.DataFrame(
        {
            "halo_id": np.arange(len(m200), dtype=np.int64),
            "m200c_msun": m200.astype(np.float64),
            "r200c_kpc": r200.astype(np.float64),
            "centre_x_ckpc_h": pos[:, 0],
            "centre_y_ckpc_h": pos[:, 1],
            "centre_z_ckpc_h": pos[:, 2],
            "n_gas": counts["ngas"].astype(np.int64),
            "n_dm": counts["ndm"].astype(np.int64),
            "n_stars": counts["nstar"].astype(np.int64),
            "n_bh": counts["nbh"].astype(np.int64),
        }
    )


def read_indexed_rows(dataset: h5py.Dataset, indices: np.ndarray, max_gap: int = 4096) -> np.ndarray:
    """``dataset[indices]`` for any (unsorted) integer indices, reading coalesced runs of rows.

    h5py's fancy indexing needs increasing indices and is slow for long lists; here the sorted indices are
    grouped into runs whose gaps are below ``max_gap`` rows, each run read as one slice. Returns rows in the
    given order.
    """
    idx = np.asarray(indices, dtype=np.int64)
    out = np.empty((len(idx), *dataset.shape[1:]), dtype=dataset.dtype)
    if len(idx) == 0:
        return out
    if idx.min() < 0 or idx.max() >= dataset.shape[0]:
        raise IndexError(f"{dataset.name}: index out of range [0, {dataset.shape[0]})")
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    breaks = np.nonzero(np.diff(sorted_idx) > max_gap)[0] + 1
    for run in np.split(np.arange(len(sorted_idx)), breaks):
        lo, hi = sorted_idx[run[0]], sorted_idx[run[-1]] + 1
        block = dataset[lo:hi]
        out[order[run]] = block[sorted_idx[run] - lo]
    return out


def load_simba_halo(snapshot_path: str | Path, caesar_path: str | Path, halo_id: int) -> ParticleSet:
    """All particles of CAESAR halo ``halo_id``, centred on ``minpotpos``, in physical units."""
    header = read_simba_header(snapshot_path)
    a, h, box = float(header["Time"]), float(header["HubbleParam"]), float(header["BoxSize"])
    cosmology = flat_lcdm(h, float(header["Omega0"]), header.get("OmegaBaryon"))
    t_now = float(cosmology.age(1 / a - 1).to_value("Gyr"))
    with _open(caesar_path, "CAESAR catalog") as cat:
        hd = cat["halo_data"]
        n_halos = len(hd["GroupID"])
        if not 0 <= halo_id < n_halos:
            raise IndexError(f"halo_id {halo_id} out of range: {caesar_path} has {n_halos} halos")
        centre = hd["minpotpos"][halo_id] * h
        m200c = float(hd["dicts/masses.m200c"][halo_id])
        r200c = float(hd["dicts/radii.r200c"][halo_id]) * a
        index = {
            name: hd[f"lists/{lst}"][int(hd[f"{lst}_start"][halo_id]) : int(hd[f"{lst}_end"][halo_id])]
            for name, (lst, _t) in _LISTS.items()
        }
    species: dict[str, Species] = {}
    with _open(snapshot_path, "snapshot") as snap:
        for name, (_lst, t) in _LISTS.items():
            idx = index[name]
            group = f"PartType{t}"
            if len(idx) == 0 or group not in snap:
                species[name] = Species.empty()
                continue
            g = snap[group]

            def read(field: str, g: h5py.Group = g, idx: np.ndarray = idx, group: str = group) -> np.ndarray:
                if field not in g:
                    raise KeyError(f"{snapshot_path}: {group} has no field {field}")
                return read_indexed_rows(g[field], idx)

            pos = code_length_to_kpc(unwrap_periodic(read("Coordinates"), centre, box), a, h)
            mass = code_mass_to_msun(read("Masses"), h)
            fields: dict[str, np.ndarray] = {"vel_km_s": code_velocity_to_km_s(read("Velocities"), a)}
            if name == "gas":
                fields |= {
                    "internal_energy_km2_s2": read("InternalEnergy").astype(np.float64),
                    "electron_abundance": read("ElectronAbundance").astype(np.float64),
                    "density_msun_kpc3": code_density_to_msun_kpc3(read("Density"), a, h),
                    "smoothing_length_kpc": code_length_to_kpc(read("SmoothingLength"), a, h),
                    "metallicity": read("Metallicity")[:, 0].astype(np.float64),
                    "star_formation_rate_msun_yr": read("StarFormationRate").astype(np.float64),
                }
            elif name == "stars":
                born = read("StellarFormationTime").astype(np.float64)
                fields |= {
                    "formation_scale_factor": born,
                    "age_gyr": t_now - age_gyr_at_scale_factor(cosmology, born),
                    "metallicity": read("Metallicity")[:, 0].astype(np.float64),
                }
            elif name == "bh":
                fields["bh_mass_msun"] = code_mass_to_msun(read("BH_Mass"), h)
            species[name] = Species(pos, mass, fields)
    attrs = {
        "format": "simba",
        "halo_id": int(halo_id),
        **header_attrs(header),
        "centre_ckpc_h": np.asarray(centre, dtype=np.float64),
        "m200c_msun": m200c,
        "r200c_kpc": r200c,
        "n_wind_cells_dropped": 0,
        "smoothing_length_definition": "gas: GIZMO SmoothingLength (kernel support radius)",
    }
    return ParticleSet(**species, attrs=attrs)

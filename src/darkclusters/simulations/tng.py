"""IllustrisTNG reader: group catalogs and halo particles through the real ``illustris_python`` loaders.

Reads ``basePath/snapdir_{snap:03d}/snap_{snap:03d}.{chunk}.hdf5``,
``basePath/groups_{snap:03d}/fof_subhalo_tab_{snap:03d}.{chunk}.hdf5`` and
``basePath/../postprocessing/offsets/offsets_{snap:03d}.hdf5`` (formats in ../shared/reference/formats.md) and
converts once, here, from comoving code units (ckpc/h, 1e10 Msun/h, km/s·√a) to physical kpc, Msun and km/s.
Halo particles
come back as a :class:`ParticleSet` centred on ``GroupPos`` (the potential minimum), periodic images
unwrapped, DM masses from ``MassTable[1]``, wind-phase cells (``GFM_StellarFormationTime <= 0``) dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import illustris_python as il
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

__all__ = [
    "TNG_FIELDS",
    "TNG_SNAPSHOT_REDSHIFTS",
    "check_tng_files",
    "load_tng_groups",
    "load_tng_halo",
    "read_tng_snapshot_header",
    "species_from_code_units",
    "tng_paths",
]

log = logging.getLogger(__name__)

#: Exact ``Header/Redshift`` of TNG snapshots (TNG300-1; the same for every TNG run).
TNG_SNAPSHOT_REDSHIFTS: dict[int, float] = {
    99: 2.220446049250313e-16,
    91: 0.09940180263022191,
    84: 0.19728418237600986,
    78: 0.2977176945091542,
    72: 0.3999269646135635,
    67: 0.5030475232448832,
    59: 0.7001063537185233,
    50: 0.9972942257819404,
}

_PART_TYPES = {"gas": 0, "dm": 1, "stars": 4, "bh": 5}
TNG_FIELDS = {
    "gas": [
        "Coordinates",
        "Masses",
        "Velocities",
        "InternalEnergy",
        "ElectronAbundance",
        "Density",
        "GFM_Metallicity",
        "StarFormationRate",
    ],
    "dm": ["Coordinates", "Velocities"],
    "stars": [
        "Coordinates",
        "Masses",
        "Velocities",
        "GFM_StellarFormationTime",
        "GFM_Metallicity",
        "GFM_InitialMass",
        "GFM_StellarPhotometrics",
    ],
    "bh": ["Coordinates", "Masses", "Velocities", "BH_Mass"],
}
_GROUP_FIELDS = [
    "GroupPos",
    "Group_M_Crit200",
    "Group_R_Crit200",
    "GroupLenType",
    "GroupFirstSub",
    "GroupNsubs",
]


def tng_paths(base_path: str | Path, snap: int) -> dict[str, Path]:
    """Chunk-0 paths the real loaders open first: snapshot, group catalog and offsets file."""
    bp = Path(base_path)
    return {
        "snapshot": bp / f"snapdir_{snap:03d}" / f"snap_{snap:03d}.0.hdf5",
        "catalog": bp / f"groups_{snap:03d}" / f"fof_subhalo_tab_{snap:03d}.0.hdf5",
        "offsets": bp.parent / "postprocessing" / "offsets" / f"offsets_{snap:03d}.hdf5",
    }


def check_tng_files(base_path: str | Path, snap: int) -> None:
    """Raise FileNotFoundError naming the expected path if the basePath layout is incomplete.

    illustris_python's own errors name a path only sometimes (a missing offsets file surfaces as a bare h5py
    error); this check runs first so a user sees what the loader expected. A ``groups_{snap:03d}.0.hdf5``
    beside the ``fof_subhalo_tab`` files switches illustris_python to the old Illustris offsets convention:
    logged, not silent.
    """
    bp = Path(base_path)
    if not bp.is_dir():
        raise FileNotFoundError(f"TNG basePath not found: {bp} (expected the run's output/ folder)")
    for what, path in tng_paths(bp, snap).items():
        if not path.is_file():
            old = bp / f"snapdir_{snap:03d}" / f"snapshot_{snap:03d}.0.hdf5"
            if what == "snapshot" and old.is_file():
                continue
            legacy = bp / f"groups_{snap:03d}" / f"groups_{snap:03d}.0.hdf5"
            if what in ("catalog", "offsets") and legacy.is_file():
                log.warning("%s: Illustris-1 style group catalog; offsets are read from inside it", legacy)
                continue
            raise FileNotFoundError(f"TNG {what} file for snapshot {snap} not found: expected {path}")


def _chunk_files(base_path: Path, snap: int) -> list[Path]:
    snaps = sorted((base_path / f"snapdir_{snap:03d}").glob("*.hdf5"))
    groups = sorted((base_path / f"groups_{snap:03d}").glob("*.hdf5"))
    return [*snaps, *groups, tng_paths(base_path, snap)["offsets"]]


def _name_unreadable_file(base_path: str | Path, snap: int, exc: BaseException) -> OSError:
    """Open every chunk to find which file is corrupt; return an error naming it (or describing ``exc``)."""
    for path in _chunk_files(Path(base_path), snap):
        try:
            with h5py.File(path, "r") as f:
                f.visititems(lambda _name, obj: obj.shape if isinstance(obj, h5py.Dataset) else None)
        except OSError as bad:
            return OSError(f"{path}: unreadable or truncated HDF5 file ({bad})")
    return OSError(f"TNG snapshot {snap} under {base_path}: read failed ({type(exc).__name__}: {exc})")


def read_tng_snapshot_header(base_path: str | Path, snap: int) -> dict[str, Any]:
    """The AREPO header of snapshot chunk 0 (attributes as numpy values)."""
    check_tng_files(base_path, snap)
    path = tng_paths(base_path, snap)["snapshot"]
    try:
        with h5py.File(path, "r") as f:
            return dict(f["Header"].attrs.items())
    except OSError as exc:
        raise OSError(f"{path}: unreadable or truncated HDF5 file ({exc})") from exc


def load_tng_groups(base_path: str | Path, snap: int) -> pd.DataFrame:
    """All FoF groups of a snapshot as a table in physical units (one row per group, ``halo_id`` = group
    index).

    Columns: halo_id, m200c_msun, r200c_kpc (physical), centre_{x,y,z}_ckpc_h (GroupPos, comoving),
    n_{gas,dm,stars,bh} (GroupLenType; stars include wind cells), first_subhalo, n_subhalos.
    """
    header = read_tng_snapshot_header(base_path, snap)
    a, h = float(header["Time"]), float(header["HubbleParam"])
    try:
        cat_header = il.groupcat.loadHeader(str(base_path), snap)
        groups = il.groupcat.loadHalos(str(base_path), snap, fields=_GROUP_FIELDS)
    except (OSError, KeyError) as exc:
        raise _name_unreadable_file(base_path, snap, exc) from exc
    if int(cat_header["Ngroups_Total"]) == 0:
        return pd.DataFrame(columns=["halo_id", "m200c_msun", "r200c_kpc"])
    pos = groups["GroupPos"].astype(np.float64)
    len_type = groups["GroupLenType"]
    return pd.DataFrame(
        {
            "halo_id": np.arange(len(pos), dtype=np.int64),
            "m200c_msun": code_mass_to_msun(groups["Group_M_Crit200"], h),
            "r200c_kpc": code_length_to_kpc(groups["Group_R_Crit200"], a, h),
            "centre_x_ckpc_h": pos[:, 0],
            "centre_y_ckpc_h": pos[:, 1],
            "centre_z_ckpc_h": pos[:, 2],
            "n_gas": len_type[:, 0].astype(np.int64),
            "n_dm": len_type[:, 1].astype(np.int64),
            "n_stars": len_type[:, 4].astype(np.int64),
            "n_bh": len_type[:, 5].astype(np.int64),
            "first_subhalo": groups["GroupFirstSub"].astype(np.int64),
            "n_subhalos": groups["GroupNsubs"].astype(np.int64),
        }
    )


def _load_type(base_path: str | Path, snap: int, halo_id: int, species: str) -> dict[str, np.ndarray] | None:
    """illustris_python loadHalo for one species; ``None`` for a halo without that type (its ``{'count':
    0}``)."""
    try:
        data = il.snapshot.loadHalo(
            str(base_path), snap, halo_id, _PART_TYPES[species], fields=TNG_FIELDS[species]
        )
    except (OSError, KeyError) as exc:
        raise _name_unreadable_file(base_path, snap, exc) from exc
    except Exception as exc:  # illustris_python raises bare Exception for a missing field or short read
        raise RuntimeError(
            f"TNG snapshot {snap} under {base_path}, halo {halo_id}, {species}: {exc}"
        ) from exc
    if data["count"] == 0:
        return None
    return data


def species_from_code_units(
    raw: Mapping[str, Mapping[str, np.ndarray] | None], header: Mapping[str, Any], centre: np.ndarray
) -> tuple[dict[str, Species], int]:
    """Code units → physical Species, the conversion of :func:`load_tng_halo` and of TNG API cutouts.

    raw: per species the loader's dict of fields (TNG_FIELDS) with ``count``, or None when absent.
    Returns the species and the number of wind-phase cells dropped.
    """
    a, h = float(header["Time"]), float(header["HubbleParam"])
    box = float(header["BoxSize"])
    cosmology = flat_lcdm(h, float(header["Omega0"]), float(header.get("OmegaBaryon", 0.0486)))

    def positions(coords: np.ndarray) -> np.ndarray:
        return code_length_to_kpc(unwrap_periodic(coords, centre, box), a, h)

    species = {name: Species.empty() for name in _PART_TYPES}
    if (gas := raw["gas"]) is not None:
        mass = code_mass_to_msun(gas["Masses"], h)
        density = code_density_to_msun_kpc3(gas["Density"], a, h)
        species["gas"] = Species(
            positions(gas["Coordinates"]),
            mass,
            {
                "vel_km_s": code_velocity_to_km_s(gas["Velocities"], a),
                "internal_energy_km2_s2": gas["InternalEnergy"].astype(np.float64),
                "electron_abundance": gas["ElectronAbundance"].astype(np.float64),
                "density_msun_kpc3": density,
                # AREPO cells have no SPH kernel: the radius of the sphere with the cell's volume stands in.
                "smoothing_length_kpc": np.cbrt(3.0 * mass / (4.0 * np.pi * density)),
                "metallicity": gas["GFM_Metallicity"].astype(np.float64),
                "star_formation_rate_msun_yr": gas["StarFormationRate"].astype(np.float64),
            },
        )
    if (dm := raw["dm"]) is not None:
        m_dm = code_mass_to_msun(float(header["MassTable"][1]), h)  # TNG PartType1 has no Masses dataset
        species["dm"] = Species(
            positions(dm["Coordinates"]),
            np.full(dm["count"], m_dm),
            {"vel_km_s": code_velocity_to_km_s(dm["Velocities"], a)},
        )
    n_wind = 0
    if (stars := raw["stars"]) is not None:
        born = stars["GFM_StellarFormationTime"].astype(np.float64)
        real = born > 0  # wind-phase cells carry a formation time <= 0
        n_wind = int((~real).sum())
        species["stars"] = Species(
            positions(stars["Coordinates"][real]),
            code_mass_to_msun(stars["Masses"][real], h),
            {
                "vel_km_s": code_velocity_to_km_s(stars["Velocities"][real], a),
                "initial_mass_msun": code_mass_to_msun(stars["GFM_InitialMass"][real], h),
                "formation_scale_factor": born[real],
                "age_gyr": float(cosmology.age(1 / a - 1).to_value("Gyr"))
                - age_gyr_at_scale_factor(cosmology, born[real]),
                "metallicity": stars["GFM_Metallicity"][real].astype(np.float64),
                "photometrics_mag": stars["GFM_StellarPhotometrics"][real].astype(np.float32),
            },
        )
    if (bh := raw["bh"]) is not None:
        species["bh"] = Species(
            positions(bh["Coordinates"]),
            code_mass_to_msun(bh["Masses"], h),
            {
                "vel_km_s": code_velocity_to_km_s(bh["Velocities"], a),
                "bh_mass_msun": code_mass_to_msun(bh["BH_Mass"], h),
            },
        )
    return species, n_wind


def load_tng_halo(base_path: str | Path, snap: int, halo_id: int) -> ParticleSet:
    """All FoF particles of group ``halo_id``, centred on GroupPos, physical units (module docstring)."""
    header = read_tng_snapshot_header(base_path, snap)
    a, h = float(header["Time"]), float(header["HubbleParam"])
    n_groups = int(il.groupcat.loadHeader(str(base_path), snap)["Ngroups_Total"])
    if not 0 <= halo_id < n_groups:
        raise IndexError(f"halo_id {halo_id} out of range: snapshot {snap} has {n_groups} groups")
    group = il.groupcat.loadSingle(str(base_path), snap, haloID=halo_id)
    centre = np.asarray(group["GroupPos"], dtype=np.float64)
    raw = {name: _load_type(base_path, snap, halo_id, name) for name in _PART_TYPES}
    species, n_wind = species_from_code_units(raw, header, centre)

    attrs = {
        "format": "tng",
        "snapshot": int(snap),
        "halo_id": int(halo_id),
        **header_attrs(header),
        "centre_ckpc_h": centre,
        "m200c_msun": float(code_mass_to_msun(group["Group_M_Crit200"], h)),
        "r200c_kpc": float(code_length_to_kpc(group["Group_R_Crit200"], a, h)),
        "n_wind_cells_dropped": n_wind,
        "smoothing_length_definition": "gas: radius of the sphere of the cell volume, (3m / 4 pi rho)^(1/3)",
    }
    return ParticleSet(**species, attrs=attrs)

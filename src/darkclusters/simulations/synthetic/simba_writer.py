"""Write SYNTHETIC clusters as a SIMBA snapshot (GIZMO HDF5) plus a CAESAR-layout halo catalog.

Snapshot (../shared/reference/formats.md §2): one file, ``PartType0`` with ``SmoothingLength`` and an
11-column ``Metallicity`` ([Z, He, C, N, O, Ne, Mg, Si, S, Ca, Fe]) so ``yt.load`` picks its GIZMO frontend;
per-particle DM ``Masses``; stars with ``StellarFormationTime`` and no GFM fields, no photometry, no initial
mass; no ``Config``
group; float32 coordinates in ckpc/h. Particles are stored in a shuffled (not halo) order, as in a real GIZMO
snapshot, so the catalog's index lists are the only way to find a halo's particles.

CAESAR catalog: root attributes ``caesar``, ``nhalos``, ``ngalaxies`` and ``unit_registry_json`` (from yt, so
that ``kpccm`` parses); ``halo_data/`` one dataset per attribute (``pos``/``minpotpos`` in comoving kpc
without h), ``halo_data/dicts/{masses.*, radii.r200c}`` and ``halo_data/lists/{dmlist,glist,slist,bhlist}``
with ``<list>_start``/``<list>_end`` per halo; halos sorted by total mass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
from astropy.cosmology import FlatLambdaCDM

from darkclusters.io import write_hdf5_attrs
from darkclusters.simulations.synthetic.common import (
    FOF_FUZZ,
    PlacedHalo,
    cluster_species,
    spherical_overdensity,
)

__all__ = ["SOLAR_ABUNDANCE_PATTERN", "write_simba_snapshot"]

SYNTHETIC_NOTE = (
    "SYNTHETIC data written by darkclusters in the SIMBA (GIZMO + CAESAR) format; not a real simulation"
)
_TYPES = {"gas": 0, "dm": 1, "stars": 4, "bh": 5}
_LISTS = {"gas": "glist", "dm": "dmlist", "stars": "slist", "bh": "bhlist"}
#: Mass fractions of [He, C, N, O, Ne, Mg, Si, S, Ca, Fe] relative to the total metal fraction Z (solar
# mixture,
#: Asplund et al. 2009, metals normalised to sum ~1); helium is absolute (Y ≈ 0.25).
SOLAR_ABUNDANCE_PATTERN = np.array([0.0, 0.18, 0.053, 0.43, 0.094, 0.053, 0.050, 0.024, 0.0046, 0.092])


def _metallicity_columns(z_total: np.ndarray) -> np.ndarray:
    """(N, 11) GIZMO metallicity block: total Z, then He and nine metals scaled with Z."""
    out = np.empty((len(z_total), 11), np.float32)
    out[:, 0] = z_total
    out[:, 1] = 0.25
    out[:, 2:] = z_total[:, None] * SOLAR_ABUNDANCE_PATTERN[1:][None, :]
    return out


def write_simba_snapshot(
    snapshot_path: str | Path,
    caesar_path: str | Path,
    halos: Sequence[PlacedHalo],
    *,
    redshift: float,
    cosmology: FlatLambdaCDM,
    box_size_ckpc_h: float,
    seed: int,
    gas_metallicity: float = 0.3 * 0.0127,
    root_attrs: Mapping[str, str] | None = None,
) -> list[int]:
    """Write the GIZMO snapshot and the CAESAR catalog; return each input halo's index in the catalog."""
    if not halos:
        raise ValueError("halos is empty: a snapshot needs at least one halo")
    rng = np.random.default_rng(seed)
    a = 1.0 / (1.0 + redshift)
    h = float(cosmology.h)
    rho_crit = float(cosmology.critical_density(redshift).to_value("Msun / kpc3"))
    species = [cluster_species(p.cluster) for p in halos]

    # Concatenate every halo's particles per type, remembering which halo (and whether FoF member) each came
    # from.
    columns: dict[str, dict[str, np.ndarray]] = {}
    owner: dict[str, np.ndarray] = {}
    for name in _TYPES:
        blocks = []
        for i, (p, sp) in enumerate(zip(halos, species, strict=True)):
            s = sp[name]
            centre = np.asarray(p.centre_ckpc_h, dtype=np.float64)
            member = s["label"] >= FOF_FUZZ
            block = {
                "Coordinates": (centre + s["pos_kpc"] * (h / a)) % box_size_ckpc_h,
                "Velocities": s["vel_km_s"] / np.sqrt(a),
                "Masses": s["mass_msun"] * (h / 1e10),
                "_owner": np.where(member, i, -1),
            }
            if name == "gas":
                block["Density"] = s["density_msun_kpc3"] * a**3 / (1e10 * h**2)
                block["InternalEnergy"] = s["u_km2_s2"]
                block["ElectronAbundance"] = s["electron_abundance"]
                block["SmoothingLength"] = s["hsml_kpc"] * (h / a)
            if name == "stars":
                real = s["formation_a"] > 0  # SIMBA has no wind-phase star entries; winds stay gas
                block = {k: v[real] for k, v in block.items()}
                block["StellarFormationTime"] = s["formation_a"][real]
                block["_z"] = s["metallicity"][real]
            if name == "bh":
                block["BH_Mass"] = s["bh_mass_msun"] * (h / 1e10)
            blocks.append(block)
        merged = {k: np.concatenate([b[k] for b in blocks], axis=0) for k in blocks[0]}
        perm = rng.permutation(len(merged["Masses"]))  # GIZMO order is not halo order
        merged = {k: v[perm] for k, v in merged.items()}
        owner[name] = merged.pop("_owner")
        columns[name] = merged

    n_gas = len(columns["gas"]["Masses"])
    gas = columns["gas"]
    gas["Metallicity"] = _metallicity_columns(np.full(n_gas, gas_metallicity))
    gas["NeutralHydrogenAbundance"] = np.zeros(n_gas)
    gas["StarFormationRate"] = np.zeros(n_gas)
    gas["DelayTime"] = np.zeros(n_gas)
    stars = columns["stars"]
    stars["Metallicity"] = _metallicity_columns(stars.pop("_z"))
    columns["bh"]["BH_Mdot"] = np.zeros(len(columns["bh"]["Masses"]))

    n_total = np.zeros(6, np.int64)
    for name, t in _TYPES.items():
        n_total[t] = len(columns[name]["Masses"])
    header = {
        "NumPart_ThisFile": n_total.astype(np.int32),
        "NumPart_Total": (n_total & 0xFFFFFFFF).astype(np.uint32),
        "NumPart_Total_HighWord": (n_total >> 32).astype(np.uint32),
        "MassTable": np.zeros(6),
        "Time": a,
        "Redshift": float(redshift),
        "BoxSize": float(box_size_ckpc_h),
        "NumFilesPerSnapshot": np.int32(1),
        "Omega0": float(cosmology.Om0),
        "OmegaLambda": float(cosmology.Ode0),
        "OmegaBaryon": float(cosmology.Ob0),
        "HubbleParam": h,
        "Flag_Sfr": np.int32(1),
        "Flag_Cooling": np.int32(1),
        "Flag_StellarAge": np.int32(1),
        "Flag_Metals": np.int32(11),
        "Flag_Feedback": np.int32(1),
        "Flag_DoublePrecision": np.int32(0),
    }
    attrs = {"synthetic": SYNTHETIC_NOTE, **(root_attrs or {})}
    snapshot_path = Path(snapshot_path)
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    next_id = 1
    with h5py.File(snapshot_path, "w") as f:
        write_hdf5_attrs(f, attrs)
        write_hdf5_attrs(f.create_group("Header"), header)
        for name, t in _TYPES.items():
            g = f.create_group(f"PartType{t}")
            n = int(n_total[t])
            for key, values in columns[name].items():
                g.create_dataset(key, data=values.astype(np.float32))
            g.create_dataset("ParticleIDs", data=np.arange(next_id, next_id + n, dtype=np.uint64))
            next_id += n

    # CAESAR halo catalog: halos sorted by FoF total mass, index lists into the shuffled snapshot arrays.
    fof_mass = np.array(
        [sum(s[n]["mass_msun"][s[n]["label"] >= FOF_FUZZ].sum() for n in _TYPES) for s in species]
    )
    order = np.argsort(-fof_mass, kind="stable")
    _write_caesar(
        Path(caesar_path),
        snapshot_path,
        halos,
        species,
        order,
        owner,
        columns,
        a=a,
        h=h,
        rho_crit=rho_crit,
        attrs=attrs,
    )
    catalog_index = np.empty(len(halos), np.int64)
    catalog_index[order] = np.arange(len(halos))
    return [int(i) for i in catalog_index]


def _write_caesar(
    path: Path,
    snapshot_path: Path,
    halos: Sequence[PlacedHalo],
    species: Sequence[Mapping[str, Mapping[str, np.ndarray]]],
    order: np.ndarray,
    owner: Mapping[str, np.ndarray],
    columns: Mapping[str, Mapping[str, np.ndarray]],
    *,
    a: float,
    h: float,
    rho_crit: float,
    attrs: Mapping[str, str],
) -> None:
    import yt  # only the writer needs yt here: the unit registry CAESAR stores must be yt's own

    n = len(order)
    lists: dict[str, list[np.ndarray]] = {name: [] for name in _TYPES}
    starts = {name: np.zeros(n, np.int64) for name in _TYPES}
    ends = {name: np.zeros(n, np.int64) for name in _TYPES}
    masses = {key: np.zeros(n) for key in ("total", "dm", "gas", "stellar", "bh", "m200c", "m500c")}
    r200c = np.zeros(n)
    for name in _TYPES:
        cursor = 0
        for row, i in enumerate(order):
            idx = np.nonzero(owner[name] == i)[0]
            lists[name].append(idx)
            starts[name][row], ends[name][row] = cursor, cursor + len(idx)
            cursor += len(idx)
            m = columns[name]["Masses"][idx].sum() * 1e10 / h
            masses[{"gas": "gas", "dm": "dm", "stars": "stellar", "bh": "bh"}[name]][row] = m
            masses["total"][row] += m
    for row, i in enumerate(order):
        sp = species[i]
        r_all = np.concatenate([np.linalg.norm(sp[t]["pos_kpc"], axis=1) for t in _TYPES])
        m_all = np.concatenate([sp[t]["mass_msun"] for t in _TYPES])
        masses["m200c"][row], r200 = spherical_overdensity(r_all, m_all, rho_crit, 200.0)
        masses["m500c"][row], _ = spherical_overdensity(r_all, m_all, rho_crit, 500.0)
        r200c[row] = r200 / a  # CAESAR radii are comoving kpc (kpccm), without h
    pos_kpccm = np.array([halos[i].centre_ckpc_h for i in order], dtype=np.float64) / h
    ds = yt.load(str(snapshot_path))
    registry = ds.unit_registry.to_json()

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        write_hdf5_attrs(f, attrs)
        f.attrs["caesar"] = "synthetic"
        f.attrs["nhalos"] = np.int32(n)
        f.attrs["ngalaxies"] = np.int32(0)
        f.attrs["unit_registry_json"] = registry
        hd = f.create_group("halo_data")
        hd.create_dataset("GroupID", data=np.arange(n, dtype=np.int32))
        for key, values in (("pos", pos_kpccm), ("minpotpos", pos_kpccm)):
            hd.create_dataset(key, data=values).attrs["unit"] = "kpccm"
        hd.create_dataset("vel", data=np.zeros((n, 3))).attrs["unit"] = "km/s"
        for name, count_key in (("dm", "ndm"), ("gas", "ngas"), ("stars", "nstar"), ("bh", "nbh")):
            hd.create_dataset(count_key, data=(ends[name] - starts[name]).astype(np.int32))
            hd.create_dataset(f"{_LISTS[name]}_start", data=starts[name].astype(np.int32))
            hd.create_dataset(f"{_LISTS[name]}_end", data=ends[name].astype(np.int32))
            hd.create_dataset(f"lists/{_LISTS[name]}", data=np.concatenate(lists[name]).astype(np.int64))
        for key, values in masses.items():
            hd.create_dataset(f"dicts/masses.{key}", data=values).attrs["unit"] = "Msun"
        hd.create_dataset("dicts/radii.r200c", data=r200c).attrs["unit"] = "kpccm"

"""Write SYNTHETIC clusters as an IllustrisTNG snapshot: snapshot chunks, SUBFIND catalog chunks, offsets
file.

The layout is exactly what ``illustris_python`` 1.1.1 reads (../shared/reference/formats.md §1): particles in
halo order (group 0's subhalos in SUBFIND order, then its fuzz, group 1, ..., then unbound particles),
``GroupLenType`` and ``SubhaloLenType`` consistent with that order, offsets as their cumulative sums, DM
without ``Masses`` (``MassTable[1]``), wind-phase cells in PartType4 with ``GFM_StellarFormationTime <= 0``,
comoving code units (ckpc/h, 1e10 Msun/h, km/s·√a), ≥ 2 chunks per file family, a full AREPO header and
``Config``/``Parameters`` groups as in the public TNG snapshots. Catalog M200c/R200c are measured from the
particles (spherical overdensity
about the potential minimum, all species), as SUBFIND does. ``SubfindHsml``/``SubfindDensity`` use the 64
nearest DM particles (DM-only density: a stated simplification).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
from astropy.cosmology import FlatLambdaCDM
from scipy.spatial import cKDTree

from darkclusters.io import write_hdf5_attrs
from darkclusters.simulations.synthetic.common import (
    FOF_FUZZ,
    UNBOUND,
    PlacedHalo,
    cluster_species,
    spherical_overdensity,
)

__all__ = ["write_tng_snapshot"]

SYNTHETIC_NOTE = "SYNTHETIC data written by darkclusters in the IllustrisTNG format; not a real simulation"
_TYPES = {"gas": 0, "dm": 1, "stars": 4, "bh": 5}
_UNIT_LENGTH_CM = 3.085678e21
_UNIT_MASS_G = 1.989e43
_UNIT_VELOCITY_CM_S = 1e5
_SUBFIND_NGB = 64


def _bryan_norman_delta_crit(cosmology: FlatLambdaCDM, z: float) -> float:
    """Virial overdensity w.r.t. critical, Δc = 18π² + 82x − 39x², x = Ωm(z) − 1 (Bryan & Norman 1998)."""
    x = float(cosmology.Om(z)) - 1.0
    return 18 * np.pi**2 + 82 * x - 39 * x**2


def _subhalo_ranks(species: Mapping[str, Mapping[str, np.ndarray]]) -> list[int]:
    """Subhalo labels of one group in SUBFIND order: the central (0) first, then satellites by particle
    count."""
    labels = np.concatenate([s["label"] for s in species.values()])
    present, counts = np.unique(labels[labels >= 0], return_counts=True)
    satellites = sorted(
        ((int(lab), int(n)) for lab, n in zip(present, counts, strict=True) if lab != 0),
        key=lambda t: (-t[1], t[0]),
    )
    return ([0] if 0 in present else []) + [lab for lab, _ in satellites]


class _SnapshotBuilder:
    """Accumulates particles in halo order and the catalog rows describing them (all in code units)."""

    def __init__(self, *, a: float, h: float, box: float, z: float, cosmology: FlatLambdaCDM) -> None:
        self.a, self.h, self.box, self.z, self.cosmology = a, h, box, z, cosmology
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {t: [] for t in _TYPES}
        self.unbound: dict[str, list[dict[str, np.ndarray]]] = {t: [] for t in _TYPES}
        self.groups: list[dict[str, np.ndarray | float | int]] = []
        self.subhalos: list[dict[str, np.ndarray | float | int]] = []
        self.rho_crit = float(cosmology.critical_density(z).to_value("Msun / kpc3"))

    def code_pos(self, pos_kpc: np.ndarray, centre: np.ndarray) -> np.ndarray:
        return (centre + np.asarray(pos_kpc) * (self.h / self.a)) % self.box

    def code_cols(
        self, sp: Mapping[str, np.ndarray], idx: np.ndarray, centre: np.ndarray
    ) -> dict[str, np.ndarray]:
        cols = {
            "Coordinates": self.code_pos(sp["pos_kpc"][idx], centre),
            "Masses": sp["mass_msun"][idx] * (self.h / 1e10),
            "Velocities": sp["vel_km_s"][idx] / np.sqrt(self.a),
        }
        if "u_km2_s2" in sp:
            cols["InternalEnergy"] = sp["u_km2_s2"][idx]
            cols["ElectronAbundance"] = sp["electron_abundance"][idx]
            cols["Density"] = sp["density_msun_kpc3"][idx] * self.a**3 / (1e10 * self.h**2)
        if "formation_a" in sp:
            cols["GFM_StellarFormationTime"] = sp["formation_a"][idx]
            cols["GFM_Metallicity"] = sp["metallicity"][idx]
            cols["GFM_InitialMass"] = sp["initial_mass_msun"][idx] * (self.h / 1e10)
            cols["GFM_StellarPhotometrics"] = sp["photometrics"][idx]
        if "bh_mass_msun" in sp:
            cols["BH_Mass"] = sp["bh_mass_msun"][idx] * (self.h / 1e10)
        return cols

    def add_group(self, halo: PlacedHalo) -> None:
        species = cluster_species(halo.cluster)
        centre = np.asarray(halo.centre_ckpc_h, dtype=np.float64)
        order = _subhalo_ranks(species)
        group_id = len(self.groups)
        first_sub = len(self.subhalos)
        len_type = np.zeros(6, np.int64)
        mass_type = np.zeros(6, np.float64)
        sub_len = np.zeros((len(order), 6), np.int64)
        sub_mass = np.zeros((len(order), 6), np.float64)
        for name, t in _TYPES.items():
            sp = species[name]
            label = sp["label"]
            rank = np.full(len(label), len(order), np.int64)  # fuzz after all subhalos
            for r, lab in enumerate(order):
                rank[label == lab] = r
            members = np.nonzero(label >= FOF_FUZZ)[0]
            members = members[np.argsort(rank[members], kind="stable")]
            cols = self.code_cols(sp, members, centre)
            self.parts[name].append(cols)
            outside = np.nonzero(label == UNBOUND)[0]
            self.unbound[name].append(self.code_cols(sp, outside, centre))
            len_type[t] = len(members)
            mass_type[t] = cols["Masses"].sum()
            for r, lab in enumerate(order):
                in_sub = label == lab
                sub_len[r, t] = int(in_sub.sum())
                sub_mass[r, t] = sp["mass_msun"][in_sub].sum() * (self.h / 1e10)
        # Spherical overdensities from every particle of the realisation, as SUBFIND measures them.
        r_all = np.concatenate([np.linalg.norm(species[n]["pos_kpc"], axis=1) for n in _TYPES])
        m_all = np.concatenate([species[n]["mass_msun"] for n in _TYPES])
        so = {}
        for key, delta in (
            ("Crit200", 200.0),
            ("Crit500", 500.0),
            ("Mean200", 200.0 * float(self.cosmology.Om(self.z))),
            ("TopHat200", _bryan_norman_delta_crit(self.cosmology, self.z)),
        ):
            m_so, r_so = spherical_overdensity(r_all, m_all, self.rho_crit, delta)
            so[f"Group_M_{key}"] = m_so * self.h / 1e10
            so[f"Group_R_{key}"] = r_so * self.h / self.a
        cl = halo.cluster
        for r, lab in enumerate(order):
            self.subhalos.append(
                {
                    "SubhaloPos": self.code_pos(cl.subhalo_pos_kpc[lab], centre),
                    "SubhaloLenType": sub_len[r],
                    "SubhaloLen": int(sub_len[r].sum()),
                    "SubhaloMassType": sub_mass[r],
                    "SubhaloMass": float(sub_mass[r].sum()),
                    "SubhaloGrNr": group_id,
                    "SubhaloParent": 0 if r > 0 else -1,
                    "SubhaloFlag": 1,
                }
            )
        self.groups.append(
            {
                "GroupPos": centre,
                "GroupLenType": len_type,
                "GroupLen": int(len_type.sum()),
                "GroupMassType": mass_type,
                "GroupMass": float(mass_type.sum()),
                "GroupFirstSub": first_sub if order else -1,
                "GroupNsubs": len(order),
                **so,
            }
        )


def _concat(blocks: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = blocks[0].keys()
    return {k: np.concatenate([b[k] for b in blocks], axis=0) for k in keys}


_DTYPES = {
    "Coordinates": np.float64,
    "GFM_StellarPhotometrics": np.float32,
}


def _write_snapshot_chunks(
    out_dir: Path,
    snap: int,
    particles: dict[str, dict[str, np.ndarray]],
    header: dict,
    n_chunks: int,
    root_attrs: Mapping[str, str],
) -> np.ndarray:
    """Write snap_{snap:03d}.{chunk}.hdf5; return FileOffsets/SnapByType (n_chunks, 6)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n_total = np.zeros(6, np.int64)
    bounds = {}
    for name, t in _TYPES.items():
        n = len(particles[name]["Coordinates"])
        n_total[t] = n
        bounds[t] = np.linspace(0, n, n_chunks + 1).round().astype(np.int64)
    file_offsets = np.zeros((n_chunks, 6), np.int64)
    next_id = 1
    ids = {}
    for t in _TYPES.values():
        ids[t] = np.arange(next_id, next_id + n_total[t], dtype=np.uint64)
        next_id += int(n_total[t])
    for c in range(n_chunks):
        n_this = np.zeros(6, np.int32)
        for t in _TYPES.values():
            file_offsets[c, t] = bounds[t][c]
            n_this[t] = bounds[t][c + 1] - bounds[t][c]
        with h5py.File(out_dir / f"snap_{snap:03d}.{c}.hdf5", "w") as f:
            write_hdf5_attrs(f, root_attrs)
            hdr = f.create_group("Header")
            write_hdf5_attrs(hdr, {**header, "NumPart_ThisFile": n_this})
            cfg = f.create_group("Config")
            for flag in ("VORONOI", "COOLING", "GFM", "GFM_STELLAR_PHOTOMETRICS", "BLACK_HOLES", "SUBFIND"):
                cfg.attrs[flag] = np.int32(1)
            params = f.create_group("Parameters")
            params.attrs["BoxSize"] = header["BoxSize"]
            params.attrs["HubbleParam"] = header["HubbleParam"]
            for name, t in _TYPES.items():
                if n_this[t] == 0:
                    continue  # as in TNG, a chunk without particles of a type has no PartTypeN group
                g = f.create_group(f"PartType{t}")
                sl = slice(bounds[t][c], bounds[t][c + 1])
                for key, values in particles[name].items():
                    if name == "dm" and key == "Masses":
                        continue  # TNG PartType1 has no Masses: MassTable[1] holds the DM particle mass
                    g.create_dataset(key, data=values[sl].astype(_DTYPES.get(key, np.float32)))
                g.create_dataset("ParticleIDs", data=ids[t][sl])
    return file_offsets


def _write_catalog_chunks(
    out_dir: Path,
    snap: int,
    groups: list[dict],
    subhalos: list[dict],
    header: dict,
    n_chunks: int,
    root_attrs: Mapping[str, str],
) -> tuple[np.ndarray, np.ndarray]:
    """Write fof_subhalo_tab_{snap:03d}.{chunk}.hdf5 (subhalos in their group's chunk); offsets."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gbounds = np.linspace(0, len(groups), n_chunks + 1).round().astype(np.int64)
    gr_nr = np.array([s["SubhaloGrNr"] for s in subhalos], dtype=np.int64)
    sbounds = np.searchsorted(gr_nr, gbounds, side="left")
    int_fields = {"GroupLenType", "GroupLen", "GroupFirstSub", "GroupNsubs", "SubhaloLenType", "SubhaloLen"}
    int_fields |= {"SubhaloGrNr", "SubhaloParent", "SubhaloFlag"}
    for c in range(n_chunks):
        gs = groups[gbounds[c] : gbounds[c + 1]]
        ss = subhalos[sbounds[c] : sbounds[c + 1]]
        with h5py.File(out_dir / f"fof_subhalo_tab_{snap:03d}.{c}.hdf5", "w") as f:
            write_hdf5_attrs(f, root_attrs)
            hdr = f.create_group("Header")
            write_hdf5_attrs(
                hdr,
                {
                    **header,
                    "Ngroups_ThisFile": np.int32(len(gs)),
                    "Nsubgroups_ThisFile": np.int32(len(ss)),
                    "Nids_ThisFile": np.int32(0),
                    "NumFiles": np.int32(n_chunks),
                },
            )
            for gname, rows, template in (("Group", gs, groups), ("Subhalo", ss, subhalos)):
                g = f.create_group(gname)  # present even when empty: the loaders expect both groups
                for key in template[0] if template else []:
                    dtype = np.int32 if key in int_fields else np.float32
                    values = np.array([row[key] for row in rows], dtype=dtype)
                    if not rows:
                        values = values.reshape((0, *np.shape(template[0][key])))
                    g.create_dataset(key, data=values)
    return gbounds[:-1].copy(), sbounds[:-1].astype(np.int64)


def _add_subfind_density(dm: dict[str, np.ndarray], m_dm_code: float, box: float) -> None:
    """SubfindHsml (ckpc/h) and SubfindDensity ((1e10 Msun/h)/(ckpc/h)³) from the 64 nearest DM particles."""
    pos = dm["Coordinates"]
    k = min(_SUBFIND_NGB, len(pos))
    if k < 2:
        dm["SubfindHsml"] = np.zeros(len(pos))
        dm["SubfindDensity"] = np.zeros(len(pos))
        return
    dist, _ = cKDTree(pos, boxsize=box).query(pos, k=k)
    hsml = dist[:, -1]
    dm["SubfindHsml"] = hsml
    dm["SubfindDensity"] = k * m_dm_code / (4.0 / 3.0 * np.pi * np.maximum(hsml, 1e-6) ** 3)


def write_tng_snapshot(
    base_path: str | Path,
    snap: int,
    halos: Sequence[PlacedHalo],
    *,
    redshift: float,
    cosmology: FlatLambdaCDM,
    box_size_ckpc_h: float,
    dm_particle_mass_msun: float,
    n_snapshot_chunks: int,
    n_catalog_chunks: int,
    gas_metallicity: float = 0.3 * 0.0127,
    root_attrs: Mapping[str, str] | None = None,
) -> list[int]:
    """Write one synthetic TNG snapshot under ``base_path`` (the run's ``output/``) and its offsets file.

    halos: synthetic clusters with their comoving centres; written as FoF groups sorted by particle count.
    Returns, for each input halo, its group index (halo id) in the written catalog.
    """
    if n_snapshot_chunks < 2 or n_catalog_chunks < 2:
        raise ValueError("n_snapshot_chunks and n_catalog_chunks must be >= 2 (TNG multi-file layout)")
    if not halos:
        raise ValueError("halos is empty: a snapshot needs at least one group")
    a = 1.0 / (1.0 + redshift)
    h = float(cosmology.h)
    base_path = Path(base_path)
    builder = _SnapshotBuilder(a=a, h=h, box=box_size_ckpc_h, z=redshift, cosmology=cosmology)
    n_fof = [
        sum(int((s["label"] >= FOF_FUZZ).sum()) for s in cluster_species(p.cluster).values()) for p in halos
    ]
    order = sorted(range(len(halos)), key=lambda i: (-n_fof[i], i))  # SUBFIND sorts groups by length
    for i in order:
        builder.add_group(halos[i])
    particles = {name: _concat(builder.parts[name] + builder.unbound[name]) for name in _TYPES}
    m_dm_code = dm_particle_mass_msun * h / 1e10
    gas = particles["gas"]
    gas["GFM_Metallicity"] = np.full(len(gas["Masses"]), gas_metallicity)
    gas["StarFormationRate"] = np.zeros(len(gas["Masses"]))
    gas["NeutralHydrogenAbundance"] = np.zeros(len(gas["Masses"]))
    particles["bh"]["BH_Mdot"] = np.zeros(len(particles["bh"]["Masses"]))
    _add_subfind_density(particles["dm"], m_dm_code, box_size_ckpc_h)

    n_total = np.zeros(6, np.int64)
    for name, t in _TYPES.items():
        n_total[t] = len(particles[name]["Coordinates"])
    mass_table = np.zeros(6)
    mass_table[1] = m_dm_code
    common = {
        "BoxSize": float(box_size_ckpc_h),
        "HubbleParam": h,
        "Omega0": float(cosmology.Om0),
        "OmegaLambda": float(cosmology.Ode0),
        "OmegaBaryon": float(cosmology.Ob0),
        "Redshift": float(redshift),
        "Time": a,
    }
    snap_header = {
        **common,
        "NumPart_Total": (n_total & 0xFFFFFFFF).astype(np.uint32),
        "NumPart_Total_HighWord": (n_total >> 32).astype(np.uint32),
        "MassTable": mass_table,
        "NumFilesPerSnapshot": np.int32(n_snapshot_chunks),
        "Flag_Cooling": np.int32(1),
        "Flag_DoublePrecision": np.int32(1),
        "Flag_Feedback": np.int32(1),
        "Flag_Metals": np.int32(1),
        "Flag_Sfr": np.int32(1),
        "Flag_StellarAge": np.int32(1),
        "UnitLength_in_cm": _UNIT_LENGTH_CM,
        "UnitMass_in_g": _UNIT_MASS_G,
        "UnitVelocity_in_cm_per_s": _UNIT_VELOCITY_CM_S,
        "Composition_vector_length": np.int32(0),
        "Git_commit": "synthetic",
        "Git_date": "synthetic",
    }
    attrs = {"synthetic": SYNTHETIC_NOTE, **(root_attrs or {})}
    snap_offsets = _write_snapshot_chunks(
        base_path / f"snapdir_{snap:03d}", snap, particles, snap_header, n_snapshot_chunks, attrs
    )
    cat_header = {
        **common,
        "Ngroups_Total": np.int32(len(builder.groups)),
        "Nsubgroups_Total": np.int32(len(builder.subhalos)),
        "Nids_Total": np.int32(0),
        "FlagDoubleprecision": np.int32(0),
    }
    group_offsets, subhalo_offsets = _write_catalog_chunks(
        base_path / f"groups_{snap:03d}",
        snap,
        builder.groups,
        builder.subhalos,
        cat_header,
        n_catalog_chunks,
        attrs,
    )
    _write_offsets(base_path, snap, builder, snap_offsets, group_offsets, subhalo_offsets, attrs)
    halo_id = {i: g for g, i in enumerate(order)}
    return [halo_id[i] for i in range(len(halos))]


def _write_offsets(
    base_path: Path,
    snap: int,
    builder: _SnapshotBuilder,
    snap_offsets: np.ndarray,
    group_offsets: np.ndarray,
    subhalo_offsets: np.ndarray,
    root_attrs: Mapping[str, str],
) -> None:
    """postprocessing/offsets/offsets_{snap:03d}.hdf5: cumulative GroupLenType and SubhaloLenType (int64)."""
    group_len = np.array([g["GroupLenType"] for g in builder.groups], dtype=np.int64)
    group_start = np.vstack([np.zeros((1, 6), np.int64), np.cumsum(group_len, axis=0)[:-1]])
    sub_start = np.zeros((len(builder.subhalos), 6), np.int64)
    s = 0
    for g, group in enumerate(builder.groups):
        cursor = group_start[g].copy()
        for _ in range(int(group["GroupNsubs"])):
            sub_start[s] = cursor
            cursor = cursor + np.asarray(builder.subhalos[s]["SubhaloLenType"], dtype=np.int64)
            s += 1
    path = base_path.parent / "postprocessing" / "offsets" / f"offsets_{snap:03d}.hdf5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        write_hdf5_attrs(f, root_attrs)
        f.create_dataset("FileOffsets/Group", data=group_offsets.astype(np.int64))
        f.create_dataset("FileOffsets/Subhalo", data=subhalo_offsets.astype(np.int64))
        f.create_dataset("FileOffsets/SnapByType", data=snap_offsets.astype(np.int64))
        f.create_dataset("Group/SnapByType", data=group_start)
        f.create_dataset("Subhalo/SnapByType", data=sub_start)

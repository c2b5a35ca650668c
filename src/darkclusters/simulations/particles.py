"""The one particle type every simulation reader returns, and its HDF5 file format.

A :class:`ParticleSet` is one cluster at one snapshot, centred on its potential minimum, in *physical* units:
positions in kpc (periodic images unwrapped), masses in Msun, velocities in km/s (peculiar), no factors of h
or a left. Each species is a :class:`Species`; an absent species is a zero-length one, never a different type.

File ``results/particles/{sim}/{snap}/{halo}.h5``::

    /            attrs: sim, format, snapshot, halo_id, cluster_id, redshift, scale_factor, hubble_h, omega_m,
                        omega_b, box_size_ckpc_h, centre_ckpc_h, m200c_msun, r200c_kpc, radius_kpc, flags,
                        unit conversions applied, provenance
    /{species}/pos_kpc (N, 3) float32 attrs units, dims;  /{species}/mass_msun (N,) float64; other fields
    likewise
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from darkclusters.io import atomic_path, write_hdf5_attrs

__all__ = ["FIELD_UNITS", "SPECIES", "ParticleSet", "Species", "read_particles", "write_particles"]

SPECIES = ("gas", "dm", "stars", "bh")

#: Units of every per-particle field a reader may fill (name → unit string written to the file).
FIELD_UNITS: dict[str, str] = {
    "pos_kpc": "kpc (physical, relative to the cluster centre)",
    "mass_msun": "Msun",
    "vel_km_s": "km/s (physical peculiar velocity)",
    "internal_energy_km2_s2": "km^2 s^-2 (specific thermal energy)",
    "electron_abundance": "n_e / n_H",
    "density_msun_kpc3": "Msun kpc^-3 (physical)",
    "smoothing_length_kpc": "kpc (physical)",
    "metallicity": "M_Z / M (mass fraction)",
    "star_formation_rate_msun_yr": "Msun yr^-1",
    "initial_mass_msun": "Msun",
    "formation_scale_factor": "scale factor a at birth",
    "age_gyr": "Gyr (stellar age at the snapshot)",
    "photometrics_mag": "rest-frame absolute magnitudes U,B,V,K (Vega), g,r,i,z (AB), no dust",
    "bh_mass_msun": "Msun",
}


@dataclass
class Species:
    """Particles of one species: positions (N, 3) [kpc], masses (N,) [Msun], plus named fields
    (FIELD_UNITS)."""

    pos_kpc: np.ndarray
    mass_msun: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pos_kpc = np.asarray(self.pos_kpc, dtype=np.float64).reshape(-1, 3)
        self.mass_msun = np.asarray(self.mass_msun, dtype=np.float64).reshape(-1)
        if len(self.mass_msun) != len(self.pos_kpc):
            raise ValueError(f"{len(self.pos_kpc)} positions but {len(self.mass_msun)} masses")
        for name, values in self.fields.items():
            if name not in FIELD_UNITS:
                raise ValueError(f"unknown particle field {name!r} (known: {sorted(FIELD_UNITS)})")
            if len(values) != len(self.mass_msun):
                raise ValueError(f"field {name!r} has {len(values)} rows for {len(self.mass_msun)} particles")

    @classmethod
    def empty(cls) -> Species:
        """A zero-length species (what a halo without stars, say, holds)."""
        return cls(np.zeros((0, 3)), np.zeros(0))

    def __len__(self) -> int:
        return len(self.mass_msun)

    def select(self, mask: np.ndarray) -> Species:
        """The particles where ``mask`` (boolean or index array) selects."""
        return Species(self.pos_kpc[mask], self.mass_msun[mask], {k: v[mask] for k, v in self.fields.items()})

    @property
    def total_mass_msun(self) -> float:
        return float(self.mass_msun.sum())


@dataclass
class ParticleSet:
    """One cluster at one snapshot in physical units (see module docstring); ``attrs`` hold scalar
    metadata."""

    gas: Species
    dm: Species
    stars: Species
    bh: Species
    attrs: dict[str, Any] = field(default_factory=dict)

    def species(self) -> dict[str, Species]:
        return {name: getattr(self, name) for name in SPECIES}

    @property
    def total_mass_msun(self) -> float:
        return sum(s.total_mass_msun for s in self.species().values())


def write_particles(
    particles: ParticleSet, path: str | os.PathLike, *, provenance: Mapping[str, str]
) -> None:
    """Write a ParticleSet to HDF5 atomically; every dataset carries ``units`` and ``dims`` attributes."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        write_hdf5_attrs(f, {k: _attr_value(v) for k, v in particles.attrs.items()})
        write_hdf5_attrs(f, provenance)
        for name, sp in particles.species().items():
            g = f.create_group(name)
            g.attrs["count"] = len(sp)
            columns = {"pos_kpc": sp.pos_kpc.astype(np.float32), "mass_msun": sp.mass_msun, **sp.fields}
            for key, values in columns.items():
                dset = g.create_dataset(key, data=values)
                dset.attrs["units"] = FIELD_UNITS[key]
                dset.attrs["dims"] = "particle" if values.ndim == 1 else "particle,component"


def _attr_value(value: Any) -> Any:
    if value is None:
        return "none"
    if isinstance(value, dict | list | tuple) and not all(isinstance(v, int | float) for v in value):
        import json

        return json.dumps(value)
    return value


def read_particles(path: str | os.PathLike) -> ParticleSet:
    """Read a particle file written by :func:`write_particles`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"particle file not found: {path}")
    with h5py.File(path, "r") as f:
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        species = {}
        for name in SPECIES:
            if name not in f:
                raise KeyError(f"{path}: no group '{name}' (not a darkclusters particle file?)")
            g = f[name]
            fields = {k: g[k][()] for k in g if k not in ("pos_kpc", "mass_msun")}
            species[name] = Species(g["pos_kpc"][()].astype(np.float64), g["mass_msun"][()], fields)
    return ParticleSet(**species, attrs=attrs)

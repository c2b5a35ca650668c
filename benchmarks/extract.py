"""Benchmark: extracting one ~1e6-particle synthetic cluster, darkclusters vs the tools a user would pick.

Prints one JSON object. For TNG the baseline is plain ``illustris_python.snapshot.loadHalo`` per particle type
(the same fields, left in code units, no unwrapping or conversion); darkclusters adds unit conversion,
unwrapping, wind-cell removal and the radius cut on top of the same loader. For SIMBA the baseline is yt
(``ds.sphere`` around the centre, the usual yt way), against darkclusters' CAESAR index lists + h5py. Peak
memory is the tracemalloc peak of the call (numpy buffers included); the first yt call also builds its
particle index, reported separately.

Usage: python benchmarks/extract.py [--particles 1e6] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import illustris_python as il
import numpy as np

from darkclusters.config import validate_config
from darkclusters.simulations.extract import extract_cluster
from darkclusters.simulations.synthetic.universe import synthesize_simulation
from darkclusters.simulations.tng import TNG_FIELDS


def measure(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    times = []
    peak = 0
    for _ in range(repeat):
        tracemalloc.start()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return {
        "seconds_median": float(np.median(times)),
        "seconds_min": float(min(times)),
        "peak_mib": peak / 2**20,
    }


def build(root: Path, particles: float) -> dict[str, Any]:
    """One 1e15 Msun cluster (plus a field halo) per format, with particle masses set for ~`particles` in
    total."""
    dm_mass = 2.4e15 / (0.62 * particles)  # about 62 % of the particles are DM for this model
    syn = {
        "n_clusters": 1,
        "m200c_min_msun": 9.9e14,
        "m200c_max_msun": 1.0e15,
        "n_field_halos": 1,
        "dm_particle_mass_msun": dm_mass,
        "gas_particle_mass_msun": dm_mass / 5,
        "star_particle_mass_msun": dm_mass / 20,
    }
    cfg = validate_config(
        {
            "simulations": {
                "tng": {"format": "tng", "snapshots": [84], "synthetic": syn},
                "simba": {
                    "format": "simba",
                    "snapshots": [125],
                    "synthetic": {**syn, "redshifts": {"125": 0.49}},
                },
            }
        }
    )
    for name, sim in cfg["simulations"].items():
        synthesize_simulation(name, sim, seed=1, out_dir=root / name)
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=float, default=1e6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = build(root, args.particles)
        tng_base = root / "tng" / "output"
        tng_sim = cfg["simulations"]["tng"]
        n_tng = sum(
            il.snapshot.loadHalo(str(tng_base), 84, 0, t, fields=["ParticleIDs"]).shape[0]
            for t in (0, 1, 4, 5)
        )

        def tng_baseline() -> None:  # the same fields darkclusters reads, left in code units
            for species, t in {"gas": 0, "dm": 1, "stars": 4, "bh": 5}.items():
                il.snapshot.loadHalo(str(tng_base), 84, 0, t, fields=TNG_FIELDS[species])

        def tng_darkclusters() -> None:
            extract_cluster(tng_sim, tng_base, 84, 0, radius_kpc=1e5)

        simba_sim = cfg["simulations"]["simba"]
        simba_dir = root / "simba"

        def simba_darkclusters() -> None:
            extract_cluster(simba_sim, simba_dir, 125, 0, radius_kpc=1e5)

        import yt

        yt.set_log_level(40)
        snap = simba_dir / "snap_m100n1024_125.hdf5"
        probe = extract_cluster(simba_sim, simba_dir, 125, 0, radius_kpc=1e5)
        n_simba = sum(len(s) for s in probe.species().values())
        centre = probe.attrs["centre_ckpc_h"]
        radius = max(float(np.abs(s.pos_kpc).max()) for s in probe.species().values() if len(s))
        radius_code = radius * probe.attrs["hubble_h"] / probe.attrs["scale_factor"]

        def yt_sphere(ds: Any) -> None:
            sp = ds.sphere(ds.arr(centre, "code_length"), ds.quan(radius_code, "code_length"))
            for ptype in ("PartType0", "PartType1", "PartType4", "PartType5"):
                sp[ptype, "Coordinates"]
                sp[ptype, "Masses"]

        t0 = time.perf_counter()
        ds = yt.load(str(snap), index_filename=str(root / "snap.ewah"))
        yt_sphere(ds)
        yt_first_call = time.perf_counter() - t0

        results = {
            "benchmark": "extract",
            "machine": {"python": platform.python_version(), "processor": platform.machine()},
            "tng": {
                "particles": n_tng,
                "illustris_python_loadHalo": measure(tng_baseline, args.repeat),
                "darkclusters_extract_cluster": measure(tng_darkclusters, args.repeat),
            },
            "simba": {
                "particles": n_simba,
                "yt_sphere": measure(
                    lambda: yt_sphere(yt.load(str(snap), index_filename=str(root / "snap.ewah"))), args.repeat
                ),
                "yt_first_call_with_index_build_seconds": yt_first_call,
                "darkclusters_extract_cluster": measure(simba_darkclusters, args.repeat),
            },
        }
        for key in ("tng", "simba"):
            n = results[key]["particles"]
            for m in results[key].values():
                if isinstance(m, dict):
                    m["particles_per_second"] = n / m["seconds_median"]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark: truth maps of one SYNTHETIC 1e15 Msun cluster, darkclusters (kNN, SPH) side by side with yt.

Prints one JSON object. For each particle count (default 1e6 and 1e7; ``--quick``: 1e5, 3 views, 128²) the
cluster is made with ``darkclusters.simulations.synthetic.halo_model.make_cluster`` (particle masses set for
the count, cut to 3 Mpc like the extraction) and projected along ``--views`` hemisphere directions into two
fields of view (225″ and 450″, ``--npix`` pixels) with ``method: knn`` and ``method: sph`` (Wendland C2, and
the cubic spline for the yt comparison). Each run is a subprocess, so its peak memory (``ru_maxrss``) is its
own. Times exclude making the particles and numba's compilation (a warm-up run on 2000 particles); SPH
smoothing lengths (once per cluster) are ``setup_seconds``. ``cpu_seconds_*`` is the process CPU time (all
threads; on a machine shared with other jobs the wall time can be far above CPU / cores).
Above ``--all-views-up-to`` particles, kNN, SPH-cubic and yt project only the first ``--slow-views`` views,
and yt at most ``--yt-views``; the time for all views is then extrapolated (setup + views × seconds per
view; marked ``extrapolated``).

yt: the same particles via ``yt.load_particles`` (one particle type; smoothing lengths = darkclusters' SPH
supports; yt's cubic-spline kernel) and ``off_axis_projection`` of ("io", "density") for both fields of view
with the same width, resolution and north vector (the sky +y of :mod:`darkclusters.projection.geometry`), so
the maps are pixel-aligned. Accuracy: median |Σ_other/Σ_yt − 1| over pixels with Σ_yt above its median, in
the 225″ field. Run the 1e7 case once: the machine's cores are shared.

Usage: python benchmarks/project.py [--quick] [--particles 1e6 1e7] [--views 25] [--npix 512] [--no-yt]
       [--methods knn sph sph_cubic]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from darkclusters.cosmology import TNG_COSMOLOGY
from darkclusters.projection.settings import projection_config
from darkclusters.simulations.particles import ParticleSet, Species, read_particles, write_particles
from darkclusters.simulations.synthetic.halo_model import HaloModelParams, make_cluster

REDSHIFT = 0.3
G_CM2_IN_MSUN_KPC2 = 3.0856775814913673e21**2 / 1.98840987e33  # 1 g cm⁻² in Msun kpc⁻²
RADIUS_KPC = 3000.0


def build(path: Path, particles: float, seed: int = 1) -> dict[str, int]:
    """One 1e15 Msun synthetic cluster with ≈ ``particles`` particles within 3 Mpc, as a particle file."""
    dm_mass = 2.47e15 / particles  # calibrated: this model then has ≈ `particles` within 3 Mpc
    params = HaloModelParams(
        dm_particle_mass_msun=dm_mass,
        gas_particle_mass_msun=dm_mass / 5,
        star_particle_mass_msun=dm_mass / 20,
    )
    c = make_cluster(1.0e15, REDSHIFT, TNG_COSMOLOGY, params, seed)

    def cut(pos: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", pos, pos) <= RADIUS_KPC**2

    gas_fields = {
        "internal_energy_km2_s2": c.gas_internal_energy_km2_s2,
        "electron_abundance": c.gas_electron_abundance,
        "density_msun_kpc3": c.gas_density_msun_kpc3,
        "star_formation_rate_msun_yr": np.zeros(len(c.gas_mass_msun)),
    }
    real = c.star_formation_a > 0  # wind-phase cells are not stars
    species = {
        "gas": Species(c.gas_pos_kpc, c.gas_mass_msun, gas_fields),
        "dm": Species(c.dm_pos_kpc, c.dm_mass_msun),
        "stars": Species(c.star_pos_kpc[real], c.star_mass_msun[real]),
        "bh": Species(c.bh_pos_kpc, c.bh_mass_msun),
    }
    species = {name: s.select(cut(s.pos_kpc)) for name, s in species.items()}
    h = TNG_COSMOLOGY.H0.value / 100
    attrs = {"redshift": REDSHIFT, "scale_factor": 1 / (1 + REDSHIFT), "hubble_h": h, "sim": "benchmark",
             "omega_m": TNG_COSMOLOGY.Om0, "omega_b": TNG_COSMOLOGY.Ob0, "halo_id": 0}  # fmt: skip
    write_particles(ParticleSet(**species, attrs=attrs), path, provenance={"synthetic": "benchmark"})
    return {name: len(s) for name, s in species.items()}


def _cfg(method: str, views: int, npix: int, kernel: str = "wendland_c2") -> dict[str, Any]:
    fovs = [
        {"name": "fov225", "fov_arcsec": 225.0, "npix": npix},
        {"name": "fov450", "fov_arcsec": 450.0, "npix": npix},
    ]
    return projection_config(
        {"method": method, "n_views": views, "fields_of_view": fovs, "sph_kernel": kernel}
    )


def run_ours(
    particles_path: str, method: str, views: int, npix: int, out: str, kernel: str, measured: int
) -> dict[str, Any]:
    """(child process) project with darkclusters, save the fov225 total Σ, report time and peak RSS.

    Only the first ``measured`` of the ``views`` hemisphere directions are projected (the same directions as
    the full run); the time for all views is then extrapolated from the per-view time (kNN has no per-cluster
    cost; SPH's smoothing lengths are timed separately and counted once).
    """
    from darkclusters.projection import maps

    particles = read_particles(particles_path)
    cfg = _cfg(method, views, npix, kernel)
    _warm_compiled_kernels(particles, method, kernel)
    t0, c0 = time.perf_counter(), time.process_time()
    setup = setup_cpu = 0.0
    if method == "sph":  # time the per-cluster smoothing lengths apart, then reuse them
        supports = maps._supports(particles, cfg)
        setup, setup_cpu = time.perf_counter() - t0, time.process_time() - c0
        maps._supports = lambda *_: supports
    directions = maps.view_directions(cfg)[:measured]  # the first views of the full lattice (it depends on n)
    maps.view_directions = lambda _: directions
    t0, c0 = time.perf_counter(), time.process_time()
    result = maps.project_particles(particles, cfg)
    per_view = (time.perf_counter() - t0) / measured
    cpu_per_view = (time.process_time() - c0) / measured
    seconds = setup + per_view * measured
    np.save(out, result.maps["fov225"]["sigma"][:, 0])
    return {
        "views_measured": measured, "seconds_measured": seconds, "setup_seconds": setup,
        "seconds_per_view": per_view, f"seconds_{views}_views": setup + per_view * views,
        f"cpu_seconds_{views}_views": setup_cpu + cpu_per_view * views, "extrapolated": measured < views,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def _warm_compiled_kernels(particles: ParticleSet, method: str, kernel: str) -> None:
    """Run the projection once on 2000 particles at 32², so that numba's compilation (or loading of its
    on-disk cache) is not timed."""
    from darkclusters.projection import maps

    small = {k: s.select(np.arange(len(s)) < 2000) for k, s in particles.species().items()}
    cfg = projection_config({"method": method, "n_views": 1, "sph_kernel": kernel,
                             "fields_of_view": [{"name": "f", "fov_arcsec": 225.0, "npix": 32}]})  # fmt: skip
    maps.project_particles(ParticleSet(**small, attrs=particles.attrs), cfg)


def run_yt(particles_path: str, views: int, npix: int, out: str, measured: int) -> dict[str, Any]:
    """(child process) yt off-axis SPH projections of Σ_total, both fields of view, the first ``measured``
    views; setup (smoothing lengths, ``load_particles``) timed apart, the fov225 maps saved."""
    import yt
    from yt.visualization.volume_rendering.off_axis_projection import off_axis_projection

    from darkclusters.cosmology import flat_lcdm
    from darkclusters.projection.geometry import kpc_per_arcsec, rotation_to_z
    from darkclusters.projection.maps import _supports
    from darkclusters.projection.settings import view_directions

    yt.set_log_level(40)
    particles = read_particles(particles_path)
    cfg = _cfg("sph", views, npix, "cubic_spline")
    _warm_compiled_kernels(particles, "sph", "cubic_spline")
    t0, c0 = time.perf_counter(), time.process_time()
    sp = particles.species()
    pos = np.concatenate([s.pos_kpc for s in sp.values()])
    mass = np.concatenate([s.mass_msun for s in sp.values()])
    hsml = np.concatenate(list(_supports(particles, cfg).values()))
    # the column integral needs ρ only through m/ρ·ρ = m, so any consistent ρ works: ρ = m / V_h
    dens = mass / (4 / 3 * np.pi * hsml**3)
    half = float(np.abs(pos).max()) * 1.01 + float(hsml.max())
    data = {("io", "particle_position_" + a): pos[:, i] for i, a in enumerate("xyz")}
    data |= {("io", "particle_mass"): mass, ("io", "smoothing_length"): hsml, ("io", "density"): dens}
    ds = yt.load_particles(
        data, length_unit="kpc", mass_unit="Msun", bbox=np.array([[-half, half]] * 3),
        periodicity=(False, False, False),
    )  # fmt: skip
    a = particles.attrs
    scale = kpc_per_arcsec(flat_lcdm(a["hubble_h"], a["omega_m"], a["omega_b"]), REDSHIFT)
    setup, setup_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    maps = []
    for n in view_directions(cfg)[:measured]:
        north = rotation_to_z(n).T @ np.array([0.0, 1.0, 0.0])  # sky +y in the simulation frame
        for fov_arcsec in (225.0, 450.0):
            width = fov_arcsec * scale
            img = off_axis_projection(
                ds, [0, 0, 0], n, ds.arr([width, width, 2 * half], "kpc"), (npix, npix), ("io", "density"),
                north_vector=north, depth=2 * half, num_threads=2,  # depth in code units (kpc)
            )  # fmt: skip
            if fov_arcsec == 225.0:
                # yt 4.4 labels this buffer "cm*code_mass/code_length**3" but its values are g cm⁻² (density
                # read in g cm⁻³, path length scaled to cm); yt images are [x, y], ours [row = y, col = x]
                maps.append(np.asarray(img.d).T * G_CM2_IN_MSUN_KPC2)
    per_view = (time.perf_counter() - t0) / measured
    cpu_per_view = (time.process_time() - c0) / measured
    np.save(out, np.array(maps))
    return {
        "views_measured": measured, "setup_seconds": setup, "seconds_per_view": per_view,
        f"seconds_{views}_views": setup + per_view * views,
        f"cpu_seconds_{views}_views": setup_cpu + cpu_per_view * views, "extrapolated": measured < views,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def _child(kind: str, *args: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median_rel(ref: np.ndarray, other: np.ndarray) -> float:
    """Median over views and pixels with Σ_ref above its (per-view) median of |other/ref − 1|."""
    out = []
    for r, o in zip(ref, other, strict=True):
        bright = r > np.median(r)
        out.append(np.abs(o[bright] / r[bright] - 1))
    return float(np.median(np.concatenate(out)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1e5 particles, 3 views, 128 pixels")
    ap.add_argument("--particles", type=float, nargs="+", default=None)
    ap.add_argument("--views", type=int, default=None)
    ap.add_argument("--npix", type=int, default=None)
    ap.add_argument("--no-yt", action="store_true")
    ap.add_argument("--slow-views", type=int, default=3, help="views measured for knn and yt above the next")
    ap.add_argument("--yt-views", type=int, default=5, help="views measured for yt (at most)")
    ap.add_argument("--all-views-up-to", type=float, default=2e6, help="particle counts run with every view")
    ap.add_argument(
        "--methods",
        nargs="+",
        default=["knn", "sph", "sph_cubic"],
        choices=["knn", "sph", "sph_cubic"],
        help="which of darkclusters' runs to make",
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, rest = args.child[0], args.child[1:]
        if kind == "ours":
            res = run_ours(rest[0], rest[1], int(rest[2]), int(rest[3]), rest[4], rest[5], int(rest[6]))
        else:
            res = run_yt(rest[0], int(rest[1]), int(rest[2]), rest[3], int(rest[4]))
        print(json.dumps(res))
        return
    counts = args.particles or ([1e5] if args.quick else [1e6, 1e7])
    views = args.views or (3 if args.quick else 25)
    npix = args.npix or (128 if args.quick else 512)
    report: dict[str, Any] = {
        "benchmark": "projection", "synthetic": True, "views": views, "npix": npix,
        "fields_of_view_arcsec": [225.0, 450.0], "redshift": REDSHIFT,
        "machine": {"python": platform.python_version(), "cores": len(os.sched_getaffinity(0)),
                    "cpu": platform.processor() or platform.machine()},
        "cases": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            path = Path(tmp) / f"cluster_{n:.0e}.h5"
            t0 = time.perf_counter()
            case: dict[str, Any] = {"target_particles": n, "counts": build(path, n)}
            case["build_seconds"] = time.perf_counter() - t0
            slow = views if n <= args.all_views_up_to else min(views, args.slow_views)
            maps = {}
            runs = {
                "knn": ("knn", "wendland_c2", slow),
                "sph": ("sph", "wendland_c2", views),
                "sph_cubic": ("sph", "cubic_spline", slow),
            }
            for method, kernel, measured in (runs[m] for m in args.methods):
                name = f"{method}_{kernel}" if method == "sph" else method
                out = str(Path(tmp) / f"{name}_{n:.0e}.npy")
                case[name] = _child("ours", path, method, views, npix, out, kernel, measured)
                if "error" not in case[name]:
                    maps[name] = np.load(out)
            if not args.no_yt:
                out = str(Path(tmp) / f"yt_{n:.0e}.npy")
                case["yt_off_axis_projection"] = _child(
                    "yt", path, views, npix, out, min(slow, args.yt_views)
                )
                if "error" not in case["yt_off_axis_projection"]:
                    ref = np.load(out)
                    case["median_rel_diff_vs_yt_fov225"] = {
                        k: _median_rel(ref, v[: len(ref)]) for k, v in maps.items()
                    }
            if "sph_wendland_c2" in maps and "knn" in maps:
                m = len(maps["knn"])
                case["median_rel_diff_knn_vs_sph_fov225"] = _median_rel(
                    maps["sph_wendland_c2"][:m], maps["knn"]
                )
            report["cases"].append(case)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

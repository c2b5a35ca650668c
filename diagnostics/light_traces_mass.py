"""Light-traces-mass sensitivity: PCC(Σ, F814W) of the default run's clusters with one image part changed.

Run after `make run` (it reads results/particles, results/maps, results/observations):

    .venv/bin/python diagnostics/light_traces_mass.py [--results results] [--fov fov225] [--markdown FILE]

Prints JSON: per simulation and redshift, the median over clusters and views of PCC(Σ_total, F814W) for the
workflow's own images ("observed") and for each variant of darkclusters.photometry.realism.DEFAULT_VARIANTS.
With --markdown, also writes the same numbers as a table. docs/light_traces_mass.md discusses them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

from darkclusters.photometry.realism import DEFAULT_VARIANTS, ltm_pcc_variants


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"), help="the workflow's results folder")
    ap.add_argument("--fov", default="fov225", help="field of view (a group of the maps/observation files)")
    ap.add_argument("--markdown", type=Path, default=None, help="also write a markdown table here")
    args = ap.parse_args(argv)
    observations = sorted((args.results / "observations").glob("*/*/*.h5"))
    if not observations:
        print(
            f"no observation files under {args.results / 'observations'}: run `make run` first",
            file=sys.stderr,
        )
        return 2
    pooled: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for obs in observations:
        sim, snap, halo = obs.parts[-3], obs.parts[-2], obs.stem
        particles = args.results / "particles" / sim / snap / f"{halo}.h5"
        maps = args.results / "maps" / sim / snap / f"{halo}.h5"
        if not (particles.exists() and maps.exists()):
            continue
        with h5py.File(obs, "r") as f:
            redshift = round(float(f.attrs["redshift"]), 3)
        for name, values in ltm_pcc_variants(particles, maps, obs, fov=args.fov).items():
            pooled[(sim, redshift)][name].extend(float(x) for x in values)
    names = ["observed", *(v.name for v in DEFAULT_VARIANTS)]
    rows = [
        {
            "simulation": sim,
            "redshift": z,
            "n_views": len(pooled[(sim, z)]["observed"]),
            **{name: round(float(np.median(pooled[(sim, z)][name])), 3) for name in names},
        }
        for sim, z in sorted(pooled)
    ]
    report = {
        "statistic": "median over clusters and views of PCC(log Σ_total, log F814W), all pixels",
        "fov": args.fov,
        "variants": {"observed": "the workflow's files", **{v.name: v.description for v in DEFAULT_VARIANTS}},
        "rows": rows,
    }
    print(json.dumps(report, indent=2))
    if args.markdown is not None:
        lines = ["| simulation | z | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        lines += [
            f"| {r['simulation']} | {r['redshift']:.3f} | " + " | ".join(f"{r[n]:.3f}" for n in names) + " |"
            for r in rows
        ]
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

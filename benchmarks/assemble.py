"""Dataset assembly memory: darkclusters' streaming `assemble_dataset` versus loading every cluster into
memory and writing each split with one `write_shard` call (what a script without a streaming writer does).

    .venv/bin/python benchmarks/assemble.py [--clusters 40] [--views 25] [--npix 256]

Writes fake truth-maps/observation files (random positive Σ and images, 4 channels like the main dataset) in a
temporary folder, then runs each variant in a fresh subprocess and reports its wall seconds and peak resident
memory (ru_maxrss). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

SPEC = {
    "simulations": ["sim"],
    "snapshots": None,
    "fov": "fov225",
    "target": ["sigma:total"],
    "condition": ["image:F125W", "image:F606W", "image:F814W"],
    "offset_quantile": 0.01,
}


def make_inputs(root: Path, clusters: int, views: int, npix: int) -> None:
    rng = np.random.default_rng(0)
    splits = ["train"] * clusters
    splits[-2:] = ["val", "test"]
    for halo in range(clusters):
        rel = Path("sim") / "084" / f"{halo}.h5"
        for kind in ("maps", "observations"):
            (root / kind / rel).parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(root / "maps" / rel, "w") as f:
            ds = f.create_dataset(
                "fov225/sigma", data=rng.lognormal(18, 1, (views, 5, npix, npix)).astype("f4")
            )
            ds.attrs["channels"], ds.attrs["units"] = ["total", "dm", "gas", "stars", "bh"], "Msun kpc^-2"
        with h5py.File(root / "observations" / rel, "w") as f:
            data = rng.lognormal(-20, 1, (views, 3, npix, npix)).astype("f4")
            ds = f.create_dataset("photometry/fov225/images", data=data)
            ds.attrs["bands"], ds.attrs["units"] = ["F125W", "F606W", "F814W"], "Jy per pixel"
    pd.DataFrame(
        {"sim": "sim", "snapshot": 84, "halo_id": range(clusters),
         "cluster_id": [f"c{h}" for h in range(clusters)], "split": splits, "m200c_msun": 1e14}
    ).to_parquet(root / "sim.parquet")  # fmt: skip


def run_variant(variant: str, root: Path) -> None:
    """Child process: assemble the dataset one way."""
    from darkclusters.datasets import assemble_dataset, dataset_clusters, read_channels
    from darkclusters.diffusion.data import write_shard
    from darkclusters.diffusion.normalise import Normalisation

    out = root / f"out_{variant}"
    if variant == "streaming":
        assemble_dataset(name="d", spec=SPEC, catalog_paths={"sim": root / "sim.parquet"}, out_dir=out,
                         results_dir=root)  # fmt: skip
        return
    clusters = dataset_clusters({"sim": pd.read_parquet(root / "sim.parquet")}, SPEC)
    acc: dict[str, list] = {s: [] for s in ("train", "val", "test")}
    for row in clusters.itertuples(index=False):
        rel = Path("sim") / "084" / f"{row.halo_id}.h5"
        kw = {"maps_path": root / "maps" / rel, "obs_path": root / "observations" / rel, "fov": "fov225"}
        acc[row.split].append(
            (read_channels(SPEC["target"], **kw)[0], read_channels(SPEC["condition"], **kw)[0])
        )
    train = np.concatenate([np.concatenate(pair, axis=1) for pair in acc["train"]])
    norm = Normalisation.fit(train, SPEC["target"] + SPEC["condition"])
    for split, pairs in acc.items():
        t, c = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
        write_shard(out / f"{split}.h5", target=t, condition=c, target_channels=SPEC["target"],
                    condition_channels=SPEC["condition"], target_units="u", condition_units="u",
                    cluster_id=["c"] * len(t), view=list(range(len(t))), normalisation=norm)  # fmt: skip


def measure(variant: str, root: Path) -> dict[str, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--child", variant, "--root", str(root)], check=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # max over finished children so far
    return {
        "wall_s": round(time.perf_counter() - start, 2),
        "peak_rss_mib_max_so_far": round(peak_kib / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clusters", type=int, default=40)
    ap.add_argument("--views", type=int, default=25)
    ap.add_argument("--npix", type=int, default=256)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_variant(args.child, args.root)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root, args.clusters, args.views, args.npix)
        image_bytes = args.clusters * args.views * 4 * args.npix**2 * 4
        # streaming first: RUSAGE_CHILDREN keeps the maximum over children, so the larger one must run second
        streaming = measure("streaming", root)
        in_memory = measure("in_memory", root)
        same = all(
            np.array_equal(h5py.File(root / "out_streaming" / f"{s}.h5")["target"][()],
                           h5py.File(root / "out_in_memory" / f"{s}.h5")["target"][()])
            for s in ("train", "val", "test")
        )  # fmt: skip
    print(json.dumps({
        "clusters": args.clusters, "views": args.views, "npix": args.npix, "channels": 4,
        "dataset_image_mib": round(image_bytes / 2**20, 1),
        "darkclusters_streaming": streaming,
        "load_all_then_write_shard": in_memory,
        "targets_identical": same,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()

"""Dataset assembly: per-split HDF5 shards of (target, condition) image pairs from maps and observations.

A dataset (config ``datasets.<name>``) names simulations, snapshots, one field of view, target channels (what
the prior generates, default Σ total) and condition channels (what it is conditioned on, default the three HST
bands). Channel specs:

* ``sigma:<component>`` — Σ [Msun/kpc², physical] of total, dm, gas, stars or bh (truth maps);
* ``tsz_y``, ``xray_sb`` — Compton-y and X-ray surface brightness (truth maps; units from the file);
* ``image:<band>`` — HST-like image in F125W, F606W or F814W [Jy per pixel] (observations).

Every view of every selected cluster of the dataset's snapshots becomes one sample, in the split of its
cluster (from the catalog). The normalisation is fitted on the training split only and stored with every split
(:mod:`darkclusters.diffusion.normalise`); shards are written by
:func:`darkclusters.diffusion.data.write_shard`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from darkclusters.diffusion.data import write_shard
from darkclusters.diffusion.normalise import Normalisation
from darkclusters.io import provenance
from darkclusters.simulations.catalog import SPLITS

__all__ = ["CHANNEL_KINDS", "assemble_dataset", "dataset_clusters", "read_channels"]

CHANNEL_KINDS = ("sigma", "tsz_y", "xray_sb", "image")


def dataset_clusters(catalogs: Mapping[str, pd.DataFrame], spec: Mapping[str, Any]) -> pd.DataFrame:
    """The catalog rows (sim, snapshot, halo_id, cluster_id, split, m200c_msun) a dataset uses."""
    rows = []
    for sim in spec["simulations"]:
        if sim not in catalogs:
            raise KeyError(
                f"dataset uses simulation {sim!r}, which has no catalog (known: {sorted(catalogs)})"
            )
        cat = catalogs[sim]
        if spec["snapshots"] is not None:
            cat = cat[cat["snapshot"].isin(spec["snapshots"])]
        rows.append(cat[["sim", "snapshot", "halo_id", "cluster_id", "split", "m200c_msun"]])
    return pd.concat(rows, ignore_index=True)


def read_channels(
    specs: Sequence[str], *, maps_path: str | os.PathLike, obs_path: str | os.PathLike, fov: str
) -> tuple[np.ndarray, list[str]]:
    """(V, C, H, W) float32 images of the given channel specs for one cluster, and the unit of each
    channel."""
    out, units = [], []
    with h5py.File(maps_path, "r") as maps, h5py.File(obs_path, "r") as obs:
        if fov not in maps:
            raise KeyError(f"{maps_path}: no field of view {fov!r} (has {sorted(maps)})")
        for spec in specs:
            kind, _, which = spec.partition(":")
            if kind == "sigma":
                ds = maps[fov]["sigma"]
                channels = [str(c) for c in ds.attrs["channels"]]
                if which not in channels:
                    raise KeyError(
                        f"{maps_path}: Σ channel {which!r} not in {channels} (channel spec {spec!r})"
                    )
                out.append(ds[:, channels.index(which)])
                units.append(str(ds.attrs["units"]))
            elif kind in ("tsz_y", "xray_sb"):
                ds = maps[fov][kind]
                out.append(ds[()])
                units.append(str(ds.attrs.get("units", "")))
            elif kind == "image":
                ds = obs["photometry"][fov]["images"]
                bands = [str(b) for b in ds.attrs["bands"]]
                if which not in bands:
                    raise KeyError(f"{obs_path}: band {which!r} not in {bands} (channel spec {spec!r})")
                out.append(ds[:, bands.index(which)])
                units.append(str(ds.attrs["units"]))
            else:
                raise ValueError(
                    f"unknown channel spec {spec!r}: use one of {CHANNEL_KINDS} (e.g. sigma:total)"
                )
    return np.stack(out, axis=1).astype(np.float32), units


def assemble_dataset(
    *,
    name: str,
    spec: Mapping[str, Any],
    catalog_paths: Mapping[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    results_dir: str | os.PathLike = "results",
    seed: int | None = None,
) -> dict[str, int]:
    """Write ``out_dir/{train,val,test}.h5`` for dataset ``name``; return the number of samples per split.

    spec: the validated ``datasets.<name>`` block; catalog_paths: {sim: catalog parquet}; maps and
    observations are read from ``results_dir/{maps,observations}/{sim}/{snap:03d}/{halo}.h5``.
    """
    catalogs = {sim: pd.read_parquet(path) for sim, path in catalog_paths.items()}
    clusters = dataset_clusters(catalogs, spec)
    results = Path(results_dir)
    per_split: dict[str, dict[str, list]] = {s: {"t": [], "c": [], "id": [], "view": []} for s in SPLITS}
    units: dict[str, list[str]] = {}
    for row in clusters.itertuples(index=False):
        rel = Path(row.sim) / f"{int(row.snapshot):03d}" / f"{int(row.halo_id)}.h5"
        kw = {
            "maps_path": results / "maps" / rel,
            "obs_path": results / "observations" / rel,
            "fov": spec["fov"],
        }
        target, units["target"] = read_channels(spec["target"], **kw)
        condition, units["condition"] = read_channels(spec["condition"], **kw)
        acc = per_split[row.split]
        acc["t"].append(target)
        acc["c"].append(condition)
        acc["id"] += [f"{row.cluster_id}@{int(row.snapshot):03d}"] * len(target)
        acc["view"] += list(range(len(target)))
    if not per_split["train"]["t"]:
        raise ValueError(
            f"dataset {name!r}: no training clusters (splits: {clusters['split'].value_counts()})"
        )
    train_t = np.concatenate(per_split["train"]["t"])
    train_c = np.concatenate(per_split["train"]["c"])
    channels = list(spec["target"]) + list(spec["condition"])
    norm = Normalisation.fit(
        np.concatenate([train_t, train_c], axis=1), channels, offset_quantile=spec["offset_quantile"]
    )
    attrs = provenance(cfg=spec, seed=seed, inputs=[str(p) for p in catalog_paths.values()], dataset=name)
    counts = {}
    out_dir = Path(out_dir)
    for split in SPLITS:
        acc = per_split[split]
        shape_t = (0, len(spec["target"]), *train_t.shape[2:])
        shape_c = (0, len(spec["condition"]), *train_c.shape[2:])
        write_shard(
            out_dir / f"{split}.h5",
            target=np.concatenate(acc["t"]) if acc["t"] else np.zeros(shape_t, np.float32),
            condition=np.concatenate(acc["c"]) if acc["c"] else np.zeros(shape_c, np.float32),
            target_channels=list(spec["target"]),
            condition_channels=list(spec["condition"]),
            target_units=units["target"],
            condition_units=units["condition"],
            cluster_id=acc["id"],
            view=acc["view"],
            normalisation=norm,
            attrs={**attrs, "split": split, "fov": spec["fov"]},
        )
        counts[split] = len(acc["id"])
    return counts

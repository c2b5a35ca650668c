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
:class:`darkclusters.diffusion.data.ShardWriter`, one cluster at a time (bounded memory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from darkclusters.diffusion.data import ShardWriter
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

    Streaming: the image counts come from the truth maps' shapes first, then the clusters are read one at a
    time and appended to their split's shard (:class:`~darkclusters.diffusion.data.ShardWriter`); the
    normalisation is fitted on the written training shard in blocks. Memory is one cluster plus the
    normalisation's sample (256 images), whatever the number of clusters. The three files appear only when
    all are complete.
    """
    catalogs = {sim: pd.read_parquet(path) for sim, path in catalog_paths.items()}
    clusters = dataset_clusters(catalogs, spec)
    results = Path(results_dir)
    fov = spec["fov"]
    paths = []
    counts = dict.fromkeys(SPLITS, 0)
    image_shape: tuple[int, int] | None = None
    for row in clusters.itertuples(index=False):
        rel = Path(row.sim) / f"{int(row.snapshot):03d}" / f"{int(row.halo_id)}.h5"
        maps_path, obs_path = results / "maps" / rel, results / "observations" / rel
        n_views, shape = _views_and_shape(maps_path, fov)
        if image_shape is not None and shape != image_shape:
            raise ValueError(f"{maps_path}: {fov} maps are {shape}, earlier clusters {image_shape}")
        image_shape = shape
        counts[row.split] += n_views
        paths.append((row, maps_path, obs_path))
    if counts["train"] == 0:
        raise ValueError(
            f"dataset {name!r}: no training clusters (splits: {clusters['split'].value_counts()})"
        )
    channels = list(spec["target"]) + list(spec["condition"])
    attrs = provenance(cfg=spec, seed=seed, inputs=[str(p) for p in catalog_paths.values()], dataset=name)
    out_dir = Path(out_dir)
    with ExitStack() as stack:
        writers: dict[str, ShardWriter] = {}
        units: dict[str, list[str]] = {}
        for row, maps_path, obs_path in paths:
            kw = {"maps_path": maps_path, "obs_path": obs_path, "fov": fov}
            target, t_units = read_channels(spec["target"], **kw)
            condition, c_units = read_channels(spec["condition"], **kw)
            if not writers:
                units = {"target": t_units, "condition": c_units}
                for split in SPLITS:
                    writers[split] = stack.enter_context(
                        ShardWriter(
                            out_dir / f"{split}.h5",
                            n_images=counts[split],
                            image_shape=image_shape,
                            target_channels=list(spec["target"]),
                            condition_channels=list(spec["condition"]),
                            target_units=t_units,
                            condition_units=c_units,
                        )
                    )
            elif {"target": t_units, "condition": c_units} != units:
                raise ValueError(
                    f"{maps_path} / {obs_path}: channel units {t_units + c_units} differ from "
                    f"the first cluster's {units['target'] + units['condition']}"
                )
            ids = [f"{row.cluster_id}@{int(row.snapshot):03d}"] * len(target)
            writers[row.split].append(target, condition, ids, list(range(len(target))))
        train = writers["train"]
        norm = Normalisation.fit(
            _ChannelConcat(train.target, train.condition), channels, offset_quantile=spec["offset_quantile"]
        )
        for split in SPLITS:
            writers[split].finish(norm, {**attrs, "split": split, "fov": fov})
    return counts


def _views_and_shape(maps_path: Path, fov: str) -> tuple[int, tuple[int, int]]:
    """(views, (H, W)) of a truth-maps file's Σ maps in ``fov``, read from the dataset's shape only."""
    if not maps_path.exists():
        raise FileNotFoundError(f"truth maps not found: {maps_path}")
    with h5py.File(maps_path, "r") as maps:
        if fov not in maps or "sigma" not in maps[fov]:
            raise KeyError(f"{maps_path}: no {fov}/sigma (fields of view: {sorted(maps)})")
        shape = maps[fov]["sigma"].shape  # (V, channels, H, W)
    return int(shape[0]), (int(shape[2]), int(shape[3]))


class _ChannelConcat:
    """Target (N, Ct, H, W) and condition (N, Cc, H, W) datasets seen as one (N, Ct + Cc, H, W) array, read
    lazily: indexing with an int or a slice along the first axis reads only those images."""

    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b
        self.shape = (a.shape[0], a.shape[1] + b.shape[1], *a.shape[2:])

    def __getitem__(self, index: int | slice) -> np.ndarray:
        return np.concatenate([np.asarray(self.a[index]), np.asarray(self.b[index])], axis=-3)

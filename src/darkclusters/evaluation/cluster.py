"""Per-cluster scores: one prediction file (posterior or baseline) against the cluster's truth maps.

Output of :func:`evaluate_prediction` and :func:`evaluate_conditional`: a long DataFrame, one row per (view,
metric), with the columns ``tables`` expects:

    method, inputs, simulation, sim, snapshot, redshift, cluster_id, halo_id, m200c_msun, view, metric, value
    (+ mass_bin, map for the conditional Σ_gas/Σ_DM samples)

``simulation`` is the display label of the simulation's format ("TNG", "SIMBA"); ``inputs`` is the
reconstruction's input combination (P, P+SL, ...) and empty for baselines. Scores (units of Σ: Msun kpc⁻²):
psnr [dB] and ssim with the fixed data-set range L (``data_range``, the paper's convention), pcc,
heldout_rmse [Msun kpc⁻²] on the pixels of ``metrics.heldout_mask`` (no F814W light above k_sigma·σ, farther
than sl_radius from every strong-lensing image), b/r small/large-scale means (k split in h/Mpc), mass_ratio
(predicted over true mass in the field) and, with a posterior std, the calibration scores
frac_within_1sigma, z_mean, z_std (ε = (mean − truth)/std per pixel) and rmse_sigma_pcc.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from darkclusters.datasets import read_channels
from darkclusters.evaluation.calibration import fraction_within, rmse_sigma_relation
from darkclusters.evaluation.metrics import heldout_mask, map_scores
from darkclusters.evaluation.spectra import bias_and_correlation
from darkclusters.io import atomic_path
from darkclusters.photometry.pipeline import light_traces_mass_pcc

__all__ = [
    "SIMULATION_LABELS",
    "data_range_from_shard",
    "evaluate_conditional",
    "evaluate_prediction",
    "std_scores",
]

SIMULATION_LABELS = {"tng": "TNG", "simba": "SIMBA"}


def data_range_from_shard(shard: str | os.PathLike, out_path: str | os.PathLike | None = None) -> float:
    """The fixed PSNR/SSIM range L = max − min of the first target channel (Σ) over a dataset shard (the
    training split) [Msun kpc⁻²]; written as JSON to ``out_path`` when given."""
    with h5py.File(shard, "r") as f:
        target = f["target"]
        lo, hi = np.inf, -np.inf
        for i in range(0, target.shape[0], 64):
            block = np.asarray(target[i : i + 64, 0], dtype=np.float64)
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
        channel = str(next(iter(f.attrs["target_channels"])))
    if not hi > lo:
        raise ValueError(f"{shard}: target channel {channel} spans [{lo}, {hi}]: no data range")
    if out_path is not None:
        doc = {"data_range": hi - lo, "min": lo, "max": hi, "channel": channel, "shard": os.fspath(shard)}
        with atomic_path(out_path) as tmp:
            Path(tmp).write_text(json.dumps(doc, indent=1))
    return hi - lo


def std_scores(mean: np.ndarray, std: np.ndarray, truth: np.ndarray, *, n_bins: int) -> dict[str, float]:
    """Calibration scores of one (H, W) posterior summary: frac_within_1sigma, z_mean, z_std of
    ε = (mean − truth)/std (pixels with std > 0) and rmse_sigma_pcc (binned RMSE–σ correlation)."""
    mean, std, truth = (np.asarray(a, dtype=np.float64) for a in (mean, std, truth))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, (mean - truth) / std, np.nan)
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return {}
    rel = rmse_sigma_relation(mean, std, truth, n_bins=min(n_bins, mean.size))
    return {
        "frac_within_1sigma": fraction_within(z),
        "z_mean": float(finite.mean()),
        "z_std": float(finite.std()),
        "rmse_sigma_pcc": float(rel["pearson"]),
    }


def _cluster_info(maps_path: str | os.PathLike) -> dict[str, Any]:
    with h5py.File(maps_path, "r") as f:
        a = f.attrs
        return {
            "simulation": SIMULATION_LABELS.get(str(a["format"]), str(a["format"]).upper()),
            "sim": str(a["sim"]),
            "snapshot": int(a["snapshot"]),
            "redshift": round(float(a["redshift"]), 3),
            "cluster_id": str(a["cluster_id"]),
            "halo_id": int(a["halo_id"]),
            "m200c_msun": float(a["m200c_msun"]),
            "hubble_h": float(a["hubble_h"]),
        }


def _split(k: np.ndarray, values: np.ndarray, k_split: float) -> tuple[float, float]:
    """(small-scale, large-scale) means of b or r as ``spectra.scale_split_means``, but NaN for a side with
    no k bin (a field narrower than 2π/k_split has none: 225" at z = 0.2 starts at k ≈ 12 h/Mpc)."""
    k, v = np.asarray(k), np.asarray(values, dtype=np.float64)
    small, large = k >= k_split, k < k_split
    with np.errstate(invalid="ignore"):
        out = [
            float(np.nanmean(v[m])) if m.any() and np.isfinite(v[m]).any() else float("nan")
            for m in (small, large)
        ]
    return out[0], out[1]


def _rows(base: Mapping[str, Any], view: int, scores: Mapping[str, float]) -> list[dict[str, Any]]:
    return [{**base, "view": view, "metric": k, "value": float(v)} for k, v in scores.items()]


def evaluate_prediction(
    *,
    prediction_path: str | os.PathLike,
    maps_path: str | os.PathLike,
    obs_path: str | os.PathLike,
    method: str,
    fov: str,
    data_range: float,
    heldout: Mapping[str, Any] | None = None,
    k_split_hmpc: float = 2.0,
    rmse_sigma_bins: int = 20,
) -> pd.DataFrame:
    """Scores of every view of one prediction (``/mean`` (V, H, W), optional ``/std``) against the truth Σ.

    method: the display name ("LTM", "UNet", "P", "P+SL", ...); names with "P" are posterior inputs and fill
    the ``inputs`` column. data_range: L [Msun kpc⁻²] of PSNR/SSIM. heldout: config ``evaluation.heldout``.
    Returns the long DataFrame of the module docstring.
    """
    info = _cluster_info(maps_path)
    h = info.pop("hubble_h")
    truth = read_channels(["sigma:total"], maps_path=maps_path, obs_path=obs_path, fov=fov)[0][:, 0]
    truth = truth.astype(np.float64)
    with h5py.File(prediction_path, "r") as f:
        mean = np.asarray(f["mean"], dtype=np.float64)
        std = np.asarray(f["std"], dtype=np.float64) if "std" in f else None
    if mean.shape != truth.shape:
        raise ValueError(
            f"{prediction_path}: mean shape {mean.shape} != truth shape {truth.shape} ({maps_path})"
        )
    with h5py.File(maps_path, "r") as f:
        pixel_kpc = float(f[fov].attrs["pixel_kpc"])
    hcfg = dict(heldout or {})
    base = {"method": method, "inputs": method if method.startswith("P") else "", **info}
    rows: list[dict[str, Any]] = []
    with h5py.File(obs_path, "r") as obs:
        ds = obs[f"photometry/{fov}/images"]
        band = [str(b) for b in ds.attrs["bands"]].index("F814W")
        images = np.asarray(ds[:, band], dtype=np.float64)
        pixel_arcsec = float(obs[f"photometry/{fov}"].attrs["pixel_arcsec"])
        noise = float(np.asarray(ds.attrs["noise_sigma_jy"])[band])
        sl = []
        for v in range(len(truth)):
            key = f"lensing/{fov}/view_{v:03d}/strong/images"
            sl.append(
                np.stack([obs[key]["x_arcsec"][()], obs[key]["y_arcsec"][()]], axis=1)
                if key in obs
                else np.zeros((0, 2))
            )
    for v in range(len(truth)):
        mask = heldout_mask(
            images[v],
            pixel_arcsec=pixel_arcsec,
            noise_sigma=noise,
            k_sigma=float(hcfg.get("k_sigma", 2.0)),
            dilate_arcsec=float(hcfg.get("dilate_arcsec", 1.0)),
            sl_positions_arcsec=sl[v],
            sl_radius_arcsec=float(hcfg.get("sl_radius_arcsec", 3.0)),
            core_radius_arcsec=float(hcfg.get("core_radius_arcsec", 0.0)),
        )
        scores = map_scores(mean[v], truth[v], data_range=data_range, heldout=mask)
        scores["heldout_fraction"] = float(mask.mean())
        k, b, r = bias_and_correlation(mean[v], truth[v], pixel_kpc=pixel_kpc, h=h)
        scores["b_small"], scores["b_large"] = _split(k, b, k_split_hmpc)
        scores["r_small"], scores["r_large"] = _split(k, r, k_split_hmpc)
        scores["mass_ratio"] = float(mean[v].sum() / truth[v].sum())
        if std is not None:
            scores.update(std_scores(mean[v], std[v], truth[v], n_bins=rmse_sigma_bins))
        if method == "LTM":  # a property of the data (App. C), recorded once per test sample
            scores["pcc_sigma_f814w"] = light_traces_mass_pcc(truth[v], images[v])
        rows += _rows(base, v, scores)
    return pd.DataFrame(rows)


def evaluate_conditional(
    *,
    samples_path: str | os.PathLike,
    maps_path: str | os.PathLike,
    method: str,
    mass_split_msun: float,
    k_split_hmpc: float = 2.0,
    rmse_sigma_bins: int = 20,
) -> pd.DataFrame:
    """b/r scale means (per sample, averaged over samples), the PCC of the mean and calibration scores of
    conditional samples (``evaluation.conditional`` layout) per view and target channel;
    ``map`` is "gas", "DM", ... and ``mass_bin`` "high" (M200c ≥ mass_split_msun) or
    "low"."""
    info = _cluster_info(maps_path)
    h = info.pop("hubble_h")
    with h5py.File(samples_path, "r") as f:
        mean, std, truth = (np.asarray(f[k], dtype=np.float64) for k in ("mean", "std", "truth"))
        samples = np.asarray(f["samples"], dtype=np.float64)  # (V, S, C, H, W)
        channels = f.attrs.get("channels", [])
        if isinstance(channels, bytes | str):  # write_hdf5_attrs stores lists as JSON text
            channels = json.loads(channels)
        channels = [str(c) for c in channels]
        pixel_kpc = float(f.attrs["pixel_kpc"])
    if not channels:
        channels = [f"channel{i}" for i in range(mean.shape[1])]
    names = [c.split(":")[-1] for c in channels]
    names = ["DM" if n == "dm" else n for n in names]
    rows: list[dict[str, Any]] = []
    mass_bin = "high" if info["m200c_msun"] >= mass_split_msun else "low"
    for c, name in enumerate(names):
        base = {"method": method, "inputs": "", **info, "map": name, "mass_bin": mass_bin}
        for v in range(mean.shape[0]):
            # b(k), r(k) of each sample against the truth, averaged over samples (Hsu et al. score samples)
            k, b, r = bias_and_correlation(samples[v, :, c], truth[v, c], pixel_kpc=pixel_kpc, h=h)
            b, r = b.mean(axis=0), r.mean(axis=0)
            scores = {}
            scores["b_small"], scores["b_large"] = _split(k, b, k_split_hmpc)
            scores["r_small"], scores["r_large"] = _split(k, r, k_split_hmpc)
            scores["pcc"] = float(np.corrcoef(mean[v, c].ravel(), truth[v, c].ravel())[0, 1])
            scores.update(std_scores(mean[v, c], std[v, c], truth[v, c], n_bins=rmse_sigma_bins))
            rows += _rows(base, v, scores)
    return pd.DataFrame(rows)

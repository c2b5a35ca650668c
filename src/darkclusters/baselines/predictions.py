"""Baseline predictions of the test clusters, written in the layout of the posterior files.

Output ``results/baselines/{method}/{dataset}/{sim}/{snap}/{halo}.h5`` (method ``LTM`` or ``UNet``)::

    /       attrs method, fov, pixel_arcsec, pixel_kpc, z_lens, provenance
    /mean   (V, H, W) the baseline's Σ map per view [Msun kpc⁻²] (named like the posterior mean, so that one
            evaluation reads both)

The light-traces-mass (LTM) mass-to-light ratio Υ is fitted once on the training split
(:func:`calibrate_ltm_files` → a JSON file) and applied to every test cluster (:func:`predict_ltm_file`).
Luminosity convention: a galaxy's luminosity is its F814W flux density times (D_L / 1 Mpc)² / (1 + z)
[Jy Mpc²] (L_ν at the rest frequency ν(1 + z): f_ν = (1 + z) L_ν / (4π D_L²), 4π dropped), so one Υ
[Msun per Jy Mpc²] carries across lens redshifts; K-corrections (the band's rest frame moves blueward with
z) are neglected, as in the paper's fixed 1:1 mass–light ratio.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from darkclusters.baselines.light_traces_mass import ltm_sigma_map
from darkclusters.datasets import read_channels
from darkclusters.io import atomic_path, provenance, write_hdf5_attrs

__all__ = ["calibrate_ltm_files", "predict_ltm_file", "predict_unet_file", "write_prediction"]


def write_prediction(
    path: str | os.PathLike, mean: np.ndarray, *, attrs: Mapping[str, Any], std: np.ndarray | None = None
) -> Path:
    """Write ``/mean`` (V, H, W) Σ [Msun kpc⁻²] (and ``/std`` when given) with root ``attrs``, atomically."""
    mean = np.asarray(mean, dtype=np.float64)
    if mean.ndim != 3 or not np.all(np.isfinite(mean)):
        raise ValueError(f"{path}: mean must be a finite (V, H, W) array; got shape {mean.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    maps = {"units": "Msun kpc^-2", "dims": "view,y,x"}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        write_hdf5_attrs(f.create_dataset("mean", data=mean), maps)
        if std is not None:
            write_hdf5_attrs(f.create_dataset("std", data=np.asarray(std, dtype=np.float64)), maps)
        write_hdf5_attrs(f, dict(attrs))
    return path


def _band_images(obs: h5py.File, fov: str, band: str) -> tuple[np.ndarray, dict[str, float]]:
    """(V, H, W) images of ``band`` [Jy per pixel] and the grid/distance attributes of an observation file."""
    key = f"photometry/{fov}/images"
    if key not in obs:
        raise KeyError(f"{obs.filename}: no {key!r}")
    ds = obs[key]
    bands = [str(b) for b in ds.attrs["bands"]]
    if band not in bands:
        raise KeyError(f"{obs.filename}: {key} lacks band {band!r} (has {bands}); config evaluation.ltm.band")
    grid = obs[f"photometry/{fov}"].attrs
    info = {
        "pixel_arcsec": float(grid["pixel_arcsec"]),
        "pixel_kpc": float(grid["pixel_kpc"]),
        "luminosity_distance_mpc": float(obs.attrs["luminosity_distance_mpc"]),
        "z_lens": float(obs.attrs["redshift"]),
    }
    return np.asarray(ds[:, bands.index(band)], dtype=np.float64), info


def _ltm_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "r_core_star_kpc": float(cfg.get("r_core_star_kpc", 0.15)),
        "r_cut_star_kpc": float(cfg.get("r_cut_star_kpc", 60.0)),
        "detection": {"thresh": float(cfg.get("thresh", 3.0)), "minarea": int(cfg.get("minarea", 5))},
    }


def calibrate_ltm_files(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    out_path: str | os.PathLike,
    *,
    fov: str,
    ltm_cfg: Mapping[str, Any],
    seed: int | None = None,
) -> float:
    """Fit Υ [Msun per Jy Mpc²] on training clusters and write it as JSON; returns Υ.

    pairs: (truth maps file, observation file) of each training cluster; every view enters. Least squares of
    the total mass in the field (``calibrate_mass_to_light``'s estimator): Υ = Σ m_j M_j / Σ m_j², m_j the
    LTM mass of view j for Υ = 1, M_j its true mass. ltm_cfg: config ``evaluation.ltm``.
    """
    kw = _ltm_kwargs(ltm_cfg)
    band = str(ltm_cfg.get("band", "F814W"))
    m, big_m = [], []
    for maps_path, obs_path in pairs:
        with h5py.File(obs_path, "r") as obs:
            images, info = _band_images(obs, fov, band)
        truth = read_channels(["sigma:total"], maps_path=maps_path, obs_path=obs_path, fov=fov)[0][:, 0]
        scale = info["luminosity_distance_mpc"] ** 2 / (1.0 + info["z_lens"])
        area = info["pixel_kpc"] ** 2
        for img, sig in zip(images, truth, strict=True):
            unit = ltm_sigma_map(
                img, pixel_kpc=info["pixel_kpc"], mass_to_light=1.0, luminosity_scale=scale, **kw
            )
            m.append(unit.sum() * area)
            big_m.append(float(np.sum(sig, dtype=np.float64)) * area)
    m_arr, big_arr = np.asarray(m), np.asarray(big_m)
    if not m_arr.size or np.sum(m_arr**2) == 0:
        raise ValueError(f"LTM calibration: no galaxy detected in {len(pairs)} training clusters ({band})")
    upsilon = float(np.sum(m_arr * big_arr) / np.sum(m_arr**2))
    doc = {
        "mass_to_light_msun_per_jy_mpc2": upsilon,
        "n_views": int(m_arr.size),
        "band": band,
        "fov": fov,
        "luminosity": "band flux density [Jy] x (D_L / 1 Mpc)^2 / (1 + z)",
        "ltm": dict(ltm_cfg),
        "median_true_over_ltm_mass": float(np.median(big_arr / np.maximum(upsilon * m_arr, 1e-300))),
        "provenance": provenance(
            cfg=dict(ltm_cfg), seed=seed, inputs=[os.fspath(p) for q in pairs for p in q]
        ),
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, default=str))
    return upsilon


def predict_ltm_file(
    obs_path: str | os.PathLike,
    calibration_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    fov: str,
    ltm_cfg: Mapping[str, Any],
) -> Path:
    """The LTM Σ map of every view of one observed cluster with the calibrated Υ (JSON of
    :func:`calibrate_ltm_files`), written by :func:`write_prediction`."""
    cal = json.loads(Path(calibration_path).read_text())
    upsilon = float(cal["mass_to_light_msun_per_jy_mpc2"])
    band = str(ltm_cfg.get("band", "F814W"))
    if cal.get("band") != band:
        raise ValueError(f"{calibration_path}: calibrated on {cal.get('band')!r}, config asks {band!r}")
    with h5py.File(obs_path, "r") as obs:
        images, info = _band_images(obs, fov, band)
    kw = _ltm_kwargs(ltm_cfg)
    maps = [
        ltm_sigma_map(
            img,
            pixel_kpc=info["pixel_kpc"],
            mass_to_light=upsilon,
            luminosity_scale=info["luminosity_distance_mpc"] ** 2 / (1.0 + info["z_lens"]),
            **kw,
        )
        for img in images
    ]
    attrs = {
        "method": "LTM",
        "fov": fov,
        **info,
        **provenance(cfg=dict(ltm_cfg), seed=None, inputs=[os.fspath(obs_path), os.fspath(calibration_path)]),
    }
    return write_prediction(out_path, np.stack(maps), attrs=attrs)


def predict_unet_file(
    model_pt: str | os.PathLike,
    maps_path: str | os.PathLike,
    obs_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    fov: str,
    device: str = "cpu",
) -> Path:
    """The regression UNet's Σ map [Msun kpc⁻²] of every view of one cluster (one forward pass per view).

    The condition channels and their normalisation come from ``model.pt``; maps_path is read only when a
    condition channel is a truth-map channel (e.g. tSZ).
    """
    from darkclusters.diffusion.regression import load_unet_baseline
    from darkclusters.diffusion.train import load_model_info

    info = load_model_info(model_pt)
    model_cfg = info["config"]["model"]
    norm = info["normalisation"]
    cond_norm = norm.select(model_cfg["condition_channels"])
    mass_norm = norm.select(model_cfg["target_channels"])
    cond, _ = read_channels(model_cfg["condition_channels"], maps_path=maps_path, obs_path=obs_path, fov=fov)
    net = load_unet_baseline(model_pt, device)
    dtype = next(net.parameters()).dtype
    with torch.no_grad():
        x = torch.as_tensor(cond_norm.forward(cond.astype(np.float64)), dtype=dtype, device=device)
        sigma = mass_norm.inverse(net(x))[:, 0].double().cpu().numpy()
    with h5py.File(obs_path, "r") as obs:
        grid = obs[f"photometry/{fov}"].attrs
        attrs = {
            "method": "UNet",
            "fov": fov,
            "pixel_arcsec": float(grid["pixel_arcsec"]),
            "pixel_kpc": float(grid["pixel_kpc"]),
            "z_lens": float(obs.attrs["redshift"]),
        }
    attrs.update(provenance(cfg=None, seed=None, inputs=[os.fspath(model_pt), os.fspath(obs_path)]))
    return write_prediction(out_path, sigma, attrs=attrs)

"""Conditional samples of a trained prior for the test clusters of a dataset whose condition is not
photometry (e.g. Hsu et al.'s Σ_gas + Σ_DM from tSZ + X-ray): EDM Heun sampling of p(Σ | condition).

Output ``results/conditional/{dataset}/{sim}/{snap}/{halo}.h5``::

    /          attrs dataset, fov, channels (the target channel specs), n_samples, steps, pixel_kpc,
               hubble_h, m200c_msun, z_lens, provenance
    /samples   (V, S, C, H, W) samples of the target channels [Msun kpc⁻² for Σ channels]
    /mean      (V, C, H, W) their mean;  /std (V, C, H, W) their standard deviation (ddof = 1)
    /truth     (V, C, H, W) the truth maps of the same channels (copied, so that scoring needs one file)
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import torch

from darkclusters.datasets import read_channels
from darkclusters.diffusion.samplers.conditional import sample_conditional
from darkclusters.diffusion.train import load_denoiser, load_model_info
from darkclusters.io import atomic_path, provenance, write_hdf5_attrs
from darkclusters.seeding import derive_seed

__all__ = ["sample_prior_file"]


def sample_prior_file(
    *,
    model_pt: str | os.PathLike,
    maps_path: str | os.PathLike,
    obs_path: str | os.PathLike,
    out_path: str | os.PathLike,
    fov: str,
    n_samples: int,
    steps: int,
    seed: int,
    device: str = "cpu",
) -> Path:
    """Draw ``n_samples`` samples of the prior's target channels for every view of one cluster.

    model_pt: a prior ``model.pt`` (its condition/target channels and normalisation are used); sample (v, s)
    uses derive_seed(seed, v, s). Returns ``out_path`` (layout in the module docstring), written atomically.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples={n_samples} must be >= 2 (the std and TARP need several samples)")
    info = load_model_info(model_pt)
    model_cfg = info["config"]["model"]
    norm = info["normalisation"]
    targets, conds = list(model_cfg["target_channels"]), list(model_cfg["condition_channels"])
    cond, _ = read_channels(conds, maps_path=maps_path, obs_path=obs_path, fov=fov)
    truth, _ = read_channels(targets, maps_path=maps_path, obs_path=obs_path, fov=fov)
    dev = torch.device(device)
    denoise = load_denoiser(model_pt, dev)
    dtype = torch.get_default_dtype()
    n_views = cond.shape[0]
    x_cond = torch.as_tensor(norm.select(conds).forward(cond.astype(np.float64)), dtype=dtype, device=dev)
    seeds = [derive_seed(seed, v, s) for v in range(n_views) for s in range(n_samples)]
    with torch.no_grad():
        x0 = sample_conditional(
            denoise,
            (len(targets), *cond.shape[-2:]),
            cond=x_cond.repeat_interleave(n_samples, dim=0),
            seeds=seeds,
            n_steps=steps,
        )
        samples = norm.select(targets).inverse(x0).double().cpu().numpy()
    samples = samples.reshape(n_views, n_samples, *samples.shape[1:])
    with h5py.File(maps_path, "r") as f:
        grid = f[fov].attrs
        attrs = {
            "pixel_kpc": float(grid["pixel_kpc"]),
            "pixel_arcsec": float(grid["pixel_arcsec"]),
            "hubble_h": float(f.attrs["hubble_h"]),
            "m200c_msun": float(f.attrs["m200c_msun"]),
            "z_lens": float(f.attrs["redshift"]),
        }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    names = np.array(targets, dtype=h5py.string_dtype())
    units = {"units": "Msun kpc^-2 for sigma channels", "channels": names}
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        write_hdf5_attrs(
            f.create_dataset("samples", data=samples), {**units, "dims": "view,sample,channel,y,x"}
        )
        for name, data in (
            ("mean", samples.mean(axis=1)),
            ("std", samples.std(axis=1, ddof=1)),
            ("truth", truth.astype(np.float64)),
        ):
            write_hdf5_attrs(f.create_dataset(name, data=data), {**units, "dims": "view,channel,y,x"})
        write_hdf5_attrs(
            f,
            {
                "fov": fov,
                "channels": names,
                "n_samples": n_samples,
                "steps": steps,
                **attrs,
                **provenance(cfg=None, seed=seed, inputs=[os.fspath(model_pt), os.fspath(maps_path)]),
            },
        )
    return out_path

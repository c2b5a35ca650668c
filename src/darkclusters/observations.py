"""The observation file of one cluster: HST-like images (cluster light + lensed arcs), lensing catalogs.

``results/observations/{sim}/{snap}/{halo}.h5`` is what a telescope would deliver for the cluster, all views
and fields of view: ``/photometry/{fov}/images`` (V, 3, H, W) [Jy per pixel] from
:func:`darkclusters.photometry.pipeline.observe_photometry_file`, with the strong-lensing arcs of
``results/lensing/...`` added to the sky before the PSF and the noise, and ``/lensing/{fov}/...`` the
strong-lensing families and weak-lensing catalogs copied from that file (for the fields of view that file has:
``lensing.fields_of_view``; the other fields get images without arcs and no lensing group) (see
:mod:`darkclusters.lensing.observe`). The truth (κ, arcs without noise) stays in the lensing file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from darkclusters.io import atomic_path
from darkclusters.photometry.pipeline import map_grids, observe_photometry_file

__all__ = ["assemble_observations"]

_TRUTH_ONLY = ("arcs", "kappa_ref")  # lensing datasets that are truth, not observations


def assemble_observations(
    *,
    particles_path: str | os.PathLike,
    maps_path: str | os.PathLike,
    lensing_path: str | os.PathLike,
    out_path: str | os.PathLike,
    photometry_cfg: Mapping[str, Any],
    seed: int,
) -> None:
    """Write the observation file of one cluster (module docstring), atomically."""
    directions, fields_of_view = map_grids(maps_path)
    with h5py.File(lensing_path, "r") as lens:
        lensed = [name for name in fields_of_view if name in lens]  # lensing.fields_of_view may skip some
        if not lensed:
            raise KeyError(f"{lensing_path}: no lensing for any field of view {sorted(fields_of_view)}")
        arcs = {name: np.asarray(lens[name]["arcs"][()], dtype=np.float64) for name in lensed}
    with atomic_path(out_path) as tmp:
        observe_photometry_file(
            particles_path,
            tmp,
            directions=directions,
            fields_of_view=fields_of_view,
            photometry_cfg=photometry_cfg,
            seed=seed,
            extra_light_jy=arcs,
        )
        with h5py.File(tmp, "a") as f, h5py.File(lensing_path, "r") as lens:
            out = f.create_group("lensing")
            for key in ("z_lens", "z_ref", "sigma_crit_ref_msun_kpc2", "bands"):
                out.attrs[key] = lens.attrs[key]
            for name in lensed:
                g = out.create_group(name)
                for key, item in lens[name].items():
                    if key not in _TRUTH_ONLY:
                        lens.copy(item, g, name=key)

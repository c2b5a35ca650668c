"""Lensing observations of one cluster: strong-lensing families with their arcs, and weak-lensing catalogs.

For every field of view and view of a truth-map file (``results/maps/...``), the total Σ becomes the
convergence for sources at the reference redshift, κ_ref = Σ / Σcr(z_lens, z_ref); the strong-lensing mock
(:mod:`.strong`) draws multiply imaged families and :func:`.sersic.render_arcs` renders their light in the HST
bands; the weak-lensing mock (:mod:`.weak`) draws one source catalogue per view and one shape-noise
realisation per named regime (same positions and redshifts, so the regimes differ only in noise). The mock and
the likelihoods use the same operators. Output ``results/lensing/{sim}/{snap}/{halo}.h5``::

    /                       attrs z_lens, z_ref, sigma_crit_ref_msun_kpc2, bands, provenance
    /{fov}/arcs             (V, n_bands, H, W) lensed source light [Jy per pixel], no cluster light, no PSF
    /{fov}/kappa_ref        (V, H, W) convergence for sources at z_ref
    /{fov}/view_{v:03d}/strong/{families,images}/...   tables (see strong.make_strong_lensing_catalog)
    /{fov}/view_{v:03d}/weak_{regime}/...              per-source arrays (see weak.make_weak_lensing_catalog)

Source colours (assumption, stated): star-forming background galaxies with F606W − F814W ~ U(0.1, 0.6) and
F814W − F125W ~ U(0.0, 0.6) AB, F814W magnitude uniform in ``strong.source_mag_f814w_range``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from darkclusters.cosmology import flat_lcdm, sigma_crit_msun_kpc2
from darkclusters.io import atomic_path, provenance, write_hdf5_attrs, write_nested
from darkclusters.lensing.operators import deflection_field
from darkclusters.lensing.sersic import render_arcs
from darkclusters.lensing.strong import make_strong_lensing_catalog
from darkclusters.lensing.weak import make_weak_lensing_catalog
from darkclusters.seeding import derive_seed

__all__ = ["BANDS", "observe_lensing_file", "observe_lensing_view", "source_band_fluxes_jy"]

BANDS = ("F125W", "F606W", "F814W")  # the order of photometry.filters.HST_BANDS
AB_ZERO_POINT_JY = 3631.0
COLOUR_606_814 = (0.1, 0.6)  # F606W − F814W of background sources [AB mag]
COLOUR_814_125 = (0.0, 0.6)  # F814W − F125W [AB mag]


def source_band_fluxes_jy(
    rng: np.random.Generator, n: int, mag_f814w_range: tuple[float, float]
) -> np.ndarray:
    """(n, 3) total unlensed fluxes [Jy] in F125W, F606W, F814W of background sources (module docstring)."""
    m814 = rng.uniform(*mag_f814w_range, size=n)
    m606 = m814 + rng.uniform(*COLOUR_606_814, size=n)
    m125 = m814 - rng.uniform(*COLOUR_814_125, size=n)
    mags = np.stack([m125, m606, m814], axis=1)
    return AB_ZERO_POINT_JY * 10.0 ** (-0.4 * mags)


def observe_lensing_view(
    sigma_total_msun_kpc2: np.ndarray,
    pixel_arcsec: float,
    *,
    z_lens: float,
    cosmology: Any,
    cfg: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Strong- and weak-lensing mocks of one (H, W) Σ map: {"kappa_ref", "arcs" (3, H, W) Jy, "strong",
    "weak"}.

    cfg: the validated ``lensing`` config section; seed: this view's seed (derived from cluster and view).
    """
    z_ref = float(cfg["z_ref"])
    if z_ref <= z_lens:
        raise ValueError(
            f"lensing.z_ref={z_ref} must lie behind the lens (z_lens={z_lens:.3f}): raise it in the config"
        )
    kappa = np.asarray(sigma_total_msun_kpc2, dtype=np.float64) / sigma_crit_msun_kpc2(
        cosmology, z_lens, z_ref
    )
    sl, wl, zs = cfg["strong"], cfg["weak"], cfg["source_redshifts"]
    strong = make_strong_lensing_catalog(
        kappa,
        pixel_arcsec,
        z_lens=z_lens,
        z_ref=z_ref,
        cosmology=cosmology,
        n_systems_range=(sl["n_systems_min"], sl["n_systems_max"]),
        seed=derive_seed(seed, "strong"),
        source_redshifts=dict(zs),
        families_per_arcmin2=sl["families_per_arcmin2"],
        min_abs_magnification=sl["min_abs_magnification"],
    )
    n_fam = len(strong["families"]["family_id"])
    fluxes = source_band_fluxes_jy(
        np.random.default_rng(derive_seed(seed, "colours")), n_fam, tuple(sl["source_mag_f814w_range"])
    )
    strong["families"]["band_flux_jy"] = fluxes
    if n_fam:
        alpha_x, alpha_y = deflection_field(kappa, pixel_arcsec)
        arcs = render_arcs(
            strong["families"],
            alpha_x,
            alpha_y,
            pixel_arcsec,
            band_fluxes=fluxes,
            supersample=sl["supersample"],
        )
    else:
        arcs = np.zeros((len(BANDS), *kappa.shape))
    weak = {
        regime: make_weak_lensing_catalog(
            kappa,
            pixel_arcsec,
            z_lens=z_lens,
            z_ref=z_ref,
            cosmology=cosmology,
            seed=derive_seed(seed, "weak"),  # the same seed: regimes share positions and redshifts
            density_per_arcmin2=wl["density_per_arcmin2"],
            shape_noise=float(sigma_e),
            exclude_radius_arcsec=wl["exclude_radius_arcsec"],
            z0=zs["z0"],
            z_beta=zs["beta"],
            z_alpha=zs["alpha"],
        )
        for regime, sigma_e in wl["regimes"].items()
    }
    return {"kappa_ref": kappa, "arcs": np.asarray(arcs, dtype=np.float64), "strong": strong, "weak": weak}


def observe_lensing_file(
    maps_path: str | os.PathLike, out_path: str | os.PathLike, *, lensing_cfg: Mapping[str, Any], seed: int
) -> None:
    """Lensing observations of every view of a truth-map file, written atomically: every field of view, or
    those named by ``lensing_cfg["fields_of_view"]`` when it is not None."""
    maps_path = Path(maps_path)
    with h5py.File(maps_path, "r") as maps:
        attrs = dict(maps.attrs)
        try:
            z_lens = float(attrs["redshift"])
            cosmology = flat_lcdm(float(attrs["hubble_h"]), float(attrs["omega_m"]), float(attrs["omega_b"]))
        except KeyError as exc:
            raise KeyError(
                f"{maps_path}: missing root attribute {exc} (redshift/hubble_h/omega_m/omega_b)"
            ) from None
        fovs = {name: g for name, g in maps.items() if isinstance(g, h5py.Group)}
        wanted = lensing_cfg.get("fields_of_view")
        if wanted is not None:  # only the configured fields (lensing.fields_of_view)
            unknown = sorted(set(wanted) - set(fovs))
            if unknown:
                raise KeyError(
                    f"{maps_path}: lensing.fields_of_view names {unknown}, not in the maps {sorted(fovs)}"
                )
            fovs = {name: g for name, g in fovs.items() if name in wanted}
        results = {}
        for name, g in fovs.items():
            channels = [str(c) for c in g["sigma"].attrs["channels"]]
            sigma = g["sigma"][:, channels.index("total")]
            pixel = float(g.attrs["pixel_arcsec"])
            results[name] = [
                observe_lensing_view(
                    sigma[v],
                    pixel,
                    z_lens=z_lens,
                    cosmology=cosmology,
                    cfg=lensing_cfg,
                    seed=derive_seed(seed, name, v),
                )
                for v in range(sigma.shape[0])
            ]
    sigma_crit = float(sigma_crit_msun_kpc2(cosmology, z_lens, float(lensing_cfg["z_ref"])))
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        write_hdf5_attrs(f, provenance(cfg=lensing_cfg, seed=seed, inputs=[str(maps_path)]))
        write_hdf5_attrs(
            f,
            {"z_lens": z_lens, "z_ref": float(lensing_cfg["z_ref"]), "sigma_crit_ref_msun_kpc2": sigma_crit},
        )
        f.attrs["bands"] = list(BANDS)
        for name, views in results.items():
            g = f.create_group(name)
            arcs = g.create_dataset("arcs", data=np.stack([v["arcs"] for v in views]).astype(np.float32))
            arcs.attrs.update({"units": "Jy per pixel", "dims": "view,band,y,x", "bands": list(BANDS)})
            kappa = g.create_dataset(
                "kappa_ref", data=np.stack([v["kappa_ref"] for v in views]).astype(np.float32)
            )
            kappa.attrs.update({"units": "dimensionless (sources at z_ref)", "dims": "view,y,x"})
            for v, view in enumerate(views):
                vg = g.create_group(f"view_{v:03d}")
                write_nested(vg.create_group("strong"), view["strong"])
                for regime, catalog in view["weak"].items():
                    write_nested(vg.create_group(f"weak_{regime}"), catalog)

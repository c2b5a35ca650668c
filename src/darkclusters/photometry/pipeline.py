"""The photometry stage: a cluster's particle file → HST-like F125W, F606W, F814W images of every view.

Paper §4.1 and App. A.1. For each field of view and viewing direction, on the truth maps' grid
(:class:`darkclusters.projection.geometry.MapGeometry`, same directions and pixels):

1. star fluxes [Jy] in the three bands, once per cluster: rest-frame magnitudes (TNG's
   GFM_StellarPhotometrics, or :mod:`~darkclusters.photometry.ssp` for SIMBA) → SED → dust → redshift → filter
   curves, at the luminosity distance of the snapshot's redshift in the particle file's cosmology
   (:mod:`~darkclusters.photometry.sed`);
2. nearest-pixel binning of the rotated stars (:func:`~darkclusters.photometry.image.bin_to_pixels`);
3. intracluster light: two Sérsic components fitted to the BCG light in F814W, fluxes per band, the chosen
   component(s) added (:mod:`~darkclusters.photometry.sersic`);
4. synthetic background galaxies (or, after step 5, a cutout of real mosaics);
5. PSF per band; 6. sky noise at the configured depth.

Output (:func:`observe_photometry_file`), written atomically with provenance::

    /                        attrs: provenance, sim, snapshot, halo_id, redshift, luminosity_distance_mpc,
                                    magnitude_source
    /directions              (V, 3) unit vectors towards the observer
    /photometry              attrs: bands, pivot_wavelength_aa, ab_zero_point_jy
    /photometry/{fov}        attrs: fov_arcsec, npix, pixel_arcsec, pixel_kpc
    /photometry/{fov}/images (V, 3, H, W) float32 [Jy per pixel], dims view,band,y,x; attrs bands, units,
                             pivot_wavelength_aa, psf_*, noise_sigma_jy, depth_abmag, zero points, ...
    /photometry/{fov}/icl_shapes (V, 2, 6), icl_flux_jy (V, 2, 3), n_background_galaxies (V,)

Every random draw of a view comes from ``derive_rng(seed, "photometry", fov, view)``, so reruns are identical.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from darkclusters.cosmology import flat_lcdm
from darkclusters.io import atomic_path, provenance, write_hdf5_attrs
from darkclusters.photometry.background import fits_background, synthetic_background
from darkclusters.photometry.dust import charlot_fall_tau_v
from darkclusters.photometry.filters import AB_ZERO_POINT_JY, HST_BANDS, passband
from darkclusters.photometry.image import add_noise, bin_to_pixels, convolve_psf, noise_sigma_jy, psf_kernel
from darkclusters.photometry.sed import band_fluxes_jy, tng_magnitudes_to_ab
from darkclusters.photometry.sersic import fit_fluxes, fit_two_sersic, sersic_image
from darkclusters.photometry.settings import photometry_config
from darkclusters.photometry.ssp import ssp_magnitudes
from darkclusters.projection.geometry import MapGeometry, sky_coordinates
from darkclusters.seeding import derive_rng
from darkclusters.simulations.particles import ParticleSet, read_particles

__all__ = [
    "light_traces_mass_pcc",
    "map_grids",
    "observe_photometry_file",
    "observe_view",
    "stellar_fluxes_jy",
]

log = logging.getLogger(__name__)
_F814W = HST_BANDS.index("F814W")


def stellar_fluxes_jy(particles: ParticleSet, cfg: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    """Observed F125W, F606W, F814W fluxes [Jy] (N, 3) of the star particles, and the magnitude source used.

    cfg: a validated photometry section. The stars sit at the particle file's ``redshift``; D_L from its
    cosmology (hubble_h, omega_m, omega_b attributes).
    """
    stars, attrs = particles.stars, particles.attrs
    empty = np.zeros(0)  # a cluster without stars has no star fields at all
    # a star born in the snapshot's own step can come out with age ≤ 0 from the a → t table: hold it at 1 kyr
    age_gyr = np.maximum(stars.fields.get("age_gyr", empty), 1e-6)
    has_snapshot_mags = "photometrics_mag" in stars.fields
    source = cfg["magnitudes"]
    if source == "auto":
        source = "snapshot" if has_snapshot_mags else "ssp_model"
    if source == "snapshot":
        if not has_snapshot_mags:
            raise ValueError(
                "photometry.magnitudes is 'snapshot' but the particle file has no photometrics_mag"
            )
        mags = tng_magnitudes_to_ab(stars.fields["photometrics_mag"])
    else:
        metallicity = stars.fields.get("metallicity", empty)
        mags = tng_magnitudes_to_ab(ssp_magnitudes(stars.mass_msun, age_gyr, metallicity))
    redshift = float(attrs["redshift"])
    cosmology = flat_lcdm(float(attrs["hubble_h"]), float(attrs["omega_m"]), float(attrs["omega_b"]))
    d_l = float(cosmology.luminosity_distance(redshift).to_value("Mpc"))
    dust = cfg["dust"]
    tau_v = None
    if dust["enabled"] and len(stars):
        tau_v = charlot_fall_tau_v(
            age_gyr,
            tau_v_ism=dust["tau_v_ism"],
            tau_v_birth_cloud=dust["tau_v_birth_cloud"],
            birth_cloud_age_gyr=dust["birth_cloud_age_gyr"],
        )
    fluxes = band_fluxes_jy(
        mags,
        redshift=redshift,
        luminosity_distance_mpc=d_l,
        bands=HST_BANDS,
        tau_v=tau_v,
        dust_exponent=dust["wavelength_exponent"],
    )
    return fluxes, source


def observe_view(
    x_arcsec: np.ndarray,
    y_arcsec: np.ndarray,
    flux_jy: np.ndarray,
    *,
    geometry: MapGeometry,
    cfg: Mapping[str, Any],
    rng: np.random.Generator,
    extra_light_jy: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One view's images (3, H, W) [Jy per pixel] from star sky positions (N,) [arcsec] and fluxes (N, 3).

    Steps 2–6 of the module docstring; cfg is a validated photometry section. extra_light_jy: (3, H, W) light
    added to the sky before the PSF and the noise (the lensed arcs of background sources) [Jy per pixel].
    Returns the images and a dict
    with icl_shapes (2, 6) [x0, y0 arcsec, R_e arcsec, n, q, θ rad] (NaN when no ICL was fitted), icl_flux_jy
    (2, 3) and n_background_galaxies.
    """
    npix, pixel = geometry.npix, geometry.pixel_arcsec
    image, variance = bin_to_pixels(x_arcsec, y_arcsec, flux_jy, geometry)
    info: dict[str, Any] = {
        "icl_shapes": np.full((2, 6), np.nan),
        "icl_flux_jy": np.zeros((2, len(HST_BANDS))),
        "n_background_galaxies": 0,
    }
    if cfg["icl"]["enabled"]:
        _add_icl(image, variance, flux_jy, geometry, cfg, info)
    bkg = cfg["background"]
    if bkg["source"] == "synthetic":
        galaxies, info["n_background_galaxies"] = synthetic_background(
            rng, npix, pixel, bkg["synthetic"], oversample=cfg["sersic_oversample"]
        )
        image += galaxies
    if extra_light_jy is not None:
        if np.shape(extra_light_jy) != image.shape:
            raise ValueError(f"extra_light_jy has shape {np.shape(extra_light_jy)}, images {image.shape}")
        image += extra_light_jy
    psf = cfg["psf"]
    for b, band in enumerate(HST_BANDS):
        kernel = psf_kernel(
            psf["fwhm_arcsec"][band],
            pixel,
            profile=psf["profile"],
            moffat_beta=psf["moffat_beta"],
            radius_fwhm=psf["kernel_radius_fwhm"],
        )
        image[b] = convolve_psf(image[b], kernel)
    if bkg["source"] == "fits":
        paths = [bkg["fits_paths"][b] for b in HST_BANDS]
        image += fits_background(rng, npix, pixel, paths, [bkg["fits_jy_per_unit"][b] for b in HST_BANDS])
    if cfg["noise"]["enabled"]:
        image = add_noise(image, _noise_sigmas(cfg, pixel), rng)
    return image, info


def _add_icl(
    image: np.ndarray,
    variance: np.ndarray,
    flux_jy: np.ndarray,
    geometry: MapGeometry,
    cfg: Mapping[str, Any],
    info: dict[str, Any],
) -> None:
    """Fit the two-component BCG + ICL model on F814W, fluxes per band, add the configured component(s)."""
    icl, npix, pixel = cfg["icl"], geometry.npix, geometry.pixel_arcsec
    radius = icl["fit_radius_kpc"] / geometry.kpc_per_arcsec
    centres = (np.arange(npix) + 0.5 - npix / 2) * pixel
    inside = centres[None, :] ** 2 + centres[:, None] ** 2 <= radius**2
    if not inside.any() or image[_F814W][inside].sum() <= 0:
        return  # no light to fit (no stars near the centre)
    oversample = cfg["sersic_oversample"]
    sigmas = []
    for b in range(len(HST_BANDS)):
        # σ² = Σ f² of the pixel's stars (shot noise) + one typical star's f² (the σ of an empty pixel)
        positive = flux_jy[:, b][flux_jy[:, b] > 0]
        floor = float(np.median(positive)) if len(positive) else 1.0
        sigmas.append(np.sqrt(variance[b] + floor**2))
    fit = fit_two_sersic(
        image[_F814W],
        sigmas[_F814W],
        pixel,
        fit_radius_arcsec=radius,
        r_eff_init_arcsec=(
            icl["inner_r_eff_init_kpc"] / geometry.kpc_per_arcsec,
            icl["outer_r_eff_init_kpc"] / geometry.kpc_per_arcsec,
        ),
        oversample=1,  # the fit samples pixel centres (9× cheaper); rendering below uses sersic_oversample
        max_evaluations=icl["max_evaluations"],
    )
    shapes = (fit.inner, fit.outer)
    info["icl_shapes"] = np.stack([s.as_array() for s in shapes])
    added = (1,) if icl["components"] == "outer" else (0, 1)
    unit = [sersic_image(npix, pixel, s, oversample=oversample) for s in shapes]
    for b in range(len(HST_BANDS)):
        fluxes = fit_fluxes(image[b], sigmas[b], pixel, shapes, fit_radius_arcsec=radius, oversample=1)
        info["icl_flux_jy"][:, b] = fluxes
        for c in added:
            image[b] += icl["flux_scale"] * fluxes[c] * unit[c]
    if not fit.success:
        log.warning(
            "ICL fit did not converge (max_evaluations=%d); using its last estimate", icl["max_evaluations"]
        )


def _noise_sigmas(cfg: Mapping[str, Any], pixel_arcsec: float) -> np.ndarray:
    noise = cfg["noise"]
    return np.array(
        [
            noise_sigma_jy(
                noise["depth_abmag"][b],
                pixel_arcsec,
                n_sigma=noise["n_sigma"],
                aperture_diameter_arcsec=noise["aperture_diameter_arcsec"],
            )
            for b in HST_BANDS
        ]
    )


def observe_photometry_file(
    particles_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    directions: np.ndarray,
    fields_of_view: Mapping[str, Mapping[str, Any]],
    photometry_cfg: Mapping[str, Any] | None,
    seed: int,
    extra_light_jy: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write the HST-like images of one cluster for every direction and field of view (module docstring).

    directions: (V, 3) unit vectors towards the observer (the truth maps' ``/directions``).
    fields_of_view: {name: {"fov_arcsec": side [arcsec], "npix": pixels per side}} (the truth maps' groups).
    photometry_cfg: the ``photometry`` config section (validated here). seed: the cluster's seed.
    extra_light_jy: optional {fov name: (V, 3, H, W)} light added before the PSF and noise (lensed arcs); a
    field of view missing from it gets none.
    """
    cfg = photometry_config(photometry_cfg)
    dirs = np.asarray(directions, dtype=np.float64)
    if dirs.ndim != 2 or dirs.shape[1] != 3 or len(dirs) == 0:
        raise ValueError(f"directions must have shape (V, 3) with V >= 1, got {dirs.shape}")
    if not fields_of_view:
        raise ValueError("fields_of_view must name at least one field of view")
    particles = read_particles(particles_path)
    attrs = particles.attrs
    redshift = float(attrs["redshift"])
    cosmology = flat_lcdm(float(attrs["hubble_h"]), float(attrs["omega_m"]), float(attrs["omega_b"]))
    fluxes, source = stellar_fluxes_jy(particles, cfg)
    pos = particles.stars.pos_kpc
    log.info("%s: %d stars, magnitudes from %s", particles_path, len(pos), source)
    bands_attrs = {
        "bands": np.array(HST_BANDS, dtype=h5py.string_dtype()),
        "pivot_wavelength_aa": [passband(b).pivot_aa for b in HST_BANDS],
        "ab_zero_point_jy": AB_ZERO_POINT_JY,
    }
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        write_hdf5_attrs(f, provenance(cfg=cfg, seed=seed, inputs=[particles_path]))
        for key in ("sim", "snapshot", "halo_id", "cluster_id"):
            if key in attrs:
                f.attrs[key] = attrs[key]
        f.attrs["redshift"] = redshift
        f.attrs["luminosity_distance_mpc"] = float(cosmology.luminosity_distance(redshift).to_value("Mpc"))
        f.attrs["magnitude_source"] = source
        d = f.create_dataset("directions", data=dirs)
        d.attrs["dims"] = "view,component"
        d.attrs["units"] = "unit vector from the cluster towards the observer"
        group = f.create_group("photometry")
        write_hdf5_attrs(group, bands_attrs)
        for name, fov in fields_of_view.items():
            geometry = MapGeometry.at_redshift(
                float(fov["fov_arcsec"]), int(fov["npix"]), cosmology, redshift
            )
            extra = None if extra_light_jy is None else extra_light_jy.get(name)
            images, infos = _observe_fov(pos, fluxes, dirs, geometry, cfg, seed, name, extra)
            g = group.create_group(name)
            write_hdf5_attrs(
                g,
                {
                    "fov_arcsec": geometry.fov_arcsec,
                    "npix": geometry.npix,
                    "pixel_arcsec": geometry.pixel_arcsec,
                    "pixel_kpc": geometry.pixel_kpc,
                },
            )
            ds = g.create_dataset("images", data=images.astype(np.float32), compression="gzip", shuffle=True)
            write_hdf5_attrs(ds, {**bands_attrs, **_image_attrs(cfg, geometry.pixel_arcsec)})
            for key, unit in (("icl_shapes", "x0 arcsec, y0 arcsec, r_eff arcsec, n, q, theta rad"),
                              ("icl_flux_jy", "Jy per band (inner, outer)"),
                              ("n_background_galaxies", "count")):  # fmt: skip
                dset = g.create_dataset(key, data=np.stack([i[key] for i in infos]))
                dset.attrs["units"] = unit


def _observe_fov(
    pos_kpc: np.ndarray,
    fluxes: np.ndarray,
    directions: np.ndarray,
    geometry: MapGeometry,
    cfg: Mapping[str, Any],
    seed: int,
    name: str,
    extra_light_jy: np.ndarray | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    images, infos = [], []
    for v, direction in enumerate(directions):
        sky = sky_coordinates(pos_kpc, direction)
        rng = derive_rng(seed, "photometry", name, v)
        image, info = observe_view(
            sky[:, 0] / geometry.kpc_per_arcsec,
            sky[:, 1] / geometry.kpc_per_arcsec,
            fluxes,
            geometry=geometry,
            cfg=cfg,
            rng=rng,
            extra_light_jy=None if extra_light_jy is None else extra_light_jy[v],
        )
        images.append(image)
        infos.append(info)
    return np.stack(images), infos


def _image_attrs(cfg: Mapping[str, Any], pixel_arcsec: float) -> dict[str, Any]:
    return {
        "units": "Jy per pixel (f_nu, band-averaged for a photon-counting detector)",
        "dims": "view,band,y,x",
        "abmag_zero_point": 2.5 * np.log10(AB_ZERO_POINT_JY),  # m_AB = −2.5 log10(f / Jy) + 8.90
        "ab_minus_vega": [passband(b).ab_minus_vega for b in HST_BANDS],
        "psf_profile": cfg["psf"]["profile"],
        "psf_fwhm_arcsec": [cfg["psf"]["fwhm_arcsec"][b] for b in HST_BANDS],
        "noise_sigma_jy": _noise_sigmas(cfg, pixel_arcsec) if cfg["noise"]["enabled"] else np.zeros(3),
        "depth_abmag": [cfg["noise"]["depth_abmag"][b] for b in HST_BANDS],
        "background_source": cfg["background"]["source"],
        "icl_components_added": cfg["icl"]["components"] if cfg["icl"]["enabled"] else "none",
    }


def map_grids(maps_path: str | os.PathLike) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    """Directions (V, 3) and fields of view {name: {"fov_arcsec", "npix"}} of a truth-maps file (the root
    ``/directions`` dataset and every root group carrying ``fov_arcsec`` and ``npix`` attributes)."""
    path = Path(maps_path)
    if not path.exists():
        raise FileNotFoundError(f"maps file not found: {path}")
    with h5py.File(path, "r") as f:
        if "directions" not in f:
            raise KeyError(f"{path}: no /directions dataset")
        directions = f["directions"][()]
        fovs = {
            name: {"fov_arcsec": float(g.attrs["fov_arcsec"]), "npix": int(g.attrs["npix"])}
            for name, g in f.items()
            if isinstance(g, h5py.Group) and "fov_arcsec" in g.attrs and "npix" in g.attrs
        }
    return directions, fovs


def light_traces_mass_pcc(
    sigma_map: np.ndarray, f814w_image: np.ndarray, *, scale: str = "log", dynamic_range: float = 1.0e4
) -> float:
    """Pearson correlation of a surface-mass-density map with the F814W image (paper App. C).

    What the paper states (seed 000, App. C): the PCC "between the mass and photometry maps at the F814W
    band" on the three TNG test sets: 0.58, 0.61, 0.65 "respectively" for the listed redshifts (lost in the
    seed's text; z = 0.2, 0.5, 1.0 per config/paper.yaml), Σ the total (baryons + DM) map. It names no field
    of view, pixel selection, masking or scale. The maps the paper's networks see are log-transformed, then
    shifted and scaled (App. B), and Pearson r is invariant to the shift and scale, so the default here is
    the log transform. Remaining
    assumptions: every pixel of the two (H, W) maps enters (no masking); with ``scale="log"`` each map is
    clipped from below at its maximum / ``dynamic_range`` (so sky pixels at or below zero count at the floor)
    and log10-transformed; the field of view is the caller's (the workflow's photometry dataset uses
    ``fov225``). ``scale="linear"`` correlates the raw values. A floor at the sky noise instead of
    max / 1e4 changes the default synthetic clusters' medians by <= 0.02 (the field galaxies, not the noise,
    dominate the faint pixels). Returns r in [−1, 1] (NaN if a map is constant).
    """
    a = np.asarray(sigma_map, dtype=np.float64)
    b = np.asarray(f814w_image, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"sigma_map and f814w_image must be (H, W) of one shape, got {a.shape}, {b.shape}")
    if scale not in ("log", "linear"):
        raise ValueError(f"scale={scale!r} must be 'log' or 'linear'")
    if not dynamic_range > 1:
        raise ValueError(f"dynamic_range={dynamic_range} must be > 1")
    if scale == "log":
        a, b = (np.log10(np.maximum(m, m.max() / dynamic_range)) if m.max() > 0 else m for m in (a, b))
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")

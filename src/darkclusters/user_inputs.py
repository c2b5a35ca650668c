"""One's own cluster for ``darkclusters reconstruct``: photometry FITS with WCS, a strong-lensing family table
and a weak-lensing catalogue, read onto the prior's grid.

Grid. The prior sees an (N, N) map of pixel side p [arcsec] centred on (RA₀, Dec₀): a gnomonic (TAN)
projection with north up and east left (CDELT1 = −p/3600, CDELT2 = +p/3600), so x grows to the west, y to the
north. Pixel (i, j) has its centre at ((j + ½ − N/2) p, (i + ½ − N/2) p) from the centre, the convention of
the truth maps and observation files ([row = y, col = x], origin lower).

Photometry. One FITS image per band (``F125W=path.fits``), a 2-d celestial WCS in the header of the first HDU
with data. Units: ``BUNIT`` Jy (per pixel) or a ``PHOTFNU`` keyword [Jy s e⁻¹] that converts e⁻ s⁻¹ to Jy.
Each band is resampled onto the grid by bilinear interpolation of the surface brightness at the grid pixel
centres, times the ratio of pixel areas (flux per pixel is conserved for smooth images); a band must cover the
whole field. On a band already on the grid the interpolation is exact.

Strong lensing (CSV, one row per image; header names case-insensitive):
``family`` (any label), ``image`` (any label), ``RA``, ``Dec`` [deg], ``z_s`` (the family's source redshift,
equal on all its rows). A family needs two or more images.

Weak lensing (CSV, one row per source): ``RA``, ``Dec`` [deg], ``e1``, ``e2`` (ellipticity components in
the sky frame of the grid: e1 > 0 along x (west–east), e2 > 0 along the diagonals x = y), optional
``sigma_e`` (shape noise per component; default ``--sigma-e``), and either ``z`` (a point redshift) or
photometric-redshift columns ``pz_<z>`` (e.g. ``pz_0.5, pz_1.0, pz_1.5``: p(z) on that redshift grid, any
normalisation), which enter through the mean lensing efficiency ⟨D_ls/D_s⟩ over p(z). Sources at or in front
of the lens carry no shear and are dropped by the likelihood.

Every malformed entry raises :class:`InputError` naming the file, the column and the (1-based, header = row
1) row.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.cosmology import FLRW
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from scipy import ndimage

from darkclusters.cosmology import distance_ratio, sigma_crit_msun_kpc2
from darkclusters.reconstruct import ClusterObservations

__all__ = [
    "InputError",
    "grid_wcs",
    "read_band_images",
    "read_strong_table",
    "read_weak_table",
    "reconstruct_user_cluster",
    "sky_to_grid_arcsec",
    "user_cluster",
]

_PZ = re.compile(r"^pz_([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)$")


class InputError(ValueError):
    """A user input file is malformed; the message names the file, column and row."""


def grid_wcs(ra_deg: float, dec_deg: float, npix: int, pixel_arcsec: float) -> WCS:
    """The TAN WCS of the prior's (npix, npix) grid of pixel side pixel_arcsec centred on (RA, Dec) [deg]."""
    if not (0.0 <= ra_deg < 360.0 and -90.0 <= dec_deg <= 90.0):
        raise InputError(f"centre RA={ra_deg}, Dec={dec_deg} [deg] out of range (0 ≤ RA < 360, |Dec| ≤ 90)")
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra_deg, dec_deg]
    wcs.wcs.crpix = [npix / 2 + 0.5, npix / 2 + 0.5]  # FITS pixels are 1-based: the field centre
    wcs.wcs.cdelt = [-pixel_arcsec / 3600.0, pixel_arcsec / 3600.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    return wcs


def sky_to_grid_arcsec(wcs: WCS, ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) [arcsec] from the field centre of sky positions [deg] on the grid of :func:`grid_wcs`."""
    px, py = wcs.all_world2pix(np.asarray(ra_deg, float), np.asarray(dec_deg, float), 0)
    npix_x, npix_y = 2 * (wcs.wcs.crpix[0] - 0.5), 2 * (wcs.wcs.crpix[1] - 0.5)
    pixel = abs(wcs.wcs.cdelt[1]) * 3600.0
    return (px + 0.5 - npix_x / 2) * pixel, (py + 0.5 - npix_y / 2) * pixel


def _image_hdu(path: Path) -> tuple[np.ndarray, fits.Header]:
    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.data is not None and hdu.data.ndim >= 2:
                    return np.asarray(hdu.data, dtype=np.float64), hdu.header.copy()
    except OSError as err:
        raise InputError(f"{path}: not a readable FITS file ({err})") from err
    raise InputError(f"{path}: no HDU with a 2-d image")


def _jy_per_unit(path: Path, header: fits.Header) -> float:
    unit = str(header.get("BUNIT", "")).strip().lower().replace(" ", "")
    if unit in ("jy", "jy/pix", "jy/pixel", "jyperpixel"):
        return 1.0
    if "PHOTFNU" in header:
        return float(header["PHOTFNU"])
    raise InputError(
        f"{path}: unknown image units (BUNIT={header.get('BUNIT')!r}, no PHOTFNU): give BUNIT = 'Jy' "
        "(per pixel) or a PHOTFNU keyword [Jy s/e-] for images in e-/s"
    )


def read_band_images(paths: Mapping[str, str | os.PathLike], bands: Sequence[str], wcs: WCS) -> np.ndarray:
    """(len(bands), N, N) images [Jy per pixel] on the grid of ``wcs`` from one FITS file per band.

    paths: {band: FITS path}; bands: the order the model wants (its condition channels). InputError for a
    missing band, a header without a celestial WCS, unknown units, or a band that does not cover the field.
    """
    missing = [b for b in bands if b not in paths]
    if missing:
        raise InputError(f"photometry: no image for bands {missing} (the model needs {list(bands)})")
    npix = round(2 * (wcs.wcs.crpix[0] - 0.5))
    rows, cols = np.mgrid[0:npix, 0:npix].astype(np.float64)
    ra, dec = wcs.all_pix2world(cols, rows, 0)
    pixel_area = (abs(wcs.wcs.cdelt[0]) * 3600.0) ** 2
    out = []
    for band in bands:
        path = Path(paths[band])
        if not path.is_file():
            raise InputError(f"{path}: no such file (band {band})")
        data, header = _image_hdu(path)
        data = data.reshape(data.shape[-2:]) if data.ndim > 2 and np.prod(data.shape[:-2]) == 1 else data
        if data.ndim != 2:
            raise InputError(f"{path}: image of shape {data.shape} is not 2-d")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            band_wcs = WCS(header, naxis=2)
        if not band_wcs.has_celestial:
            raise InputError(f"{path}: the header has no celestial WCS (CTYPE1/2 RA---TAN, DEC--TAN, ...)")
        px, py = band_wcs.all_world2pix(ra, dec, 0)
        inside = (px >= -0.5) & (px <= data.shape[1] - 0.5) & (py >= -0.5) & (py <= data.shape[0] - 0.5)
        if not inside.all():
            raise InputError(
                f"{path}: band {band} covers only {100 * inside.mean():.1f} % of the requested field "
                "(its WCS does not match the other bands or the centre): every band must cover the field"
            )
        scale = np.abs(np.linalg.det(band_wcs.celestial.pixel_scale_matrix)) * 3600.0**2  # [arcsec²]
        sampled = ndimage.map_coordinates(data, [py, px], order=1, mode="nearest")
        if not np.all(np.isfinite(sampled)):
            raise InputError(f"{path}: band {band} has NaN or infinite pixels inside the requested field")
        out.append(sampled * _jy_per_unit(path, header) * pixel_area / scale)
    return np.stack(out)


def _read_table(path: str | os.PathLike, required: Sequence[str], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file ({what})")
    try:
        table = pd.read_csv(path, dtype=str, skipinitialspace=True, comment="#", keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a CSV table ({what}): {err}") from err
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing} ({what}; has {list(table.columns)})")
    if table.empty:
        raise InputError(f"{path}: no rows ({what})")
    return table


def _numeric(path: str | os.PathLike, table: pd.DataFrame, column: str) -> np.ndarray:
    """Column as float64; InputError naming the row (1-based; the header is row 1) of a non-number or NaN."""
    values = pd.to_numeric(table[column].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        k = int(bad[0])
        raise InputError(
            f"{path}: column {column!r}, row {k + 2}: {table[column].iloc[k]!r} is not a finite number"
        )
    return values


def _sky(path: str | os.PathLike, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ra, dec = _numeric(path, table, "ra"), _numeric(path, table, "dec")
    for column, values, ok in (("ra", ra, (ra >= 0) & (ra < 360)), ("dec", dec, np.abs(dec) <= 90)):
        bad = np.flatnonzero(~ok)
        if bad.size:
            k = int(bad[0])
            raise InputError(
                f"{path}: column {column!r}, row {k + 2}: {values[k]} [deg] out of range "
                "(0 ≤ RA < 360, −90 ≤ Dec ≤ 90)"
            )
    return ra, dec


def _check_redshift(path: str | os.PathLike, column: str, z: np.ndarray) -> None:
    bad = np.flatnonzero(z < 0)
    if bad.size:
        raise InputError(f"{path}: column {column!r}, row {int(bad[0]) + 2}: redshift {z[bad[0]]} < 0")


def read_strong_table(
    path: str | os.PathLike,
    wcs: WCS,
    *,
    z_lens: float,
    z_ref: float,
    cosmology: FLRW,
) -> dict[str, dict[str, np.ndarray]]:
    """The strong-lensing catalogue ({"images", "families"}, as the likelihood reads it) of a family table.

    Positions become (x, y) [arcsec] on the grid of ``wcs``; each family's deflection_scale is
    (D_ls/D_s)(z_s) / (D_ls/D_s)(z_ref). InputError for a missing column, a non-numeric or NaN entry, RA/Dec
    out of range, a family with one image, a family with different z_s on its rows, or z_s ≤ z_lens.
    """
    table = _read_table(path, ("family", "image", "ra", "dec", "z_s"), "strong-lensing family table")
    ra, dec = _sky(path, table)
    z_s = _numeric(path, table, "z_s")
    _check_redshift(path, "z_s", z_s)
    labels = table["family"].fillna("").str.strip()
    empty = np.flatnonzero(labels.eq("").to_numpy())
    if empty.size:
        raise InputError(f"{path}: column 'family', row {int(empty[0]) + 2}: empty family label")
    names = list(dict.fromkeys(labels))  # first-appearance order
    family_id = np.array([names.index(f) for f in labels], dtype=np.int64)
    counts = np.bincount(family_id, minlength=len(names))
    zf = np.empty(len(names))
    for k, name in enumerate(names):
        rows = np.flatnonzero(family_id == k)
        if counts[k] < 2:
            raise InputError(
                f"{path}: column 'family', row {int(rows[0]) + 2}: family {name!r} has a single image "
                "(a family constrains the mass only with two or more images)"
            )
        if not np.allclose(z_s[rows], z_s[rows[0]], rtol=1e-6, atol=0):
            raise InputError(
                f"{path}: column 'z_s', row {int(rows[1]) + 2}: family {name!r} has different z_s on its "
                f"rows ({sorted(set(z_s[rows].tolist()))})"
            )
        zf[k] = z_s[rows[0]]
        if zf[k] <= z_lens:
            raise InputError(
                f"{path}: column 'z_s', row {int(rows[0]) + 2}: family {name!r} at z_s = {zf[k]} is not "
                f"behind the lens (z_lens = {z_lens})"
            )
    x, y = sky_to_grid_arcsec(wcs, ra, dec)
    scale = np.asarray(distance_ratio(cosmology, z_lens, zf)) / distance_ratio(cosmology, z_lens, z_ref)
    return {
        "images": {"family_id": family_id, "x_arcsec": x, "y_arcsec": y},
        "families": {
            "family_id": np.arange(len(names), dtype=np.int64),
            "z_source": zf,
            "deflection_scale": np.asarray(scale, dtype=np.float64),
            "n_images": counts.astype(np.int64),
        },
    }


def read_weak_table(
    path: str | os.PathLike,
    wcs: WCS,
    *,
    z_lens: float,
    z_ref: float,
    cosmology: FLRW,
    sigma_e: float = 0.26,
) -> dict[str, np.ndarray]:
    """The weak-lensing catalogue (x_arcsec, y_arcsec, e1, e2, sigma_e, ratio_to_ref, z_s) of a source table.

    ratio_to_ref = (D_ls/D_s)(z) / (D_ls/D_s)(z_ref), averaged over p(z) for ``pz_<z>`` columns (0 in front of
    the lens). sigma_e: the shape noise per component where the table has no ``sigma_e`` column. InputError
    for a missing column (e1, e2, RA, Dec, and z or pz_*), a non-numeric or NaN entry, RA/Dec out of range,
    |e| ≥ 1, sigma_e ≤ 0, a negative redshift or p(z), or a p(z) row that sums to zero.
    """
    table = _read_table(path, ("ra", "dec", "e1", "e2"), "weak-lensing catalogue")
    ra, dec = _sky(path, table)
    e1, e2 = _numeric(path, table, "e1"), _numeric(path, table, "e2")
    bad = np.flatnonzero(np.hypot(e1, e2) >= 1.0)
    if bad.size:
        raise InputError(
            f"{path}: columns 'e1', 'e2', row {int(bad[0]) + 2}: |e| = {np.hypot(e1, e2)[bad[0]]} ≥ 1"
        )
    if "sigma_e" in table.columns:
        sig = _numeric(path, table, "sigma_e")
    else:
        sig = np.full(ra.shape, float(sigma_e))
    bad = np.flatnonzero(sig <= 0)
    if bad.size:
        raise InputError(f"{path}: column 'sigma_e', row {int(bad[0]) + 2}: {sig[bad[0]]} must be > 0")
    ref = distance_ratio(cosmology, z_lens, z_ref)

    def efficiency(z: np.ndarray) -> np.ndarray:
        return (
            np.where(z > z_lens, np.asarray(distance_ratio(cosmology, z_lens, np.maximum(z, 0.0))), 0.0) / ref
        )

    pz_cols = [c for c in table.columns if _PZ.match(c)]
    if "z" in table.columns:
        z = _numeric(path, table, "z")
        _check_redshift(path, "z", z)
        ratio = efficiency(z)
    elif pz_cols:
        grid = np.array([float(_PZ.match(c).group(1)) for c in pz_cols])
        p = np.stack([_numeric(path, table, c) for c in pz_cols], axis=1)  # (N, K)
        for k, c in enumerate(pz_cols):
            neg = np.flatnonzero(p[:, k] < 0)
            if neg.size:
                raise InputError(f"{path}: column {c!r}, row {int(neg[0]) + 2}: p(z) = {p[neg[0], k]} < 0")
        total = p.sum(axis=1)
        zero = np.flatnonzero(total <= 0)
        if zero.size:
            raise InputError(f"{path}: columns {pz_cols}, row {int(zero[0]) + 2}: p(z) sums to zero")
        ratio = (p * efficiency(grid)[None]).sum(axis=1) / total
        z = (p * grid[None]).sum(axis=1) / total  # the mean redshift, recorded only
    else:
        raise InputError(
            f"{path}: missing column 'z' or photometric-redshift columns 'pz_<z>' (weak-lensing catalogue; "
            f"has {list(table.columns)})"
        )
    x, y = sky_to_grid_arcsec(wcs, ra, dec)
    return {
        "x_arcsec": x,
        "y_arcsec": y,
        "e1": e1,
        "e2": e2,
        "sigma_e": sig,
        "ratio_to_ref": np.asarray(ratio, dtype=np.float64),
        "z_s": z,
    }


def user_cluster(
    *,
    images: Mapping[str, str | os.PathLike],
    bands: Sequence[str],
    ra_deg: float,
    dec_deg: float,
    npix: int,
    pixel_arcsec: float,
    z_lens: float,
    z_ref: float,
    cosmology: FLRW,
    strong_csv: str | os.PathLike | None = None,
    weak_csv: str | os.PathLike | None = None,
    sigma_e: float = 0.26,
) -> ClusterObservations:
    """One view (V = 1) of one's own cluster on the prior's grid, ready for ``reconstruct.sample_cluster``."""
    if not (z_lens > 0 and z_ref > z_lens):
        raise InputError(f"need 0 < z_lens < z_ref; got z_lens={z_lens}, z_ref={z_ref}")
    if not (pixel_arcsec > 0 and math.isfinite(pixel_arcsec)):
        raise InputError(f"pixel_arcsec={pixel_arcsec} must be a positive number")
    wcs = grid_wcs(ra_deg, dec_deg, npix, pixel_arcsec)
    kw: dict[str, Any] = {"z_lens": z_lens, "z_ref": z_ref, "cosmology": cosmology}
    return ClusterObservations(
        images=read_band_images(images, bands, wcs)[None],
        pixel_arcsec=float(pixel_arcsec),
        z_lens=float(z_lens),
        z_ref=float(z_ref),
        sigma_crit=float(sigma_crit_msun_kpc2(cosmology, z_lens, z_ref)),
        strong=None if strong_csv is None else [read_strong_table(strong_csv, wcs, **kw)],
        weak=None if weak_csv is None else [read_weak_table(weak_csv, wcs, sigma_e=sigma_e, **kw)],
    )


def reconstruct_user_cluster(
    *,
    model_pt: str | os.PathLike,
    images: Mapping[str, str | os.PathLike],
    ra_deg: float,
    dec_deg: float,
    pixel_arcsec: float,
    z_lens: float,
    out_path: str | os.PathLike,
    recon_cfg: Mapping[str, Any],
    seed: int,
    strong_csv: str | os.PathLike | None = None,
    weak_csv: str | os.PathLike | None = None,
    z_ref: float = 2.0,
    cosmology: FLRW | None = None,
    sigma_e: float = 0.26,
    tuning_path: str | os.PathLike | None = None,
    device: str = "auto",
) -> Path:
    """Reconstruct one's own cluster: the output file of rule ``reconstruct`` with one view.

    The inputs are P plus SL and/or WL when their tables are given. pixel_arcsec: the prior's pixel side
    [arcsec] (its training dataset's fov_arcsec / npix); the grid size is the network's resolution.
    recon_cfg: a ``reconstruction`` config section (n_samples, daps, weights, conditional_steps,
    save_samples); tuning_path: a tune_sampler file whose chosen values override it. cosmology: default
    the TNG cosmology (h 0.6774, Ωm 0.3089, Ωb 0.0486).
    """
    from darkclusters.cosmology import flat_lcdm
    from darkclusters.diffusion.inference import accelerated_denoiser
    from darkclusters.diffusion.train import load_denoiser, load_model_info
    from darkclusters.io import provenance
    from darkclusters.reconstruct import _device, apply_tuning, sample_cluster, write_posterior

    inputs = "P" + ("+SL" if strong_csv is not None else "") + ("+WL" if weak_csv is not None else "")
    cosmology = cosmology or flat_lcdm(0.6774, 0.3089, 0.0486)
    info = load_model_info(model_pt)
    model_cfg = info["config"]["model"]
    not_images = [c for c in model_cfg["condition_channels"] if not c.startswith("image:")]
    if not_images:
        raise InputError(f"{model_pt}: the prior is conditioned on {not_images}, not on photometry images")
    bands = [c.split(":", 1)[1] for c in model_cfg["condition_channels"]]
    npix = int(model_cfg["backbone_kwargs"]["img_resolution"])
    data = user_cluster(
        images=images,
        bands=bands,
        ra_deg=ra_deg,
        dec_deg=dec_deg,
        npix=npix,
        pixel_arcsec=pixel_arcsec,
        z_lens=z_lens,
        z_ref=z_ref,
        cosmology=cosmology,
        strong_csv=strong_csv,
        weak_csv=weak_csv,
        sigma_e=sigma_e,
    )
    cfg = apply_tuning(recon_cfg, tuning_path)
    dev = _device(device)
    samples, nfe, seconds = sample_cluster(
        accelerated_denoiser(load_denoiser(model_pt, dev), dev, cfg.get("accelerate", {})),
        info["normalisation"],
        model_cfg,
        data,
        inputs=inputs,
        recon_cfg=cfg,
        seed=seed,
        device=dev,
    )
    files = [model_pt, *images.values(), *(p for p in (strong_csv, weak_csv, tuning_path) if p is not None)]
    attrs = {
        "method": inputs,
        "fov": f"user ({npix} x {pixel_arcsec:.6g} arcsec)",
        "weak_regime": "user",
        "n_samples": samples.shape[1],
        "n_views": 1,
        "nfe_per_sample": nfe,
        "timing_seconds": seconds,
        "pixel_arcsec": data.pixel_arcsec,
        "centre_ra_deg": float(ra_deg),
        "centre_dec_deg": float(dec_deg),
        **data.lens_attrs,
        **provenance(
            cfg=cfg, seed=seed, method=inputs, device_type=dev.type, inputs=[os.fspath(p) for p in files]
        ),
    }
    return write_posterior(
        out_path,
        samples,
        attrs=attrs,
        save_samples=bool(cfg.get("save_samples", False)),
        pixel_arcsec=data.pixel_arcsec,
    )

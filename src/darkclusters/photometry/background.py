"""Background light: synthetic field galaxies (default) or random cutouts of real HST mosaics.

The paper (App. A.1) adds "background light using publicly available mosaics from other HST captures". With
mosaics given in the config, :func:`fits_background` does the same; otherwise :func:`synthetic_background`
draws field galaxies (:func:`field_galaxy_catalog`) and renders them:

* F814W number counts dN/dm [deg⁻² mag⁻¹] (:func:`f814w_counts_per_deg2_per_mag`), log-linear between the
  published values of :data:`F814W_COUNTS_MAG` / :data:`F814W_COUNTS_LOG10`: the COSMOS2020 i-band counts
  (Weaver et al. 2022, ApJS 258, 11, Table 2, Farmer catalogue; 2 deg², so the bright end is not dominated
  by Poisson noise as in the small HST deep fields) at 19.25–26.25 AB, where that survey is complete;
  brighter, the slope of its first bins (0.43 dex/mag) continued; fainter, the HST F814W slope 0.26 dex/mag
  of the Hubble Deep Field North (Marín-Franch & Aparicio 2003, ApJ 585, 714). For comparison, the CFDF
  finds 0.35 ± 0.02 dex/mag at 20 < I_AB < 24 (McCracken et al. 2001, A&A 376, 756), the table 0.36. HSC i
  and F814W differ by < 0.1 mag for galaxies; that offset is ignored. The number in the field is Poisson
  with mean Ω ∫ dN/dm dm over [mag_min_f814w, mag_max_f814w], magnitudes by the inverse CDF of the
  tabulated counts. Check (tests): the summed light of these galaxies reproduces the extragalactic
  background light resolved by galaxy counts (Driver et al. 2016, ApJ 827, 108, Table 2: νI_ν = 7.47,
  9.55, 10.15, 10.38 nW m⁻² sr⁻¹ in r, i, z, J) within 7 % in F606W, F814W and F125W;
* colours F606W − F814W and F814W − F125W Gaussian about a mean linear in the F814W magnitude: bright field
  galaxies are mostly low-redshift, evolved and red, faint ones star-forming and blue (the trend of the
  median (V − I)_AB with I_AB in deep fields, e.g. the CFDF, McCracken et al. 2001, Fig. 11). The defaults
  (F606W − F814W = 0.5 at 24, −0.08 per mag: 0.9 at 19, 0.34 at 26; F814W − F125W = 0.45 at 24, −0.05 per
  mag) are assumptions of this model, checked through the per-band background light above, so the F606W and
  F125W counts follow from the F814W counts;
* Sérsic profiles: n = 1 (fraction ``disk_fraction``) or 4, half-light semi-major axis
  log10 R_e = log10 R_ref + k (m − m_ref) + N(0, scatter) (defaults ≈ 0.3″ at I_AB = 24, 0.1 dex smaller per
  magnitude fainter: the decline of HST half-light radii with magnitude, e.g. Roche et al. 1996),
  q ~ U(0.2, 1), θ ~ U(0, π), uniform positions; each profile is cut at ``truncate_r_eff`` × R_e and
  renormalised, so each galaxy's flux lands on the map exactly (unless it straddles the edge).

Galaxies are rendered into stamps in groups of equal stamp size, vectorised over galaxies
(:func:`render_sersic_sources`). They are not lensed by the cluster (the lensing stage owns lensed sources).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from darkclusters.photometry.filters import HST_BANDS, abmag_to_jy
from darkclusters.profiles.sersic import elliptical_radius, ellipticity_from_axis_ratio, sersic_radial

__all__ = [
    "F814W_COUNTS_LOG10",
    "F814W_COUNTS_MAG",
    "f814w_counts_per_deg2_per_mag",
    "field_galaxy_catalog",
    "fits_background",
    "render_sersic_sources",
    "synthetic_background",
]

_DEG2_PER_ARCSEC2 = 1.0 / 3600.0**2
_MAX_SUBPIXELS_PER_BATCH = 4_000_000


#: Bin centres [AB mag] of the tabulated F814W differential counts (module docstring).
F814W_COUNTS_MAG = np.arange(19.25, 26.3, 0.5)
#: log10 dN/dm [deg⁻² mag⁻¹] at F814W_COUNTS_MAG: COSMOS2020 i band (Weaver et al. 2022, Table 2, Farmer).
F814W_COUNTS_LOG10 = np.array(
    [3.01, 3.23, 3.44, 3.64, 3.85, 4.03, 4.21, 4.38, 4.54, 4.71, 4.86, 4.97, 5.08, 5.20, 5.29]
)
_BRIGHT_SLOPE_DEX_PER_MAG = (F814W_COUNTS_LOG10[2] - F814W_COUNTS_LOG10[0]) / 1.0  # first COSMOS bins: 0.43
_FAINT_SLOPE_DEX_PER_MAG = 0.26  # HDF-N F814W, Marín-Franch & Aparicio (2003)
_MAG_GRID_STEP = 0.01  # [mag] grid of the inverse CDF


def f814w_counts_per_deg2_per_mag(mag: np.ndarray | float) -> np.ndarray:
    """Differential F814W galaxy counts dN/dm [deg⁻² mag⁻¹] at AB magnitudes ``mag`` (any shape).

    Log-linear interpolation of :data:`F814W_COUNTS_LOG10`, extended as power laws (module docstring).
    """
    m = np.asarray(mag, dtype=np.float64)
    log_n = np.interp(m, F814W_COUNTS_MAG, F814W_COUNTS_LOG10)
    log_n = np.where(
        m < F814W_COUNTS_MAG[0],
        F814W_COUNTS_LOG10[0] + _BRIGHT_SLOPE_DEX_PER_MAG * (m - F814W_COUNTS_MAG[0]),
        log_n,
    )
    log_n = np.where(
        m > F814W_COUNTS_MAG[-1],
        F814W_COUNTS_LOG10[-1] + _FAINT_SLOPE_DEX_PER_MAG * (m - F814W_COUNTS_MAG[-1]),
        log_n,
    )
    return 10.0**log_n


def field_galaxy_catalog(
    rng: np.random.Generator, area_deg2: float, cfg: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Field galaxies over ``area_deg2`` [deg²] (module docstring), without positions or orientations.

    cfg: the validated ``photometry.background.synthetic`` section. Returns (N,) arrays: ``mag`` (F814W AB),
    ``flux_jy`` (N, 3) in HST_BANDS order [Jy], ``r_eff_arcsec`` [arcsec] and ``n_sersic``.
    """
    m_lo, m_hi = cfg["mag_min_f814w"], cfg["mag_max_f814w"]
    if not m_lo < m_hi:
        raise ValueError(f"mag_min_f814w={m_lo} must be below mag_max_f814w={m_hi}")
    if not area_deg2 >= 0:
        raise ValueError(f"area_deg2={area_deg2} must be >= 0")
    grid = np.linspace(m_lo, m_hi, max(2, int(np.ceil((m_hi - m_lo) / _MAG_GRID_STEP)) + 1))
    dn = cfg["counts_scale"] * f814w_counts_per_deg2_per_mag(grid)
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (dn[1:] + dn[:-1]) * np.diff(grid))])
    n_gal = int(rng.poisson(area_deg2 * cumulative[-1]))
    mag = np.interp(rng.uniform(0.0, cumulative[-1], n_gal), cumulative, grid)
    m_ref = cfg["reference_mag_f814w"]
    c1 = rng.normal(
        cfg["colour_f606w_f814w_mean"] + cfg["colour_f606w_f814w_slope"] * (mag - m_ref),
        cfg["colour_f606w_f814w_std"],
    )
    c2 = rng.normal(
        cfg["colour_f814w_f125w_mean"] + cfg["colour_f814w_f125w_slope"] * (mag - m_ref),
        cfg["colour_f814w_f125w_std"],
    )
    mags = {"F814W": mag, "F606W": mag + c1, "F125W": mag - c2}
    log_r = (
        np.log10(cfg["r_eff_arcsec_at_reference"])
        + cfg["r_eff_slope_dex_per_mag"] * (mag - m_ref)
        + rng.normal(0.0, cfg["r_eff_scatter_dex"], n_gal)
    )
    return {
        "mag": mag,
        "flux_jy": np.stack([abmag_to_jy(mags[b]) for b in HST_BANDS], axis=1).reshape(n_gal, len(HST_BANDS)),
        "r_eff_arcsec": 10.0**log_r,
        "n_sersic": np.where(rng.uniform(size=n_gal) < cfg["disk_fraction"], 1.0, 4.0),
    }


def synthetic_background(
    rng: np.random.Generator, npix: int, pixel_arcsec: float, cfg: Mapping[str, Any], *, oversample: int = 3
) -> tuple[np.ndarray, int]:
    """Field galaxies in the HST bands (module docstring): returns ((3, H, W) Jy per pixel, galaxy count).

    cfg: the validated ``photometry.background.synthetic`` config section. Bands in HST_BANDS order.
    """
    cat = field_galaxy_catalog(rng, (npix * pixel_arcsec) ** 2 * _DEG2_PER_ARCSEC2, cfg)
    n_gal = len(cat["mag"])
    half = npix * pixel_arcsec / 2.0
    x = rng.uniform(-half, half, n_gal)
    y = rng.uniform(-half, half, n_gal)
    q = rng.uniform(0.2, 1.0, n_gal)
    theta = rng.uniform(0.0, np.pi, n_gal)
    image = render_sersic_sources(
        npix,
        pixel_arcsec,
        x_arcsec=x,
        y_arcsec=y,
        flux=cat["flux_jy"],
        r_eff_arcsec=cat["r_eff_arcsec"],
        n=cat["n_sersic"],
        q=q,
        theta_rad=theta,
        truncate_r_eff=cfg["truncate_r_eff"],
        oversample=oversample,
    )
    return image, n_gal


def render_sersic_sources(
    npix: int,
    pixel_arcsec: float,
    *,
    x_arcsec: np.ndarray,
    y_arcsec: np.ndarray,
    flux: np.ndarray,
    r_eff_arcsec: np.ndarray,
    n: np.ndarray,
    q: np.ndarray,
    theta_rad: np.ndarray,
    truncate_r_eff: float = 8.0,
    oversample: int = 3,
) -> np.ndarray:
    """Sum of truncated, renormalised Sérsic sources (profile of :mod:`darkclusters.profiles.sersic`).

    x_arcsec, y_arcsec: (N,) centres [arcsec], map centre at 0. flux: (N, B) total flux per band.
    r_eff_arcsec, n, q, theta_rad: (N,) shapes. Each source is drawn in a square stamp around its nearest
    pixel reaching ``truncate_r_eff`` × R_e, averaged over oversample² sub-pixels, and scaled so the stamp
    sums to the source's flux. Returns (B, H, W) flux per pixel.
    """
    flux = np.asarray(flux, dtype=np.float64)
    x, y, r_eff, n, q, theta = (
        np.asarray(a, dtype=np.float64) for a in (x_arcsec, y_arcsec, r_eff_arcsec, n, q, theta_rad)
    )
    count = len(x)
    if flux.ndim != 2 or len(flux) != count or any(len(a) != count for a in (y, r_eff, n, q, theta)):
        raise ValueError("x, y, r_eff, n, q, theta must be (N,) and flux (N, B)")
    if count and not (np.all(r_eff > 0) and np.all(n > 0) and np.all((q > 0) & (q <= 1))):
        raise ValueError("need r_eff_arcsec > 0, n > 0 and 0 < q <= 1 for every source")
    image = np.zeros((flux.shape[1], npix, npix))
    if count == 0:
        return image
    col = np.floor(x / pixel_arcsec + npix / 2).astype(np.int64)
    row = np.floor(y / pixel_arcsec + npix / 2).astype(np.int64)
    half = np.ceil(truncate_r_eff * r_eff / pixel_arcsec).astype(np.int64) + 1
    half = np.minimum(half, npix)
    for h in np.unique(half):
        members = np.flatnonzero(half == h)
        size = 2 * h + 1
        per_source = (size * oversample) ** 2
        batch = max(1, _MAX_SUBPIXELS_PER_BATCH // per_source)
        for start in range(0, len(members), batch):
            idx = members[start : start + batch]
            stamps = _stamps(
                x[idx] - (col[idx] + 0.5 - npix / 2) * pixel_arcsec,
                y[idx] - (row[idx] + 0.5 - npix / 2) * pixel_arcsec,
                r_eff[idx], n[idx], q[idx], theta[idx], int(h), pixel_arcsec, truncate_r_eff, oversample,
            )  # fmt: skip
            _scatter(image, stamps, flux[idx], row[idx], col[idx], int(h))
    return image


def _stamps(
    dx: np.ndarray,
    dy: np.ndarray,
    r_eff: np.ndarray,
    n: np.ndarray,
    q: np.ndarray,
    theta: np.ndarray,
    half: int,
    pixel_arcsec: float,
    truncate_r_eff: float,
    oversample: int,
) -> np.ndarray:
    """Unit-sum stamps (M, S, S), S = 2·half + 1, of sources offset (dx, dy) [arcsec] from their centre."""
    size = 2 * half + 1
    t = ((np.arange(size * oversample) + 0.5) / oversample - size / 2) * pixel_arcsec
    xs = t[None, None, :] - dx[:, None, None]
    ys = t[None, :, None] - dy[:, None, None]
    e1, e2 = ellipticity_from_axis_ratio(q[:, None, None], theta[:, None, None])
    radius = elliptical_radius(xs, ys, e1=e1, e2=e2)  # circularised: R ≤ t r_circ ⇔ semi-major R ≤ t R_e
    r_circ = (np.sqrt(q) * r_eff)[:, None, None]
    profile = sersic_radial(radius, amp=1.0, r_eff=r_circ, n=n[:, None, None])
    values = np.where(radius <= truncate_r_eff * r_circ, profile, 0.0)
    stamps = values.reshape(len(dx), size, oversample, size, oversample).sum(axis=(2, 4))
    total = stamps.sum(axis=(1, 2))
    empty = total <= 0  # a source far smaller than a sub-pixel: all its light in the central pixel
    stamps[empty, half, half] = 1.0
    total[empty] = 1.0
    return stamps / total[:, None, None]


def _scatter(
    image: np.ndarray, stamps: np.ndarray, flux: np.ndarray, row: np.ndarray, col: np.ndarray, half: int
) -> None:
    """Add stamps (M, S, S) × flux (M, B) centred on pixels (row, col) to image (B, H, W), clipping edges."""
    npix = image.shape[-1]
    offsets = np.arange(-half, half + 1)
    rows = row[:, None, None] + offsets[None, :, None]
    cols = col[:, None, None] + offsets[None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)
    inside = (rows >= 0) & (rows < npix) & (cols >= 0) & (cols < npix)
    index = (rows * npix + cols)[inside]
    for b in range(image.shape[0]):
        weights = (stamps * flux[:, b, None, None])[inside]
        image[b] += np.bincount(index, weights=weights, minlength=npix * npix).reshape(npix, npix)


def fits_background(
    rng: np.random.Generator,
    npix: int,
    pixel_arcsec: float,
    paths: Sequence[str | os.PathLike],
    jy_per_unit: Sequence[float | None],
    *,
    max_tries: int = 50,
) -> np.ndarray:
    """A random cutout of real mosaics, one per band (HST_BANDS order), resampled to the map: (B, H, W) Jy.

    paths: FITS files with a celestial WCS, north up (no rotation assumed). jy_per_unit: Jy per pixel value
    per band, or None to read it from the header (PHOTFNU; PHOTFLAM·PHOTPLAM²·3.33564e4; or BUNIT 'Jy').
    The cutout centre is drawn uniformly over the first mosaic's pixels and mapped to the others by their WCS;
    positions where any band's cutout leaves its mosaic or holds NaN or zero-weight (exact 0) pixels are
    redrawn (up to max_tries, else ValueError). Resampling: skimage ``resize`` with anti-aliasing of the
    surface brightness, times (p_out / p_in)², so flux is conserved to the interpolation's accuracy.
    """
    from astropy.io import fits
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales
    from skimage.transform import resize

    if len(paths) != len(jy_per_unit) or not paths:
        raise ValueError("paths and jy_per_unit must be non-empty and of equal length (one per band)")
    mosaics = []
    for path, unit in zip(paths, jy_per_unit, strict=True):
        with fits.open(path) as hdul:
            hdu = next((h for h in hdul if h.data is not None and h.data.ndim == 2), None)
            if hdu is None:
                raise ValueError(f"{path}: no 2-D image HDU")
            wcs = WCS(hdu.header).celestial
            scale_arcsec = float(np.mean(proj_plane_pixel_scales(wcs))) * 3600.0
            data = np.asarray(hdu.data, dtype=np.float64)
            mosaics.append((data, wcs, scale_arcsec, _jy_per_unit(hdu, unit)))
    data0, wcs0 = mosaics[0][:2]
    for _ in range(max_tries):
        px, py = rng.uniform(0, data0.shape[1]), rng.uniform(0, data0.shape[0])
        sky = wcs0.pixel_to_world(px, py)
        out = []
        for data, wcs, scale, unit in mosaics:
            cx, cy = wcs.world_to_pixel(sky)
            side = npix * pixel_arcsec / scale  # cutout side [native pixels]
            x0, y0 = int(np.round(float(cx) - side / 2)), int(np.round(float(cy) - side / 2))
            m = max(1, int(np.round(side)))
            if x0 < 0 or y0 < 0 or x0 + m > data.shape[1] or y0 + m > data.shape[0]:
                break
            cut = data[y0 : y0 + m, x0 : x0 + m]
            if not np.all(np.isfinite(cut)) or np.mean(cut == 0) > 0.01:
                break
            sb = resize(cut, (npix, npix), order=1, anti_aliasing=m > npix, preserve_range=True)
            out.append(sb * (pixel_arcsec / scale) ** 2 * unit)
        else:
            return np.stack(out)
    raise ValueError(f"no cutout of {npix * pixel_arcsec:.1f}″ fits inside all mosaics in {max_tries} tries")


def _jy_per_unit(hdu: Any, override: float | None) -> float:
    """Jy per pixel value of an HST image HDU (STScI: PHOTFNU [Jy s/e⁻]; f_ν = 3.33564e4 λ² f_λ)."""
    if override is not None:
        return float(override)
    header = hdu.header
    if "PHOTFNU" in header:
        return float(header["PHOTFNU"])
    if "PHOTFLAM" in header and "PHOTPLAM" in header:
        return 3.33564095e4 * float(header["PHOTFLAM"]) * float(header["PHOTPLAM"]) ** 2
    if str(header.get("BUNIT", "")).strip().lower() == "jy":
        return 1.0
    raise ValueError(
        "cannot tell the flux unit of a FITS background (no PHOTFNU, PHOTFLAM/PHOTPLAM or BUNIT='Jy'); set "
        "photometry.background.fits_jy_per_unit"
    )

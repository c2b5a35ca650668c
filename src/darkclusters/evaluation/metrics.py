"""Map-level scores of a reconstructed surface-mass-density map against its ground truth.

Implements the metrics of the DarkClusters paper (seed 000, §6.3 and Table 2): PSNR, SSIM, Pearson correlation
(PCC) and the RMSE at held-out points ("points without photometry or lensing signals"), plus the total mass in
apertures and radial profiles of Hsu et al. (seed 002, §4.2).

Conventions: maps are ``(..., H, W)`` indexed ``[row = y, col = x]``; pixel (i, j) has its centre at
x_j = (j + ½ − W/2)·p, y_i = (i + ½ − H/2)·p (``darkclusters.projection.geometry``). Σ is in Msun/kpc²
(physical); pixel sides are in kpc for masses and arcsec for the held-out mask.

Data range. PSNR and SSIM depend on the data range L. The paper's evaluator applies both to *unnormalised* Σ
with one fixed range for the whole data set (about 2e-6…6e-2 in its map units, i.e. L ≈ 6e-2), so every map
and method is scored against the same L. Here ``data_range`` is an explicit argument in the maps' unit
(Msun/kpc²): pass the data-set range, :func:`dataset_data_range` of the truth maps, to score like the paper.
The default ``None`` uses the truth map's own max − min, map by map (the usual per-image convention); PSNR
values of the two choices differ by 20·log10(L_dataset / L_map).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

__all__ = [
    "aperture_mass",
    "dataset_data_range",
    "heldout_mask",
    "heldout_rmse",
    "map_scores",
    "pearson",
    "psnr",
    "radial_profile",
    "robust_background",
    "ssim",
    "total_mass",
]


def _pair(estimate: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimate, dtype=np.float64)
    tru = np.asarray(truth, dtype=np.float64)
    if est.shape != tru.shape:
        raise ValueError(f"estimate shape {est.shape} != truth shape {tru.shape}")
    if est.ndim < 2:
        raise ValueError(f"maps must be (..., H, W); got shape {est.shape}")
    return est, tru


def _data_range(truth: np.ndarray, data_range: float | None) -> np.ndarray:
    """L per map, shape ``truth.shape[:-2]``: the given constant or each truth map's max − min."""
    if data_range is None:
        return truth.max(axis=(-2, -1)) - truth.min(axis=(-2, -1))
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range={data_range} must be a positive finite number")
    return np.full(truth.shape[:-2], float(data_range))


def dataset_data_range(truth_maps: Iterable[np.ndarray]) -> float:
    """The data-set range L = max − min over all truth maps (the paper's fixed PSNR/SSIM range) [map unit]."""
    lo, hi = np.inf, -np.inf
    for m in truth_maps:
        m = np.asarray(m)
        lo, hi = min(lo, float(m.min())), max(hi, float(m.max()))
    if not np.isfinite(hi - lo) or hi <= lo:
        raise ValueError(f"truth_maps span [{lo}, {hi}]: need at least one map with a positive range")
    return hi - lo


def psnr(estimate: np.ndarray, truth: np.ndarray, *, data_range: float | None = None) -> np.ndarray | float:
    """Peak signal-to-noise ratio PSNR = 10·log10(L² / MSE) in dB, per map.

    estimate, truth: ``(..., H, W)`` in the same unit (Σ in Msun/kpc²). data_range: L in that unit (see the
    module docstring; ``None`` → truth max − min per map). Returns shape ``(...)`` (a float for one map);
    identical maps give +inf.
    """
    est, tru = _pair(estimate, truth)
    mse = np.mean((est - tru) ** 2, axis=(-2, -1))
    big = _data_range(tru, data_range)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(big**2 / mse)
    return float(out) if out.ndim == 0 else out


def ssim(
    estimate: np.ndarray,
    truth: np.ndarray,
    *,
    data_range: float | None = None,
    win_size: int = 7,
    gaussian_weights: bool = False,
) -> np.ndarray | float:
    """Structural similarity (Wang et al. 2004) per map, by ``skimage.metrics.structural_similarity``.

    SSIM = mean over windows of (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), C1 = (0.01 L)²,
    C2 = (0.03 L)², with scikit-image's defaults (7×7 uniform window, sample covariance, borders cropped)
    unless ``gaussian_weights`` (11×11 window, σ = 1.5, as Wang et al.). estimate, truth: ``(..., H, W)``;
    data_range: L as in :func:`psnr`. Returns shape ``(...)``.
    """
    est, tru = _pair(estimate, truth)
    big = _data_range(tru, data_range)
    lead = est.shape[:-2]
    flat_e = est.reshape(-1, *est.shape[-2:])
    flat_t = tru.reshape(-1, *tru.shape[-2:])
    kwargs = {"gaussian_weights": True, "sigma": 1.5} if gaussian_weights else {"win_size": win_size}
    vals = np.array(
        [
            structural_similarity(t, e, data_range=float(r), **kwargs)
            for e, t, r in zip(flat_e, flat_t, big.reshape(-1), strict=True)
        ]
    )
    out = vals.reshape(lead)
    return float(out) if out.ndim == 0 else out


def pearson(estimate: np.ndarray, truth: np.ndarray, *, mask: np.ndarray | None = None) -> np.ndarray | float:
    """Pearson correlation coefficient over the pixels of each map (optionally only where ``mask``).

    PCC = Σ(x − x̄)(y − ȳ) / √(Σ(x − x̄)² Σ(y − ȳ)²). estimate, truth: ``(..., H, W)``; mask: ``(H, W)`` or
    broadcastable boolean. Returns shape ``(...)``; NaN for a constant map.
    """
    est, tru = _pair(estimate, truth)
    w = np.ones(est.shape[-2:], bool) if mask is None else np.asarray(mask, bool)
    w = np.broadcast_to(w, est.shape).astype(np.float64)
    n = w.sum(axis=(-2, -1))
    if np.any(n < 2):
        raise ValueError("mask selects fewer than 2 pixels in some map")
    de = est - (w * est).sum(axis=(-2, -1), keepdims=True) / n[..., None, None]
    dt = tru - (w * tru).sum(axis=(-2, -1), keepdims=True) / n[..., None, None]
    cov = (w * de * dt).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cov / np.sqrt((w * de**2).sum(axis=(-2, -1)) * (w * dt**2).sum(axis=(-2, -1)))
    return float(out) if out.ndim == 0 else out


def robust_background(image: np.ndarray, *, n_iter: int = 5, clip: float = 3.0) -> tuple[float, float]:
    """Background and noise σ of an image by iterative clipping at ``clip``·σ: (median, 1.4826·MAD) kept."""
    vals = np.asarray(image, dtype=np.float64).ravel()
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise ValueError("image has no finite pixels")
    for _ in range(n_iter):
        med = np.median(vals)
        sig = 1.4826 * np.median(np.abs(vals - med))
        if sig == 0:
            break
        vals = vals[np.abs(vals - med) < clip * sig]
    med = float(np.median(vals))
    return med, float(1.4826 * np.median(np.abs(vals - med)))


def _distance_to_points(shape: tuple[int, int], pixel_arcsec: float, points: np.ndarray) -> np.ndarray:
    """Distance [arcsec] from every pixel centre to the nearest point (x, y) [arcsec], shape (H, W)."""
    h, w = shape
    x = (np.arange(w) + 0.5 - w / 2) * pixel_arcsec
    y = (np.arange(h) + 0.5 - h / 2) * pixel_arcsec
    dmin = np.full(shape, np.inf)
    for px, py in points:
        dmin = np.minimum(dmin, np.hypot(x[None, :] - px, y[:, None] - py))
    return dmin


def heldout_mask(
    image: np.ndarray,
    *,
    pixel_arcsec: float,
    k_sigma: float = 2.0,
    dilate_arcsec: float = 1.0,
    background: float | None = None,
    noise_sigma: float | None = None,
    sl_positions_arcsec: np.ndarray | None = None,
    sl_radius_arcsec: float = 3.0,
    wl_positions_arcsec: np.ndarray | None = None,
    wl_radius_arcsec: float = 0.0,
    core_radius_arcsec: float = 0.0,
) -> np.ndarray:
    """Held-out pixels: no photometric signal and no lensing constraint (True = held out), shape (H, W).

    The paper scores "points without photometry or lensing signals" (seed 000, §6.3). A pixel is held out when
    all of these hold:

    1. no light: image − background < k_sigma·σ_noise, and no such bright pixel lies within ``dilate_arcsec``
       (a disk dilation, so the faint wings of detected galaxies are excluded too);
    2. farther than ``sl_radius_arcsec`` from every strong-lensing image (x, y) [arcsec];
    3. farther than ``wl_radius_arcsec`` from every weak-lensing source (0 → weak lensing excludes nothing:
       shear constrains the mass only non-locally, and ~420 sources cover the whole field);
    4. farther than ``core_radius_arcsec`` from the map centre (the strong-lensing core, jointly constrained
       by all multiple images; 0 → no core cut).

    image: ``(H, W)`` detection image (F814W) on the Σ grid, any flux unit; background, noise_sigma: in that
    unit, estimated by :func:`robust_background` when ``None``. Positions are ``(N, 2)`` arrays of (x, y) in
    arcsec from the map centre (the map convention). Raises ValueError when no pixel is left.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"image must be (H, W); got shape {img.shape}")
    if pixel_arcsec <= 0:
        raise ValueError(f"pixel_arcsec={pixel_arcsec} must be > 0")
    if k_sigma <= 0:
        raise ValueError(f"k_sigma={k_sigma} must be > 0")
    for name, val in [
        ("dilate_arcsec", dilate_arcsec),
        ("sl_radius_arcsec", sl_radius_arcsec),
        ("wl_radius_arcsec", wl_radius_arcsec),
        ("core_radius_arcsec", core_radius_arcsec),
    ]:
        if val < 0:
            raise ValueError(f"{name}={val} must be >= 0")
    if background is None or noise_sigma is None:
        bkg, sig = robust_background(img)
        background = bkg if background is None else background
        noise_sigma = sig if noise_sigma is None else noise_sigma
    if noise_sigma <= 0:
        raise ValueError(f"noise_sigma={noise_sigma} must be > 0 (an image without noise has no σ)")
    bright = img - background >= k_sigma * noise_sigma
    r_pix = dilate_arcsec / pixel_arcsec
    if r_pix >= 0.5:
        n = int(np.floor(r_pix))
        yy, xx = np.mgrid[-n : n + 1, -n : n + 1]
        bright = ndimage.binary_dilation(bright, structure=np.hypot(xx, yy) <= r_pix)
    keep = ~bright
    for points, radius in [(sl_positions_arcsec, sl_radius_arcsec), (wl_positions_arcsec, wl_radius_arcsec)]:
        if points is not None and radius > 0 and len(points):
            pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
            keep &= _distance_to_points(img.shape, pixel_arcsec, pts) > radius
    if core_radius_arcsec > 0:
        keep &= _distance_to_points(img.shape, pixel_arcsec, np.zeros((1, 2))) > core_radius_arcsec
    if not keep.any():
        raise ValueError("heldout_mask leaves no pixel: lower k_sigma, dilate_arcsec or the exclusion radii")
    return keep


def heldout_rmse(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray | float:
    """RMSE = √(mean over held-out pixels of (estimate − truth)²), per map, in the maps' unit.

    estimate, truth: ``(..., H, W)``; mask: boolean ``(H, W)`` or ``(..., H, W)`` from :func:`heldout_mask`.
    """
    est, tru = _pair(estimate, truth)
    w = np.broadcast_to(np.asarray(mask, bool), est.shape)
    n = w.sum(axis=(-2, -1))
    if np.any(n == 0):
        raise ValueError("mask selects no pixel in some map")
    out = np.sqrt(np.where(w, (est - tru) ** 2, 0.0).sum(axis=(-2, -1)) / n)
    return float(out) if out.ndim == 0 else out


def map_scores(
    estimate: np.ndarray, truth: np.ndarray, *, data_range: float | None, heldout: np.ndarray | None = None
) -> dict[str, float]:
    """The Table 2 scores of one map: ``psnr``, ``ssim``, ``pcc`` and (with a ``heldout`` mask)
    ``heldout_rmse``, keyed as ``tables.METHOD_METRICS``. estimate, truth: ``(H, W)`` Σ maps [Msun/kpc²];
    data_range: L for PSNR and SSIM (module docstring), required here so that every call states it.
    """
    est, tru = _pair(estimate, truth)
    if est.ndim != 2:
        raise ValueError(f"map_scores takes one (H, W) map; got shape {est.shape}")
    out = {
        "psnr": float(psnr(est, tru, data_range=data_range)),
        "ssim": float(ssim(est, tru, data_range=data_range)),
        "pcc": float(pearson(est, tru)),
    }
    if heldout is not None:
        out["heldout_rmse"] = float(heldout_rmse(est, tru, heldout))
    return out


def _radius_kpc(shape: tuple[int, ...], pixel_kpc: float, centre_kpc: Sequence[float]) -> np.ndarray:
    if pixel_kpc <= 0:
        raise ValueError(f"pixel_kpc={pixel_kpc} must be > 0")
    h, w = shape[-2:]
    x = (np.arange(w) + 0.5 - w / 2) * pixel_kpc - centre_kpc[0]
    y = (np.arange(h) + 0.5 - h / 2) * pixel_kpc - centre_kpc[1]
    return np.hypot(x[None, :], y[:, None])


def total_mass(sigma: np.ndarray, *, pixel_kpc: float) -> np.ndarray | float:
    """Mass in the field of view, M = Σ_pixels Σ·p² [Msun]; sigma ``(..., H, W)`` in Msun/kpc²."""
    if pixel_kpc <= 0:
        raise ValueError(f"pixel_kpc={pixel_kpc} must be > 0")
    out = np.asarray(sigma, dtype=np.float64).sum(axis=(-2, -1)) * pixel_kpc**2
    return float(out) if out.ndim == 0 else out


def aperture_mass(
    sigma: np.ndarray,
    *,
    pixel_kpc: float,
    radii_kpc: Sequence[float],
    centre_kpc: Sequence[float] = (0.0, 0.0),
) -> np.ndarray:
    """Projected mass inside circular apertures: M(<R) = Σ·p² summed over pixel centres at r < R [Msun].

    sigma: ``(..., H, W)`` in Msun/kpc²; radii_kpc: ``(n,)``; centre_kpc: (x, y) of the aperture centre in kpc
    from the map centre. Returns ``(..., n)``. Pixel-centre inclusion: the error is of order one ring of
    pixels (2πR·p·Σ(R)).
    """
    radii = np.asarray(radii_kpc, dtype=np.float64)
    if radii.ndim != 1 or np.any(radii <= 0):
        raise ValueError(f"radii_kpc={radii_kpc} must be a 1-D sequence of positive radii")
    sig = np.asarray(sigma, dtype=np.float64)
    r = _radius_kpc(sig.shape, pixel_kpc, centre_kpc)
    inside = (r[None] < radii[:, None, None]).astype(np.float64)  # (n, H, W)
    return np.einsum("...hw,nhw->...n", sig, inside) * pixel_kpc**2


def radial_profile(
    sigma: np.ndarray,
    *,
    pixel_kpc: float,
    bin_edges_kpc: Sequence[float],
    centre_kpc: Sequence[float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthally averaged Σ(R) in annuli, as Hsu et al. (seed 002, §4.2) bin the pixels radially.

    sigma: ``(..., H, W)``; bin_edges_kpc: increasing ``(n + 1,)``. Returns (R_mean ``(n,)`` [kpc], the mean
    pixel radius of each annulus, Σ̄ ``(..., n)`` in the map unit; NaN for annuli with no pixel centre).
    """
    edges = np.asarray(bin_edges_kpc, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0:
        raise ValueError(f"bin_edges_kpc={bin_edges_kpc} must be increasing, non-negative, with >= 2 edges")
    sig = np.asarray(sigma, dtype=np.float64)
    r = _radius_kpc(sig.shape, pixel_kpc, centre_kpc)
    n = edges.size - 1
    idx = (np.digitize(r, edges) - 1).ravel()  # annulus index; -1 or n outside
    ok = (idx >= 0) & (idx < n)
    count = np.bincount(idx[ok], minlength=n).astype(np.float64)
    flat = sig.reshape(-1, r.size)[:, ok]
    sums = np.stack([np.bincount(idx[ok], weights=row, minlength=n) for row in flat])
    with np.errstate(invalid="ignore", divide="ignore"):
        r_mean = np.bincount(idx[ok], weights=r.ravel()[ok], minlength=n) / count
        prof = sums / count
    return r_mean, prof.reshape(*sig.shape[:-2], n)

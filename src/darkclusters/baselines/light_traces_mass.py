"""Light-traces-mass (LTM) baseline: galaxies detected on the F814W image, one luminosity-scaled dPIE each.

Napier et al. (2023, arXiv:2301.11240) as the DarkClusters paper re-implements it (seed 000, §6.3): member
galaxies are extracted from the F814W image with SExtractor (here ``sep``, its Python library: background
subtraction, a threshold relative to the background rms, a minimum area and deblending), each gets a dPIE
(PIEMD) mass component whose mass follows its light 1:1, and the components are summed into a Σ map.

dPIE (Elíasdóttir et al. 2007; Lenstool). Core radius a, cut radius s > a, 3-D density
ρ ∝ 1/[(1 + r²/a²)(1 + r²/s²)], projected

    Σ(R) = Σ0 · a s/(s − a) · [1/√(a² + R²) − 1/√(s² + R²)],            Σ(0) = Σ0,
    M2D(<R) = 2πΣ0 · a s/(s − a) · [√(a² + R²) − a − √(s² + R²) + s],   M_tot = 2πΣ0 a s.

This is Lenstool's convention κ = (b0/2)·s/(s − a)·[…] with Σ0 = Σcr·b0/(2a), b0 = 6π(σ_LT/c)² D_ls/D_s
(``reference/lensing.md``); here Σ is produced directly in Msun/kpc², so Σcr and σ never enter. Members are
circular dPIEs (Lenstool ``potfile`` members with zero ellipticity, as in Caminha et al. 2017 for MACS J1206);
sep's shapes stay in the catalogue. Each pixel holds the exact pixel-integrated mass, from the closed form
∫∫ dx dy /√(c² + x² + y²) = x·asinh(y/√(c² + x²)) + y·asinh(x/√(c² + y²)) − c·atan(xy/(c√(c² + x² + y²))),
so a core far smaller than a pixel keeps its mass.

Luminosity scaling (Limousin et al. 2005; Lenstool ``potfile``): with L the galaxy's flux,
a = a*·(L/L*)^½, s = s*·(L/L*)^½ and σ ∝ L^¼, so M_tot = 2πΣ0 a s ∝ σ² s ∝ L: a constant mass-to-light ratio
M = Υ·L. Υ (Msun per unit image flux) is calibrated on the training split by :func:`calibrate_mass_to_light`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sep

__all__ = [
    "calibrate_mass_to_light",
    "detect_galaxies",
    "dpie_mass_2d",
    "dpie_sigma",
    "ltm_sigma_map",
    "render_dpie_galaxies",
]


def _check_radii(r_core_kpc: np.ndarray, r_cut_kpc: np.ndarray) -> None:
    if np.any(r_core_kpc <= 0) or np.any(r_cut_kpc <= r_core_kpc):
        raise ValueError(f"need 0 < r_core_kpc < r_cut_kpc; got {r_core_kpc} and {r_cut_kpc}")


def dpie_sigma(r_kpc: np.ndarray, *, sigma0: float, r_core_kpc: float, r_cut_kpc: float) -> np.ndarray:
    """Σ(R) = Σ0 · a s/(s − a) · [1/√(a² + R²) − 1/√(s² + R²)] [unit of Σ0], R in kpc (module docstring)."""
    a, s = np.asarray(r_core_kpc, dtype=np.float64), np.asarray(r_cut_kpc, dtype=np.float64)
    _check_radii(a, s)
    r2 = np.asarray(r_kpc, dtype=np.float64) ** 2
    return sigma0 * a * s / (s - a) * (1.0 / np.sqrt(a**2 + r2) - 1.0 / np.sqrt(s**2 + r2))


def dpie_mass_2d(r_kpc: np.ndarray, *, sigma0: float, r_core_kpc: float, r_cut_kpc: float) -> np.ndarray:
    """M2D(<R) = 2πΣ0 · a s/(s − a) · [√(a² + R²) − a − √(s² + R²) + s] [Msun for Σ0 in Msun/kpc²]."""
    a, s = np.asarray(r_core_kpc, dtype=np.float64), np.asarray(r_cut_kpc, dtype=np.float64)
    _check_radii(a, s)
    r2 = np.asarray(r_kpc, dtype=np.float64) ** 2
    return 2.0 * np.pi * sigma0 * a * s / (s - a) * (np.sqrt(a**2 + r2) - a - np.sqrt(s**2 + r2) + s)


def detect_galaxies(
    image: np.ndarray,
    *,
    thresh: float = 3.0,
    minarea: int = 5,
    deblend_nthresh: int = 32,
    deblend_cont: float = 0.005,
    back_size: int = 64,
    back_filter_size: int = 3,
    kron_factor: float = 2.5,
    min_radius_pix: float = 1.75,
) -> pd.DataFrame:
    """Detect galaxies with ``sep`` (SExtractor): background mesh subtraction, then extraction above
    ``thresh`` × the global background rms, with ``minarea`` pixels and deblending.

    image: ``(H, W)`` F814W image in any flux unit per pixel, indexed [row = y, col = x]. Fluxes are
    SExtractor's FLUX_AUTO: the sum inside the Kron ellipse of ``kron_factor`` × the Kron radius, or inside a
    circle of ``min_radius_pix`` when that is larger (SExtractor's rule), with the pixels of other detections
    masked. Returns a DataFrame with one row per
    detection: ``x_pix``, ``y_pix`` (sep's 0-based pixel coordinates: column, row), ``flux``, ``flux_iso``,
    ``a_pix``, ``b_pix`` (semi-axes), ``theta_rad`` (major axis from +x towards +y), ``npix``.
    """
    data = np.ascontiguousarray(np.asarray(image, dtype=np.float64))
    if data.ndim != 2:
        raise ValueError(f"image must be (H, W); got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("image has non-finite pixels")
    if thresh <= 0 or minarea < 1:
        raise ValueError(f"thresh={thresh} must be > 0 and minarea={minarea} >= 1")
    bkg = sep.Background(data, bw=back_size, bh=back_size, fw=back_filter_size, fh=back_filter_size)
    sub = data - bkg.back()
    # sep's pixel stack defaults to 300,000 pixels; one diffuse BCG + ICL object can exceed it on 512² maps.
    sep.set_extract_pixstack(max(sep.get_extract_pixstack(), data.size))
    obj, segmap = sep.extract(
        sub,
        thresh,
        err=bkg.globalrms,
        minarea=minarea,
        deblend_nthresh=deblend_nthresh,
        deblend_cont=deblend_cont,
        segmentation_map=True,
    )
    cols = ["x_pix", "y_pix", "flux", "flux_iso", "a_pix", "b_pix", "theta_rad", "npix"]
    if len(obj) == 0:
        return pd.DataFrame({c: np.zeros(0) for c in cols})
    x, y, a, b, theta = obj["x"], obj["y"], obj["a"], obj["b"], obj["theta"]
    # Pixels of other detections are masked in the apertures (SExtractor's MASK_TYPE CORRECT), so the wings of
    # neighbours are not counted twice; segment ids are 1, 2, … in catalogue order.
    seg = {"segmap": segmap.astype(np.int32), "seg_id": np.arange(1, len(obj) + 1, dtype=np.int32)}
    kronrad, _ = sep.kron_radius(sub, x, y, a, b, theta, 6.0, **seg)
    kronrad = np.where(np.isfinite(kronrad) & (kronrad > 0), kronrad, 0.0)
    flux, _, _ = sep.sum_ellipse(sub, x, y, a, b, theta, kron_factor * kronrad, subpix=1, **seg)
    use_circle = kron_factor * kronrad * np.sqrt(a * b) < min_radius_pix
    if np.any(use_circle):
        fc, _, _ = sep.sum_circle(
            sub,
            x[use_circle],
            y[use_circle],
            min_radius_pix,
            subpix=1,
            segmap=seg["segmap"],
            seg_id=seg["seg_id"][use_circle],
        )
        flux[use_circle] = fc
    return pd.DataFrame(
        {
            "x_pix": x,
            "y_pix": y,
            "flux": flux,
            "flux_iso": obj["flux"],
            "a_pix": a,
            "b_pix": b,
            "theta_rad": theta,
            "npix": obj["npix"].astype(np.float64),
        }
    )


def _cored_isothermal_integral(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """F(x, y) with ∂²F/∂x∂y = 1/√(c² + x² + y²) (c > 0): the corner function of a rectangle's integral."""
    r = np.sqrt(c**2 + x**2 + y**2)
    return (
        x * np.arcsinh(y / np.sqrt(c**2 + x**2))
        + y * np.arcsinh(x / np.sqrt(c**2 + y**2))
        - c * np.arctan(x * y / (c * r))
    )


def render_dpie_galaxies(
    shape: tuple[int, int],
    *,
    pixel_kpc: float,
    x_kpc: np.ndarray,
    y_kpc: np.ndarray,
    mass_msun: np.ndarray,
    r_core_kpc: np.ndarray,
    r_cut_kpc: np.ndarray,
) -> np.ndarray:
    """Σ map [Msun/kpc²], ``shape`` = (H, W), of circular dPIE galaxies at (x, y) [kpc from the map centre].

    Each pixel holds the galaxy's mass inside the pixel divided by its area p², exact by the corner function
    F of the module docstring: Σ = a s/(s − a)·Σ0·[1/√(a² + R²) − 1/√(s² + R²)] integrates over the pixel
    [x1, x2] × [y1, y2] to a s/(s − a)·Σ0·[ΔF_a − ΔF_s], ΔF_c = F(x2, y2) − F(x1, y2) − F(x2, y1) + F(x1, y1).
    The map's mass is M_tot minus what falls outside the field. mass_msun, r_core_kpc, r_cut_kpc: ``(n,)``.
    """
    if pixel_kpc <= 0:
        raise ValueError(f"pixel_kpc={pixel_kpc} must be > 0")
    x_kpc, y_kpc, mass, a, s = (
        np.atleast_1d(np.asarray(v, dtype=np.float64))
        for v in (x_kpc, y_kpc, mass_msun, r_core_kpc, r_cut_kpc)
    )
    n = mass.size
    if not all(v.shape == (n,) for v in (x_kpc, y_kpc, a, s)):
        raise ValueError("galaxy arrays (x, y, mass, r_core, r_cut) must share one length")
    if np.any(mass < 0) or not np.all(np.isfinite(mass)):
        raise ValueError("galaxy masses must be finite and >= 0")
    _check_radii(a, s)
    h, w = shape
    x_edges = (np.arange(w + 1) - w / 2) * pixel_kpc
    y_edges = (np.arange(h + 1) - h / 2) * pixel_kpc
    out = np.zeros((h, w))
    for i in range(n):
        dx, dy = x_edges[None, :] - x_kpc[i], y_edges[:, None] - y_kpc[i]
        sigma0 = mass[i] / (2.0 * np.pi * a[i] * s[i])
        corners = _cored_isothermal_integral(dx, dy, a[i]) - _cored_isothermal_integral(dx, dy, s[i])
        pixel_mass = corners[1:, 1:] - corners[:-1, 1:] - corners[1:, :-1] + corners[:-1, :-1]
        out += sigma0 * a[i] * s[i] / (s[i] - a[i]) * pixel_mass
    return out / pixel_kpc**2


def _catalog_to_galaxies(
    cat: pd.DataFrame,
    shape: tuple[int, int],
    *,
    pixel_kpc: float,
    mass_to_light: float,
    l_star: float | None,
    r_core_star_kpc: float,
    r_cut_star_kpc: float,
    luminosity_scale: float,
) -> dict[str, np.ndarray]:
    """dPIE parameters from a sep catalogue: M = Υ·L, a = a*·(L/L*)^½, s = s*·(L/L*)^½ (module docstring)."""
    lum = cat["flux"].to_numpy() * luminosity_scale
    keep = lum > 0
    lum = lum[keep]
    h, w = shape
    ref = (float(lum.max()) if lum.size else 1.0) if l_star is None else float(l_star)
    if ref <= 0:
        raise ValueError(f"l_star={l_star} must be > 0")
    scale = np.sqrt(lum / ref)
    return {
        "x_kpc": (cat["x_pix"].to_numpy()[keep] + 0.5 - w / 2) * pixel_kpc,  # sep: pixel centres at integers
        "y_kpc": (cat["y_pix"].to_numpy()[keep] + 0.5 - h / 2) * pixel_kpc,
        "mass_msun": mass_to_light * lum,
        "r_core_kpc": r_core_star_kpc * scale,
        "r_cut_kpc": r_cut_star_kpc * scale,
    }


def ltm_sigma_map(
    image: np.ndarray,
    *,
    pixel_kpc: float,
    mass_to_light: float,
    l_star: float | None = None,
    r_core_star_kpc: float = 0.15,
    r_cut_star_kpc: float = 60.0,
    luminosity_scale: float = 1.0,
    detection: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The LTM baseline's Σ map [Msun/kpc²] on the image's own grid, ``(H, W)``.

    image: ``(H, W)`` F814W image on the Σ grid (pixel side ``pixel_kpc``, physical kpc); cost ~10 ms per
    galaxy on a 512² grid (exact pixel integrals over the whole map). mass_to_light: Υ in Msun per unit of
    image flux (from :func:`calibrate_mass_to_light`). l_star: the flux L* at which the
    radii are a* = ``r_core_star_kpc`` and s* = ``r_cut_star_kpc`` (Lenstool-like values 0.15, 55–70 kpc;
    ``None`` → the brightest detection, a scale-free choice). luminosity_scale multiplies every flux (e.g.
    (D_L(z)/D_L(z_cal))² to carry Υ to another redshift; K-corrections aside). detection: keyword arguments of
    :func:`detect_galaxies`.
    """
    if mass_to_light < 0 or not np.isfinite(mass_to_light):
        raise ValueError(f"mass_to_light={mass_to_light} must be finite and >= 0")
    if luminosity_scale <= 0:
        raise ValueError(f"luminosity_scale={luminosity_scale} must be > 0")
    if r_core_star_kpc <= 0 or r_cut_star_kpc <= r_core_star_kpc:
        raise ValueError(f"need 0 < r_core_star_kpc={r_core_star_kpc} < r_cut_star_kpc={r_cut_star_kpc}")
    img = np.asarray(image, dtype=np.float64)
    cat = detect_galaxies(img, **dict(detection or {}))
    gals = _catalog_to_galaxies(
        cat,
        img.shape,
        pixel_kpc=pixel_kpc,
        mass_to_light=mass_to_light,
        l_star=l_star,
        r_core_star_kpc=r_core_star_kpc,
        r_cut_star_kpc=r_cut_star_kpc,
        luminosity_scale=luminosity_scale,
    )
    return render_dpie_galaxies(img.shape, pixel_kpc=pixel_kpc, **gals)


def calibrate_mass_to_light(
    images: Sequence[np.ndarray],
    sigma_maps: Sequence[np.ndarray],
    *,
    pixel_kpc: float | Sequence[float],
    **ltm_kwargs: Any,
) -> float:
    """Υ by least squares of the total mass in the field of view over the training maps.

    The LTM map is linear in Υ, Σ_LTM = Υ·Σ_1 (Σ_1: the map for Υ = 1), so with m_j = Σ_pix Σ_1·p² and
    M_j = Σ_pix Σ_true·p² for training image j, Υ = argmin Σ_j (Υ m_j − M_j)² = Σ_j m_j M_j / Σ_j m_j².
    images, sigma_maps: sequences of ``(H, W)`` F814W images and true Σ maps [Msun/kpc²] on the same grids;
    pixel_kpc: one value or one per image; ltm_kwargs: the other :func:`ltm_sigma_map` arguments (the same
    must be used when applying Υ). Returns Υ in Msun per unit image flux.
    """
    if len(images) != len(sigma_maps) or len(images) == 0:
        raise ValueError(f"need as many images ({len(images)}) as sigma_maps ({len(sigma_maps)}), at least 1")
    pix = np.broadcast_to(np.asarray(pixel_kpc, dtype=np.float64), (len(images),))
    m = np.empty(len(images))
    big_m = np.empty(len(images))
    for j, (img, sig) in enumerate(zip(images, sigma_maps, strict=True)):
        if np.shape(img) != np.shape(sig):
            raise ValueError(f"image {j} shape {np.shape(img)} != sigma map shape {np.shape(sig)}")
        unit = ltm_sigma_map(img, pixel_kpc=float(pix[j]), mass_to_light=1.0, **ltm_kwargs)
        m[j] = unit.sum() * pix[j] ** 2
        big_m[j] = np.asarray(sig, dtype=np.float64).sum() * pix[j] ** 2
    if np.sum(m**2) == 0:
        raise ValueError("no galaxy detected in any training image: cannot calibrate the mass-to-light ratio")
    return float(np.sum(m * big_m) / np.sum(m**2))

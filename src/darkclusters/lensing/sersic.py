"""Elliptical Sérsic surface brightness (Sérsic 1963): the light of strong-lensing sources, plain and lensed.

The profile follows lenstronomy's ``SERSIC_ELLIPSE`` light model (lenstronomy 1.14.2,
``LightModel/Profiles/sersic.py`` and ``LensModel/Profiles/sersic_utils.py``):

    I(x, y) = amp · exp(−b_n [(R / R_sersic)^(1/n) − 1]),   b_n = 1.9992 n − 0.3271,

with the *circularised* (product-average, √(ab)) radius R = √(x'² + y'²) of the shifted, sheared coordinates
x' = [(1 − e1) Δx − e2 Δy] / N, y' = [−e2 Δx + (1 + e1) Δy] / N, N = √(1 − e1² − e2²), Δx = x − center_x,
Δy = y − center_y, and e1 + i e2 = (1 − q)/(1 + q) · e^(2iφ) (q axis ratio, φ the major-axis angle from +x).
``amp`` is the surface brightness at R = R_sersic (any flux unit per arcsec²); angles are arcsec.
The linear b_n (Capaccioli 1989 fit) keeps the profile differentiable in n; the true half-light radius
is R_sersic·(b_exact/b_n)^n, b_exact = P⁻¹(2n, ½): 1.5 % larger at n = 0.5, 0.4 % at n = 1, < 0.1 % for
n ≥ 1.5. Sérsic index n must be > 0.1636 (b_n > 0).

Every function takes numpy arrays or torch tensors: numpy in gives numpy out, tensors keep their gradients
and their device and dtype, and parameters broadcast with the coordinates. The lensed image (ray shooting
through β = θ − α(θ)) and ``render_arcs`` (the arcs of a strong-lensing catalogue's families, layout in
``strong.make_strong_lensing_catalog``) are shared by the mock and the photometric likelihood term.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from darkclusters.lensing.interpolate import sample_field

__all__ = [
    "lensed_sersic_image",
    "render_arcs",
    "sersic_amp_for_flux",
    "sersic_bn",
    "sersic_ellipse",
    "sersic_total_flux",
]

#: Softening of the elliptical radius [arcsec]: R → √(R² + ε²) keeps the gradient finite at the centre
#: (lenstronomy floors R at 1e-4 arcsec for the same reason).
RADIUS_SOFTENING_ARCSEC = 1e-4
#: Sérsic arguments ← column names of a strong-lensing catalogue's "families" table.
_FAMILY_KEYS = {"amp": "amp", "R_sersic": "R_sersic_arcsec", "n_sersic": "n_sersic", "e1": "e1", "e2": "e2"}


def _as_tensors(*values: Any) -> tuple[list[torch.Tensor], bool]:
    """Tensors of a common floating dtype and device for ``values``, and whether any input was a tensor."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if tensors:
        dtype = torch.promote_types(tensors[0].dtype, torch.float32)
        for t in tensors[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
        device = tensors[0].device
    else:
        dtype, device = torch.float64, torch.device("cpu")
    return [torch.as_tensor(v, dtype=dtype, device=device) for v in values], bool(tensors)


def _check_parameters(R_sersic: Any, n_sersic: Any, e1: Any = 0.0, e2: Any = 0.0) -> None:
    """Raise ValueError on a non-positive radius, an index with b_n ≤ 0, or |e| ≥ 1 (checks values only)."""
    r = torch.as_tensor(R_sersic).detach()
    n = torch.as_tensor(n_sersic).detach()
    e_sq = torch.as_tensor(e1).detach() ** 2 + torch.as_tensor(e2).detach() ** 2
    if not bool(torch.all(r > 0)):
        raise ValueError(f"R_sersic={R_sersic} must be > 0 arcsec")
    if not bool(torch.all(n > 0.3271 / 1.9992)):
        raise ValueError(f"n_sersic={n_sersic} must be > 0.1636 (b_n = 1.9992 n − 0.3271 > 0)")
    if not bool(torch.all(e_sq < 1)):
        raise ValueError(f"ellipticity (e1, e2)=({e1}, {e2}) must have e1² + e2² < 1")


def sersic_bn(n_sersic: Any) -> Any:
    """b_n = 1.9992 n − 0.3271 (Capaccioli 1989; lenstronomy ``SersicUtil.b_n``), same type as the input."""
    return 1.9992 * n_sersic - 0.3271


def sersic_ellipse(
    x_arcsec: Any,
    y_arcsec: Any,
    *,
    amp: Any,
    R_sersic: Any,
    n_sersic: Any,
    e1: Any = 0.0,
    e2: Any = 0.0,
    center_x: Any = 0.0,
    center_y: Any = 0.0,
) -> Any:
    """Surface brightness I(x, y) of the elliptical Sérsic profile (module docstring), in the unit of ``amp``.

    x_arcsec, y_arcsec: positions [arcsec], any broadcastable shape; the parameters broadcast with them.
    Returns the broadcast shape; numpy in gives numpy (float64) out, tensors keep device, dtype and gradients.
    """
    _check_parameters(R_sersic, n_sersic, e1, e2)
    (x, y, amp_t, r_s, n, e1_t, e2_t, cx, cy), is_torch = _as_tensors(
        x_arcsec, y_arcsec, amp, R_sersic, n_sersic, e1, e2, center_x, center_y
    )
    dx, dy = x - cx, y - cy
    norm = torch.sqrt(1.0 - e1_t**2 - e2_t**2)
    # product-average elliptical coordinates (lenstronomy param_util.transform_e1e2_product_average)
    xp = ((1.0 - e1_t) * dx - e2_t * dy) / norm
    yp = (-e2_t * dx + (1.0 + e1_t) * dy) / norm
    radius = torch.sqrt(xp**2 + yp**2 + RADIUS_SOFTENING_ARCSEC**2)
    out = amp_t * torch.exp(-sersic_bn(n) * ((radius / r_s) ** (1.0 / n) - 1.0))
    return out if is_torch else out.numpy()


def sersic_total_flux(amp: Any, R_sersic: Any, n_sersic: Any) -> Any:
    """Total flux F = amp · 2π n R_sersic² e^(b_n) Γ(2n) / b_n^(2n) (Graham & Driver 2005, eq. 4).

    Exact for the profile with the linear b_n; independent of e1, e2 because the circularised radius keeps
    the ellipse area πR². Unit: amp's unit × arcsec². Numpy or torch, broadcasting, differentiable.
    """
    _check_parameters(R_sersic, n_sersic)
    (amp_t, r_s, n), is_torch = _as_tensors(amp, R_sersic, n_sersic)
    bn = sersic_bn(n)
    log_shape = torch.lgamma(2.0 * n) + bn - 2.0 * n * torch.log(bn) + torch.log(2.0 * math.pi * n)
    out = amp_t * r_s**2 * torch.exp(log_shape)
    return out if is_torch else out.numpy()


def sersic_amp_for_flux(flux: Any, R_sersic: Any, n_sersic: Any) -> Any:
    """The amplitude (surface brightness at R_sersic, flux unit per arcsec²) that gives total ``flux``."""
    (flux_t,), is_torch = _as_tensors(flux)
    unit = sersic_total_flux(torch.ones_like(flux_t), R_sersic, n_sersic)
    out = flux_t / torch.as_tensor(unit, dtype=flux_t.dtype, device=flux_t.device)
    return out if is_torch else out.numpy()


def lensed_sersic_image(
    alpha_x: Any,
    alpha_y: Any,
    pixel_arcsec: float,
    *,
    amp: Any,
    R_sersic: Any,
    n_sersic: Any,
    e1: Any = 0.0,
    e2: Any = 0.0,
    center_x: Any = 0.0,
    center_y: Any = 0.0,
    supersample: int = 1,
) -> Any:
    """Flux per pixel of a Sérsic source seen through a lens: ∫_pixel I(θ − α(θ)) d²θ by ray shooting.

    Each pixel is split into ``supersample``² sub-pixels at offsets ((k + ½)/s − ½)·p from its centre; the
    deflection there is the bilinear interpolation of the map (``interpolate.sample_field``, edge pixels
    repeated beyond the outer pixel centres), the sub-pixel is traced to the source plane by the lens
    equation β = θ − α(θ), and the pixel flux is the mean of I(β) over its sub-pixels times the pixel area
    p² (surface brightness is conserved by lensing).

    alpha_x, alpha_y: deflection [arcsec] for this source's redshift, (..., H, W), [row = y, col = x], pixel
    centres at ((j + ½ − W/2)·p, (i + ½ − H/2)·p). Source parameters are scalars or have the batch shape
    ``...``. Returns (..., H, W) in amp's flux unit (amp per arcsec² × arcsec²); numpy in gives numpy out,
    tensors keep gradients in α and in every parameter.
    """
    _check_parameters(R_sersic, n_sersic, e1, e2)
    (ax, ay, *params), is_torch = _as_tensors(
        alpha_x, alpha_y, amp, R_sersic, n_sersic, e1, e2, center_x, center_y
    )
    rays = _subpixel_rays(ax, ay, pixel_arcsec, supersample)
    out = _traced_sersic(rays, pixel_arcsec, supersample, 1.0, *(p.reshape(*p.shape, 1, 1) for p in params))
    return out if is_torch else out.numpy()


def _subpixel_rays(
    alpha_x: torch.Tensor, alpha_y: torch.Tensor, pixel_arcsec: float, supersample: int
) -> tuple[torch.Tensor, ...]:
    """(θx, θy) of the supersample² sub-pixels of every pixel, (H·s, W·s), and α there, (..., H·s, W·s)."""
    if pixel_arcsec <= 0:
        raise ValueError(f"pixel_arcsec={pixel_arcsec} must be > 0")
    if int(supersample) != supersample or supersample < 1:
        raise ValueError(f"supersample={supersample} must be an integer >= 1")
    if alpha_x.ndim < 2 or alpha_x.shape != alpha_y.shape:
        raise ValueError(
            f"alpha_x {tuple(alpha_x.shape)} and alpha_y {tuple(alpha_y.shape)} must be (..., H, W)"
        )
    height, width = alpha_x.shape[-2:]
    like = {"dtype": alpha_x.dtype, "device": alpha_x.device}
    s = int(supersample)
    offsets = ((torch.arange(s, **like) + 0.5) / s - 0.5) * pixel_arcsec
    xs = ((torch.arange(width, **like) + 0.5 - width / 2) * pixel_arcsec)[:, None]
    ys = ((torch.arange(height, **like) + 0.5 - height / 2) * pixel_arcsec)[:, None]
    # sub-pixels of pixel j sit at j·s ... j·s + s − 1
    theta_y, theta_x = torch.meshgrid((ys + offsets).reshape(-1), (xs + offsets).reshape(-1), indexing="ij")
    # sub-pixels shared by every map of the batch: flatten, sample, restore (sample_field's (N) → (N) form)
    flat_x, flat_y = theta_x.reshape(-1), theta_y.reshape(-1)
    sub_shape = (*alpha_x.shape[:-2], *theta_x.shape)
    sample_x = sample_field(alpha_x, flat_x, flat_y, pixel_arcsec).reshape(sub_shape)
    sample_y = sample_field(alpha_y, flat_x, flat_y, pixel_arcsec).reshape(sub_shape)
    return theta_x, theta_y, sample_x, sample_y


def _traced_sersic(
    rays: tuple[torch.Tensor, ...], pixel_arcsec: float, supersample: int, scale: float, *params: torch.Tensor
) -> torch.Tensor:
    """Pixel fluxes (..., H, W) of a Sérsic source (amp, R, n, e1, e2, cx, cy; each (..., 1, 1)) seen through
    ``scale`` times the sub-pixel deflection of ``_subpixel_rays``: mean of I(θ − scale·α) times p²."""
    theta_x, theta_y, sample_x, sample_y = rays
    amp, r_s, n, e1, e2, cx, cy = params
    surface = sersic_ellipse(
        theta_x - scale * sample_x, theta_y - scale * sample_y, amp=amp, R_sersic=r_s, n_sersic=n, e1=e1,
        e2=e2, center_x=cx, center_y=cy,
    )  # fmt: skip
    s = int(supersample)
    surface = surface.reshape(*surface.shape[:-2], surface.shape[-2] // s, s, surface.shape[-1] // s, s)
    return surface.mean(dim=(-3, -1)) * pixel_arcsec**2  # α's batch broadcasts with the parameters'


def render_arcs(
    families: Mapping[str, Any],
    alpha_x_ref: Any,
    alpha_y_ref: Any,
    pixel_arcsec: float,
    *,
    band_fluxes: np.ndarray,
    supersample: int = 3,
    center_x: Any = None,
    center_y: Any = None,
) -> Any:
    """Lensed light of every family's Sérsic source in the image plane (no cluster light), per band.

    families: the ``"families"`` table of a catalogue. alpha_x_ref, alpha_y_ref: deflection for z_ref
    [arcsec], (..., H, W), numpy or torch; family f is traced through α_ref·deflection_scale_f by
    ``lensed_sersic_image`` with ``supersample``² rays per pixel, its source centred on
    (beta_x_arcsec, beta_y_arcsec) or on ``center_x``, ``center_y`` (..., n_families) [arcsec] when given
    (the likelihood's back-traced means). band_fluxes: (n_families, n_bands) total unlensed flux of each
    source per band in the caller's unit (e.g. Jy). Returns (..., n_bands, H, W) flux per pixel in that unit;
    numpy in gives numpy out, tensors keep gradients in α and the centres.
    """
    n = len(families["family_id"])
    fluxes = np.asarray(band_fluxes, dtype=np.float64)
    if fluxes.ndim != 2 or fluxes.shape[0] != n:
        raise ValueError(f"band_fluxes must be (n_families={n}, n_bands), got shape {fluxes.shape}")
    numpy_out = not isinstance(alpha_x_ref, torch.Tensor)
    ax = torch.as_tensor(alpha_x_ref, dtype=torch.float64 if numpy_out else None)
    ay = torch.as_tensor(alpha_y_ref, dtype=ax.dtype, device=ax.device)
    like = {"dtype": ax.dtype, "device": ax.device}
    cx = torch.as_tensor(families["beta_x_arcsec"] if center_x is None else center_x, **like)
    cy = torch.as_tensor(families["beta_y_arcsec"] if center_y is None else center_y, **like)
    flux_t = torch.as_tensor(fluxes, **like)
    rays = _subpixel_rays(ax, ay, pixel_arcsec, supersample)  # α is linear in κ: trace once, scale per family
    out = torch.zeros((*ax.shape[:-2], fluxes.shape[1], *ax.shape[-2:]), **like)
    for k in range(n):
        shape = {arg: float(families[key][k]) for arg, key in _FAMILY_KEYS.items()}
        params = [torch.tensor(shape[arg], **like).reshape(1, 1) for arg in _FAMILY_KEYS]
        centre = [c[..., k].reshape(*c.shape[:-1], 1, 1) for c in (cx, cy)]
        scale = float(families["deflection_scale"][k])
        unit = _traced_sersic(rays, pixel_arcsec, supersample, scale, *params, *centre)
        out = out + flux_t[k][:, None, None] * unit[..., None, :, :]
    return out.detach().numpy() if numpy_out else out

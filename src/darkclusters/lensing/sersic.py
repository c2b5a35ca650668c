"""Light of strong-lensing sources: elliptical Sérsic profiles (Sérsic 1963), plain and lensed.

The profile itself is :mod:`darkclusters.profiles.sersic` (shared with the photometry). The sources of a
strong-lensing catalogue are stored in lenstronomy's ``SERSIC_ELLIPSE`` parameters (lenstronomy 1.14.2,
``LightModel/Profiles/sersic.py``, ``LensModel/Profiles/sersic_utils.py``), and the functions here take them:

    I(x, y) = amp · exp(−b_lin [(R / R_sersic)^(1/n) − 1]),   b_lin = 1.9992 n − 0.3271 (Capaccioli 1989),

with R the circularised radius of the shared module, (e1, e2) its ellipticity, amp the surface brightness at
R = R_sersic (any flux unit per arcsec²), angles in arcsec. With the linear b_lin, R_sersic is not the
half-light radius: that is r_eff = R_sersic (b_n / b_lin)^n with the exact b_n (1.5 % larger at n = 0.5,
0.4 % at n = 1, < 0.1 % for n ≥ 1.5), and I_e = amp e^(b_lin − b_n). :func:`half_light_parameters` converts,
and every profile evaluation here passes the shared module (amp, r_eff) in its convention — the same profile,
since b_n (R/r_eff)^(1/n) = b_lin (R/R_sersic)^(1/n). The catalogue's attributes (amp, R_sersic_arcsec,
n_sersic, e1, e2) keep lenstronomy's meaning. The radius is softened, R → √(R² + ε²) with
ε = :data:`RADIUS_SOFTENING_ARCSEC`, so gradients stay finite at the centre. Sérsic index n must be > 0.1636
(b_lin > 0).

Every function takes numpy arrays or torch tensors: numpy in gives numpy out, tensors keep their gradients
and their device and dtype, and parameters broadcast with the coordinates. The lensed image (ray shooting
through β = θ − α(θ)) and ``render_arcs`` (the arcs of a strong-lensing catalogue's families, layout in
``strong.make_strong_lensing_catalog``) are shared by the mock and the photometric likelihood term.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from darkclusters.lensing.interpolate import sample_field
from darkclusters.profiles.sersic import as_common_tensors, sersic_bn, sersic_surface_brightness
from darkclusters.profiles.sersic import sersic_total_flux as half_light_total_flux

__all__ = [
    "half_light_parameters",
    "lensed_sersic_image",
    "lenstronomy_bn",
    "render_arcs",
    "sersic_amp_for_flux",
    "sersic_ellipse",
    "sersic_total_flux",
]

#: Softening of the elliptical radius [arcsec]: R → √(R² + ε²) keeps the gradient finite at the centre
#: (lenstronomy floors R at 1e-4 arcsec for the same reason).
RADIUS_SOFTENING_ARCSEC = 1e-4
#: Columns of a strong-lensing catalogue's "families" table with the arguments of half_light_parameters.
_SHAPE_KEYS = ("amp", "R_sersic_arcsec", "n_sersic")


def lenstronomy_bn(n_sersic: Any) -> Any:
    """b_lin = 1.9992 n − 0.3271 (Capaccioli 1989; lenstronomy ``SersicUtil.b_n``), same type as the input."""
    return 1.9992 * n_sersic - 0.3271


def half_light_parameters(amp: Any, R_sersic: Any, n_sersic: Any) -> tuple[Any, Any]:
    """(I_e, r_eff) of the shared profile equal to lenstronomy's (amp, R_sersic) at index n (module
    docstring).

    r_eff = R_sersic (b_n / b_lin)^n [arcsec], I_e = amp e^(b_lin − b_n) [amp's unit]. Broadcasting; numpy
    in gives numpy out, tensors keep gradients. ValueError on R_sersic ≤ 0 or n ≤ 0.1636 (b_lin ≤ 0).
    """
    (amp_t, r_s, n), is_torch = as_common_tensors(amp, R_sersic, n_sersic)
    if r_s.numel() and not bool(torch.all(r_s.detach() > 0)):
        raise ValueError(f"R_sersic={R_sersic} must be > 0 arcsec")
    b_lin = lenstronomy_bn(n)
    if n.numel() and not bool(torch.all(b_lin.detach() > 0)):
        raise ValueError(f"n_sersic={n_sersic} must be > 0.1636 (b_n = 1.9992 n − 0.3271 > 0)")
    b_n = sersic_bn(n)
    i_e, r_eff = amp_t * torch.exp(b_lin - b_n), r_s * (b_n / b_lin) ** n
    return (i_e, r_eff) if is_torch else (i_e.numpy(), r_eff.numpy())


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
    """Surface brightness I(x, y) of lenstronomy's ``SERSIC_ELLIPSE`` (module docstring), in the unit of amp.

    x_arcsec, y_arcsec: positions [arcsec], any broadcastable shape; the parameters broadcast with them.
    Returns the broadcast shape; numpy in gives numpy (float64) out, tensors keep device, dtype and gradients.
    """
    (x, y, amp_t, r_s, n, e1_t, e2_t, cx, cy), is_torch = as_common_tensors(
        x_arcsec, y_arcsec, amp, R_sersic, n_sersic, e1, e2, center_x, center_y
    )
    i_e, r_eff = half_light_parameters(amp_t, r_s, n)
    out = sersic_surface_brightness(
        x, y, amp=i_e, r_eff=r_eff, n=n, e1=e1_t, e2=e2_t, center_x=cx, center_y=cy,
        softening=RADIUS_SOFTENING_ARCSEC,
    )  # fmt: skip
    return out if is_torch else out.numpy()


def sersic_total_flux(amp: Any, R_sersic: Any, n_sersic: Any) -> Any:
    """Total flux F = amp · 2π n R_sersic² e^(b_lin) Γ(2n) / b_lin^(2n) of lenstronomy's profile, computed as
    the shared module's flux of :func:`half_light_parameters` (the same number).

    Independent of e1, e2 (circularised radius). Unit: amp's unit × arcsec². Numpy or torch, broadcasting,
    differentiable.
    """
    (amp_t, r_s, n), is_torch = as_common_tensors(amp, R_sersic, n_sersic)
    i_e, r_eff = half_light_parameters(amp_t, r_s, n)
    out = half_light_total_flux(i_e, r_eff, n)
    return out if is_torch else out.numpy()


def sersic_amp_for_flux(flux: Any, R_sersic: Any, n_sersic: Any) -> Any:
    """lenstronomy's amp (surface brightness at R_sersic, flux unit per arcsec²) that gives total ``flux``."""
    (flux_t, r_s, n), is_torch = as_common_tensors(flux, R_sersic, n_sersic)
    out = flux_t / sersic_total_flux(torch.ones_like(flux_t), r_s, n)
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
    (ax, ay, amp_t, r_s, n, *geometry), is_torch = as_common_tensors(
        alpha_x, alpha_y, amp, R_sersic, n_sersic, e1, e2, center_x, center_y
    )
    params = (*half_light_parameters(amp_t, r_s, n), n, *geometry)
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
    rays: tuple[torch.Tensor, ...], pixel_arcsec: float, supersample: int, scale: float, *params: Any
) -> torch.Tensor:
    """Pixel fluxes (..., H, W) of a Sérsic source seen through ``scale`` times the sub-pixel deflection of
    ``_subpixel_rays``: mean of I(θ − scale·α) times p². params: the shared module's (I_e, r_eff, n, e1, e2,
    center_x, center_y), each a float or a tensor of shape (..., 1, 1)."""
    theta_x, theta_y, sample_x, sample_y = rays
    i_e, r_eff, n, e1, e2, cx, cy = params
    surface = sersic_surface_brightness(
        theta_x - scale * sample_x, theta_y - scale * sample_y, amp=i_e, r_eff=r_eff, n=n, e1=e1, e2=e2,
        center_x=cx, center_y=cy, softening=RADIUS_SOFTENING_ARCSEC,
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
    # the catalogue's lenstronomy parameters in the shared convention, once, on the CPU; they enter the
    # profile as Python floats (no host-to-device copy per family)
    i_e, r_eff = half_light_parameters(*(np.asarray(families[key], dtype=np.float64) for key in _SHAPE_KEYS))
    e1, e2 = (np.asarray(families[key], dtype=np.float64) for key in ("e1", "e2"))
    n_sersic = np.asarray(families["n_sersic"], dtype=np.float64)
    rays = _subpixel_rays(ax, ay, pixel_arcsec, supersample)  # α is linear in κ: trace once, scale per family
    out = torch.zeros((*ax.shape[:-2], fluxes.shape[1], *ax.shape[-2:]), **like)
    for k in range(n):
        params = (float(v[k]) for v in (i_e, r_eff, n_sersic, e1, e2))
        centre = [c[..., k].reshape(*c.shape[:-1], 1, 1) for c in (cx, cy)]
        scale = float(families["deflection_scale"][k])
        unit = _traced_sersic(rays, pixel_arcsec, supersample, scale, *params, *centre)
        out = out + flux_t[k][:, None, None] * unit[..., None, :, :]
    return out.detach().numpy() if numpy_out else out

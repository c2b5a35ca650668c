"""Strong-lensing likelihood of a convergence map: source-plane scatter of multiple images and arc photometry.

Implements the strong-lensing forward model of DarkClusters (seed paper 000, §5.2, eqs. 11–13). For family f
with images θ_i (i = 1..n_f) of a source at z_f, every image is traced back with the candidate κ̂:

    β̂_i = θ_i − s_f · α̂(θ_i),   β̄_f = (1/n_f) Σ_i β̂_i                                       (eq. 11)
    L_geo = (1/N_fam) Σ_f (1/n_f) Σ_i |β̂_i − β̄_f|²   [arcsec²]                               (eq. 12)
    L_phot = mean over bands and pixels of (Î − I_obs)²                                        (eq. 13)

where α̂ = ``operators.deflection_field(κ̂)`` (κ̂ for the reference redshift z_ref), sampled at θ_i by
``interpolate.sample_field`` (bilinear), s_f = (D_ls/D_s)(z_f)/(D_ls/D_s)(z_ref) the catalogue's
``deflection_scale``, and Î the light of a Sérsic source with the recorded shape and per-band fluxes placed at
β̄_f and ray-traced through s_f·α̂ (``sersic.render_arcs``; no cluster light). The negative
log-likelihood is nll = w_geo·L_geo + w_phot·L_phot (eq. 10); the default weights 1e-2 and 1e-3 are those
of the published DarkClusters code (paper appendix B), balanced for its flux units only: set them per data
set.
Everything is torch: batched over leading dimensions, differentiable in κ̂, device and dtype follow κ̂.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from darkclusters.lensing.interpolate import sample_field
from darkclusters.lensing.operators import deflection_field
from darkclusters.lensing.sersic import render_arcs

__all__ = ["StrongLensingLikelihood"]


class StrongLensingLikelihood:
    """The strong-lensing negative log-likelihood of κ̂ maps for one observed cluster view.

    catalog: a strong-lensing catalogue (``strong.make_strong_lensing_catalog`` layout): ``"images"`` with
    family_id, x_arcsec, y_arcsec; ``"families"`` with family_id, deflection_scale and, for the photometric
    term, amp, R_sersic_arcsec, n_sersic, e1, e2. pixel_arcsec: pixel side of the κ̂ maps [arcsec].
    arc_images: observed lensed source light (n_bands, H, W) without cluster light, and band_fluxes
    (n_families, n_bands) the sources' total fluxes in the same unit; both or neither (then L_phot = 0).
    supersample: rays per pixel side for Î.
    """

    def __init__(
        self,
        catalog: Mapping[str, Mapping[str, np.ndarray]],
        pixel_arcsec: float,
        *,
        weight_geometric: float = 1e-2,
        weight_photometric: float = 1e-3,
        arc_images: np.ndarray | None = None,
        band_fluxes: np.ndarray | None = None,
        supersample: int = 1,
        pad_factor: int = 2,
    ) -> None:
        if pixel_arcsec <= 0:
            raise ValueError(f"pixel_arcsec={pixel_arcsec} must be > 0")
        if weight_geometric < 0 or weight_photometric < 0:
            raise ValueError(f"weights ({weight_geometric}, {weight_photometric}) must be >= 0")
        if (arc_images is None) != (band_fluxes is None):
            raise ValueError("arc_images and band_fluxes must be given together (or neither)")
        families, images = catalog["families"], catalog["images"]
        family_ids = np.asarray(families["family_id"], dtype=np.int64)
        index_of = {int(f): k for k, f in enumerate(family_ids)}
        unknown = set(np.asarray(images["family_id"]).tolist()) - index_of.keys()
        if unknown:
            raise ValueError(f"catalog images name family ids {sorted(unknown)} not in catalog['families']")
        image_family = np.array([index_of[int(f)] for f in images["family_id"]], dtype=np.int64)
        counts = np.bincount(image_family, minlength=len(family_ids))
        if np.any(counts == 0):
            raise ValueError(f"catalog families {family_ids[counts == 0].tolist()} have no images")
        self.pixel_arcsec = float(pixel_arcsec)
        self.weight_geometric = float(weight_geometric)
        self.weight_photometric = float(weight_photometric)
        self.supersample = int(supersample)
        self.pad_factor = int(pad_factor)
        self._families = {k: np.asarray(v) for k, v in families.items()}
        self._x = np.asarray(images["x_arcsec"], dtype=np.float64)
        self._y = np.asarray(images["y_arcsec"], dtype=np.float64)
        self._scale = np.asarray(families["deflection_scale"], dtype=np.float64)
        self._image_scale = self._scale[image_family]
        # membership (n_images, n_families) and averaging matrix: column f is 1/n_f on f's images (eq. 11)
        self._member = np.zeros((len(image_family), len(family_ids)))
        self._member[np.arange(len(image_family)), image_family] = 1.0
        self._mean_matrix = self._member / counts
        self._n_geometric = int(np.count_nonzero(counts >= 2))
        self._arcs = None if arc_images is None else np.asarray(arc_images, dtype=np.float64)
        self._fluxes = None if band_fluxes is None else np.asarray(band_fluxes, dtype=np.float64)
        if self._arcs is not None and (
            self._arcs.ndim != 3 or self._fluxes.shape != (len(family_ids), self._arcs.shape[0])
        ):
            raise ValueError(
                f"arc_images {self._arcs.shape} must be (n_bands, H, W) and band_fluxes {self._fluxes.shape} "
                f"(n_families={len(family_ids)}, n_bands)"
            )

    def deflection(self, kappa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """α̂ = deflection_field(κ̂) [arcsec] for z_ref, each with κ̂'s shape (..., H, W)."""
        return deflection_field(kappa, self.pixel_arcsec, pad_factor=self.pad_factor)

    def source_positions(
        self, alpha_x: torch.Tensor, alpha_y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Back-traced image positions β̂_i (..., n_images) and family means β̄_f (..., n_families) [arcsec],
        as (beta_x, beta_y, mean_x, mean_y)."""
        like = {"dtype": alpha_x.dtype, "device": alpha_x.device}
        x, y = torch.as_tensor(self._x, **like), torch.as_tensor(self._y, **like)
        scale = torch.as_tensor(self._image_scale, **like)
        mean_matrix = torch.as_tensor(self._mean_matrix, **like)
        beta_x = x - scale * sample_field(alpha_x, x, y, self.pixel_arcsec)
        beta_y = y - scale * sample_field(alpha_y, x, y, self.pixel_arcsec)
        return beta_x, beta_y, beta_x @ mean_matrix, beta_y @ mean_matrix

    def geometric_loss(self, alpha_x: torch.Tensor, alpha_y: torch.Tensor) -> torch.Tensor:
        """L_geo (eq. 12) [arcsec²] of the deflection (..., H, W) at z_ref, averaged over the families with
        ≥ 2 images (a single image has no scatter); shape (...), 0 without such families."""
        beta_x, beta_y, mean_x, mean_y = self.source_positions(alpha_x, alpha_y)
        member = torch.as_tensor(self._member, dtype=alpha_x.dtype, device=alpha_x.device)
        mean_matrix = torch.as_tensor(self._mean_matrix, dtype=alpha_x.dtype, device=alpha_x.device)
        scatter = (beta_x - mean_x @ member.T) ** 2 + (beta_y - mean_y @ member.T) ** 2
        return (scatter @ mean_matrix).sum(dim=-1) / max(self._n_geometric, 1)

    def photometric_loss(self, alpha_x: torch.Tensor, alpha_y: torch.Tensor) -> torch.Tensor:
        """L_phot (eq. 13) in (flux unit)² of the deflection (..., H, W) at z_ref; shape (...)."""
        if self._arcs is None:
            return alpha_x.sum(dim=(-2, -1)) * 0.0
        if tuple(alpha_x.shape[-2:]) != self._arcs.shape[-2:]:
            raise ValueError(
                f"kappa maps {tuple(alpha_x.shape[-2:])} and arc_images {self._arcs.shape} differ"
            )
        *_, mean_x, mean_y = self.source_positions(alpha_x, alpha_y)
        model = render_arcs(
            self._families, alpha_x, alpha_y, self.pixel_arcsec, band_fluxes=self._fluxes,
            supersample=self.supersample, center_x=mean_x, center_y=mean_y,
        )  # fmt: skip
        arcs = torch.as_tensor(self._arcs, dtype=alpha_x.dtype, device=alpha_x.device)
        return ((model - arcs) ** 2).mean(dim=(-3, -2, -1))

    def nll(self, kappa: Any) -> Any:
        """w_geo·L_geo + w_phot·L_phot (eq. 10) of κ̂ (..., H, W) at z_ref → (...); numpy in, numpy out."""
        is_numpy = not isinstance(kappa, torch.Tensor)
        kappa_t = torch.as_tensor(kappa, dtype=torch.float64) if is_numpy else kappa
        if kappa_t.ndim < 2:
            raise ValueError(f"kappa must be (..., H, W), got shape {tuple(kappa_t.shape)}")
        alpha_x, alpha_y = self.deflection(kappa_t)
        out = self.weight_geometric * self.geometric_loss(alpha_x, alpha_y)
        if self.weight_photometric > 0:
            out = out + self.weight_photometric * self.photometric_loss(alpha_x, alpha_y)
        return out.detach().numpy() if is_numpy else out

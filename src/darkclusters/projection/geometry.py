"""Map geometry shared by every map and image: viewing directions, sky axes, pixel grids, angular scales.

Conventions (used by projection, photometry and lensing alike):

* A view is a unit vector ``n`` from the cluster towards the observer. The sky basis (e_x, e_y) completes a
  right-handed frame (e_x × e_y = n): the rotation that takes n to +z (Rodrigues, about n × z) takes e_x, e_y
  to +x, +y. The view n = +z therefore keeps (x, y) as they are.
* A map is ``(..., H, W)`` indexed ``[row = y, col = x]``; x grows to the right with the column, y grows
  *up* with the row (plot with ``origin="lower"``). Pixel (i, j) has its centre at
  x_j = (j + ½ − W/2)·p, y_i = (i + ½ − H/2)·p for pixel side p, so the cluster centre is the map centre.
* Angles are arcsec; physical lengths are kpc (physical, not comoving), converted with the angular-diameter
  distance at the lens redshift: kpc/″ = D_A(z_l) · π/(180·3600) · 1000 (D_A in Mpc).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.cosmology import FLRW

__all__ = [
    "MapGeometry",
    "cardinal_directions",
    "hemisphere_directions",
    "kpc_per_arcsec",
    "rotation_to_z",
    "sky_coordinates",
]

ARCSEC_PER_RAD = 180.0 * 3600.0 / np.pi


def kpc_per_arcsec(cosmology: FLRW, redshift: float) -> float:
    """Physical kpc per arcsec at ``redshift`` (angular-diameter distance)."""
    if redshift <= 0:
        raise ValueError(f"redshift={redshift} must be > 0 for an angular scale")
    return float(cosmology.angular_diameter_distance(redshift).to_value("kpc")) / ARCSEC_PER_RAD


def hemisphere_directions(n: int) -> np.ndarray:
    """n unit vectors spread uniformly over the hemisphere z ≥ 0 (a Fibonacci lattice), shape (n, 3).

    Equal-area: z_k = 1 − (k + ½)/n is uniform in cos θ and φ_k advances by the golden angle, so every patch
    of the hemisphere holds a share of the directions proportional to its solid angle. Deterministic.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    k = np.arange(n)
    z = 1.0 - (k + 0.5) / n
    phi = k * np.pi * (3.0 - np.sqrt(5.0))
    s = np.sqrt(1.0 - z**2)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def cardinal_directions() -> np.ndarray:
    """The three axes +x, +y, +z as views, shape (3, 3)."""
    return np.eye(3)


def rotation_to_z(n: np.ndarray) -> np.ndarray:
    """The 3×3 rotation R with R @ n = +z, the smallest rotation (about n × z); R = I for n = +z.

    For n = −z (antiparallel) a rotation by π about +x is used.
    """
    n = np.asarray(n, dtype=np.float64)
    norm = np.linalg.norm(n)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"direction {n} is not a non-zero finite vector")
    n = n / norm
    z = np.array([0.0, 0.0, 1.0])
    c = float(n @ z)
    if c < -1 + 1e-12:
        return np.diag([1.0, -1.0, -1.0])
    v = np.cross(n, z)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def sky_coordinates(pos: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Rotate positions (N, 3) so that ``direction`` points to the observer: returns (N, 3) = (x, y, depth).

    x, y are the sky coordinates (same unit as ``pos``); depth grows towards the observer.
    """
    return np.asarray(pos, dtype=np.float64) @ rotation_to_z(direction).T


@dataclass(frozen=True)
class MapGeometry:
    """A square map of ``npix`` × ``npix`` pixels covering ``fov_arcsec`` on a side, at lens redshift z."""

    fov_arcsec: float
    npix: int
    kpc_per_arcsec: float

    def __post_init__(self) -> None:
        if self.fov_arcsec <= 0 or self.npix < 1 or self.kpc_per_arcsec <= 0:
            raise ValueError(f"invalid map geometry {self}")

    @classmethod
    def at_redshift(cls, fov_arcsec: float, npix: int, cosmology: FLRW, redshift: float) -> MapGeometry:
        return cls(float(fov_arcsec), int(npix), kpc_per_arcsec(cosmology, redshift))

    @property
    def pixel_arcsec(self) -> float:
        return self.fov_arcsec / self.npix

    @property
    def pixel_kpc(self) -> float:
        return self.pixel_arcsec * self.kpc_per_arcsec

    @property
    def fov_kpc(self) -> float:
        return self.fov_arcsec * self.kpc_per_arcsec

    @property
    def pixel_area_kpc2(self) -> float:
        return self.pixel_kpc**2

    def pixel_centres_arcsec(self) -> np.ndarray:
        """Centres of the pixels along one axis [arcsec], shape (npix,): (j + ½ − npix/2)·p."""
        return (np.arange(self.npix) + 0.5 - self.npix / 2) * self.pixel_arcsec

    def grid_arcsec(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of every pixel centre [arcsec], each (npix, npix) indexed [row = y, col = x]."""
        c = self.pixel_centres_arcsec()
        x, y = np.meshgrid(c, c, indexing="xy")
        return x, y

    def pixel_index(
        self, x_arcsec: np.ndarray, y_arcsec: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest pixel (row, col) of sky positions [arcsec], and a mask of those inside the map."""
        col = np.floor(np.asarray(x_arcsec) / self.pixel_arcsec + self.npix / 2).astype(np.int64)
        row = np.floor(np.asarray(y_arcsec) / self.pixel_arcsec + self.npix / 2).astype(np.int64)
        inside = (col >= 0) & (col < self.npix) & (row >= 0) & (row < self.npix)
        return row, col, inside

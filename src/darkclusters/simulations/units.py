"""Code units of the simulations → physical units, and periodic unwrapping.

TNG and SIMBA store comoving lengths in ckpc/h and masses in 1e10 Msun/h (see ../shared/reference/formats.md).
Physical kpc = ckpc/h · a / h; Msun = (1e10 Msun/h) · 1e10 / h. TNG velocities are km/s·√a (peculiar = v·√a);
GIZMO stores the same convention. Comoving density (1e10 Msun/h)/(ckpc/h)³ → physical Msun/kpc³ multiplies by
1e10 h² / a³.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "code_density_to_msun_kpc3",
    "code_length_to_kpc",
    "code_mass_to_msun",
    "code_velocity_to_km_s",
    "header_attrs",
    "unwrap_periodic",
]


def code_length_to_kpc(x_ckpc_h: np.ndarray | float, scale_factor: float, hubble_h: float) -> np.ndarray:
    """ckpc/h → physical kpc."""
    return np.asarray(x_ckpc_h, dtype=np.float64) * (scale_factor / hubble_h)


def code_mass_to_msun(m_code: np.ndarray | float, hubble_h: float) -> np.ndarray:
    """1e10 Msun/h → Msun."""
    return np.asarray(m_code, dtype=np.float64) * (1e10 / hubble_h)


def code_velocity_to_km_s(v_code: np.ndarray, scale_factor: float) -> np.ndarray:
    """km/s·√a (snapshot ``Velocities``) → physical peculiar velocity in km/s."""
    return np.asarray(v_code, dtype=np.float64) * np.sqrt(scale_factor)


def code_density_to_msun_kpc3(rho_code: np.ndarray, scale_factor: float, hubble_h: float) -> np.ndarray:
    """(1e10 Msun/h)/(ckpc/h)³ → physical Msun/kpc³."""
    return np.asarray(rho_code, dtype=np.float64) * (1e10 * hubble_h**2 / scale_factor**3)


def unwrap_periodic(coords: np.ndarray, centre: np.ndarray, box_size: float) -> np.ndarray:
    """Positions relative to ``centre`` in a periodic box, each component in [-box/2, box/2).

    coords: (N, 3), centre: (3,), box_size: box side, all in the same (comoving) unit. A cluster that
    straddles a box face comes back whole around the origin.
    """
    if box_size <= 0:
        raise ValueError(f"box_size={box_size} must be > 0")
    d = np.asarray(coords, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    return (d + 0.5 * box_size) % box_size - 0.5 * box_size


def header_attrs(header: Mapping[str, Any]) -> dict[str, float]:
    """The cosmology and time of a snapshot from its AREPO/GIZMO ``Header`` attributes, as plain floats.

    Keys: redshift, scale_factor (``Time``), hubble_h, omega_m, omega_b (NaN when absent), box_size_ckpc_h.
    """
    return {
        "redshift": float(header["Redshift"]),
        "scale_factor": float(header["Time"]),
        "hubble_h": float(header["HubbleParam"]),
        "omega_m": float(header["Omega0"]),
        "omega_b": float(header.get("OmegaBaryon", np.nan)),
        "box_size_ckpc_h": float(header["BoxSize"]),
    }

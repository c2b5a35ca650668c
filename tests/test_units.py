"""Unit conversions and periodic unwrapping, against hand-computed values."""

from __future__ import annotations

import numpy as np

from darkclusters.simulations.units import (
    code_density_to_msun_kpc3,
    code_length_to_kpc,
    code_mass_to_msun,
    code_velocity_to_km_s,
    unwrap_periodic,
)


def test_unwrap_periodic_straddling_cluster() -> None:
    box = 1000.0
    centre = np.array([995.0, 5.0, 500.0])
    coords = np.array([[2.0, 998.0, 500.0], [990.0, 10.0, 510.0]])
    d = unwrap_periodic(coords, centre, box)
    np.testing.assert_allclose(d, [[7.0, -7.0, 0.0], [-5.0, 5.0, 10.0]])
    assert np.all(
        np.abs(unwrap_periodic(np.random.default_rng(0).uniform(0, box, (100, 3)), centre, box)) <= 500
    )


def test_code_units() -> None:
    h, a = 0.6774, 0.5
    np.testing.assert_allclose(code_length_to_kpc(1000.0, a, h), 1000.0 * a / h)
    np.testing.assert_allclose(code_mass_to_msun(1.0, h), 1e10 / h)
    np.testing.assert_allclose(code_velocity_to_km_s(np.array([100.0]), a), 100.0 * np.sqrt(a))
    # One code mass in one code volume: (1e10/h Msun) / (a/h kpc)^3.
    np.testing.assert_allclose(code_density_to_msun_kpc3(np.array([1.0]), a, h), (1e10 / h) / (a / h) ** 3)

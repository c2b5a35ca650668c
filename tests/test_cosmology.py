"""Cosmology helpers against astropy's direct integration."""

from __future__ import annotations

import numpy as np
import pytest

from darkclusters.cosmology import TNG_COSMOLOGY, age_gyr_at_scale_factor, flat_lcdm


def test_age_table_matches_astropy() -> None:
    a = np.array([0.02, 0.1, 0.25, 0.5, 0.8, 0.9999, 1.0])
    exact = TNG_COSMOLOGY.age(1 / a - 1).to_value("Gyr")
    np.testing.assert_allclose(age_gyr_at_scale_factor(TNG_COSMOLOGY, a), exact, atol=1e-5)
    assert age_gyr_at_scale_factor(TNG_COSMOLOGY, 1.0) == pytest.approx(13.8, abs=0.1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scale_factor must be > 0"):
        age_gyr_at_scale_factor(TNG_COSMOLOGY, np.array([0.5, 0.0]))
    with pytest.raises(ValueError, match="hubble_h"):
        flat_lcdm(67.74, 0.3)


def test_without_baryon_density() -> None:
    cosmo = flat_lcdm(0.7, 0.3)
    assert cosmo.Ob0 is None or cosmo.Ob0 == 0
    assert float(cosmo.H0.value) == pytest.approx(70.0)

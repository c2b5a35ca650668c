"""Photometry image components: Sérsic profiles, the two-component ICL fit, background galaxies, FITS cutouts.

References: Ciotti & Bertin (1999) b_n values, analytic Sérsic normalisation, fits to images made from known
components, the expected Poisson count of the tabulated number counts, and a constant FITS mosaic.
"""

from __future__ import annotations

import numpy as np
import pytest

from darkclusters.photometry import photometry_config
from darkclusters.photometry.background import (
    f814w_counts_per_deg2_per_mag,
    fits_background,
    render_sersic_sources,
    synthetic_background,
)
from darkclusters.photometry.sersic import SersicShape, fit_two_sersic, sersic_image
from darkclusters.profiles.sersic import sersic_bn, sersic_total_flux


def test_sersic_b_and_normalisation() -> None:
    """b_1 = 1.6783, b_4 = 7.6692 (Ciotti & Bertin 1999); a rendered profile holds its total flux."""
    assert float(sersic_bn(1.0)) == pytest.approx(1.67835, abs=1e-4)
    assert float(sersic_bn(4.0)) == pytest.approx(7.66925, abs=1e-4)
    assert float(sersic_total_flux(1.0, 1.0, 1.0)) == pytest.approx(
        2 * np.pi * np.exp(1.67835) / 1.67835**2, rel=1e-4
    )
    for n, q in [(1.0, 1.0), (4.0, 0.6)]:
        image = sersic_image(200, 0.5, SersicShape(1.0, -2.0, 4.0, n, q, 0.4), flux=3.0, oversample=5)
        assert image.sum() == pytest.approx(3.0, rel=0.02 if n == 4 else 1e-3)  # n = 4 wings beyond the map


def test_two_sersic_fit_recovers_components() -> None:
    """An image of a compact n = 4 body plus an extended n = 1 envelope (and noise) is decomposed back into
    its components: fluxes within 5 %, R_e within 10 %."""
    inner = SersicShape(0.0, 0.0, 3.0, 4.0, 0.8, 0.3)
    outer = SersicShape(0.0, 0.0, 25.0, 1.0, 0.6, 1.0)
    truth = sersic_image(96, 1.0, inner, flux=2.0) + sersic_image(96, 1.0, outer, flux=5.0)
    sigma = np.full_like(truth, 2e-5)
    image = truth + np.random.default_rng(4).normal(size=truth.shape) * sigma
    fit = fit_two_sersic(image, sigma, 1.0, fit_radius_arcsec=45.0, r_eff_init_arcsec=(2.0, 15.0))
    assert fit.flux_inner == pytest.approx(2.0, rel=0.05)
    assert fit.flux_outer == pytest.approx(5.0, rel=0.05)
    assert fit.inner.r_eff_arcsec == pytest.approx(3.0, rel=0.1)
    assert fit.outer.r_eff_arcsec == pytest.approx(25.0, rel=0.1)


def test_sources_keep_their_flux() -> None:
    """Truncated, renormalised stamps put each source's flux on the map exactly (sources well inside)."""
    flux = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5], [4.0, 0.0, 1.0]])
    image = render_sersic_sources(
        40, 0.5,
        x_arcsec=np.array([0.0, 3.3, -4.1]), y_arcsec=np.array([0.0, -2.2, 5.0]), flux=flux,
        r_eff_arcsec=np.array([0.3, 1.0, 0.01]), n=np.array([1.0, 4.0, 1.0]), q=np.array([1.0, 0.5, 0.3]),
        theta_rad=np.array([0.0, 1.0, 2.0]),
    )  # fmt: skip
    np.testing.assert_allclose(image.sum(axis=(1, 2)), flux.sum(axis=0), rtol=1e-12)
    assert image[0, 30, 11] == pytest.approx(4.0)  # R_e far below a pixel: all light in its nearest pixel


def test_synthetic_background_counts() -> None:
    """The number of field galaxies is Poisson with mean Ω ∫ dN/dm dm of the tabulated counts (mean of 20
    fields within 3 σ); the integral is an independent trapezoid sum over a 0.001-mag grid."""
    cfg = photometry_config({})["background"]["synthetic"]
    npix, pixel = 32, 2.0
    grid = np.linspace(cfg["mag_min_f814w"], cfg["mag_max_f814w"], 13001)
    mean = (npix * pixel / 3600.0) ** 2 * np.trapezoid(f814w_counts_per_deg2_per_mag(grid), grid)
    counts = [synthetic_background(np.random.default_rng(k), npix, pixel, cfg)[1] for k in range(20)]
    assert abs(np.mean(counts) - mean) < 3 * np.sqrt(mean / 20)
    image, _ = synthetic_background(np.random.default_rng(0), npix, pixel, cfg)
    assert image.shape == (3, npix, npix)
    assert np.all(image >= 0)


def test_fits_background_units_and_resampling(tmp_path) -> None:
    """A constant mosaic of value c with PHOTFNU gives c · PHOTFNU · (p_out/p_in)² Jy in every map pixel."""
    from astropy.io import fits
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [180.0, 10.0]
    wcs.wcs.crpix = [200.0, 200.0]
    wcs.wcs.cdelt = [-0.06 / 3600.0, 0.06 / 3600.0]
    paths = []
    for i, value in enumerate((2.0, 3.0, 5.0)):
        header = wcs.to_header()
        header["PHOTFNU"] = 1e-7 * (i + 1)
        paths.append(tmp_path / f"mosaic{i}.fits")
        fits.PrimaryHDU(np.full((400, 400), value), header=header).writeto(paths[-1])
    image = fits_background(np.random.default_rng(1), 16, 0.6, paths, [None, None, None])
    for b, value in enumerate((2.0, 3.0, 5.0)):
        np.testing.assert_allclose(image[b], value * 1e-7 * (b + 1) * (0.6 / 0.06) ** 2, rtol=1e-6)
    with pytest.raises(ValueError, match="fits inside"):
        fits_background(np.random.default_rng(1), 100, 0.6, paths, [1.0, 1.0, 1.0], max_tries=5)

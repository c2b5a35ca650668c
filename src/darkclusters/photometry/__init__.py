"""HST-like photometry of simulated clusters (paper §4.1, App. A.1 and C).

Star particles → rest-frame magnitudes (TNG's GFM_StellarPhotometrics, or a Bruzual & Charlot 2003 table for
SIMBA) → an SED per particle → dust (Charlot & Fall 2000) → redshift → the HST F125W, F606W, F814W filter
curves (sedpy) → Jy, binned to the nearest pixel of the truth maps' grid, plus intracluster light (two Sérsic
components fitted to the BCG), background galaxies, PSF and sky noise.

Modules: :mod:`~darkclusters.photometry.filters` (passbands, pivots, AB), :mod:`~.sed` (magnitudes → band
fluxes), :mod:`~.ssp` (mass, age, Z → magnitudes), :mod:`~.dust`, :mod:`~.image` (binning, PSF, noise),
:mod:`~.sersic` (profiles, ICL fit), :mod:`~.background` (field galaxies, FITS mosaics), :mod:`~.settings`
(the config section), :mod:`~.pipeline` (the stage's file-level function and the light-traces-mass PCC).
"""

from darkclusters.photometry.filters import AB_ZERO_POINT_JY, HST_BANDS, REST_BANDS, passband
from darkclusters.photometry.pipeline import (
    light_traces_mass_pcc,
    map_grids,
    observe_photometry_file,
    observe_view,
    stellar_fluxes_jy,
)
from darkclusters.photometry.sed import band_fluxes_jy, tng_magnitudes_to_ab
from darkclusters.photometry.settings import photometry_config
from darkclusters.photometry.ssp import ssp_magnitudes

__all__ = [
    "AB_ZERO_POINT_JY",
    "HST_BANDS",
    "REST_BANDS",
    "band_fluxes_jy",
    "light_traces_mass_pcc",
    "map_grids",
    "observe_photometry_file",
    "observe_view",
    "passband",
    "photometry_config",
    "ssp_magnitudes",
    "stellar_fluxes_jy",
    "tng_magnitudes_to_ab",
]

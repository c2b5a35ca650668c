"""Evaluation of reconstructed mass maps: map metrics, spectra, calibration and the published tables.

Modules: ``metrics`` (PSNR, SSIM, PCC, held-out RMSE, aperture masses, radial profiles), ``spectra`` (P(k),
b(k), r(k), ρ_c(ℓ), one-point PDF, peak counts), ``calibration`` (standardized errors, RMSE–σ, TARP) and
``tables`` (CSV/Markdown/LaTeX builders; import it from ``darkclusters.evaluation.tables``). Everything is
numpy/scipy/pandas; nothing here imports torch.
"""

from darkclusters.evaluation.calibration import (
    calibration_scores,
    expected_fraction_within,
    fraction_within,
    rmse_sigma_relation,
    standardized_errors,
    tarp_coverage,
    tarp_credibility,
    tarp_max_deviation,
)
from darkclusters.evaluation.metrics import (
    aperture_mass,
    dataset_data_range,
    heldout_mask,
    heldout_rmse,
    map_scores,
    pearson,
    psnr,
    radial_profile,
    robust_background,
    ssim,
    total_mass,
)
from darkclusters.evaluation.spectra import (
    angular_power_spectrum,
    bias_and_correlation,
    binned_cross_spectrum,
    cross_correlation_ell,
    cross_spectrum_hmpc,
    one_point_pdf,
    peak_counts,
    power_spectrum_hmpc,
    scale_split_means,
)

__all__ = [
    "angular_power_spectrum",
    "aperture_mass",
    "bias_and_correlation",
    "binned_cross_spectrum",
    "calibration_scores",
    "cross_correlation_ell",
    "cross_spectrum_hmpc",
    "dataset_data_range",
    "expected_fraction_within",
    "fraction_within",
    "heldout_mask",
    "heldout_rmse",
    "map_scores",
    "one_point_pdf",
    "peak_counts",
    "pearson",
    "power_spectrum_hmpc",
    "psnr",
    "radial_profile",
    "rmse_sigma_relation",
    "robust_background",
    "scale_split_means",
    "ssim",
    "standardized_errors",
    "tarp_coverage",
    "tarp_credibility",
    "tarp_max_deviation",
    "total_mass",
]

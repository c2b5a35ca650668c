"""Weak-lensing-only baselines: Kaiser–Squires (KS) and Wiener-filter Σ maps of the test clusters.

Both invert the weak-lensing catalog of one view (``/lensing/{fov}/view_{v:03d}/weak_{regime}`` of the
observation file, :mod:`darkclusters.lensing.weak`) into a convergence map on a coarse grid, which is
interpolated back to the truth-map grid and turned into Σ [Msun kpc⁻²]. Output
``results/baselines/{KS,Wiener}/{dataset}/...`` as the other baselines
(:func:`darkclusters.baselines.predictions.write_prediction`, ``/mean`` (V, H, W)).

Steps of one view (grid: the (H, W) map grid of the field of view, pixel p [arcsec]):

1. **Binning.** The shear is averaged on a coarse (H/f, W/f) grid of pixel f·p covering the same field, f the
   divisor of gcd(H, W) nearest (in log) to ``bin_arcsec``/p (a map pixel holds ≪ 1 source: 30 arcmin⁻² on
   0.44″ pixels is 0.002). **Source redshifts:** every source has its own z_s; its ellipticity e estimates
   r·g_ref, r = (D_ls/D_s)(z_s)/(D_ls/D_s)(z_ref) the catalog's ``ratio_to_ref`` (Σcr(z_ref)/Σcr(z_s)). Each
   source is rescaled to the reference redshift, e/r, and weighted by its inverse variance r²/σ_e², so a pixel
   holds Σ r e / Σ r² (``mass_mapping.bin_shear_catalog``, ``to_reference=True``); sources in front of the
   lens (r = 0) drop out. The map is therefore the shear, and the inversion the κ, for sources at z_ref.
   Empty pixels hold zero shear. The reduced shear is taken as the shear (g ≈ γ, first order in κ).
2. **Inversion.** KS: ``mass_mapping.kaiser_squires`` (periodic, E mode), then a Gaussian smoothing of
   σ = ``ks_smoothing_arcsec`` (KS maps are conventionally smoothed; 0 turns it off). Wiener:
   ``mass_mapping.wiener_filter`` with the signal power S(k) measured on the TRAINING split's κ maps (block
   means on the same coarse grid) and the white shape-noise power of this view's source counts.
3. **Mass-sheet constant.** Both give κ up to a constant (the k = 0 mode is unconstrained by shear). It is
   fixed without the test truth to the mean over the training views of the field-mean κ, κ̄_train (at z_ref,
   same field of view): the prior expectation of the field's mean κ, and the Wiener estimate of a mode the
   data do not constrain (a mode with prior mean μ and no information is estimated by μ). The alternative,
   κ = 0 at the field edge, is wrong for clusters: a 225″ field at z = 0.2 spans ≈ 750 kpc, inside R200c,
   where κ is still 0.02–0.1. Limitation: at lens redshifts other than the training one the training mean
   carries over in κ, not in Σ.
4. **Output grid and units.** The coarse κ is interpolated bilinearly to the map grid
   (``lensing.interpolate.sample_field``, edge pixels extended), re-centred so that its field mean is exactly
   κ̄_train, and multiplied by Σcr(z_lens, z_ref) [Msun kpc⁻²], the value stored with the catalogs in the
   observation file (``lensing`` attribute ``sigma_crit_ref_msun_kpc2``, computed by
   ``cosmology.sigma_crit_msun_kpc2`` when the mocks were made). The training κ = Σ/Σcr uses the same stored
   value of each training cluster, so there is one Σ → κ conversion throughout.

Calibration file ``results/baselines/mass_mapping/{dataset}/calibration.json``
(:func:`calibrate_mass_mapping_files`): fov, z_ref, map shape and pixel, bin factor, coarse shape, κ̄_train,
S(k) on the coarse numpy fft2 grid (unnormalised, ``mass_mapping`` conventions), the config section and
provenance.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from darkclusters.baselines.predictions import write_prediction
from darkclusters.datasets import read_channels
from darkclusters.io import atomic_path, provenance, read_nested
from darkclusters.lensing.interpolate import sample_field
from darkclusters.lensing.mass_mapping import (
    bin_shear_catalog,
    kaiser_squires,
    measure_power_spectrum,
    shear_noise_power,
    wiener_filter,
)

__all__ = [
    "METHODS",
    "MassMappingCalibration",
    "bin_factor",
    "block_mean",
    "calibrate_mass_mapping_files",
    "gaussian_smooth",
    "invert_catalog",
    "predict_mass_map_file",
    "upsample_bilinear",
]

METHODS = ("KS", "Wiener")
DEFAULTS = {"bin_arcsec": 15.0, "ks_smoothing_arcsec": 15.0}


def _cfg(mm_cfg: Mapping[str, Any] | None) -> dict[str, float]:
    cfg = {**DEFAULTS, **dict(mm_cfg or {})}
    if not float(cfg["bin_arcsec"]) > 0:
        raise ValueError(f"evaluation.mass_mapping.bin_arcsec={cfg['bin_arcsec']} must be > 0")
    if not float(cfg["ks_smoothing_arcsec"]) >= 0:
        raise ValueError(
            f"evaluation.mass_mapping.ks_smoothing_arcsec={cfg['ks_smoothing_arcsec']} must be >= 0"
        )
    return {k: float(v) for k, v in cfg.items()}


def bin_factor(shape: tuple[int, int], pixel_arcsec: float, bin_arcsec: float) -> int:
    """The coarse-grid factor f: the divisor of gcd(H, W) nearest in log to bin_arcsec / pixel_arcsec."""
    g = math.gcd(int(shape[0]), int(shape[1]))
    target = max(float(bin_arcsec) / float(pixel_arcsec), 1.0)
    divisors = [d for d in range(1, g + 1) if g % d == 0]
    return min(divisors, key=lambda d: (abs(math.log(d / target)), d))


def block_mean(maps: np.ndarray, factor: int) -> np.ndarray:
    """Means over f×f blocks: (..., H, W) → (..., H/f, W/f) (f must divide H and W)."""
    maps = np.asarray(maps, dtype=np.float64)
    h, w = maps.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"block factor {factor} does not divide the map shape {(h, w)}")
    return maps.reshape(*maps.shape[:-2], h // factor, factor, w // factor, factor).mean(axis=(-3, -1))


def upsample_bilinear(coarse: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear interpolation of (..., h, w) coarse maps at the centres of the (h f, w f) fine pixels of the
    same field (pixel centres per ``projection.geometry``; beyond the outer coarse centres the edge value)."""
    coarse = np.asarray(coarse, dtype=np.float64)
    h, w = coarse.shape[-2:]
    # positions in units of the fine pixel; the coarse pixel is then `factor`
    x = np.arange(w * factor) + 0.5 - w * factor / 2
    y = np.arange(h * factor) + 0.5 - h * factor / 2
    xx, yy = np.meshgrid(x, y)
    out = sample_field(coarse, xx.reshape(-1), yy.reshape(-1), float(factor))
    return np.asarray(out).reshape(*coarse.shape[:-2], h * factor, w * factor)


def gaussian_smooth(maps: np.ndarray, sigma_pixels: float) -> np.ndarray:
    """Periodic Gaussian smoothing of (..., H, W) maps with σ [pixels] in Fourier space (exp(−2π²σ²|k|²), k in
    cycles per pixel); keeps the mean; σ = 0 returns a copy."""
    maps = np.asarray(maps, dtype=np.float64)
    if sigma_pixels <= 0:
        return maps.copy()
    h, w = maps.shape[-2:]
    k2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None, :] ** 2
    return np.fft.ifft2(np.fft.fft2(maps) * np.exp(-2.0 * np.pi**2 * sigma_pixels**2 * k2)).real


@dataclass(frozen=True)
class MassMappingCalibration:
    """What the training split fixes: the coarse grid, κ̄_train and the Wiener signal power S(k).

    shape: (H, W) map grid; pixel_arcsec: its pixel [arcsec]; factor: coarse pixel / map pixel; kappa_mean:
    κ̄_train (z_ref); signal_power: (H/f, W/f) S(k) [numpy unnormalised fft2 units]; fov, z_ref: where from.
    """

    fov: str
    z_ref: float
    shape: tuple[int, int]
    pixel_arcsec: float
    factor: int
    kappa_mean: float
    signal_power: np.ndarray

    @classmethod
    def read(cls, path: str | os.PathLike) -> MassMappingCalibration:
        doc = json.loads(Path(path).read_text())
        try:
            return cls(
                fov=str(doc["fov"]),
                z_ref=float(doc["z_ref"]),
                shape=(int(doc["shape"][0]), int(doc["shape"][1])),
                pixel_arcsec=float(doc["pixel_arcsec"]),
                factor=int(doc["bin_factor"]),
                kappa_mean=float(doc["kappa_mean"]),
                signal_power=np.asarray(doc["signal_power"], dtype=np.float64),
            )
        except KeyError as exc:
            raise KeyError(f"{path}: calibration lacks {exc} (rerun calibrate_mass_mapping)") from None


def _lensing_attrs(obs: h5py.File, z_ref: float) -> tuple[float, float]:
    """(z_lens, Σcr(z_lens, z_ref) [Msun kpc⁻²]) stored in an observation file; checks z_ref."""
    if "lensing" not in obs:
        raise KeyError(f"{obs.filename}: no 'lensing' group")
    attrs = obs["lensing"].attrs
    if not np.isclose(float(attrs["z_ref"]), float(z_ref)):
        raise ValueError(
            f"{obs.filename}: lensing made for z_ref={float(attrs['z_ref'])}, config lensing.z_ref={z_ref}"
        )
    return float(attrs["z_lens"]), float(attrs["sigma_crit_ref_msun_kpc2"])


def _grid(obs: h5py.File, fov: str) -> tuple[tuple[int, int], float, float]:
    """((H, W), pixel [arcsec], pixel [kpc]) of the map grid of ``fov`` in an observation file."""
    key = f"photometry/{fov}"
    if key not in obs:
        raise KeyError(f"{obs.filename}: no {key!r} (the field of view's grid)")
    g = obs[key]
    shape = tuple(int(n) for n in g["images"].shape[-2:])
    return (shape[0], shape[1]), float(g.attrs["pixel_arcsec"]), float(g.attrs["pixel_kpc"])


def calibrate_mass_mapping_files(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    out_path: str | os.PathLike,
    *,
    fov: str,
    z_ref: float,
    mm_cfg: Mapping[str, Any] | None = None,
) -> MassMappingCalibration:
    """κ̄_train and S(k) from the training clusters' truth Σ, written as JSON (module docstring).

    pairs: (truth maps file, observation file) of each training cluster; every view enters. κ = Σ_total /
    Σcr(z_lens, z_ref) with Σcr the observation file's stored value. mm_cfg: config
    ``evaluation.mass_mapping`` (bin_arcsec [arcsec]). z_ref: config ``lensing.z_ref``.
    """
    cfg = _cfg(mm_cfg)
    if not pairs:
        raise ValueError("mass-mapping calibration: no training clusters")
    coarse, means = [], []
    grid: tuple[tuple[int, int], float] | None = None
    factor = 0
    for maps_path, obs_path in pairs:
        with h5py.File(obs_path, "r") as obs:
            _, sigma_crit = _lensing_attrs(obs, z_ref)
            shape, pixel, _ = _grid(obs, fov)
        if grid is None:
            grid, factor = (shape, pixel), bin_factor(shape, pixel, cfg["bin_arcsec"])
        elif shape != grid[0] or not np.isclose(pixel, grid[1]):
            raise ValueError(f"{obs_path}: grid {shape} at {pixel}″ differs from {grid} of the first cluster")
        sigma = read_channels(["sigma:total"], maps_path=maps_path, obs_path=obs_path, fov=fov)[0][:, 0]
        kappa = sigma.astype(np.float64) / sigma_crit
        means += list(kappa.mean(axis=(-2, -1)))
        coarse.append(block_mean(kappa, factor))
    assert grid is not None
    signal = measure_power_spectrum(np.concatenate(coarse))
    cal = MassMappingCalibration(
        fov=fov,
        z_ref=float(z_ref),
        shape=grid[0],
        pixel_arcsec=grid[1],
        factor=factor,
        kappa_mean=float(np.mean(means)),
        signal_power=signal,
    )
    doc = {
        "fov": fov,
        "z_ref": float(z_ref),
        "shape": list(grid[0]),
        "pixel_arcsec": grid[1],
        "bin_factor": factor,
        "bin_pixel_arcsec": factor * grid[1],
        "coarse_shape": list(signal.shape),
        "kappa_mean": cal.kappa_mean,
        "kappa_mean_std": float(np.std(means)),
        "n_views": len(means),
        "signal_power": signal.tolist(),
        "signal_power_units": "numpy unnormalised fft2 of κ (z_ref) on the coarse grid",
        "mass_mapping": cfg,
        "provenance": provenance(cfg=cfg, seed=None, inputs=[os.fspath(p) for q in pairs for p in q]),
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, default=str))
    return cal


def invert_catalog(
    catalog: Mapping[str, Any],
    cal: MassMappingCalibration,
    *,
    method: str,
    mm_cfg: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """κ at z_ref (H, W) on the map grid from one weak-lensing catalog (module docstring, steps 1–4).

    catalog: ``x_arcsec``, ``y_arcsec``, ``e1``, ``e2``, ``ratio_to_ref`` and, for Wiener, ``sigma_e`` (N,)
    (per component; its rms over sources with r > 0 sets the noise). method: "KS" or "Wiener". The result's
    field mean is exactly ``cal.kappa_mean``.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {METHODS}")
    cfg = _cfg(mm_cfg)
    f = cal.factor
    coarse_shape = (cal.shape[0] // f, cal.shape[1] // f)
    g1, g2, counts = bin_shear_catalog(dict(catalog), coarse_shape, f * cal.pixel_arcsec)
    if method == "KS":
        kappa = gaussian_smooth(
            kaiser_squires(g1, g2)[0], cfg["ks_smoothing_arcsec"] / (f * cal.pixel_arcsec)
        )
    else:
        ratio = np.asarray(catalog["ratio_to_ref"], dtype=np.float64)
        sigma_e = np.asarray(catalog["sigma_e"], dtype=np.float64)[ratio > 0]
        if counts.any():
            noise = shear_noise_power(coarse_shape, float(np.sqrt(np.mean(sigma_e**2))), counts)
            kappa = wiener_filter(g1, g2, cal.signal_power, noise)
        else:  # no source behind the lens inside the field: no information, the prior mean
            kappa = np.zeros(coarse_shape)
    fine = upsample_bilinear(kappa, f)
    return fine - fine.mean() + cal.kappa_mean


def _read_catalogs(obs: h5py.File, fov: str, regime: str, n_views: int) -> list[dict[str, Any]]:
    out = []
    for v in range(n_views):
        key = f"lensing/{fov}/view_{v:03d}/weak_{regime}"
        if key not in obs:
            raise KeyError(
                f"{obs.filename}: no {key!r} (config reconstruction.weak_regime={regime!r} must be a key of "
                "lensing.weak.regimes)"
            )
        out.append(read_nested(obs[key]))
    return out


def predict_mass_map_file(
    obs_path: str | os.PathLike,
    calibration_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    method: str,
    fov: str,
    weak_regime: str,
    z_ref: float,
    mm_cfg: Mapping[str, Any] | None = None,
) -> Path:
    """The KS or Wiener Σ map [Msun kpc⁻²] of every view of one observed cluster, written by
    ``write_prediction`` (``/mean`` (V, H, W)). Reads only the observation file's weak-lensing catalogs of
    ``weak_regime`` (config ``reconstruction.weak_regime``) and its stored Σcr(z_lens, z_ref)."""
    cal = MassMappingCalibration.read(calibration_path)
    if cal.fov != fov or not np.isclose(cal.z_ref, float(z_ref)):
        raise ValueError(
            f"{calibration_path}: calibrated for fov={cal.fov!r}, z_ref={cal.z_ref}; asked fov={fov!r}, "
            f"z_ref={z_ref} (config lensing.z_ref)"
        )
    with h5py.File(obs_path, "r") as obs:
        z_lens, sigma_crit = _lensing_attrs(obs, z_ref)
        shape, pixel, pixel_kpc = _grid(obs, fov)
        n_views = int(obs[f"photometry/{fov}/images"].shape[0])
        catalogs = _read_catalogs(obs, fov, weak_regime, n_views)
    if shape != cal.shape or not np.isclose(pixel, cal.pixel_arcsec):
        raise ValueError(
            f"{obs_path}: grid {shape} at {pixel}″ differs from the calibration's {cal.shape} at "
            f"{cal.pixel_arcsec}″ ({calibration_path})"
        )
    kappa = np.stack([invert_catalog(c, cal, method=method, mm_cfg=mm_cfg) for c in catalogs])
    attrs = {
        "method": method,
        "fov": fov,
        "weak_regime": weak_regime,
        "pixel_arcsec": pixel,
        "pixel_kpc": pixel_kpc,
        "z_lens": z_lens,
        "z_ref": float(z_ref),
        "sigma_crit_ref_msun_kpc2": sigma_crit,
        "bin_pixel_arcsec": cal.factor * cal.pixel_arcsec,
        "kappa_mean": cal.kappa_mean,
        **provenance(cfg=_cfg(mm_cfg), seed=None, inputs=[os.fspath(obs_path), os.fspath(calibration_path)]),
    }
    return write_prediction(out_path, kappa * sigma_crit, attrs=attrs)

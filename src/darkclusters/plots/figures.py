"""The paper's figures from the evaluation products, each written as PNG and PDF (atomically).

* :func:`figure_posterior` — truth, posterior median, mean, std and standardized error of one view
  (Fig. 3 top).
* :func:`figure_calibration` — binned RMSE of the posterior mean against the predicted σ (Fig. 3 bottom).
* :func:`figure_methods` — truth and every method's map of one view (Fig. 4).
* :func:`figure_redshifts` — median scores against lens redshift per method (Fig. 5).
* :func:`figure_tarp` — TARP expected coverage against credibility α (seed 001, Fig. 3).
* :func:`figure_spectra` — b(k) and r(k), k in h/Mpc, of the conditional Σ_gas/Σ_DM samples
  (seed 002, Fig. 7).

Maps are drawn as log10 Σ [Msun kpc⁻²] with ``origin="lower"`` (x right, y up), axes in arcsec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from darkclusters.datasets import read_channels
from darkclusters.evaluation.calibration import rmse_sigma_relation
from darkclusters.evaluation.spectra import bias_and_correlation
from darkclusters.io import atomic_path

__all__ = [
    "figure_calibration",
    "figure_methods",
    "figure_posterior",
    "figure_redshifts",
    "figure_spectra",
    "figure_tarp",
    "save_figure",
]

SYNTHETIC_NOTE = "synthetic data, small models"


def save_figure(fig: plt.Figure, png: str | os.PathLike, pdf: str | os.PathLike, *, dpi: int = 110) -> None:
    """Write ``fig`` to ``png`` and ``pdf`` atomically and close it."""
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def _truth(maps_path: str | os.PathLike, obs_path: str | os.PathLike, fov: str) -> np.ndarray:
    return read_channels(["sigma:total"], maps_path=maps_path, obs_path=obs_path, fov=fov)[0][:, 0]


def _half_arcsec(maps_path: str | os.PathLike, fov: str) -> float:
    with h5py.File(maps_path, "r") as f:
        return float(f[fov].attrs["fov_arcsec"]) / 2


def _log_panel(ax: plt.Axes, image: np.ndarray, half: float, title: str, vmin: float, vmax: float) -> None:
    im = ax.imshow(
        np.log10(np.maximum(image, 10**vmin)),
        origin="lower",
        extent=[-half, half, -half, half],
        cmap="magma",
        vmin=vmin,
        vmax=vmax,
    )
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=6)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)


def _range(truth: np.ndarray) -> tuple[float, float]:
    positive = truth[truth > 0]
    lo = float(np.log10(np.percentile(positive, 1))) if positive.size else 0.0
    return lo, float(np.log10(max(truth.max(), 10 ** (lo + 1))))


def figure_posterior(
    posterior_path: str | os.PathLike,
    maps_path: str | os.PathLike,
    obs_path: str | os.PathLike,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    *,
    fov: str,
    view: int = 0,
    dpi: int = 110,
) -> None:
    """Truth, posterior median (50 % quantile), mean, std [log10 Msun kpc⁻²] and ε = (mean − truth)/std."""
    truth = _truth(maps_path, obs_path, fov)[view]
    with h5py.File(posterior_path, "r") as f:
        mean, std = f["mean"][view], f["std"][view]
        median = f["quantiles"][view, 1] if "quantiles" in f else mean
        method = str(f.attrs.get("method", "posterior"))
    half = _half_arcsec(maps_path, fov)
    vmin, vmax = _range(truth)
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.2))
    for ax, img, title in zip(
        axes[:3], (truth, median, mean), ("truth Σ", f"{method}: median", f"{method}: mean"), strict=True
    ):
        _log_panel(ax, img, half, title + " [log10 Msun/kpc²]", vmin, vmax)
    slo, shi = _range(np.maximum(std, 1e-30))
    _log_panel(axes[3], std, half, "std [log10 Msun/kpc²]", slo, shi)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, (mean - truth) / std, np.nan)
    im = axes[4].imshow(z, origin="lower", extent=[-half, half, -half, half], cmap="RdBu_r", vmin=-3, vmax=3)
    axes[4].set_title("ε = (mean − truth)/std", fontsize=8)
    axes[4].tick_params(labelsize=6)
    plt.colorbar(im, ax=axes[4], fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    fig.subplots_adjust(wspace=0.35)
    fig.suptitle(
        f"{Path(maps_path).parent.parent.name} snapshot {Path(maps_path).parent.name} halo "
        f"{Path(maps_path).stem}, view {view} ({SYNTHETIC_NOTE})",
        fontsize=9,
    )
    save_figure(fig, png, pdf, dpi=dpi)


def figure_calibration(
    posteriors: Mapping[str, Sequence[tuple[str, str, str]]],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    *,
    fov: str,
    n_bins: int = 20,
    dpi: int = 110,
) -> None:
    """RMSE of the posterior mean against predicted σ in quantile bins of σ, pixels pooled over the test
    views, one curve per method. posteriors: {method: [(posterior, maps, observations) paths]}."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    top = 0.0
    for method, triples in posteriors.items():
        means, stds, truths = [], [], []
        for post, maps, obs in triples:
            with h5py.File(post, "r") as f:
                means.append(f["mean"][()])
                stds.append(f["std"][()])
            truths.append(_truth(maps, obs, fov))
        rel = rmse_sigma_relation(
            np.concatenate(means), np.concatenate(stds), np.concatenate(truths), n_bins=n_bins
        )
        ax.loglog(rel["sigma"], rel["rmse"], "o-", ms=3, label=f"{method} (PCC {rel['pearson']:.2f})")
        top = max(top, float(rel["sigma"].max()), float(rel["rmse"].max()))
    grid = np.geomspace(top * 1e-3, top, 10)
    ax.loglog(grid, grid, "k--", lw=0.8, label="RMSE = σ")
    ax.set_xlabel("predicted σ [Msun/kpc²]")
    ax.set_ylabel("RMSE of the mean [Msun/kpc²]")
    ax.set_title(f"Calibration ({SYNTHETIC_NOTE})", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, png, pdf, dpi=dpi)


def figure_methods(
    predictions: Mapping[str, str],
    maps_path: str | os.PathLike,
    obs_path: str | os.PathLike,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    *,
    fov: str,
    view: int = 0,
    dpi: int = 110,
) -> None:
    """Truth and each method's Σ (``/mean``) of one view, on one colour scale. predictions: {method: path}."""
    truth = _truth(maps_path, obs_path, fov)[view]
    half = _half_arcsec(maps_path, fov)
    vmin, vmax = _range(truth)
    fig, axes = plt.subplots(
        1, 1 + len(predictions), figsize=(3.3 * (1 + len(predictions)), 3.2), squeeze=False
    )
    _log_panel(axes[0, 0], truth, half, "truth", vmin, vmax)
    for ax, (method, path) in zip(axes[0, 1:], predictions.items(), strict=True):
        with h5py.File(path, "r") as f:
            _log_panel(ax, f["mean"][view], half, method, vmin, vmax)
    fig.suptitle(f"log10 Σ [Msun/kpc²], view {view} ({SYNTHETIC_NOTE})", fontsize=9)
    save_figure(fig, png, pdf, dpi=dpi)


def figure_redshifts(
    scores: pd.DataFrame,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    *,
    metrics: Sequence[str] = ("pcc", "psnr", "ssim"),
    simulation: str = "TNG",
    dpi: int = 110,
) -> None:
    """Median of each metric over test samples against lens redshift, one line per method."""
    sub = scores[(scores["simulation"] == simulation) & scores["metric"].isin(list(metrics))]
    if sub.empty:
        raise ValueError(f"no scores of {list(metrics)} for simulation {simulation!r}")
    med = sub.groupby(["metric", "method", "redshift"])["value"].median()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.3), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        if metric not in med.index.get_level_values(0):
            continue
        for method, series in med.loc[metric].groupby(level=0):
            ax.plot(series.index.get_level_values(1), series.to_numpy(), "o-", label=method)
        ax.set_xlabel("lens redshift z")
        ax.set_ylabel(f"median {metric}")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{simulation} test clusters by redshift ({SYNTHETIC_NOTE})", fontsize=9)
    save_figure(fig, png, pdf, dpi=dpi)


def figure_tarp(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    *,
    dpi: int = 110,
) -> None:
    """TARP expected coverage ECP(α) against α, one curve per label; the diagonal is perfect calibration."""
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    for label, (ecp, alpha) in curves.items():
        ax.plot(alpha, ecp, "o-", ms=3, label=label)
    if not curves:
        ax.text(0.5, 0.5, "no posterior samples stored", ha="center", va="center", fontsize=8)
    ax.set_xlabel("credibility level α")
    ax.set_ylabel("expected coverage")
    ax.set_title(f"TARP ({SYNTHETIC_NOTE})", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, png, pdf, dpi=dpi)


def figure_spectra(
    sample_files: Sequence[str | os.PathLike],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    *,
    dpi: int = 110,
) -> None:
    """b(k) and r(k) (k in h/Mpc) of conditional samples against the truth, mean over samples and views of
    every file, one curve per target channel, with the 16–84 % band over views."""
    per_channel: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    k = None
    for path in sample_files:
        with h5py.File(path, "r") as f:
            samples, truth = f["samples"][()], f["truth"][()]
            channels = [str(c) for c in np.atleast_1d(f.attrs["channels"])]
            pixel_kpc, h = float(f.attrs["pixel_kpc"]), float(f.attrs["hubble_h"])
        for c, name in enumerate(channels):
            for v in range(samples.shape[0]):
                k, b, r = bias_and_correlation(samples[v, :, c], truth[v, c], pixel_kpc=pixel_kpc, h=h)
                per_channel.setdefault(name, []).append((b.mean(axis=0), r.mean(axis=0)))
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3))
    for name, pairs in per_channel.items():
        for ax, idx in zip(axes, (0, 1), strict=True):
            vals = np.array([p[idx] for p in pairs])
            line = ax.semilogx(k, np.nanmean(vals, axis=0), label=name)[0]
            lo, hi = np.nanpercentile(vals, [16, 84], axis=0)
            ax.fill_between(k, lo, hi, color=line.get_color(), alpha=0.2)
    for ax, label in zip(axes, ("bias b(k)", "correlation r(k)"), strict=True):
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.axvline(2.0, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("k [h/Mpc]")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Conditional samples vs truth ({SYNTHETIC_NOTE})", fontsize=9)
    save_figure(fig, png, pdf, dpi=dpi)


def _display(method: str) -> str:
    return method.replace("-", "+") if method.startswith("P") else method


def make_named_figure(
    name: str,
    *,
    inputs: Mapping[str, object],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    params: Mapping[str, object],
) -> None:
    """Dispatch of the figure rules: ``name`` is posterior, methods, calibration, redshifts, tarp or spectra;
    inputs/params: the rule's named inputs and params (see ``workflow/rules/report.smk``)."""
    from darkclusters.evaluation.collect import load_scores, posterior_tarp_curves, tarp_from_files

    ev = params.get("evaluation", {})
    dpi = int(ev.get("figure_dpi", 110)) if isinstance(ev, Mapping) else 110
    methods = [str(m) for m in params.get("methods", [])]  # type: ignore[union-attr]
    if name in ("posterior", "methods"):
        preds = dict(zip(methods, [str(p) for p in inputs["predictions"]], strict=True))  # type: ignore[arg-type]
        if name == "methods":
            figure_methods(
                {_display(m): p for m, p in preds.items()},
                str(inputs["maps"]),
                str(inputs["observations"]),
                png,
                pdf,
                fov=str(params["fov"]),
                dpi=dpi,
            )
            return
        posterior = [m for m in methods if m.startswith("P")][-1]
        figure_posterior(
            preds[posterior],
            str(inputs["maps"]),
            str(inputs["observations"]),
            png,
            pdf,
            fov=str(params["fov"]),
            dpi=dpi,
        )
    elif name == "calibration":
        posts = [str(p) for p in inputs["posteriors"]]  # type: ignore[union-attr]
        maps = [str(p) for p in inputs["maps"]]  # type: ignore[union-attr]
        obs = [str(p) for p in inputs["observations"]]  # type: ignore[union-attr]
        n = len(maps)
        groups = {
            _display(m): list(zip(posts[i * n : (i + 1) * n], maps, obs, strict=True))
            for i, m in enumerate(methods)
        }
        figure_calibration(
            groups,
            png,
            pdf,
            fov=str(params["fov"]),
            n_bins=int(ev.get("rmse_sigma_bins", 20)),
            dpi=dpi,  # type: ignore[union-attr]
        )
    elif name == "redshifts":
        figure_redshifts(load_scores([str(p) for p in inputs["scores"]]), png, pdf, dpi=dpi)  # type: ignore[union-attr]
    elif name == "tarp":
        seed = int(params["seed"])  # type: ignore[arg-type]
        curves = {}
        samples = [str(p) for p in inputs.get("samples", [])]  # type: ignore[union-attr]
        if samples:
            res = tarp_from_files(samples, seed=seed)
            if res is not None:
                curves[f"{params.get('conditional')} prior"] = res
        groups = params.get("posterior_groups") or []
        found = posterior_tarp_curves(groups, fov=str(params.get("fov")), seed=seed) if groups else {}
        for (m, sim), res in found.items():
            curves[f"{m} ({sim})"] = res
        figure_tarp(curves, png, pdf, dpi=dpi)
    elif name == "spectra":
        figure_spectra([str(p) for p in inputs["samples"]], png, pdf, dpi=dpi)  # type: ignore[union-attr]
    else:
        raise ValueError(f"unknown figure {name!r}")

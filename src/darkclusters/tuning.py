"""Sampler hyper-parameter search on the validation split (rule ``tune_sampler``).

For one dataset and one lensing method (P+SL, P+WL, P+SL+WL) every trial reconstructs the chosen views of the
validation clusters with the same seeds (common random numbers, so trials differ only by their settings) and
is scored against the truth maps Σ [Msun kpc⁻²]:

    rel_rmse = √⟨(Σ̄ − Σ_true)²⟩ / √⟨Σ_true²⟩          (posterior mean Σ̄; pooled over views and clusters)
    cal      = |ln(RMSE / (σ̄ √(1 + 1/S)))|,  σ̄ = √⟨σ²⟩   (S samples, σ the per-pixel posterior std)
    score    = ln(rel_rmse) + calibration_weight · cal   (lower is better)

rel_rmse ranks trials as the paper's PSNR does (PSNR = 20 log₁₀(range / RMSE) with a fixed truth range), and
is the accuracy of the product. cal is the paper's RMSE–σ relation pooled over pixels (seed 000, Fig. 3): a
calibrated posterior has RMSE ≈ σ̄√(1 + 1/S), so cal = 0; it stops the search from buying accuracy with an
over-confident (collapsed) or inflated spread — the per-pixel uncertainty is half of the product. Both terms
are logarithms, so calibration_weight w reads: a factor e of mis-calibration costs as much as a factor e^w
of error. Trial 0 is the config's own values, so the chosen setting is never worse on the validation score
than the config; ties keep the earlier trial. A trial that diverges — the sampler raises
SamplerDivergedError, a posterior sample is non-finite (e.g. the inverse normalisation overflows), or the
score is NaN — scores +inf with its ``error`` recorded and is never chosen (:func:`trial_metrics`); only
trials with a finite score compete, and when none has one, ``chosen`` is empty (the config's values stay),
``best`` is null and a ``note`` says so.

Output ``results/tuning/{dataset}/{method}.yaml``: ``chosen`` (daps/weights overrides read by
:func:`darkclusters.reconstruct.apply_tuning`), ``baseline`` and ``best`` metrics, the full scored grid
``trials``, the validation clusters/views and provenance.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from darkclusters.datasets import read_channels
from darkclusters.diffusion.inference import accelerated_denoiser
from darkclusters.diffusion.samplers.heun import Denoiser, SamplerDivergedError
from darkclusters.diffusion.train import load_denoiser, load_model_info
from darkclusters.evaluation.calibration import fraction_within
from darkclusters.io import _canonical, atomic_path, provenance
from darkclusters.reconstruct import (
    DEFAULT_WEIGHTS,
    _device,
    apply_tuning,
    parse_inputs,
    read_cluster_observations,
    sample_cluster,
)
from darkclusters.seeding import derive_rng, derive_seed

__all__ = [
    "PARAMETERS",
    "ValidationCluster",
    "clusters_from_paths",
    "score_samples",
    "trial_metrics",
    "trial_settings",
    "tune_sampler",
    "tuning_file",
    "validation_inputs",
]

# tunable parameter → (config section, key) in the ``reconstruction`` section
PARAMETERS: dict[str, tuple[str, str]] = {
    "lr": ("daps", "lr"),
    "scale_lr_by_sigma2": ("daps", "scale_lr_by_sigma2"),
    "tau": ("daps", "tau"),
    "langevin_steps": ("daps", "langevin_steps"),
    "annealing_steps": ("daps", "annealing_steps"),
    "strong_geometric": ("weights", "strong_geometric"),
    "weak": ("weights", "weak"),
}
_DAPS_DEFAULTS = {
    "lr": 1.0e-6,
    "scale_lr_by_sigma2": False,
    "tau": 1.0,
    "langevin_steps": 100,
    "annealing_steps": 200,
}  # schema defaults

ValidationCluster = tuple[str, str | os.PathLike, str | os.PathLike]  # (cluster id, maps path, obs path)


def _applies(name: str, inputs: str) -> bool:
    use_strong, use_weak = parse_inputs(inputs)
    return {"strong_geometric": use_strong, "weak": use_weak}.get(name, True)


def _current(recon_cfg: Mapping[str, Any], name: str) -> Any:
    section, key = PARAMETERS[name]
    defaults = DEFAULT_WEIGHTS if section == "weights" else _DAPS_DEFAULTS
    return recon_cfg.get(section, {}).get(key, defaults[key])


def trial_settings(recon_cfg: Mapping[str, Any], inputs: str, *, seed: int) -> list[dict[str, Any]]:
    """The trials of one method: a list of {parameter: value}, trial 0 the config's own values.

    recon_cfg: the validated ``reconstruction`` section (its ``tuning`` block gives strategy, n_trials and
    space). Only parameters that apply to ``inputs`` and have candidates are searched. ``grid``: every
    combination (ValueError naming ``reconstruction.tuning.n_trials`` when they exceed n_trials − 1);
    ``random``: n_trials − 1 distinct combinations drawn with an RNG seeded from ``seed``.
    """
    tuning = recon_cfg.get("tuning", {})
    space = {
        name: list(values)
        for name, values in tuning.get("space", {}).items()
        if values and _applies(name, inputs)
    }
    baseline = {name: _current(recon_cfg, name) for name in space}
    combos = [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]
    combos = [c for c in combos if c != baseline]
    n_more = int(tuning.get("n_trials", 6)) - 1
    if tuning.get("strategy", "random") == "grid":
        if len(combos) > n_more:
            raise ValueError(
                f"config key 'reconstruction.tuning.n_trials': the grid holds {len(combos)} combinations "
                f"besides the config's values, more than n_trials − 1 = {n_more}; raise n_trials or shrink "
                "the space"
            )
        chosen = combos
    else:
        rng = derive_rng(seed, "trials", inputs)
        picks = rng.choice(len(combos), size=min(n_more, len(combos)), replace=False) if combos else []
        chosen = [combos[int(k)] for k in picks]
    return [baseline, *chosen]


def _overrides(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{section: {key: value}} of a trial's parameters."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in params.items():
        section, key = PARAMETERS[name]
        out.setdefault(section, {})[key] = value
    return out


def score_samples(
    samples: Sequence[np.ndarray], truths: Sequence[np.ndarray], *, calibration_weight: float
) -> dict[str, float]:
    """Validation metrics of posterior samples (module docstring), pooled over clusters.

    samples: per cluster (V, S, H, W) Σ [Msun kpc⁻²] with S ≥ 2; truths: per cluster (V, H, W) Σ. Returns
    score, rel_rmse, rmse [Msun kpc⁻²], sigma_rms [Msun kpc⁻²], calibration (the cal term),
    frac_within_1sigma (of the standardized errors; ≈ 0.68 when calibrated).
    """
    if len(samples) != len(truths) or not samples:
        raise ValueError(f"{len(samples)} sample sets for {len(truths)} truths (need ≥ 1 of each, equal)")
    err2, tru2, var, z = [], [], [], []
    n_samples = samples[0].shape[1]
    for s, t in zip(samples, truths, strict=True):
        if s.ndim != 4 or s.shape[1] < 2 or s.shape[:1] + s.shape[2:] != t.shape:
            raise ValueError(f"samples {s.shape} must be (V, S ≥ 2, H, W) for truth (V, H, W) {t.shape}")
        mean, std = s.mean(axis=1), s.std(axis=1, ddof=1)
        err2.append(((mean - t) ** 2).ravel())
        tru2.append((t**2).ravel())
        var.append((std**2).ravel())
        with np.errstate(invalid="ignore", divide="ignore"):
            z.append(np.where(std > 0, (mean - t) / std, np.nan).ravel())
    rmse = float(np.sqrt(np.mean(np.concatenate(err2))))
    rel = rmse / float(np.sqrt(np.mean(np.concatenate(tru2))))
    sigma = float(np.sqrt(np.mean(np.concatenate(var))))
    cal = abs(math.log(rmse / (sigma * math.sqrt(1.0 + 1.0 / n_samples)))) if sigma > 0 else math.inf
    zs = np.concatenate(z)
    return {
        "score": math.log(rel) + calibration_weight * cal,
        "rel_rmse": rel,
        "rmse": rmse,
        "sigma_rms": sigma,
        "calibration": cal,
        "frac_within_1sigma": fraction_within(zs) if np.isfinite(zs).any() else float("nan"),
    }


def trial_metrics(
    samples: Sequence[np.ndarray], truths: Sequence[np.ndarray], *, calibration_weight: float
) -> dict[str, float | str]:
    """:func:`score_samples` of one trial, or score +inf with an ``error`` when it diverged unnoticed by the
    sampler: some posterior sample is non-finite (then no other metric is computed), or the score is NaN.

    samples, truths: as in :func:`score_samples`.
    """
    total = sum(int(np.size(s)) for s in samples)
    bad = sum(int(np.size(s) - np.count_nonzero(np.isfinite(s))) for s in samples)
    if bad:
        return {"score": math.inf, "error": f"non-finite posterior samples: {bad} of {total} values"}
    metrics: dict[str, float | str] = {
        **score_samples(samples, truths, calibration_weight=calibration_weight)
    }
    if math.isnan(float(metrics["score"])):
        metrics.update({"score": math.inf, "error": "NaN validation score"})
    return metrics


def tune_sampler(
    *,
    model_pt: str | os.PathLike,
    clusters: Sequence[ValidationCluster],
    out_path: str | os.PathLike,
    dataset: str,
    inputs: str,
    recon_cfg: Mapping[str, Any],
    seed: int,
    device: str = "auto",
    denoiser: Denoiser | None = None,
) -> dict[str, Any]:
    """Search the sampler settings of ``inputs`` on validation clusters and write the tuning YAML.

    clusters: (cluster id, truth maps path, observations path) of the validation clusters to score (the rule
    passes the first ``tuning.max_clusters``); recon_cfg: the validated ``reconstruction`` section (fov,
    weak_regime, daps, weights, tuning). seed: the master seed of this dataset and method; every trial uses
    the same per-cluster seeds. denoiser replaces the network of model_pt (tests). Returns the written
    document. With no validation cluster it writes empty ``chosen`` (the config's values stay).
    """
    if not any(parse_inputs(inputs)):
        raise ValueError(f"inputs={inputs!r} has no likelihood to tune (use P+SL, P+WL or P+SL+WL)")
    tuning = recon_cfg.get("tuning", {})
    views = [int(v) for v in tuning.get("views", [0, 1])]
    n_samples = int(tuning.get("n_samples", 4))
    weight = float(tuning.get("calibration_weight", 0.5))
    use_strong, use_weak = parse_inputs(inputs)
    trials = trial_settings(recon_cfg, inputs, seed=seed)
    doc: dict[str, Any] = {
        "dataset": dataset,
        "method": inputs,
        "score": {
            "definition": "ln(rel_rmse) + calibration_weight*|ln(rmse/(sigma_rms*sqrt(1+1/S)))|; lower wins",
            "calibration_weight": weight,
        },
        "validation": {"clusters": [c[0] for c in clusters], "views": views, "n_samples": n_samples},
    }
    if clusters:
        dev = _device(device)
        info = load_model_info(model_pt)
        model_cfg = info["config"]["model"]
        if denoiser is None:
            accelerate = recon_cfg.get("accelerate", {})
            denoise = accelerated_denoiser(load_denoiser(model_pt, dev), dev, accelerate)
        else:
            denoise = denoiser
        data, truths = [], []
        for _cid, maps_path, obs_path in clusters:
            data.append(
                read_cluster_observations(
                    obs_path,
                    fov=recon_cfg["fov"],
                    channels=model_cfg["condition_channels"],
                    weak_regime=recon_cfg["weak_regime"],
                    use_strong=use_strong,
                    use_weak=use_weak,
                    views=views,
                )
            )
            truth, _ = read_channels(
                model_cfg["target_channels"][:1], maps_path=maps_path, obs_path=obs_path, fov=recon_cfg["fov"]
            )
            truths.append(truth[views, 0].astype(np.float64))
        rows = []
        for params in trials:
            cfg = apply_tuning({**recon_cfg, "n_samples": n_samples}, None)
            for section, values in _overrides(params).items():
                cfg[section] = {**cfg.get(section, {}), **values}
            start = time.perf_counter()
            row: dict[str, Any] = {"params": dict(params)}
            try:
                samples = [
                    sample_cluster(
                        denoise,
                        info["normalisation"],
                        model_cfg,
                        d,
                        inputs=inputs,
                        recon_cfg=cfg,
                        seed=derive_seed(seed, cid),
                        device=dev,
                    )[0]
                    for (cid, _, _), d in zip(clusters, data, strict=True)
                ]
                row.update(trial_metrics(samples, truths, calibration_weight=weight))
            except SamplerDivergedError as err:
                row.update({"score": math.inf, "error": str(err)})
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
        finite = [k for k, row in enumerate(rows) if math.isfinite(row["score"])]  # diverged: +inf
        best = min(finite, key=lambda k: (rows[k]["score"], k)) if finite else None
        doc["chosen"] = _overrides(rows[best]["params"]) if best is not None else {}
        doc["baseline"] = {k: v for k, v in rows[0].items() if k != "params"}
        doc["best"] = None
        if best is not None:
            doc["best"] = {"trial": best, **{k: v for k, v in rows[best].items() if k != "params"}}
        else:
            doc["note"] = "every trial diverged: the config's values are kept"
        doc["trials"] = rows
    else:
        doc.update(
            {"chosen": {}, "note": "no validation cluster: the config's values are kept", "trials": []}
        )
    doc["provenance"] = provenance(
        cfg=recon_cfg,
        seed=seed,
        inputs=[os.fspath(model_pt)] + [os.fspath(p) for c in clusters for p in c[1:]],
        device_type="cpu" if not clusters else _device(device).type,
        torch_version=str(torch.__version__),
    )
    doc = _canonical(doc)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc


def validation_inputs(
    dataset: str, catalog_paths: Mapping[str, str | os.PathLike], config: Mapping[str, Any]
) -> dict[str, Any]:
    """Inputs of rule tune_sampler for one dataset: ``model``, and per validation cluster ``maps`` and
    ``observations`` (``results/{maps,observations}/{sim}/{snap:03d}/{halo}.h5``).

    catalog_paths: {sim: results/catalog/{sim}.parquet} of the dataset's simulations (the rule passes the
    checkpoint outputs). Validation clusters are the ``split == "val"`` rows of the dataset's simulations (and
    snapshots, if it names some), in catalog order, the first ``reconstruction.tuning.max_clusters``.
    """
    spec = config["datasets"][dataset]
    maps, obs = [], []
    for sim in spec["simulations"]:
        catalog = pd.read_parquet(catalog_paths[sim])
        val = catalog[catalog["split"] == "val"]
        for snap, halo in zip(val["snapshot"].astype(int), val["halo_id"].astype(int), strict=True):
            if spec["snapshots"] is None or snap in spec["snapshots"]:
                rel = f"{sim}/{snap:03d}/{halo}.h5"
                maps.append(f"results/maps/{rel}")
                obs.append(f"results/observations/{rel}")
    limit = config["reconstruction"]["tuning"]["max_clusters"]
    n = len(maps) if limit is None else int(limit)
    return {"model": f"results/models/{dataset}/prior/model.pt", "maps": maps[:n], "observations": obs[:n]}


def clusters_from_paths(
    maps: Sequence[str | os.PathLike], observations: Sequence[str | os.PathLike]
) -> list[ValidationCluster]:
    """(cluster id ``{sim}-{snap}-{halo}``, maps, observations) from ``.../{sim}/{snap}/{halo}.h5`` paths."""
    if len(maps) != len(observations):
        raise ValueError(f"{len(maps)} truth-map files for {len(observations)} observation files")
    out = []
    for m, o in zip(maps, observations, strict=True):
        sim, snap, name = Path(m).parts[-3:]
        out.append((f"{sim}-{snap}-{Path(name).stem}", m, o))
    return out


def tuning_file(dataset: str, method: str, config: Mapping[str, Any]) -> list[str]:
    """The tuning file rule reconstruct reads for a path-safe method name: none for P (no likelihood) or with
    ``reconstruction.tuning.enabled`` false."""
    if method == "P" or not config["reconstruction"]["tuning"]["enabled"]:
        return []
    return [f"results/tuning/{dataset}/{method}.yaml"]

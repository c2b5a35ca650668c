"""Posterior mass maps of observed clusters: the photometry-conditioned diffusion prior, optionally guided by
strong- and weak-lensing likelihoods (the DarkClusters paper, Section 5; DAPS of Zhang et al. 2025).

Inputs name what constrains Σ: ``P`` (photometry through the conditional prior only: EDM Heun sampling of
p(x | photometry)), ``P+SL``, ``P+WL``, ``P+SL+WL`` (DAPS with the lensing negative log-likelihood). The
prior is conditional, so every combination includes P. The likelihood of a normalised sample x_0
(B, 1, H, W) is

    Σ = N⁻¹(x_0) [Msun kpc⁻²],  κ = Σ / Σcr(z_lens, z_ref),
    nll = w_SL · L_geo(κ) [arcsec²] + w_WL · χ²_WL(κ),   χ²_WL = Σ_i |e_i − g_i(κ)|² / (2σ_e,i²),

the paper's eq. 10 with its geometric strong-lensing term (eq. 12; the photometric term is off: observed arcs
are blended with cluster light) and the per-source weak-lensing term. The paper's weights are 6.30 (strong)
with an inner geometric weight 1e-2 and 0.046 (weak), so the default ``strong_geometric`` is
6.30 · 1e-2 = 0.063. Rule ``tune_sampler`` (:mod:`darkclusters.tuning`) may override the DAPS and weight
settings per method from the validation split (:func:`apply_tuning`); the CLI ``darkclusters reconstruct``
feeds :func:`sample_cluster` from FITS + CSV files instead of an observation file
(:mod:`darkclusters.user_inputs`).
Output ``results/posteriors/{method}/{dataset}/{sim}/{snap}/{halo}.h5``::

    /           attrs method (the inputs string), fov, weak_regime, n_samples, n_views, nfe_per_sample,
                timing_seconds, z_lens, z_ref, sigma_crit_ref_msun_kpc2, pixel_arcsec, provenance
    /mean       (V, H, W) posterior mean of Σ [Msun kpc⁻²]
    /std        (V, H, W) posterior standard deviation of Σ [Msun kpc⁻²]
    /quantiles  (V, 3, H, W) 16/50/84 % quantiles of Σ [Msun kpc⁻²]
    /samples    (V, S, H, W) the samples of Σ [Msun kpc⁻²] (only with ``save_samples``)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import yaml

from darkclusters.diffusion.inference import accelerated_denoiser
from darkclusters.diffusion.normalise import Normalisation
from darkclusters.diffusion.samplers.conditional import sample_conditional
from darkclusters.diffusion.samplers.daps import DAPSConfig, daps_nfe, sample_daps
from darkclusters.diffusion.samplers.heun import Denoiser
from darkclusters.diffusion.train import load_denoiser, load_model_info
from darkclusters.io import atomic_path, provenance, read_nested, write_hdf5_attrs
from darkclusters.lensing.strong_likelihood import StrongLensingLikelihood
from darkclusters.lensing.weak_likelihood import WeakLensingLikelihood
from darkclusters.seeding import derive_seed

__all__ = [
    "DEFAULT_WEIGHTS",
    "INPUTS",
    "QUANTILES",
    "ClusterObservations",
    "LensingNLL",
    "apply_tuning",
    "build_nll",
    "daps_config",
    "inputs_from_path",
    "parse_inputs",
    "read_cluster_observations",
    "reconstruct_cluster_file",
    "reconstruct_views",
    "sample_cluster",
    "write_posterior",
]

INPUTS = ("P", "P+SL", "P+WL", "P+SL+WL")  # supported input combinations; the prior always sees P
QUANTILES = (0.16, 0.5, 0.84)  # posterior quantiles written per pixel
DEFAULT_WEIGHTS = {"strong_geometric": 0.063, "weak": 0.046}  # the schema defaults (module docstring)
_DAPS_KEYS = (
    "annealing_steps",
    "ode_steps",
    "langevin_steps",
    "lr",
    "lr_min_ratio",
    "tau",
    "sigma_max",
    "sigma_min",
    "rho",
    "scale_lr_by_sigma2",
)


def parse_inputs(inputs: str) -> tuple[bool, bool]:
    """(use_strong, use_weak) of an inputs string such as ``"P+SL+WL"``; ValueError naming a bad one."""
    if inputs not in INPUTS:
        raise ValueError(
            f"inputs={inputs!r} is not supported: use one of {list(INPUTS)} (the prior is conditioned on "
            "photometry, so every combination includes P)"
        )
    parts = inputs.split("+")
    return "SL" in parts, "WL" in parts


def inputs_from_path(name: str) -> str:
    """The inputs string of a path-safe method name (``"P-SL-WL"`` → ``"P+SL+WL"``), validated."""
    inputs = name.replace("-", "+")
    parse_inputs(inputs)
    return inputs


class LensingNLL:
    """nll(x_0) → (B,) for normalised samples x_0 (B, 1, H, W), B = V·S ordered view-major (b = v·S + s).

    mass_norm: the target channel's :class:`Normalisation` (its inverse gives Σ [Msun kpc⁻²], differentiable).
    sigma_crit: Σcr(z_lens, z_ref) [Msun kpc⁻²]. strong: one StrongLensingLikelihood (or None: no family with
    two images) per view, already weighted. weak: a WeakLensingLikelihood over the V views (mode "sources",
    already weighted) or None. n_samples: S.
    """

    def __init__(
        self,
        mass_norm: Normalisation,
        sigma_crit: float,
        *,
        strong: Sequence[StrongLensingLikelihood | None] | None,
        weak: WeakLensingLikelihood | None,
        n_views: int,
        n_samples: int,
    ) -> None:
        if strong is not None and len(strong) != n_views:
            raise ValueError(f"{len(strong)} strong-lensing likelihoods for {n_views} views")
        if weak is not None and weak.n_views != n_views:
            raise ValueError(f"the weak-lensing likelihood holds {weak.n_views} views, expected {n_views}")
        self.mass_norm, self.sigma_crit = mass_norm, float(sigma_crit)
        self.strong, self.weak = strong, weak
        self.n_views, self.n_samples = int(n_views), int(n_samples)

    def kappa(self, x0: torch.Tensor) -> torch.Tensor:
        """κ at z_ref (V, S, H, W) of normalised samples x_0 (V·S, 1, H, W)."""
        sigma = self.mass_norm.inverse(x0)[:, 0]
        return (sigma / self.sigma_crit).reshape(self.n_views, self.n_samples, *x0.shape[-2:])

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        kappa = self.kappa(x0)
        # zero that keeps the graph: a view set without constraints still has a (zero) gradient
        total = (0.0 * x0).sum(dim=(-3, -2, -1)).reshape(self.n_views, self.n_samples)
        if self.strong is not None:
            terms = [
                lik.nll(kappa[v]) if lik is not None else x0.new_zeros(self.n_samples)
                for v, lik in enumerate(self.strong)
            ]
            total = total + torch.stack(terms)
        if self.weak is not None:  # one catalogue per view: (S, H, W) → (S,) for V = 1, else (S, V)
            if self.n_views == 1:
                total = total + self.weak.nll(kappa[0])[None]
            else:
                total = total + self.weak.nll(kappa.transpose(0, 1)).transpose(0, 1)
        return total.reshape(-1)


def reconstruct_views(
    denoise: Denoiser,
    mass_norm: Normalisation,
    cond: torch.Tensor,
    nll: Callable[[torch.Tensor], torch.Tensor] | None,
    *,
    n_samples: int,
    seed: int,
    daps: DAPSConfig | None = None,
    conditional_steps: int = 18,
) -> tuple[np.ndarray, int]:
    """Posterior samples of Σ for V views: ((V, S, H, W) Σ [Msun kpc⁻²] float64, network calls per sample).

    denoise(x, sigma, cond) → x̂_0 in normalised units; cond (V, Cc, H, W) normalised photometry, repeated S
    times (batch V·S, view-major); nll: None samples p(x | photometry) with ``conditional_steps`` Heun steps,
    else DAPS with ``daps`` on nll(x_0) → (V·S,). Sample (v, s) uses derive_seed(seed, v, s), so it does not
    depend on the batch.
    """
    n_views = cond.shape[0]
    batch_cond = cond.repeat_interleave(n_samples, dim=0)
    seeds = [derive_seed(seed, v, s) for v in range(n_views) for s in range(n_samples)]
    shape = (1, *cond.shape[-2:])
    if nll is None:
        x0 = sample_conditional(denoise, shape, cond=batch_cond, seeds=seeds, n_steps=conditional_steps)
        nfe = 2 * conditional_steps - 1
    else:
        cfg = daps or DAPSConfig()
        x0 = sample_daps(denoise, shape, cond=batch_cond, nll=nll, seeds=seeds, cfg=cfg)
        nfe = daps_nfe(cfg)
    with torch.no_grad():
        sigma = mass_norm.inverse(x0.detach())[:, 0]
    return sigma.double().cpu().numpy().reshape(n_views, n_samples, *shape[1:]), nfe


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _read_photometry(obs: h5py.File, fov: str, channels: Sequence[str]) -> tuple[np.ndarray, float]:
    """(V, Cc, H, W) images [Jy per pixel] in the model's condition-channel order, and the pixel [arcsec]."""
    key = f"photometry/{fov}/images"
    if key not in obs:
        raise KeyError(f"{obs.filename}: no {key!r} (fields of view: {list(obs.get('photometry', {}))})")
    dset = obs[key]
    bands = [str(b) for b in dset.attrs["bands"]]
    index = []
    for name in channels:
        band = name.split(":", 1)[-1]
        if band not in bands:
            raise KeyError(f"{obs.filename}: {key} lacks band {band!r} for channel {name!r} (has {bands})")
        index.append(bands.index(band))
    return np.asarray(dset[()], dtype=np.float64)[:, index], float(
        obs[f"photometry/{fov}"].attrs["pixel_arcsec"]
    )


@dataclass
class ClusterObservations:
    """What one cluster's reconstruction reads, whatever the source (observation file, FITS + CSV).

    images: (V, Cc, H, W) photometry [Jy per pixel] in the model's condition-channel order. pixel_arcsec: the
    pixel side [arcsec]. z_lens, z_ref: lens and reference source redshifts; sigma_crit: Σcr(z_lens, z_ref)
    [Msun kpc⁻²]. strong: per view a strong-lensing catalogue (``{"images": ..., "families": ...}``, positions
    [arcsec] from the field centre, ``deflection_scale`` per family) or None. weak: per view a weak-lensing
    catalogue (x_arcsec, y_arcsec, e1, e2, sigma_e, ratio_to_ref) or None.
    """

    images: np.ndarray
    pixel_arcsec: float
    z_lens: float
    z_ref: float
    sigma_crit: float
    strong: list[dict[str, Any]] | None = None
    weak: list[dict[str, Any]] | None = None

    @property
    def n_views(self) -> int:
        return int(self.images.shape[0])

    @property
    def lens_attrs(self) -> dict[str, float]:
        return {"z_lens": self.z_lens, "z_ref": self.z_ref, "sigma_crit_ref_msun_kpc2": self.sigma_crit}


def read_cluster_observations(
    path: str | os.PathLike,
    *,
    fov: str,
    channels: Sequence[str],
    weak_regime: str,
    use_strong: bool,
    use_weak: bool,
    views: Sequence[int] | None = None,
) -> ClusterObservations:
    """The photometry and lensing catalogues of one ``results/observations/...`` file (views: a subset)."""
    with h5py.File(path, "r") as obs:
        images, pixel_arcsec = _read_photometry(obs, fov, channels)
        views = list(range(images.shape[0])) if views is None else [int(v) for v in views]
        bad = [v for v in views if not 0 <= v < images.shape[0]]
        if bad:
            raise KeyError(f"{path}: views {bad} not among the {images.shape[0]} views of photometry/{fov}")
        lens = obs["lensing"].attrs
        data = ClusterObservations(
            images=images[views],
            pixel_arcsec=pixel_arcsec,
            z_lens=float(lens["z_lens"]),
            z_ref=float(lens["z_ref"]),
            sigma_crit=float(lens["sigma_crit_ref_msun_kpc2"]),
        )
        if not (use_strong or use_weak):
            return data
        if f"lensing/{fov}" not in obs:
            raise KeyError(f"{obs.filename}: no 'lensing/{fov}' group")
        groups = [obs[f"lensing/{fov}/view_{v:03d}"] for v in views]
        if use_strong:
            data.strong = [read_nested(g["strong"]) for g in groups]
        if use_weak:
            name = f"weak_{weak_regime}"
            missing = [v for v, g in zip(views, groups, strict=True) if name not in g]
            if missing:
                raise KeyError(
                    f"{obs.filename}: views {missing} of lensing/{fov} lack weak-lensing regime {name!r}"
                )
            data.weak = [read_nested(g[name]) for g in groups]
    return data


def build_nll(
    data: ClusterObservations,
    mass_norm: Normalisation,
    *,
    use_strong: bool,
    use_weak: bool,
    weights: Mapping[str, float],
    n_samples: int,
) -> LensingNLL | None:
    """The weighted lensing nll of V views × S samples (None for P only). A view without a family of two
    images has no strong-lensing term."""
    if not (use_strong or use_weak):
        return None
    strong = weak = None
    if use_strong:
        if data.strong is None:
            raise ValueError("strong lensing requested but the observations hold no strong-lensing catalogue")
        strong = []
        for catalog in data.strong:
            n_images = np.bincount(np.asarray(catalog["images"]["family_id"], dtype=np.int64))
            if not np.any(n_images >= 2):  # no family with two images: no geometric constraint
                strong.append(None)
                continue
            strong.append(
                StrongLensingLikelihood(
                    catalog,
                    data.pixel_arcsec,
                    weight_geometric=float(weights["strong_geometric"]),
                    weight_photometric=0.0,
                )
            )
    if use_weak:
        if data.weak is None:
            raise ValueError("weak lensing requested but the observations hold no weak-lensing catalogue")
        weak = WeakLensingLikelihood(
            data.weak,
            tuple(data.images.shape[-2:]),
            data.pixel_arcsec,
            mode="sources",
            weight=float(weights["weak"]),
        )
    return LensingNLL(
        mass_norm, data.sigma_crit, strong=strong, weak=weak, n_views=data.n_views, n_samples=n_samples
    )


def daps_config(recon_cfg: Mapping[str, Any]) -> DAPSConfig:
    """The DAPSConfig of a ``reconstruction`` config section (τ = 1 unless set: the nll is already
    weighted)."""
    daps_cfg = recon_cfg.get("daps", {})
    return DAPSConfig(**{"tau": 1.0, **{k: daps_cfg[k] for k in _DAPS_KEYS if k in daps_cfg}})


def sample_cluster(
    denoise: Denoiser,
    norm: Normalisation,
    model_cfg: Mapping[str, Any],
    data: ClusterObservations,
    *,
    inputs: str,
    recon_cfg: Mapping[str, Any],
    seed: int,
    device: torch.device,
) -> tuple[np.ndarray, int, float]:
    """Posterior samples of one cluster: ((V, S, H, W) Σ [Msun kpc⁻²], network calls per sample, seconds).

    norm: the model's normalisation (all channels); model_cfg: its ``model`` config (target and condition
    channel names); recon_cfg: the ``reconstruction`` section (n_samples, weights, daps, conditional_steps).
    """
    use_strong, use_weak = parse_inputs(inputs)
    mass_norm = norm.select(model_cfg["target_channels"])
    cond_norm = norm.select(model_cfg["condition_channels"])
    n_samples = int(recon_cfg.get("n_samples", 20))
    weights = {**DEFAULT_WEIGHTS, **recon_cfg.get("weights", {})}
    nll = build_nll(
        data, mass_norm, use_strong=use_strong, use_weak=use_weak, weights=weights, n_samples=n_samples
    )
    cond = torch.as_tensor(cond_norm.forward(data.images), dtype=torch.get_default_dtype(), device=device)
    start = time.perf_counter()
    samples, nfe = reconstruct_views(
        denoise,
        mass_norm,
        cond,
        nll,
        n_samples=n_samples,
        seed=seed,
        daps=daps_config(recon_cfg),
        conditional_steps=int(recon_cfg.get("conditional_steps", 18)),
    )
    return samples, nfe, time.perf_counter() - start


def write_posterior(
    out_path: str | os.PathLike,
    samples: np.ndarray,
    *,
    attrs: Mapping[str, Any],
    save_samples: bool,
    pixel_arcsec: float,
) -> Path:
    """Write mean, std, quantiles (and optionally the samples) of (V, S, H, W) Σ samples atomically; attrs go
    on the root group (layout in the module docstring)."""
    n_samples = samples.shape[1]
    maps = {"units": "Msun kpc^-2", "dims": "view,y,x", "pixel_arcsec": pixel_arcsec}
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        std = samples.std(axis=1, ddof=1 if n_samples > 1 else 0)
        for name, data in (("mean", samples.mean(axis=1)), ("std", std)):
            write_hdf5_attrs(f.create_dataset(name, data=data), maps)
        q = np.moveaxis(np.quantile(samples, QUANTILES, axis=1), 0, 1)
        q_attrs = {**maps, "dims": "view,quantile,y,x", "quantiles": QUANTILES}
        write_hdf5_attrs(f.create_dataset("quantiles", data=q), q_attrs)
        if save_samples:
            write_hdf5_attrs(f.create_dataset("samples", data=samples), {**maps, "dims": "view,sample,y,x"})
        write_hdf5_attrs(f, attrs)
    return out_path


def apply_tuning(recon_cfg: Mapping[str, Any], tuning_path: str | os.PathLike | None) -> dict[str, Any]:
    """``recon_cfg`` with the ``chosen`` values of a tuning file (``results/tuning/{dataset}/{method}.yaml``,
    written by :func:`darkclusters.tuning.tune_sampler`) overriding its ``daps`` and ``weights`` keys."""
    cfg = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in recon_cfg.items()}
    if tuning_path is None:
        return cfg
    with open(tuning_path) as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("chosen"), Mapping):
        raise ValueError(f"{tuning_path}: not a tuning file (no 'chosen' mapping)")
    for section, values in doc["chosen"].items():
        if section not in ("daps", "weights") or not isinstance(values, Mapping):
            raise ValueError(f"{tuning_path}: chosen.{section} is not a daps/weights mapping")
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


def reconstruct_cluster_file(
    *,
    model_pt: str | os.PathLike,
    observations_path: str | os.PathLike,
    out_path: str | os.PathLike,
    inputs: str,
    fov: str,
    weak_regime: str,
    recon_cfg: Mapping[str, Any],
    seed: int,
    device: str = "auto",
    denoiser: Denoiser | None = None,
    tuning_path: str | os.PathLike | None = None,
) -> Path:
    """Sample the posterior of Σ for every view of one observed cluster and write the summaries.

    model_pt: the trained prior (``results/models/{dataset}/prior/model.pt``); its normalisation maps the
    photometry [Jy per pixel] and Σ [Msun kpc⁻²]. observations_path: ``results/observations/...`` file.
    inputs: one of :data:`INPUTS`. fov: e.g. ``"fov225"``. weak_regime: e.g. ``"conventional"``. recon_cfg:
    the validated ``reconstruction`` config section (n_samples, weights, daps, conditional_steps,
    save_samples). tuning_path: a tuning file whose chosen values override recon_cfg (:func:`apply_tuning`).
    seed: master seed. device: "auto", "cpu" or "cuda". denoiser: replaces the network of model_pt (tests).
    Returns ``out_path`` (written atomically; layout in the module docstring).
    """
    use_strong, use_weak = parse_inputs(inputs)
    cfg = apply_tuning(recon_cfg, tuning_path)
    dev = _device(device)
    info = load_model_info(model_pt)
    model_cfg = info["config"]["model"]
    if denoiser is None:
        denoise = accelerated_denoiser(load_denoiser(model_pt, dev), dev, cfg.get("accelerate", {}))
    else:
        denoise = denoiser
    data = read_cluster_observations(
        observations_path,
        fov=fov,
        channels=model_cfg["condition_channels"],
        weak_regime=weak_regime,
        use_strong=use_strong,
        use_weak=use_weak,
    )
    samples, nfe, seconds = sample_cluster(
        denoise, info["normalisation"], model_cfg, data, inputs=inputs, recon_cfg=cfg, seed=seed, device=dev
    )
    inputs_files = [os.fspath(model_pt), os.fspath(observations_path)]
    if tuning_path is not None:
        inputs_files.append(os.fspath(tuning_path))
    attrs = {
        "method": inputs,
        "fov": fov,
        "weak_regime": weak_regime,
        "n_samples": samples.shape[1],
        "n_views": data.n_views,
        "nfe_per_sample": nfe,
        "timing_seconds": seconds,
        "pixel_arcsec": data.pixel_arcsec,
        **data.lens_attrs,
        **provenance(cfg=cfg, seed=seed, method=inputs, device_type=dev.type, inputs=inputs_files),
    }
    return write_posterior(
        out_path,
        samples,
        attrs=attrs,
        save_samples=bool(cfg.get("save_samples", False)),
        pixel_arcsec=data.pixel_arcsec,
    )

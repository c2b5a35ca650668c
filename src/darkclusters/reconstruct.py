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
6.30 · 1e-2 = 0.063.
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
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

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
    "INPUTS",
    "QUANTILES",
    "LensingNLL",
    "inputs_from_path",
    "parse_inputs",
    "reconstruct_cluster_file",
    "reconstruct_views",
]

INPUTS = ("P", "P+SL", "P+WL", "P+SL+WL")  # supported input combinations; the prior always sees P
QUANTILES = (0.16, 0.5, 0.84)  # posterior quantiles written per pixel
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


def _likelihoods(
    obs: h5py.File,
    fov: str,
    regime: str,
    use_strong: bool,
    use_weak: bool,
    *,
    shape: tuple[int, int],
    pixel_arcsec: float,
    n_views: int,
    weights: Mapping[str, float],
) -> tuple[list[StrongLensingLikelihood | None] | None, WeakLensingLikelihood | None]:
    """Per-view strong-lensing likelihoods and the V-view weak-lensing likelihood from ``/lensing/{fov}``."""
    if f"lensing/{fov}" not in obs:
        raise KeyError(f"{obs.filename}: no 'lensing/{fov}' group")
    views = [obs[f"lensing/{fov}/view_{v:03d}"] for v in range(n_views)]
    strong = weak = None
    if use_strong:
        strong = []
        for view in views:
            catalog = read_nested(view["strong"])
            n_images = np.bincount(np.asarray(catalog["images"]["family_id"], dtype=np.int64))
            if not np.any(n_images >= 2):  # no family with two images: no geometric constraint
                strong.append(None)
                continue
            strong.append(
                StrongLensingLikelihood(
                    catalog,
                    pixel_arcsec,
                    weight_geometric=float(weights["strong_geometric"]),
                    weight_photometric=0.0,
                )
            )
    if use_weak:
        name = f"weak_{regime}"
        missing = [v for v, view in enumerate(views) if name not in view]
        if missing:
            raise KeyError(
                f"{obs.filename}: views {missing} of lensing/{fov} lack weak-lensing regime {name!r}"
            )
        catalogs = [read_nested(view[name]) for view in views]
        weak = WeakLensingLikelihood(
            catalogs, shape, pixel_arcsec, mode="sources", weight=float(weights["weak"])
        )
    return strong, weak


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
) -> Path:
    """Sample the posterior of Σ for every view of one observed cluster and write the summaries.

    model_pt: the trained prior (``results/models/{dataset}/prior/model.pt``); its normalisation maps the
    photometry [Jy per pixel] and Σ [Msun kpc⁻²]. observations_path: ``results/observations/...`` file.
    inputs: one of :data:`INPUTS`. fov: e.g. ``"fov225"``. weak_regime: e.g. ``"conventional"``. recon_cfg:
    the validated ``reconstruction`` config section (n_samples, weights, daps, conditional_steps,
    save_samples).
    seed: master seed. device: "auto", "cpu" or "cuda". denoiser: replaces the network of model_pt (tests).
    Returns ``out_path`` (written atomically; layout in the module docstring).
    """
    use_strong, use_weak = parse_inputs(inputs)
    dev = _device(device)
    info = load_model_info(model_pt)
    model_cfg = info["config"]["model"]
    norm: Normalisation = info["normalisation"]
    mass_norm = norm.select(model_cfg["target_channels"])
    cond_norm = norm.select(model_cfg["condition_channels"])
    denoise = denoiser if denoiser is not None else load_denoiser(model_pt, dev)
    n_samples = int(recon_cfg.get("n_samples", 20))
    with h5py.File(observations_path, "r") as obs:
        images, pixel_arcsec = _read_photometry(obs, fov, model_cfg["condition_channels"])
        lens_attrs = {
            k: float(obs["lensing"].attrs[k]) for k in ("z_lens", "z_ref", "sigma_crit_ref_msun_kpc2")
        }
        n_views, shape = images.shape[0], images.shape[-2:]
        strong, weak = (None, None)
        if use_strong or use_weak:
            strong, weak = _likelihoods(
                obs,
                fov,
                weak_regime,
                use_strong,
                use_weak,
                shape=shape,
                pixel_arcsec=pixel_arcsec,
                n_views=n_views,
                weights=recon_cfg.get("weights", {"strong_geometric": 0.063, "weak": 0.046}),
            )
    dtype = torch.get_default_dtype()
    cond = torch.as_tensor(cond_norm.forward(images), dtype=dtype, device=dev)
    nll = None
    if use_strong or use_weak:
        nll = LensingNLL(
            mass_norm,
            lens_attrs["sigma_crit_ref_msun_kpc2"],
            strong=strong,
            weak=weak,
            n_views=n_views,
            n_samples=n_samples,
        )
    daps_cfg = recon_cfg.get("daps", {})
    # τ = 1: the weighted nll is already −log p(y | x_0) (module docstring); the schema's default too
    daps = DAPSConfig(**{"tau": 1.0, **{k: daps_cfg[k] for k in _DAPS_KEYS if k in daps_cfg}})
    start = time.perf_counter()
    samples, nfe = reconstruct_views(
        denoise,
        mass_norm,
        cond,
        nll,
        n_samples=n_samples,
        seed=seed,
        daps=daps,
        conditional_steps=int(recon_cfg.get("conditional_steps", 18)),
    )
    seconds = time.perf_counter() - start
    maps = {"units": "Msun kpc^-2", "dims": "view,y,x", "pixel_arcsec": pixel_arcsec}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as f:
        std = samples.std(axis=1, ddof=1 if n_samples > 1 else 0)
        for name, data in (("mean", samples.mean(axis=1)), ("std", std)):
            write_hdf5_attrs(f.create_dataset(name, data=data), maps)
        q = np.moveaxis(np.quantile(samples, QUANTILES, axis=1), 0, 1)
        q_attrs = {**maps, "dims": "view,quantile,y,x", "quantiles": QUANTILES}
        write_hdf5_attrs(f.create_dataset("quantiles", data=q), q_attrs)
        if recon_cfg.get("save_samples", False):
            write_hdf5_attrs(f.create_dataset("samples", data=samples), {**maps, "dims": "view,sample,y,x"})
        write_hdf5_attrs(
            f,
            {
                "method": inputs,
                "fov": fov,
                "weak_regime": weak_regime,
                "n_samples": n_samples,
                "n_views": n_views,
                "nfe_per_sample": nfe,
                "timing_seconds": seconds,
                "pixel_arcsec": pixel_arcsec,
                **lens_attrs,
                **provenance(
                    cfg=dict(recon_cfg),
                    seed=seed,
                    method=inputs,
                    device_type=dev.type,
                    inputs=[os.fspath(model_pt), os.fspath(observations_path)],
                ),
            },
        )
    return out_path

"""Benchmark: seconds per cluster for posterior sampling with DAPS and P+SL+WL, at 128² and 512².

The cost of one DAPS sample set is annealing_steps × (ode_steps network calls + langevin_steps likelihood
gradients), all on a batch of B = views × samples maps. On a CPU a full run at the paper's sizes takes hours,
so the script times the two components (one network call on the batch; one Langevin step = nll forward +
backward + update on the batch) a few times each and extrapolates to the default schedule (200 × 5 calls +
200 × 100 Langevin steps): it says so in the output ("extrapolated": true). With CUDA it also runs
``--levels`` real annealing levels of sample_daps and extrapolates those. The network is the paper's ADM UNet
(config/paper.yaml has no network section, so the training schema defaults: model_channels 128,
channel_mult [1,1,2,2,4,4], 2 blocks, attention at 32 and 16), randomly initialised (timing only); the lensing
data are mock strong + weak catalogues of a cored isothermal cluster. fp32 and bf16 (torch.autocast on the
network; the likelihood stays fp32). Peak memory: CUDA max allocated, else the process's max RSS.

Usage: python benchmarks/reconstruct.py [--sizes 128 512] [--samples 20] [--device auto] [--cpu-batch 2]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from darkclusters.config import load_schema
from darkclusters.cosmology import flat_lcdm, sigma_crit_msun_kpc2
from darkclusters.diffusion.edm import build_denoiser
from darkclusters.diffusion.normalise import Normalisation
from darkclusters.diffusion.samplers.daps import DAPSConfig, daps_nfe, sample_daps
from darkclusters.lensing.observe import observe_lensing_view
from darkclusters.reconstruct import ClusterObservations, build_nll

FOV, Z_LENS, Z_REF = 225.0, 0.3, 2.0
WEIGHTS = {"strong_geometric": 0.063, "weak": 0.046}  # the schema defaults
COSMO = flat_lcdm(0.6774, 0.3089, 0.0486)
LENSING: dict[str, Any] = {
    "z_ref": Z_REF,
    "source_redshifts": {"alpha": 2.0, "z0": 0.7, "beta": 1.5},
    "strong": {
        "n_systems_min": 5,
        "n_systems_max": 8,
        "families_per_arcmin2": 40.0,
        "min_abs_magnification": 0.2,
        "supersample": 1,
        "source_mag_f814w_range": [23.0, 26.0],
    },
    "weak": {"density_per_arcmin2": 30.0, "exclude_radius_arcsec": 20.0, "regimes": {"conventional": 0.26}},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device, repeat: int, warmup: bool = True) -> float:
    """Median seconds of ``repeat`` calls after one warm-up call (if ``warmup``)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cluster(npix: int, batch: int) -> tuple[ClusterObservations, Normalisation, float]:
    """Mock P+SL+WL observations of one cluster view on an npix² grid, and the mass normalisation."""
    pixel = FOV / npix
    sigma_cr = float(sigma_crit_msun_kpc2(COSMO, Z_LENS, Z_REF))
    y, x = (np.mgrid[0:npix, 0:npix] + 0.5 - npix / 2) * pixel
    truth = sigma_cr * 30.0 / (2.0 * np.sqrt(x**2 + y**2 + 5.0**2))
    mock = observe_lensing_view(truth, pixel, z_lens=Z_LENS, cosmology=COSMO, cfg=LENSING, seed=1)
    data = ClusterObservations(
        images=np.ones((1, 3, npix, npix)),
        pixel_arcsec=pixel,
        z_lens=Z_LENS,
        z_ref=Z_REF,
        sigma_crit=sigma_cr,
        strong=[mock["strong"]],
        weak=[mock["weak"]["conventional"]],
    )
    norm = Normalisation.fit(truth[None, None], ["sigma:total"])
    return data, norm, sigma_cr


def parse_schedule(text: str) -> tuple[str, DAPSConfig]:
    """'name:LxO+G' → (name, DAPSConfig with L annealing levels, O inner-ODE calls, G Langevin steps)."""
    try:
        name, rest = text.split(":")
        levels, rest = rest.split("x")
        ode, langevin = rest.split("+")
        return name, DAPSConfig(
            tau=1.0, lr=1e-6, annealing_steps=int(levels), ode_steps=int(ode), langevin_steps=int(langevin)
        )
    except ValueError as err:
        raise SystemExit(
            f"--schedules {text!r}: expected NAME:LEVELSxODE+LANGEVIN, e.g. paper:200x5+100"
        ) from err


def measure(
    npix: int,
    samples: int,
    batch: int,
    dtype: str,
    device: torch.device,
    levels: int,
    schedules: list[tuple[str, DAPSConfig]],
    compile_net: bool = False,
) -> dict[str, Any]:
    net = load_schema()["properties"]["training"]["properties"]["network"]["properties"]
    net_cfg = {k: v["default"] for k, v in net.items()}
    model = build_denoiser(
        {
            "backbone": net_cfg["backbone"],
            "backbone_kwargs": {
                "img_resolution": npix,
                "in_channels": 4,
                "out_channels": 1,
                **{
                    k: net_cfg[k]
                    for k in ("model_channels", "channel_mult", "num_blocks", "attn_resolutions")
                },
                "dropout": 0.0,
            },
            "img_channels": 1,
            "cond_channels": 3,
            "sigma_data": 0.5,
        }
    )
    model = model.to(device).eval().requires_grad_(False)
    n_params = sum(p.numel() for p in model.parameters())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if compile_net:
        model = torch.compile(model)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    )

    def denoise(x: torch.Tensor, sigma: Any, cond: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad(), autocast:
            return model(x, sigma, cond).float()

    data, norm, _ = _cluster(npix, batch)
    cfg = schedules[0][
        1
    ]  # the first schedule (default: the paper's, 200 levels × 5 ODE calls + 100 Langevin)
    nll = build_nll(data, norm, use_strong=True, use_weak=True, weights=WEIGHTS, n_samples=batch)
    x = torch.randn(batch, 1, npix, npix, device=device)
    cond = torch.randn(batch, 3, npix, npix, device=device)
    sigma = torch.tensor(1.0, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    small = device.type == "cuda" or npix <= 128  # CPU at 512²: one cold call (minutes each)
    repeat = 3 if small else 1
    t_net = _timed(lambda: denoise(x, sigma, cond), device, repeat, warmup=small)

    def langevin_step() -> None:
        with torch.enable_grad():
            x_req = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(nll(x_req).sum(), x_req)
        _ = x - 1e-6 * (g + x) + 1e-3 * torch.randn_like(x)

    t_lang = _timed(langevin_step, device, repeat, warmup=small)
    scale = samples / batch  # CPU: measured on a smaller batch, scaled linearly (CPU throughput is ~linear)
    per_level = scale * (cfg.ode_steps * t_net + cfg.langevin_steps * t_lang)
    out: dict[str, Any] = {
        "size": npix,
        "dtype": dtype,
        "compiled": compile_net,
        "samples": samples,
        "batch_measured": batch,
        "network_parameters": n_params,
        "nfe_per_sample": daps_nfe(cfg),
        "langevin_steps_total": cfg.annealing_steps * cfg.langevin_steps,
        "seconds_per_network_call_batch": t_net,
        "seconds_per_langevin_step_batch": t_lang,
        "seconds_per_cluster": per_level * cfg.annealing_steps,
        "network_share": cfg.ode_steps * t_net / (cfg.ode_steps * t_net + cfg.langevin_steps * t_lang),
        "extrapolated": True,
        "how": (
            f"{repeat} timed call(s) of each component on batch {batch}{'' if small else ' (cold)'}, "
            f"×{scale:g} to {samples} samples, "
            f"× ({cfg.ode_steps} calls + {cfg.langevin_steps} Langevin steps) × {cfg.annealing_steps} levels"
        ),
    }
    out["schedules"] = {
        name: {
            "annealing_steps": c.annealing_steps,
            "ode_steps": c.ode_steps,
            "langevin_steps": c.langevin_steps,
            "seconds_per_cluster": scale
            * (c.ode_steps * t_net + c.langevin_steps * t_lang)
            * c.annealing_steps,
        }
        for name, c in schedules
    }
    if device.type == "cuda" and levels > 0:  # real DAPS levels, extrapolated to the schedule

        class _Stop(Exception):
            pass

        def stop(info: dict[str, Any]) -> None:
            if info["i"] + 1 >= levels:
                raise _Stop

        nll_full = build_nll(data, norm, use_strong=True, use_weak=True, weights=WEIGHTS, n_samples=samples)
        cond_full = torch.randn(samples, 3, npix, npix, device=device)
        _sync(device)
        t0 = time.perf_counter()
        with contextlib.suppress(_Stop):
            sample_daps(denoise, (1, npix, npix), cond=cond_full, nll=nll_full, seeds=list(range(samples)),
                        cfg=cfg, callback=stop, device=device)  # fmt: skip
        _sync(device)
        real = (time.perf_counter() - t0) / levels * cfg.annealing_steps
        out.update({"seconds_per_cluster_daps_run": real, "levels_run": levels})
        out["clusters_per_gpu_hour"] = 3600.0 / real
    out["peak_memory_mib"] = _peak_mib(device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512], help="map sides [pixels]")
    parser.add_argument("--samples", type=int, default=20, help="posterior samples per cluster (one view)")
    parser.add_argument("--cpu-batch", type=int, default=2, help="batch actually timed on the CPU")
    parser.add_argument("--levels", type=int, default=3, help="real DAPS levels run on CUDA")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--schedules", nargs="+", default=["paper:200x5+100"],
        help="NAME:LEVELSxODE+LANGEVIN, extrapolated from the measured parts; the first also runs for real",
    )  # fmt: skip
    parser.add_argument(
        "--compile", action="store_true", help="also measure a torch.compile'd network (CUDA)"
    )
    args = parser.parse_args()
    schedules = [parse_schedule(text) for text in args.schedules]
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    batch = args.samples if device.type == "cuda" else min(args.cpu_batch, args.samples)
    compiles = [False, True] if args.compile and device.type == "cuda" else [False]
    runs = [
        measure(n, args.samples, batch, d, device, args.levels, schedules, c)
        for n in args.sizes
        for d in args.dtypes
        for c in compiles
    ]
    result = {
        "benchmark": "reconstruct (DAPS, P+SL+WL; schedules: levels × (ODE calls + Langevin steps))",
        "device": device.type,
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "runs": runs,
    }
    if device.type != "cuda":
        result["gpu"] = (
            "skipped: no CUDA device here; run on a GPU for seconds per cluster and clusters/GPU-hour"
        )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark: sampler overhead beyond the network (RNG, Langevin arithmetic, divergence checks).

The denoiser is the exact Gaussian-prior denoiser (a few elementwise operations), so the time measured is the
samplers' own bookkeeping per network call or Langevin step; add the network's cost per call for a real run.
Prints one JSON object: seconds, network calls (NFE) and likelihood-gradient evaluations per run.

Usage: python benchmarks/samplers.py [--size 128] [--batch 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

from darkclusters.diffusion.samplers import (
    DAPSConfig,
    DPSConfig,
    daps_nfe,
    sample_conditional,
    sample_daps,
    sample_dps,
)


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """Exact D(x; σ) for x0 ~ N(0, 0.5²) per pixel."""
    return 0.25 * x / (0.25 + sigma**2)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side [pixels]")
    parser.add_argument("--batch", type=int, default=4, help="samples per call")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape, seeds = (1, args.size, args.size), list(range(args.batch))
    cond = torch.zeros(args.batch, 3, args.size, args.size, device=device)

    def nll(x0: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x0 - 0.1).square().flatten(1).sum(1)

    daps_cfg = DAPSConfig(annealing_steps=20, langevin_steps=20, tau=1.0)  # 1/10 × 1/5 of the defaults
    dps_cfg = DPSConfig(n_steps=100)
    runs = {
        "heun_18": (lambda: sample_conditional(gaussian_denoiser, shape, cond=cond, seeds=seeds), 35, 0),
        "daps_20x20": (
            lambda: sample_daps(gaussian_denoiser, shape, cond=cond, nll=nll, seeds=seeds, cfg=daps_cfg),
            daps_nfe(daps_cfg),
            daps_cfg.annealing_steps * daps_cfg.langevin_steps,
        ),
        "dps_100": (
            lambda: sample_dps(gaussian_denoiser, shape, cond=cond, nll=nll, seeds=seeds, cfg=dps_cfg),
            dps_cfg.n_steps,
            dps_cfg.n_steps,
        ),
    }
    result: dict[str, Any] = {
        "benchmark": "samplers",
        "device": str(device),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "image": list(shape),
        "batch": args.batch,
    }
    for name, (fn, nfe, grads) in runs.items():
        seconds = timed(fn, device)
        result[name] = {
            "seconds": seconds,
            "nfe": nfe,
            "likelihood_gradients": grads,
            "ms_per_step": 1e3 * seconds / max(nfe + grads, 1),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

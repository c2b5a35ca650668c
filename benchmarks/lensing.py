"""Benchmark: κ → α, γ on batches of maps (``darkclusters.lensing.operators``) against lenstronomy's grid
integrals, and the weak-lensing likelihood's forward + backward time per κ map.

Prints one JSON object.

* Accuracy: one NFW κ map (M200 = 1e15 Msun, c = 4, z_l = 0.439, z_s = 2: Rs = 77.75″, alpha_Rs = 22.88″;
  512² pixels of 0.44″ = a 225″ field), pixel means, tapered to 0 along circles towards the edge — the
  removed mass is a set of rings, which deflect nothing inside them, so inside the taper lenstronomy's
  analytic NFW α and γ are exact references. Errors are max |Δ|/|reference| over the inner 60 % of the
  field, ≥ 12 px from the cusp; ``alpha_ours_vs_lenstronomy_grid`` is max |Δα| / max |α| over the whole map.
* CPU time per map: our deflection alone and deflection + shear (default kernels: two rfft2, four irfft2
  on the 2N grid), batched, float64 and float32, against lenstronomy's ``deflection_from_kappa_grid`` (scipy
  ``fftconvolve``, two convolutions; it has no shear-from-grid function) and ``potential_from_kappa_grid``,
  one map at a time.
  Torch uses ``--threads`` threads (default 1, like scipy's fftconvolve).
* CUDA (when available): float32 deflection + shear of a batch of 64 maps, time per map, and a lower bound
  from memory bandwidth: the bytes one map must move at least once (κ in; the padded spectrum written and
  read; 4 kernel spectra read; 4 products written and read; 4 padded outputs written) over the bandwidth of a
  device-to-device copy measured here. cuFFT's multi-pass 2-D transforms move more: expect a few × the bound.
* Weak-lensing likelihood: a 30 arcmin⁻² catalog on the same map; forward + backward time per κ map of a
  batch for the "rbf" (dense MSE) and "sources" (exact χ²) terms, and the one-off construction time.

Usage: python benchmarks/lensing.py [--quick] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from astropy.cosmology import FlatLambdaCDM
from lenstronomy.LensModel.convergence_integrals import deflection_from_kappa_grid, potential_from_kappa_grid
from lenstronomy.LensModel.lens_model import LensModel

from darkclusters.lensing.operators import deflection_field, shear_field
from darkclusters.lensing.weak import make_weak_lensing_catalog
from darkclusters.lensing.weak_likelihood import WeakLensingLikelihood

FIELD_ARCSEC = 225.0
NFW_KWARGS = [{"Rs": 77.75, "alpha_Rs": 22.88, "center_x": 0.0, "center_y": 0.0}]


def timed(fn: Callable[[], Any], repeat: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time [s] of ``fn`` over ``repeat`` calls after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def nfw_map(n: int) -> dict[str, np.ndarray]:
    """Tapered pixel-mean NFW κ, the analytic α and γ at the pixel centres, and the comparison mask."""
    pixel = FIELD_ARCSEC / n
    model = LensModel(["NFW"])
    c = (np.arange(n) + 0.5 - n / 2) * pixel
    x, y = np.meshgrid(c, c)
    offsets = ((np.arange(4) + 0.5) / 4 - 0.5) * pixel
    kappa = np.mean([model.kappa(x + a, y + b, NFW_KWARGS) for a in offsets for b in offsets], axis=0)
    r = np.hypot(x, y)
    r_max = 0.98 * FIELD_ARCSEC / 2
    kappa *= 0.5 * (1 + np.cos(np.pi * np.clip((r - 0.8 * r_max) / (0.2 * r_max), 0, 1)))
    alpha_x, alpha_y = model.alpha(x, y, NFW_KWARGS)
    fxx, fxy, _, fyy = model.hessian(x, y, NFW_KWARGS)
    inner = (r < 0.6 * r_max) & (r >= 12 * pixel)
    return {
        "kappa": kappa,
        "alpha": np.stack([alpha_x, alpha_y]),
        "gamma": np.stack([0.5 * (fxx - fyy), fxy]),
        "inner": inner,
        "pixel": np.float64(pixel),
    }


def max_relative(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """max over ``mask`` of |estimate − reference| / |reference| for (2, H, W) vector fields."""
    return float((np.hypot(*(estimate - reference)) / np.hypot(*reference))[mask].max())


def accuracy(truth: dict[str, np.ndarray]) -> dict[str, float]:
    kappa, pixel, inner = truth["kappa"], float(truth["pixel"]), truth["inner"]
    ours = np.stack(deflection_field(kappa, pixel))
    theirs = np.stack(deflection_from_kappa_grid(kappa, pixel))
    return {
        "alpha_ours_vs_analytic": max_relative(ours, truth["alpha"], inner),
        "alpha_lenstronomy_grid_vs_analytic": max_relative(theirs, truth["alpha"], inner),
        "alpha_ours_vs_lenstronomy_grid": float(np.abs(ours - theirs).max() / np.abs(theirs).max()),
        "gamma_kernel_vs_analytic": max_relative(np.stack(shear_field(kappa)), truth["gamma"], inner),
        "gamma_fourier_pad2_vs_analytic": max_relative(
            np.stack(shear_field(kappa, method="fourier")), truth["gamma"], inner
        ),
    }


def operators_step(kappa: torch.Tensor, pixel: float) -> None:
    deflection_field(kappa, pixel)
    shear_field(kappa)


def cpu_timings(truth: dict[str, np.ndarray], batch: int, repeat: int) -> dict[str, float]:
    kappa, pixel = truth["kappa"], float(truth["pixel"])
    out: dict[str, float] = {"batch": batch}
    for dtype in (torch.float64, torch.float32):
        maps = torch.tensor(np.broadcast_to(kappa, (batch, *kappa.shape)).copy(), dtype=dtype)
        seconds = timed(lambda maps=maps: operators_step(maps, pixel), repeat)
        out[f"ours_alpha_gamma_s_per_map_{str(dtype)[6:]}"] = seconds / batch
        seconds = timed(lambda maps=maps: deflection_field(maps, pixel), repeat)
        out[f"ours_alpha_s_per_map_{str(dtype)[6:]}"] = seconds / batch
    out["lenstronomy_alpha_s_per_map"] = timed(lambda: deflection_from_kappa_grid(kappa, pixel), repeat)
    out["lenstronomy_potential_s_per_map"] = timed(lambda: potential_from_kappa_grid(kappa, pixel), repeat)
    out["alpha_speedup_float64_vs_lenstronomy"] = (
        out["lenstronomy_alpha_s_per_map"] / out["ours_alpha_s_per_map_float64"]
    )
    return out


def cuda_timings(truth: dict[str, np.ndarray], batch: int, repeat: int) -> dict[str, Any]:
    device = torch.device("cuda")
    sync = torch.cuda.synchronize
    kappa, pixel = truth["kappa"], float(truth["pixel"])
    maps = torch.tensor(
        np.broadcast_to(kappa, (batch, *kappa.shape)).copy(), dtype=torch.float32, device=device
    )
    seconds = timed(lambda: operators_step(maps, pixel), repeat, sync) / batch
    block = torch.empty(256 * 2**20, dtype=torch.float32, device=device)  # 1 GiB
    copy_s = timed(lambda: block.clone(), repeat, sync)
    bandwidth = 2 * block.numel() * 4 / copy_s  # read + write
    n = kappa.shape[0]
    padded, spectrum = (2 * n) ** 2 * 4, 2 * n * (n + 1) * 8  # float32 padded map, complex64 half-spectrum
    bytes_per_map = n * n * 4 + 2 * spectrum + 4 * spectrum + 8 * spectrum + 4 * padded
    return {
        "device": torch.cuda.get_device_name(device),
        "batch": batch,
        "ours_alpha_gamma_s_per_map_float32": seconds,
        "copy_bandwidth_GB_per_s": bandwidth / 1e9,
        "bytes_per_map_lower_bound": bytes_per_map,
        "bandwidth_bound_s_per_map": bytes_per_map / bandwidth,
        "fraction_of_bound": bytes_per_map / bandwidth / seconds,
    }


def likelihood_timings(truth: dict[str, np.ndarray], batch: int, repeat: int, device: str) -> dict[str, Any]:
    kappa, pixel = truth["kappa"], float(truth["pixel"])
    catalog = make_weak_lensing_catalog(
        kappa, pixel, z_lens=0.439, z_ref=1.0, cosmology=FlatLambdaCDM(H0=70, Om0=0.3), seed=0
    )
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out: dict[str, Any] = {"device": device, "batch": batch, "n_sources": int(catalog["x_arcsec"].size)}
    dtype = torch.float32 if device == "cuda" else torch.float64
    for mode in ("rbf", "sources"):
        start = time.perf_counter()
        likelihood = WeakLensingLikelihood(catalog, kappa.shape, pixel, mode=mode)
        out[f"{mode}_build_s"] = time.perf_counter() - start
        maps = torch.tensor(np.broadcast_to(kappa, (batch, *kappa.shape)).copy(), dtype=dtype, device=device)
        maps.requires_grad_(True)

        def step(likelihood: WeakLensingLikelihood = likelihood, maps: torch.Tensor = maps) -> None:
            torch.autograd.grad(likelihood.nll(maps).sum(), maps)

        out[f"{mode}_forward_backward_s_per_map"] = timed(step, repeat, sync) / batch
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128² maps and small batches")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n, batch, repeat = (128, 4, 3) if args.quick else (512, 8, 3)
    truth = nfw_map(n)
    result: dict[str, Any] = {
        "benchmark": "lensing",
        "map_pixels": n,
        "pixel_arcsec": float(truth["pixel"]),
        "torch": torch.__version__,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "accuracy": accuracy(truth),
        "cpu_time": cpu_timings(truth, batch, repeat),
        "likelihood_cpu": likelihood_timings(truth, 2 if args.quick else 4, repeat, "cpu"),
    }
    if torch.cuda.is_available():
        gpu_batch = 8 if args.quick else 64
        result["cuda_time"] = cuda_timings(truth, gpu_batch, 5)
        result["likelihood_cuda"] = likelihood_timings(truth, gpu_batch, 5, "cuda")
    else:
        result["cuda_time"] = None
        result["cuda_note"] = "no CUDA device on this machine"
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

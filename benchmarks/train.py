"""Benchmark: training throughput and peak memory of the EDM prior (EDMPrecond + EDMLoss + AdamW step).

Prints one JSON object. Cases: the DDPM++ and ADM backbones at the paper sizes (ADM: model_channels 128,
channel_mult [1, 1, 2, 2, 4, 4], attention at 32² and 16², 2 blocks — the DarkClusters prior, ~137 M
parameters; DDPM++: 128, [2, 2, 2], 4 blocks, attention at 16², EDM's defaults) at 128² and 512², 1 target + 3
condition channels, in fp32 and bf16 autocast, on the CPU and on CUDA when present (optionally channels-last
and torch.compile). ``--quick`` uses small networks (model_channels 16) at 32² and 64² and finishes in under
two minutes on two CPU cores.

Each case runs in a fresh subprocess so that its peak memory is its own: ``peak_rss_mib`` is the process's
maximum resident set (``ru_maxrss``) and ``baseline_rss_mib`` the resident set after imports, before the
network is built; on CUDA ``peak_cuda_mib`` is ``torch.cuda.max_memory_allocated``. Throughput is images per
second over ``--steps`` timed optimizer steps after one warm-up step. The CPU trains in fp32 in the workflow;
CPU bf16 is measured for comparison only.

Usage: python benchmarks/train.py [--quick] [--device auto|cpu|cuda] [--steps 3] [--batch 2]
                                  [--channels-last] [--compile] [--backbones adm] [--resolutions 512]
                                  [--precisions fp32 bf16] [--quality]

On CUDA the fp32 cases use TF32 tensor cores (the published configuration) and cudnn.benchmark; channels-last
and compile variants are measured for bf16 only. ``--quality`` adds, to each bf16 case, the relative
difference of its denoiser outputs from fp32 (no TF32) on the same weights and inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from typing import Any

PAPER = {
    "adm": {
        "model_channels": 128,
        "channel_mult": [1, 1, 2, 2, 4, 4],
        "num_blocks": 2,
        "attn_resolutions": [32, 16],
    },
    "ddpmpp": {"model_channels": 128, "channel_mult": [2, 2, 2], "num_blocks": 4, "attn_resolutions": [16]},
}
QUICK = {
    "adm": {"model_channels": 16, "channel_mult": [1, 2, 2], "num_blocks": 1, "attn_resolutions": [16]},
    "ddpmpp": {"model_channels": 16, "channel_mult": [1, 2, 2], "num_blocks": 2, "attn_resolutions": [16]},
}


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this process: build, warm up, time ``steps`` optimizer steps."""
    import torch

    from darkclusters.diffusion.edm import EDMLoss, build_denoiser

    torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        # the published configuration trains in fp32 with TF32 tensor cores (the fastest fp32 baseline)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = case.get("tf32", True)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res, batch = case["resolution"], case["batch"]
    model_cfg = {
        "backbone": case["backbone"],
        "backbone_kwargs": {
            "img_resolution": res,
            "in_channels": 4,
            "out_channels": 1,
            "dropout": 0.13,
            **case["sizes"],
        },
        "img_channels": 1,
        "cond_channels": 3,
        "sigma_data": 0.5,
    }
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = build_denoiser(model_cfg).to(device)
    memory_format = torch.channels_last if case["channels_last"] else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    params = sum(p.numel() for p in net.parameters())
    model = torch.compile(net) if case["compile"] else net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss_fn = EDMLoss()
    y = torch.randn(batch, 1, res, res, generator=gen).to(device, memory_format=memory_format)
    cond = torch.randn(batch, 3, res, res, generator=gen).to(device, memory_format=memory_format)
    bf16 = case["precision"] == "bf16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = loss_fn(model, y, cond, generator=None).mean()
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    step()
    sync()
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(case["steps"]):
        step()
    sync()
    seconds = time.perf_counter() - t0
    out = {
        **{
            k: case[k]
            for k in ("backbone", "resolution", "precision", "device", "batch", "channels_last", "compile")
        },
        "parameters": params,
        "images_per_s": batch * case["steps"] / seconds,
        "seconds_per_step": seconds / case["steps"],
        "warmup_step_s": warmup,
        "baseline_rss_mib": baseline,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if case.get("quality") and bf16:
        out["bf16_vs_fp32"] = _precision_fidelity(net, model, res, device, memory_format)
    return out


def _precision_fidelity(net: Any, model: Any, res: int, device: Any, memory_format: Any) -> dict[str, float]:
    """Relative RMS difference between the bf16-autocast and the fp32 (no TF32) denoiser outputs D(x; σ) of
    the same weights and inputs, per σ, and relative to the denoising error ‖D − y‖ itself: a
    numerical-fidelity check of the fast path (random weights after the timed steps; a trained network's
    sample quality needs trained weights)."""
    import torch

    gen = torch.Generator().manual_seed(1)
    y = torch.randn(2, 1, res, res, generator=gen).to(device, memory_format=memory_format) * 0.5
    cond = torch.randn(2, 3, res, res, generator=gen).to(device, memory_format=memory_format)
    noise = torch.randn(2, 1, res, res, generator=gen).to(device, memory_format=memory_format)
    net.eval()
    out = {}
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    for sigma in (0.01, 0.1, 0.5, 2.0, 20.0):
        x = y + sigma * noise
        s = torch.full((2,), sigma, device=device)
        with torch.no_grad():
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            ref = net(x, s, cond).float()
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
            with torch.autocast(device.type, dtype=torch.bfloat16):
                fast = model(x, s, cond).float()
        diff = (fast - ref).pow(2).mean().sqrt()
        out[f"sigma_{sigma:g}_rel_to_output"] = float(diff / ref.pow(2).mean().sqrt())
        out[f"sigma_{sigma:g}_rel_to_denoising_error"] = float(diff / (ref - y).pow(2).mean().sqrt())
    net.train()
    return out


def cases(args: argparse.Namespace, cuda: bool) -> list[dict[str, Any]]:
    sizes = QUICK if args.quick else PAPER
    resolutions = args.resolutions or ((32, 64) if args.quick else (128, 512))
    devices = (
        ["cpu"]
        if args.device == "cpu" or not cuda
        else (["cuda"] if args.device == "cuda" else ["cpu", "cuda"])
    )
    out = []
    for device in devices:
        layouts = [False, True] if device == "cuda" and args.channels_last else [False]
        compiles = [False, True] if device == "cuda" and args.compile else [False]
        for backbone in args.backbones:
            for res in resolutions:
                for precision in args.precisions:
                    for channels_last in layouts if precision == "bf16" else [False]:
                        for compiled in compiles if precision == "bf16" else [False]:
                            out.append(
                                {
                                    "backbone": backbone,
                                    "sizes": sizes[backbone],
                                    "resolution": res,
                                    "precision": precision,
                                    "device": device,
                                    "batch": args.batch,
                                    "steps": args.steps,
                                    "threads": args.threads,
                                    "channels_last": channels_last,
                                    "compile": compiled,
                                    "quality": args.quality,
                                }
                            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small networks at 32² and 64² (CPU, < 2 min)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per case")
    parser.add_argument("--batch", type=int, default=2, help="images per step")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--channels-last", action="store_true", help="also measure channels-last on CUDA")
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile on CUDA")
    parser.add_argument("--backbones", nargs="+", default=["ddpmpp", "adm"], choices=["ddpmpp", "adm"])
    parser.add_argument(
        "--resolutions", type=int, nargs="+", default=None, help="default 128 512 (quick 32 64)"
    )
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--quality", action="store_true", help="bf16 cases: compare outputs with fp32")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print its JSON
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return
    import torch

    cuda = torch.cuda.is_available()
    results = []
    t0 = time.perf_counter()
    for case in cases(args, cuda):
        proc = subprocess.run(
            [sys.executable, __file__, "--case", json.dumps(case)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode:
            results.append({**case, "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)  # progress: survives a killed run
    report = {
        "benchmark": "train",
        "mode": "quick" if args.quick else "paper",
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "loadavg_1min": os.getloadavg()[0],  # other processes on the machine distort CPU timings
        "total_seconds": time.perf_counter() - t0,
        "results": results,
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

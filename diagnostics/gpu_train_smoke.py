"""GPU smoke run of the prior's real training loop (darkclusters.diffusion.train.train_prior) at 128².

    python diagnostics/gpu_train_smoke.py --dataset DIR --out DIR [--steps 600] [--device cuda]

DIR holds train.h5 / val.h5 shards (e.g. a 128² tng_photometry dataset). Three runs of the same network and
seed: bf16 + channels-last (+ compile with --compile), the same run killed half-way and resumed from its
checkpoint, and fp32 without TF32. Prints one JSON object: images/s, the loss early and late in each run (does
it learn, and does bf16 learn like fp32), and the largest weight difference between the uninterrupted and the
resumed run (exact resume on this device).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkclusters.diffusion.train import train_prior

NETWORK = {
    "backbone": "ddpmpp",
    "model_channels": 64,
    "channel_mult": [1, 2, 2, 2],
    "num_blocks": 2,
    "attn_resolutions": [16],
    "dropout": 0.1,
}


def _run(
    dataset: Path, out: Path, cfg: dict[str, Any], device: str, stop: int | None = None
) -> dict[str, Any]:
    losses: list[float] = []
    t0 = time.perf_counter()
    train_prior(
        dataset, out, train_cfg=cfg, seed=7, device=device, stop_after_steps=stop,
        step_callback=lambda step, metrics: losses.append(float(metrics["loss"])),
    )  # fmt: skip
    if device == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - t0, "losses": losses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    base = {
        "network": NETWORK, "batch_size": args.batch, "lr": 2.0e-4, "lr_warmup_images": 0,
        "total_steps": args.steps, "checkpoint_every_steps": args.steps // 4, "log_every_steps": 50,
        "grid_sampler_steps": 8, "grid_images": 4,
    }  # fmt: skip
    fast = {**base, "bf16": True, "tf32": True, "channels_last": True, "compile": args.compile}
    slow = {**base, "bf16": False, "tf32": False, "channels_last": False, "compile": False}
    runs = {
        "bf16": _run(args.dataset, args.out / "bf16", fast, args.device),
        "bf16_killed": _run(args.dataset, args.out / "bf16_resumed", fast, args.device, stop=args.steps // 2),
    }
    runs["bf16_resumed"] = _run(args.dataset, args.out / "bf16_resumed", fast, args.device)
    runs["fp32"] = _run(args.dataset, args.out / "fp32", slow, args.device)
    a = torch.load(args.out / "bf16" / "model.pt", map_location="cpu", weights_only=False)
    b = torch.load(args.out / "bf16_resumed" / "model.pt", map_location="cpu", weights_only=False)
    sa, sb = a["state_dict"], b["state_dict"]  # the EMA weights
    diffs = [
        float((sa[k].float() - sb[k].float()).abs().max())
        for k in sa
        if torch.is_tensor(sa[k]) and sa[k].numel()
    ]
    tenth = max(1, args.steps // 10)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else args.device,
        "torch": torch.__version__,
        "steps": args.steps,
        "batch": args.batch,
        "network": NETWORK,
        "resume_max_abs_weight_diff": max(diffs) if diffs else None,
        "resume_bitwise_equal": bool(diffs) and max(diffs) == 0.0,
    }
    for name, run in runs.items():
        losses = np.array(run["losses"])
        report[name] = {
            "steps_run": len(losses),
            "seconds": round(run["seconds"], 2),
            "images_per_s_incl_startup": round(len(losses) * args.batch / run["seconds"], 1),
            "loss_first_10pct": float(losses[:tenth].mean()) if len(losses) else None,
            "loss_last_10pct": float(losses[-tenth:].mean()) if len(losses) else None,
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

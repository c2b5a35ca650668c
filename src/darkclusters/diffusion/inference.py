"""The trained denoiser as the samplers call it, with the GPU fast paths of ``reconstruction.accelerate``.

On CUDA, two switches (measured on an H100 with the paper's ADM UNet at 512², batch 20; benchmarks/README.md):

* ``bf16``: the network runs under bfloat16 autocast (GroupNorm and the output stay fp32). Its outputs differ
  from fp32 by ~5e-4 of the denoising error; GPU memory of a DAPS run falls from 65 GB to 21 GB; on its own it
  is only ~3 % faster, because the network is bound by memory traffic, not by matrix products;
* ``compile``: ``torch.compile`` of the forward pass fuses those memory-bound operations: 0.49 → 0.18 s per
  network call on 20 images in bf16 (8.9 ms per image, the published code's is 26 ms). Compilation costs
  ~1 minute once per process. The DAPS and Heun samplers call the network without gradients; a sampler that
  differentiates through it (DPS) also compiles the backward pass, which took over 5 minutes for the same
  network in training.

On the CPU both are ignored (fp32 eager: the workflow's CPU runs stay bit-reproducible).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from darkclusters.diffusion.samplers.heun import Denoiser

__all__ = ["accelerated_denoiser"]


def accelerated_denoiser(
    model: torch.nn.Module, device: torch.device, accelerate: Mapping[str, Any]
) -> Denoiser:
    """``model`` (x, σ, cond) → D (B, C, H, W), wrapped for ``device`` per ``accelerate`` {bf16, compile}.

    Returns the model itself on the CPU or with both switches off; otherwise a callable returning float32.
    """
    bf16, compiled = bool(accelerate.get("bf16", False)), bool(accelerate.get("compile", False))
    if device.type != "cuda" or not (bf16 or compiled):
        return model
    torch.backends.cudnn.benchmark = True
    net = torch.compile(model) if compiled else model

    def denoise(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            return net(x, sigma, cond).float()

    return denoise

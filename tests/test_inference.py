"""The sampling denoiser's GPU fast paths (reconstruction.accelerate): off on the CPU, faithful on CUDA."""

from __future__ import annotations

import pytest
import torch

from darkclusters.config import load_schema
from darkclusters.diffusion.edm import build_denoiser
from darkclusters.diffusion.inference import accelerated_denoiser


def _model(res: int = 32) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {
        "backbone": "ddpmpp",
        "backbone_kwargs": {
            "img_resolution": res, "in_channels": 4, "out_channels": 1, "model_channels": 16,
            "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [16], "dropout": 0.0,
        },
        "img_channels": 1, "cond_channels": 3, "sigma_data": 0.5,
    }  # fmt: skip
    return build_denoiser(cfg).eval().requires_grad_(False)


def test_cpu_keeps_the_eager_fp32_model() -> None:
    model = _model()
    for switches in ({"bf16": True, "compile": True}, {"bf16": False, "compile": False}, {}):
        assert accelerated_denoiser(model, torch.device("cpu"), switches) is model


def test_schema_defaults_turn_both_on() -> None:
    props = load_schema()["properties"]["reconstruction"]["properties"]["accelerate"]["properties"]
    assert props["bf16"]["default"] is True
    assert props["compile"]["default"] is True


@pytest.mark.gpu
def test_cuda_fast_path_matches_fp32() -> None:
    device = torch.device("cuda")
    model = _model().to(device)
    gen = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(4, 1, 32, 32, device=device, generator=gen)
    cond = torch.randn(4, 3, 32, 32, device=device, generator=gen)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    for sigma in (0.05, 1.0, 30.0):
        s = torch.full((4,), sigma, device=device)
        with torch.no_grad():
            ref = model(x, s, cond)
            fast = accelerated_denoiser(model, device, {"bf16": True, "compile": True})(x, s, cond)
        assert fast.dtype == torch.float32
        error = (fast - ref).pow(2).mean().sqrt() / (ref - x).pow(2).mean().sqrt()
        assert error < 1e-2, (sigma, float(error))

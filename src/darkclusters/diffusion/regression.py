"""The UNet regression baseline of the DarkClusters paper (Table 2, "UNet"): photometry → Σ in one pass.

The same backbone class as the prior (``training.network``), fed only the normalised condition channels and a
fixed noise label c_noise = 0 (σ = 1 in EDM's ln(σ)/4), trained with the mean squared error on the normalised
Σ (:mod:`darkclusters.diffusion.normalise`) by the loop of :mod:`darkclusters.diffusion.train` (same EMA,
warm-up, precision, DDP, checkpoints and exact resume). ``model.pt`` has ``kind`` "unet_baseline".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from darkclusters.diffusion.data import ShardDataset
from darkclusters.diffusion.networks.registry import build_network
from darkclusters.diffusion.train import load_model_info, resolve_shards, run_training
from darkclusters.diffusion.train_state import CheckpointError, check_state_dict, resolve_training_config
from darkclusters.seeding import derive_seed

__all__ = ["RegressionUNet", "build_regression", "load_unet_baseline", "train_unet_baseline"]


class RegressionUNet(nn.Module):
    """x̂ = F(cond, c_noise = 0): normalised condition (B, Cc, H, W) → normalised target (B, Ct, H, W)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, cond: Tensor) -> Tensor:
        return self.backbone(cond, torch.zeros(cond.shape[0], device=cond.device))


def build_regression(model_cfg: Mapping[str, Any]) -> RegressionUNet:
    """A :class:`RegressionUNet` from the ``{"backbone", "backbone_kwargs", ...}`` dict of ``model.pt``."""
    return RegressionUNet(build_network(model_cfg["backbone"], **model_cfg["backbone_kwargs"]))


def train_unet_baseline(
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    train_cfg: Mapping[str, Any],
    seed: int,
    device: str = "auto",
    stop_after_steps: int | None = None,
    step_callback: Callable[[int, dict[str, float]], None] | None = None,
) -> Path | None:
    """Train the regression baseline on ``shards`` into ``out_dir``; return ``out_dir/model.pt``.

    Arguments as :func:`darkclusters.diffusion.train.train_prior`; batch size, learning rate, warm-up and
    steps come from ``train_cfg["unet_baseline"]``.
    """
    cfg = resolve_training_config(train_cfg)
    train_paths, grid_paths = resolve_shards(shards)
    data = ShardDataset(train_paths, augment=cfg["augment"], seed=derive_seed(seed, "augment"))
    grid_set = ShardDataset(grid_paths, normalisation=data.normalisation)
    net = cfg["network"]
    model_cfg = {
        "backbone": net["backbone"],
        "backbone_kwargs": {
            "img_resolution": int(data.image_shape[0]),
            "in_channels": len(data.condition_channels),
            "out_channels": len(data.target_channels),
            "model_channels": net["model_channels"],
            "channel_mult": list(net["channel_mult"]),
            "num_blocks": net["num_blocks"],
            "attn_resolutions": list(net["attn_resolutions"]),
            "dropout": net["dropout"],
        },
        "target_channels": list(data.target_channels),
        "condition_channels": list(data.condition_channels),
    }

    def objective(model: nn.Module, target: Tensor, cond: Tensor, seeds: list[int]) -> Tensor:
        del seeds  # the regression draws no noise
        return ((model(cond).float() - target) ** 2).mean(dim=(1, 2, 3))

    def grid(ema: nn.Module, target: Tensor, cond: Tensor, grid_seed: int) -> Tensor:
        del target, grid_seed
        return ema(cond)

    return run_training(
        kind="unet_baseline",
        model_cfg=model_cfg,
        build_model=build_regression,
        objective=objective,
        grid_fn=grid,
        data=data,
        grid_set=grid_set,
        out_dir=out_dir,
        cfg=cfg,
        hyper=dict(cfg["unet_baseline"]),
        seed=seed,
        device=device,
        stop_after_steps=stop_after_steps,
        step_callback=step_callback,
    )


def load_unet_baseline(model_pt: str | os.PathLike, device: str | torch.device = "cpu") -> RegressionUNet:
    """The trained baseline (EMA weights) from ``model.pt`` in eval mode; its normalisation is in
    :func:`darkclusters.diffusion.train.load_model_info`. CheckpointError names the file on any mismatch."""
    path = Path(model_pt)
    info = load_model_info(path)
    if info.get("kind") != "unet_baseline":
        raise CheckpointError(f"{path}: holds a {info.get('kind')!r} model, not the UNet baseline")
    try:
        model = build_regression(info["config"]["model"])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot rebuild the network from its config: {err}") from err
    check_state_dict(path, model, info["state_dict"], "model")
    return model.to(torch.device(device)).eval().requires_grad_(False)

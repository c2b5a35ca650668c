"""One training run's mutable state and its optimizer step, for :func:`.train.run_training`.

:class:`Trainer` holds the network, its EMA, the AdamW optimizer with a linear warm-up (``LambdaLR``), the
data order and the step counters. A step takes the next global batch from the seeded data order, splits it
into this rank's slice and micro-batches (gradient accumulation, DDP gradient sync on the last one), draws
each image's EDM noise from a seed of (run seed, step, position in the global batch), clips the gradient norm,
steps the optimizer and updates the EMA (β = 0.5^(batch / half-life), Karras et al. 2022). A checkpoint is
resumed only if its kind, network, seed and trajectory settings equal this run's.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from darkclusters.diffusion.data import ShardDataset
from darkclusters.diffusion.train_state import (
    CHECKPOINT_FORMAT,
    MODEL_FORMAT,
    CheckpointError,
    DataOrder,
    Run,
    capture_rng,
    check_state_dict,
    ema_beta,
    latest_checkpoint,
    read_payload,
    restore_rng,
)
from darkclusters.io import provenance
from darkclusters.seeding import derive_seed

__all__ = ["Objective", "Trainer"]

log = logging.getLogger(__name__)

Objective = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, list[int]], torch.Tensor]

# settings that shape the optimisation trajectory: a checkpoint written with other values is not resumed
# (total_steps may grow; logging, checkpoint and grid intervals may change freely)
_TRAJECTORY_KEYS = (
    "sigma_data",
    "P_mean",
    "P_std",
    "grad_accum_steps",
    "adam_beta1",
    "adam_beta2",
    "adam_eps",
    "weight_decay",
    "ema_halflife_images",
    "ema_rampup_ratio",
    "grad_clip_norm",
    "bf16",
    "augment",
)


class Trainer:
    """The mutable state of one run: network, EMA, optimizer, schedule, data order, counters."""

    def __init__(
        self,
        *,
        kind: str,  # "prior" or "unet_baseline": stored in checkpoints and model.pt
        model_cfg: dict[str, Any],  # plain dict that build_model turns into the network
        build_model: Callable[[dict[str, Any]], torch.nn.Module],
        objective: Objective,  # (model, target, cond, noise_seeds) -> per-image loss (b,)
        data: ShardDataset,  # the training split
        cfg: dict[str, Any],  # the resolved `training` config section
        hyper: dict[str, Any],  # batch_size, total_steps, lr, lr_warmup_images of this model
        seed: int,  # master seed of the run
        run: Run,  # rank, world size and device
    ) -> None:
        self.kind, self.model_cfg, self.objective, self.data = kind, model_cfg, objective, data
        self.cfg, self.seed, self.run = cfg, int(seed), run
        self.batch, accum = int(hyper["batch_size"]), int(cfg["grad_accum_steps"])
        if self.batch % (run.world * accum):
            raise ValueError(
                f"batch_size {self.batch} is not divisible by {run.world} ranks × {accum} accumulation steps"
            )
        self.local, self.micro = self.batch // run.world, self.batch // (run.world * accum)
        torch.manual_seed(derive_seed(seed, "init"))  # identical initial weights on every rank
        self.model = build_model(model_cfg).to(run.device)
        if cfg["channels_last"]:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        torch.manual_seed(derive_seed(seed, "dropout", run.rank))  # the dropout stream of this rank
        self.opt = torch.optim.AdamW(
            self.model.parameters(),
            lr=hyper["lr"],
            betas=(cfg["adam_beta1"], cfg["adam_beta2"]),
            eps=cfg["adam_eps"],
            weight_decay=cfg["weight_decay"],
        )
        warm, batch = float(hyper["lr_warmup_images"]), self.batch
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt,
            lambda s: min(1.0, (s + 1) * batch / warm) if warm > 0 else 1.0,  # linear warm-up
        )
        self.order = DataOrder(len(data), derive_seed(seed, "order"))
        self.state: dict[str, Any] = {"step": 0, "loss_sum": 0.0, "loss_count": 0}
        trajectory = {k: cfg[k] for k in _TRAJECTORY_KEYS} | {
            k: v for k, v in hyper.items() if k != "total_steps"
        }
        self.identity = {"kind": kind, "model": model_cfg, "seed": self.seed, "trajectory": trajectory}
        self.net: torch.nn.Module = self.model
        if run.world > 1:
            ids = [run.device.index] if run.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg["compile"] and run.device.type == "cuda":
            self.net = torch.compile(self.net)
        cuda_bf16 = run.device.type == "cuda" and cfg["bf16"]
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda_bf16 else nullcontext
        clip = cfg["grad_clip_norm"]
        self.clip = float(clip) if clip is not None else float("inf")
        log.info(
            "%s: %d parameters, %d ranks, %s",
            kind,
            sum(p.numel() for p in self.model.parameters()),
            run.world,
            run.device,
        )

    def resume(self, folder: Path) -> Path | None:
        """Load the newest checkpoint in ``folder`` (if any) after checking that it belongs to this run."""
        ckpt = latest_checkpoint(folder)
        if ckpt is None:
            return None
        payload = read_payload(ckpt, CHECKPOINT_FORMAT)
        _check_identity(ckpt, payload.get("identity", {}), self.identity)
        check_state_dict(ckpt, self.model, payload["model"], "model")
        check_state_dict(ckpt, self.ema, payload["ema"], "EMA")
        self.opt.load_state_dict(payload["optimizer"])
        self.sched.load_state_dict(payload["scheduler"])
        self.state = dict(payload["state"])
        self.order.load(payload["data_order"])
        restore_rng(payload["rng"], self.run)
        log.info("resumed %s from %s at step %d", self.kind, ckpt, self.state["step"])
        return ckpt

    def train_step(self) -> dict[str, float]:
        """One optimizer step on the next global batch; returns loss, lr, grad_norm and ema_beta."""
        run, step = self.run, self.state["step"]
        picks = self.order.take(self.batch)[run.rank * self.local : (run.rank + 1) * self.local]
        self.opt.zero_grad(set_to_none=True)
        local_sum = torch.zeros((), dtype=torch.float64, device=run.device)
        n_micro = self.local // self.micro
        for m in range(n_micro):
            target, cond = _load_batch(
                self.data, picks[m * self.micro : (m + 1) * self.micro], run.device, self.cfg["channels_last"]
            )
            first = run.rank * self.local + m * self.micro  # position of this micro-batch in the global batch
            seeds = [derive_seed(self.seed, "noise", step, first + j) for j in range(self.micro)]
            sync = (
                run.world == 1 or m == n_micro - 1
            )  # DDP all-reduces gradients on the last micro-batch only
            with nullcontext() if sync else self.net.no_sync(), self.autocast():
                per_image = self.objective(self.net, target, cond, seeds)
            (per_image.sum() / self.local).backward()  # DDP averages over ranks: the global-batch mean
            local_sum += per_image.detach().double().sum()
        loss = float(run.all_sum(local_sum)) / self.batch
        if not math.isfinite(loss):
            raise FloatingPointError(f"{self.kind}: the loss is {loss} at step {step + 1}")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip))
        lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.sched.step()
        self.state["step"] = step + 1
        cfg = self.cfg
        beta = ema_beta(
            (step + 1) * self.batch, self.batch, cfg["ema_halflife_images"], cfg["ema_rampup_ratio"]
        )
        _update_ema(self.ema, self.model, beta)
        self.state["loss_sum"] += loss
        self.state["loss_count"] += 1
        return {"loss": loss, "lr": lr, "grad_norm": grad_norm, "ema_beta": beta}

    def pop_mean_loss(self) -> float:
        """The mean loss since the previous call (the metrics row), resetting the accumulator."""
        mean = self.state["loss_sum"] / self.state["loss_count"]
        self.state["loss_sum"], self.state["loss_count"] = 0.0, 0
        return mean

    def checkpoint_payload(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "format_version": 1,
            "identity": self.identity,
            "training": dict(self.cfg),
            "normalisation": self.data.normalisation.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "state": dict(self.state),
            "data_order": self.order.state(),
            "rng": capture_rng(self.run),
        }

    def model_payload(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "format_version": 1,
            "kind": self.kind,
            "state_dict": self.ema.state_dict(),
            "config": {"model": self.model_cfg, "training": dict(self.cfg)},
            "normalisation": self.data.normalisation.to_dict(),
            "step": self.state["step"],
            "images": self.state["step"] * self.batch,
            "seed": self.seed,
            "provenance": provenance(cfg=self.cfg, seed=self.seed, inputs=self.data.paths),
        }


def _load_batch(
    data: ShardDataset, picks: list[tuple[int, int]], device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the (epoch, index) picks into normalised (b, Ct, H, W) and (b, Cc, H, W) tensors on device."""
    pairs = [data.sample(index, epoch=epoch) for epoch, index in picks]
    target = torch.stack([p[0] for p in pairs]).to(device)
    cond = torch.stack([p[1] for p in pairs]).to(device)
    if channels_last:
        target, cond = (t.contiguous(memory_format=torch.channels_last) for t in (target, cond))
    return target, cond


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    """ema ← β·ema + (1 − β)·θ for parameters; buffers are copied."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - beta)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


def _check_identity(path: Path, stored: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
    """CheckpointError naming the file and each setting (kind, model, seed, trajectory keys) that differs."""
    diffs = []
    for key, want in identity.items():
        have = stored.get(key)
        if isinstance(have, Mapping) and isinstance(want, Mapping):
            diffs += _dict_diff(key, have, want)
        elif have != want:
            diffs.append(f"{key}: file {have!r} != expected {want!r}")
    if diffs:
        raise CheckpointError(
            f"{path}: checkpoint does not match this run: {'; '.join(diffs)} "
            f"(delete {path.parent} to train from scratch)"
        )


def _dict_diff(prefix: str, have: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(have) | set(want)):
        a, b = have.get(key), want.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _dict_diff(f"{prefix}.{key}", a, b)
        elif a != b:
            out.append(f"{prefix}.{key}: file {a!r} != expected {b!r}")
    return out

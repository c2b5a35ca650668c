"""Training of the EDM diffusion prior (Karras et al. 2022) on dataset shards; loading the trained model.

:func:`train_prior` trains :class:`~darkclusters.diffusion.edm.EDMPrecond` around a registry backbone with the
EDM loss; :mod:`.regression` reuses the same loop (:func:`run_training`) for the UNet baseline. The loop:

- AdamW with a linear learning-rate warm-up over ``lr_warmup_images`` (a ``LambdaLR`` schedule);
- an EMA of the weights with half-life ``ema_halflife_images`` in images, β = 0.5^(batch / half-life), the
  half-life capped at ``ema_rampup_ratio`` × images seen (the EDM ramp-up, which the paper uses);
- bf16 autocast on CUDA, fp32 on the CPU; gradient clipping; gradient accumulation over micro-batches;
- DDP when launched by torchrun (``WORLD_SIZE`` > 1): every rank takes a disjoint slice of each global batch
  and only rank 0 writes. The data order, the augmentation and the EDM noise of an image depend only on the
  seed, the step and the image's position in the global batch, so any number of ranks follows the same
  trajectory;
- ``metrics.csv`` (deterministic: step, images, loss, lr, grad_norm, ema_beta), TensorBoard if importable, a
  tqdm bar, and PNG sample grids (Heun sampler) at checkpoints;
- checkpoints ``checkpoints/step_{step:08d}.pt`` every ``checkpoint_every_steps``: model, EMA, optimizer,
  scheduler, step, loss accumulator, data order (epoch, position) and every rank's RNG states (torch CPU/CUDA,
  numpy, python), written atomically. A rerun resumes from the newest one on the same trajectory
  (bit-identical on the CPU);
- ``model.pt``: the EMA state dict, the model and training config and the normalisation — plain types only, so
  ``torch.load(path, weights_only=True)`` reads it; :func:`load_denoiser` rebuilds the denoiser.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from darkclusters.diffusion.data import ShardDataset
from darkclusters.diffusion.edm import EDMLoss, EDMPrecond, build_denoiser
from darkclusters.diffusion.normalise import Normalisation
from darkclusters.diffusion.train_state import (
    MODEL_FORMAT,
    CheckpointError,
    MetricsLog,
    check_state_dict,
    init_distributed,
    read_payload,
    resolve_training_config,
    save_payload,
    write_grid_png,
)
from darkclusters.diffusion.trainer import Objective, Trainer
from darkclusters.seeding import derive_seed

__all__ = ["CheckpointError", "load_denoiser", "load_model_info", "run_training", "train_prior"]

log = logging.getLogger(__name__)

GridFn = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, int], torch.Tensor]


def resolve_shards(shards: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """(training shards, shards for sample grids): a directory gives ``train.h5`` (and ``val.h5`` for the
    grids when it exists and is not empty); explicit file paths are all training shards and serve the grids
    too."""
    if isinstance(shards, str | os.PathLike) and Path(shards).is_dir():
        folder = Path(shards)
        train, val = folder / "train.h5", folder / "val.h5"
        if not train.is_file():
            raise FileNotFoundError(f"{train}: no training shard in {folder}")
        grid = [val] if val.is_file() and len(ShardDataset(val)) > 0 else [train]
        return [train], grid
    paths = [Path(shards)] if isinstance(shards, str | os.PathLike) else [Path(p) for p in shards]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: shard not found")
    return paths, paths


def train_prior(
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    train_cfg: Mapping[str, Any],
    seed: int,
    device: str = "auto",
    stop_after_steps: int | None = None,
    step_callback: Callable[[int, dict[str, float]], None] | None = None,
) -> Path | None:
    """Train the conditional EDM prior on ``shards`` into ``out_dir``; return ``out_dir/model.pt``.

    shards: a dataset folder (``train.h5``, optional ``val.h5``) or shard files. train_cfg: the ``training``
    config section (missing keys take the schema defaults). seed: master seed. device: "auto", "cpu", "cuda".
    A checkpoint in ``out_dir/checkpoints`` is resumed. stop_after_steps: stop (like a kill) after that many
    steps, writing no model.pt, and return None. step_callback(step, metrics) runs after every step.
    """
    cfg = resolve_training_config(train_cfg)
    train_paths, grid_paths = resolve_shards(shards)
    data = ShardDataset(train_paths, augment=cfg["augment"], seed=derive_seed(seed, "augment"))
    grid_set = ShardDataset(grid_paths, normalisation=data.normalisation)
    net = cfg["network"]
    n_target, n_cond = len(data.target_channels), len(data.condition_channels)
    model_cfg = {
        "backbone": net["backbone"],
        "backbone_kwargs": {
            "img_resolution": int(data.image_shape[0]),
            "in_channels": n_target + n_cond,
            "out_channels": n_target,
            "model_channels": net["model_channels"],
            "channel_mult": list(net["channel_mult"]),
            "num_blocks": net["num_blocks"],
            "attn_resolutions": list(net["attn_resolutions"]),
            "dropout": net["dropout"],
        },
        "img_channels": n_target,
        "cond_channels": n_cond,
        "sigma_data": cfg["sigma_data"],
        "target_channels": list(data.target_channels),
        "condition_channels": list(data.condition_channels),
    }
    loss = EDMLoss(P_mean=cfg["P_mean"], P_std=cfg["P_std"], sigma_data=cfg["sigma_data"])

    def objective(model: torch.nn.Module, target: torch.Tensor, cond: torch.Tensor, seeds: list[int]):
        from darkclusters.diffusion.samplers.rng import PerSampleGenerator

        gen = PerSampleGenerator(seeds)  # per-image CPU streams: independent of the batch split
        sigma = (gen.randn((1,)).flatten() * loss.P_std + loss.P_mean).exp()
        noise = gen.randn(target.shape[1:])
        return loss(model, target, cond, sigma=sigma.to(target.device), noise=noise.to(target.device))

    def grid(ema: torch.nn.Module, target: torch.Tensor, cond: torch.Tensor, grid_seed: int) -> torch.Tensor:
        from darkclusters.diffusion.samplers.heun import sample_heun
        from darkclusters.diffusion.samplers.rng import PerSampleGenerator
        from darkclusters.diffusion.samplers.schedules import edm_sigmas

        sigmas = edm_sigmas(cfg["grid_sampler_steps"], device=target.device)
        seeds = [derive_seed(grid_seed, i) for i in range(target.shape[0])]
        x = PerSampleGenerator(seeds).randn(target.shape[1:]).to(target.device) * sigmas[0]
        return sample_heun(ema, x, sigmas, cond=cond)

    return run_training(
        kind="prior",
        model_cfg=model_cfg,
        build_model=build_denoiser,
        objective=objective,
        grid_fn=grid,
        data=data,
        grid_set=grid_set,
        out_dir=out_dir,
        cfg=cfg,
        hyper={k: cfg[k] for k in ("batch_size", "total_steps", "lr", "lr_warmup_images")},
        seed=seed,
        device=device,
        stop_after_steps=stop_after_steps,
        step_callback=step_callback,
    )


def run_training(
    *,
    kind: str,
    model_cfg: dict[str, Any],
    build_model: Callable[[dict[str, Any]], torch.nn.Module],
    objective: Objective,
    grid_fn: GridFn | None,
    data: ShardDataset,
    grid_set: ShardDataset,
    out_dir: str | os.PathLike,
    cfg: dict[str, Any],
    hyper: dict[str, Any],
    seed: int,
    device: str,
    stop_after_steps: int | None,
    step_callback: Callable[[int, dict[str, float]], None] | None,
) -> Path | None:
    """The loop shared by the prior and the baseline; returns ``out_dir/model.pt`` (None if stopped early).

    objective(model, target, cond, noise_seeds) → per-image loss (b,); grid_fn(ema, target, cond, seed) →
    images for the PNG grid. hyper: batch_size, total_steps, lr and lr_warmup_images of this model.
    """
    out_dir = Path(out_dir)
    run = init_distributed(device)
    cuda = run.device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(cfg["tf32"])
    metrics = bar = None
    try:
        with torch.random.fork_rng(devices=[run.device.index or 0] if cuda else []):
            trainer = Trainer(
                kind=kind,
                model_cfg=model_cfg,
                build_model=build_model,
                objective=objective,
                data=data,
                cfg=cfg,
                hyper=hyper,
                seed=seed,
                run=run,
            )
            resumed = trainer.resume(out_dir / "checkpoints")
            total, step = int(hyper["total_steps"]), trainer.state["step"]
            metrics = MetricsLog(out_dir, enabled=run.rank == 0, resume_step=step if resumed else None)
            bar = _progress(total, step, run.rank == 0)
            while step < total:
                row = trainer.train_step()
                step = trainer.state["step"]
                if step % cfg["log_every_steps"] == 0 or step == total:
                    metrics.write(step, step * trainer.batch, trainer.pop_mean_loss(), row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.4g}", refresh=False)
                if step % cfg["checkpoint_every_steps"] == 0 or step == total:
                    payload = trainer.checkpoint_payload()  # collective: gathers every rank's RNG state
                    if run.rank == 0:
                        save_payload(
                            payload,
                            out_dir / "checkpoints" / f"step_{step:08d}.pt",
                            keep=cfg["keep_checkpoints"],
                        )
                        if grid_fn is not None and cfg["grid_images"] > 0:
                            _grid(grid_fn, trainer, grid_set, out_dir / "samples" / f"step_{step:08d}.png")
                    run.barrier()
                if step_callback is not None:
                    step_callback(step, row)
                if stop_after_steps is not None and step >= stop_after_steps:
                    return None
            final = out_dir / "model.pt"
            if run.rank == 0:
                save_payload(trainer.model_payload(), final)
            run.barrier()
            return final
    finally:
        for closing in (bar, metrics):
            if closing is not None:
                closing.close()
        run.close()


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", mininterval=5.0)


def _grid(grid_fn: GridFn, trainer: Trainer, grid_set: ShardDataset, path: Path) -> None:
    """Sample the first grid conditions with the EMA model and write the PNG (rank 0 only)."""
    n = min(int(trainer.cfg["grid_images"]), len(grid_set))
    if n == 0:
        return
    pairs = [grid_set.sample(i, epoch=0) for i in range(n)]
    target = torch.stack([p[0] for p in pairs]).to(trainer.run.device)
    cond = torch.stack([p[1] for p in pairs]).to(trainer.run.device)
    with torch.no_grad(), trainer.autocast():
        images = grid_fn(trainer.ema, target, cond, derive_seed(trainer.seed, "grid"))
    write_grid_png(path, cond, target, images.float(), step=trainer.state["step"])


def load_model_info(model_pt: str | os.PathLike) -> dict[str, Any]:
    """``model.pt`` contents without building the network: kind, config, step, images, seed, the
    :class:`Normalisation` (key ``normalisation``) and the EMA ``state_dict``."""
    payload = read_payload(Path(model_pt), MODEL_FORMAT)
    info = dict(payload)
    info["normalisation"] = Normalisation.from_dict(payload["normalisation"])
    return info


def load_denoiser(model_pt: str | os.PathLike, device: str | torch.device = "cpu") -> EDMPrecond:
    """The trained prior's EMA denoiser from ``model.pt``, in eval mode with frozen weights, on ``device``.

    Gradients still flow to its input (DPS). CheckpointError names the file on a corrupt, foreign or
    mismatched file.
    """
    path = Path(model_pt)
    info = load_model_info(path)
    if info.get("kind") != "prior":
        raise CheckpointError(f"{path}: holds a {info.get('kind')!r} model, not a diffusion prior")
    try:
        model = build_denoiser(info["config"]["model"])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot rebuild the network from its config: {err}") from err
    check_state_dict(path, model, info["state_dict"], "model")
    return model.to(torch.device(device)).eval().requires_grad_(False)

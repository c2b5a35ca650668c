"""Start a training job on one node: in this process for one GPU (or the CPU), under ``torchrun`` for several.

:func:`launch_training` is what the ``train_prior`` and ``train_unet`` rules call. With ``gpus`` > 1 it runs
``python -m torch.distributed.run --standalone --nproc_per_node=<gpus> -m darkclusters.diffusion.launch ...``
(the real torchrun, from the same interpreter, so it works inside a Snakemake job whatever its PATH): one DDP
rank per GPU, each running :func:`main` on this module, which calls the same training function as the
in-process path. The trajectory does not depend on the number of ranks (:mod:`.train`), so a multi-GPU model
equals the single-process one within float tolerance. The training config travels as a JSON file in
``out_dir`` (``launch_config.json``, written atomically); nothing secret is in it.

Entry point, for use outside the workflow too::

    python -m darkclusters.diffusion.launch prior DATASET_DIR OUT_DIR --config training.json --seed 11
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from darkclusters.diffusion.train_state import resolve_training_config
from darkclusters.io import atomic_path

__all__ = ["KINDS", "launch_training", "main", "torchrun_command"]

log = logging.getLogger(__name__)

KINDS = ("prior", "unet")  # the diffusion prior (.train.train_prior), the UNet baseline (.regression)


def _train_in_process(
    kind: str, shards: Path, out_dir: Path, train_cfg: Mapping[str, Any], seed: int, device: str
) -> Path | None:
    if kind == "prior":
        from darkclusters.diffusion.train import train_prior

        return train_prior(shards, out_dir, train_cfg=train_cfg, seed=seed, device=device)
    if kind == "unet":
        from darkclusters.diffusion.regression import train_unet_baseline

        return train_unet_baseline(shards, out_dir, train_cfg=train_cfg, seed=seed, device=device)
    raise ValueError(f"training kind must be one of {KINDS}, got {kind!r}")


def torchrun_command(
    kind: str, shards: str | os.PathLike, out_dir: str | os.PathLike, *, config_json: Path, seed: int,
    device: str, nproc: int,
) -> list[str]:  # fmt: skip
    """The torchrun command line of a ``nproc``-rank training job on this node (argv list)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a private rendezvous on a free local port: jobs sharing a node do not collide
        f"--nproc_per_node={nproc}",
        "-m",
        "darkclusters.diffusion.launch",
        kind,
        str(shards),
        str(out_dir),
        "--config",
        str(config_json),
        "--seed",
        str(int(seed)),
        "--device",
        device,
    ]


def launch_training(
    kind: str,
    shards: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    train_cfg: Mapping[str, Any],
    seed: int,
    gpus: int = 1,
    device: str = "auto",
    output: IO[str] | None = None,
) -> Path:
    """Train ``kind`` ("prior" or "unet") on the dataset folder or shard ``shards`` into ``out_dir``; return
    ``out_dir/model.pt``.

    gpus: GPUs of this job (the rule's ``gpu`` resource); > 1 starts that many DDP ranks with torchrun (on a
    machine without CUDA and ``device`` "cpu" or "auto", CPU ranks with the gloo backend), 1 trains in this
    process. train_cfg: the ``training`` config section; its batch_size must divide by ``gpus``. output: where
    the ranks' stdout and stderr go (default: this process's stderr, i.e. the rule's log). A failed torchrun
    raises RuntimeError with its exit status and command.
    """
    if kind not in KINDS:
        raise ValueError(f"training kind must be one of {KINDS}, got {kind!r}")
    gpus = int(gpus)
    if gpus < 1:
        raise ValueError(f"gpus (the job's `gpu` resource) must be >= 1, got {gpus}")
    out_dir = Path(out_dir)
    cfg = resolve_training_config(train_cfg)
    batch = cfg["batch_size"] if kind == "prior" else cfg["unet_baseline"]["batch_size"]
    if batch % (gpus * cfg["grad_accum_steps"]):
        key = "training.batch_size" if kind == "prior" else "training.unet_baseline.batch_size"
        raise ValueError(
            f"{key} = {batch} does not split over {gpus} GPUs (ranks) × {cfg['grad_accum_steps']} "
            "accumulation steps (training.grad_accum_steps): make it a multiple, or change "
            "training.gpus_per_job / the job's gpu resource"
        )
    if gpus == 1:
        model = _train_in_process(kind, Path(shards), out_dir, train_cfg, seed, device)
        assert model is not None  # no early stop requested
        return model
    out_dir.mkdir(parents=True, exist_ok=True)
    config_json = out_dir / "launch_config.json"
    with atomic_path(config_json) as tmp:
        Path(tmp).write_text(json.dumps(dict(train_cfg), indent=1, sort_keys=True))
    cmd = torchrun_command(
        kind, shards, out_dir, config_json=config_json, seed=seed, device=device, nproc=gpus
    )
    log.info("launching %d ranks: %s", gpus, " ".join(cmd))
    stream = output if output is not None else sys.stderr
    stream.flush()
    done = subprocess.run(cmd, stdout=stream, stderr=stream, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"torchrun training ({kind}, {gpus} ranks) failed with exit status {done.returncode}; the ranks' "
            f"tracebacks are above in this log. Command: {' '.join(cmd)}"
        )
    model = out_dir / "model.pt"
    if not model.is_file():
        raise RuntimeError(f"torchrun training ({kind}) exited 0 but wrote no {model}")
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """One rank of a training job (under torchrun) or a whole single-process job; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m darkclusters.diffusion.launch", description=__doc__)
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("shards", help="dataset folder (train.h5, val.h5) or a shard file")
    parser.add_argument("out_dir", help="model folder: model.pt, checkpoints/, metrics.csv, samples/")
    parser.add_argument(
        "--config", required=True, help="JSON or YAML file with the `training` config section"
    )
    parser.add_argument("--seed", type=int, required=True, help="master seed of the run")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (each rank uses cuda:LOCAL_RANK)")
    args = parser.parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    config_path = Path(args.config)
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: training config file not found (--config)")
    import yaml  # JSON is YAML: one reader for both

    train_cfg = yaml.safe_load(config_path.read_text())
    if not isinstance(train_cfg, dict):
        raise ValueError(f"{config_path}: expected a mapping (the `training` config section)")
    _train_in_process(args.kind, Path(args.shards), Path(args.out_dir), train_cfg, args.seed, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

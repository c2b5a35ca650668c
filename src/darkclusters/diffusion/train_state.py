"""The state and files of a training run, kept apart from the loop in :mod:`.train`: config defaults, the data
order, the metrics log, the distributed run, RNG states, checkpoint files and sample-grid PNGs.

Checkpoint files hold only tensors and plain Python types, so ``torch.load(path, weights_only=True)`` reads
them (no pickled code); they are written atomically (:func:`darkclusters.io.atomic_path`).
"""

from __future__ import annotations

import copy
import csv
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import torch
import torch.distributed as dist
import yaml

from darkclusters.io import atomic_path
from darkclusters.seeding import derive_seed

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_FORMAT",
    "CheckpointError",
    "DataOrder",
    "MetricsLog",
    "Run",
    "capture_rng",
    "check_state_dict",
    "ema_beta",
    "init_distributed",
    "latest_checkpoint",
    "read_payload",
    "resolve_training_config",
    "restore_rng",
    "save_payload",
    "training_schema",
    "write_grid_png",
]


CHECKPOINT_FORMAT = "darkclusters-train-checkpoint"  # resumable checkpoints/step_{step:08d}.pt
MODEL_FORMAT = "darkclusters-model"  # the final model.pt


class CheckpointError(ValueError):
    """A checkpoint or model file is unreadable, of another format, or does not match the run or network; the
    message names the file and what differs."""


def training_schema() -> dict[str, Any]:
    """The JSON schema (2020-12) of the ``training`` config section."""
    text = files("darkclusters").joinpath("schemas", "training.schema.yaml").read_text()
    return yaml.safe_load(text)


def _fill_defaults(schema: Mapping[str, Any], instance: dict[str, Any]) -> None:
    for name, sub in schema.get("properties", {}).items():
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(name), dict):
            _fill_defaults(sub, instance[name])


def resolve_training_config(train_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """A validated copy of the ``training`` section with the schema defaults filled in; ValueError names the
    key."""
    cfg = copy.deepcopy(dict(train_cfg or {}))
    schema = training_schema()
    _fill_defaults(schema, cfg)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(cfg), key=lambda e: -len(e.absolute_path)
    )
    if errors:
        key = ".".join(str(p) for p in errors[0].absolute_path) or "<section>"
        raise ValueError(f"config key 'training.{key}': {errors[0].message}")
    return cfg


class DataOrder:
    """Seeded epoch permutations of n items consumed in order; state (epoch, position) resumes exactly.

    Epoch e is ``torch.randperm(n)`` from a generator seeded with (seed, e); a batch may span two epochs.
    """

    def __init__(self, n_items: int, seed: int) -> None:
        if n_items < 1:
            raise ValueError("the training split holds no images")
        self.n_items, self.seed = int(n_items), int(seed)
        self.epoch, self.position = 0, 0
        self._cache: tuple[int, list[int]] | None = None

    def _perm(self, epoch: int) -> list[int]:
        if self._cache is None or self._cache[0] != epoch:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
            self._cache = (epoch, torch.randperm(self.n_items, generator=gen).tolist())
        return self._cache[1]

    def take(self, k: int) -> list[tuple[int, int]]:
        """The next k (epoch, index) pairs."""
        out = []
        while len(out) < k:
            perm = self._perm(self.epoch)
            n = min(k - len(out), self.n_items - self.position)
            out += [(self.epoch, i) for i in perm[self.position : self.position + n]]
            self.position += n
            if self.position == self.n_items:
                self.epoch, self.position = self.epoch + 1, 0
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "n_items": self.n_items, "seed": self.seed}

    def load(self, state: Mapping[str, int]) -> None:
        if int(state["n_items"]) != self.n_items or int(state["seed"]) != self.seed:
            raise CheckpointError(
                f"data order of {state['n_items']} images (seed {state['seed']}) does not match this run's "
                f"{self.n_items} images (seed {self.seed}): the training shards changed"
            )
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class MetricsLog:
    """``metrics.csv`` (and TensorBoard scalars when ``torch.utils.tensorboard`` imports) on rank 0.

    A resumed run first drops the rows after its checkpoint's step, so the file equals an uninterrupted run's.
    """

    COLUMNS = ("step", "images", "loss", "lr", "grad_norm", "ema_beta")

    def __init__(self, out_dir: Path, *, enabled: bool, resume_step: int | None) -> None:
        self.enabled = enabled
        self.path = Path(out_dir) / "metrics.csv"
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows: list[list[str]] = []
        if resume_step is not None and self.path.is_file():
            with self.path.open(newline="") as f:
                rows = [r for r in list(csv.reader(f))[1:] if r and int(r[0]) <= resume_step]
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            csv.writer(f).writerows([list(self.COLUMNS), *rows])
        self._file = self.path.open("a", newline="")
        self._writer = csv.writer(self._file)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
        except ImportError:  # the tensorboard package is optional; the CSV is the record
            self._tb = None

    def write(self, step: int, images: int, loss: float, row: Mapping[str, float]) -> None:
        """One row: mean loss since the previous row, and this step's lr, gradient norm and EMA β."""
        if not self.enabled:
            return
        values = [step, images, repr(float(loss)), *(repr(float(row[k])) for k in self.COLUMNS[3:])]
        self._writer.writerow(values)
        self._file.flush()
        if self._tb is not None:
            self._tb.add_scalar("loss", loss, step)
            for key in self.COLUMNS[3:]:
                self._tb.add_scalar(key, row[key], step)

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tb is not None:
                self._tb.close()


@dataclass
class Run:
    """This process's place in a (possibly distributed) run."""

    rank: int
    world: int
    device: torch.device
    created_group: bool = False

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.created_group and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str) -> Run:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (NCCL on CUDA, gloo on CPU); pick the device.

    device: "auto" (CUDA if available), "cpu", "cuda" or "cuda:N". Under torchrun a rank uses cuda:LOCAL_RANK.
    """
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        if not use_cuda:
            return Run(0, 1, torch.device("cpu"))
        dev = torch.device(device) if device.startswith("cuda:") else torch.device("cuda")
        return Run(
            0, 1, torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
        )
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    elif dist.get_world_size() != world:
        raise ValueError(f"WORLD_SIZE {world} differs from the process group's {dist.get_world_size()}")
    return Run(rank, world, dev, created)


def capture_rng(run: Run) -> list[dict[str, Any]]:
    """Every rank's RNG states (torch CPU, CUDA of its device, numpy global, python), indexed by rank."""
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002 - saving the global state, not drawing
    state = {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None,
        "numpy": {
            **np_state,
            "state": {"key": np_state["state"]["key"].tolist(), "pos": np_state["state"]["pos"]},
        },
        "python": random.getstate(),
    }
    return run.gather(state)


def restore_rng(states: list[dict[str, Any]], run: Run) -> None:
    """Restore this rank's RNG states; CheckpointError if the checkpoint came from another number of ranks."""
    if len(states) != run.world:
        raise CheckpointError(f"checkpoint was written by {len(states)} rank(s), this run has {run.world}")
    state = states[run.rank]
    torch.set_rng_state(state["torch_cpu"])
    if run.device.type == "cuda" and state["torch_cuda"] is not None:
        torch.cuda.set_rng_state(state["torch_cuda"], run.device)
    np_state = dict(state["numpy"])
    np_state["state"] = {
        "key": np.asarray(np_state["state"]["key"], dtype=np.uint32),
        "pos": np_state["state"]["pos"],
    }
    np.random.set_state(np_state)  # noqa: NPY002 - restoring the global state of a resumed run
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def check_state_dict(path: Path, module: torch.nn.Module, state: Mapping[str, Any], what: str) -> None:
    """Load ``state`` into ``module``; CheckpointError naming the file and the first differing keys/shapes."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("size mismatch", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{len(items)} {label}: {'; '.join(items[:3])}{more}")
    if problems:
        raise CheckpointError(f"{path}: {what} weights do not fit the network: " + " | ".join(problems))
    module.load_state_dict(state)


def ema_beta(images: int, batch: int, halflife_images: float, rampup_ratio: float | None) -> float:
    """EMA decay per step: β = 0.5^(batch / h), h = min(halflife_images, rampup_ratio × images) with ramp-up
    (Karras et al. 2022, App. F.2 training details), else h = halflife_images."""
    h = float(halflife_images)
    if rampup_ratio is not None:
        h = min(h, float(rampup_ratio) * images)
    return 0.5 ** (batch / max(h, 1e-8))


def latest_checkpoint(folder: Path) -> Path | None:
    """The ``step_{step:08d}.pt`` with the highest step in ``folder``, or None."""
    found = []
    for p in Path(folder).glob("step_*.pt"):
        digits = p.stem.removeprefix("step_")
        if digits.isdigit():
            found.append((int(digits), p))
    return max(found)[1] if found else None


def read_payload(path: Path, fmt: str) -> dict[str, Any]:
    """torch.load(weights_only=True) of a checkpoint or model file of format ``fmt``; CheckpointError naming
    the file if it is missing, truncated, corrupt or of another format."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damaged files
        raise CheckpointError(
            f"{path}: unreadable (truncated or corrupt?): {type(err).__name__}: {err}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        have = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: format {have!r}, expected {fmt!r}")
    return payload


def save_payload(payload: Mapping[str, Any], path: Path, *, keep: int | None = None) -> None:
    """torch.save atomically; with ``keep``, remove all but the newest ``keep`` ``step_*.pt`` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(dict(payload), tmp)
    if keep is not None:
        steps = sorted(p for p in path.parent.glob("step_*.pt") if p.stem.removeprefix("step_").isdigit())
        for old in steps[: max(0, len(steps) - keep)]:
            old.unlink(missing_ok=True)


def write_grid_png(
    path: Path, cond: torch.Tensor, target: torch.Tensor, images: torch.Tensor, *, step: int
) -> None:
    """One row per grid image: condition channel 0, target channel 0, model output channel 0, in normalised
    units on a common [−1, 1] colour scale; written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = target.shape[0]
    fig = Figure(figsize=(6.0, 2.0 * n))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 3, squeeze=False)
    for row in range(n):
        for col, (title, img) in enumerate(
            (("condition[0]", cond[row, 0]), ("truth[0]", target[row, 0]), ("model[0]", images[row, 0]))
        ):
            ax = axes[row, col]
            ax.imshow(img.detach().cpu().numpy(), origin="lower", vmin=-1.0, vmax=1.0, cmap="magma")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"step {step} (normalised units)", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)

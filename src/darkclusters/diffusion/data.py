"""Dataset shards for the diffusion prior and the UNet baseline: HDF5 format, writer and torch reader.

One file per split, ``results/datasets/{name}/{split}.h5`` (format ``darkclusters-shard`` version 1):

==================  =========================================================================================
``target``          (N, Ct, H, W) float32, physical units (Σ in Msun kpc⁻²); attrs ``units``, ``dims``
``condition``       (N, Cc, H, W) float32, physical units (HST photometry); attrs ``units``, ``dims``
``cluster_id``      (N,) str — the catalogue's cluster id of each image
``view``            (N,) int64 — the viewing-direction index of each image
``normalisation/``  group: attrs ``channels`` (order) and ``formula``; one sub-group per channel with attrs
                    ``offset``, ``shift``, ``scale`` (:class:`.normalise.Normalisation`)
root attrs          ``format``, ``format_version``, ``target_channels``, ``condition_channels``,
                    ``target_units``, ``condition_units`` (one per channel), ``n_images``, provenance
==================  =========================================================================================

The normalisation stored in every split is the one fitted on the TRAINING split. Images are chunked one per
HDF5 chunk, so random access reads one image. :class:`ShardDataset` returns normalised float32 tensors
and, with ``augment=True``, one of the 8 flips/right-angle rotations (the dihedral group of the square),
chosen from (seed, epoch, index) alone and applied to target and condition together — independent of batch
order, data-loader workers and the number of devices.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from darkclusters.diffusion.normalise import Normalisation
from darkclusters.io import atomic_path, write_hdf5_attrs
from darkclusters.seeding import derive_seed

__all__ = [
    "SHARD_FORMAT",
    "ShardDataset",
    "ShardWriter",
    "augment_pair",
    "augmentation_code",
    "read_normalisation",
    "read_shard_info",
    "write_shard",
]

SHARD_FORMAT = "darkclusters-shard"
_VERSION = 1
_FORMULA = "y = (ln(x + offset) - shift) / scale, per channel"


def _set_attrs(obj: h5py.Group | h5py.Dataset, attrs: Mapping[str, Any]) -> None:
    """Set attributes; string lists become variable-length string arrays (h5py cannot store numpy '<U')."""
    for key, value in attrs.items():
        if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            obj.attrs.create(key, data=list(value), dtype=h5py.string_dtype())
        else:
            write_hdf5_attrs(obj, {key: value})


def _units(units: str | Sequence[str], n: int, what: str) -> list[str]:
    """One unit string per channel."""
    out = [units] * n if isinstance(units, str) else [str(u) for u in units]
    if len(out) != n:
        raise ValueError(f"{what}: {len(out)} units for {n} channels")
    return out


class ShardWriter:
    """Write one split incrementally, images appended in any number of blocks (memory: one block).

    ``n_images`` and ``image_shape`` (H, W) are fixed up front, so the datasets are allocated once and filled
    block by block with :meth:`append`; :meth:`finish` checks that every image was written, then writes the
    normalisation and root attributes. Use as a context manager: the file is built under a temporary name and
    renamed to ``path`` only when the ``with`` block ends without an exception after :meth:`finish`, so a
    killed or failed job leaves no file that looks complete. Between the last :meth:`append` and
    :meth:`finish` the written images can be read back (``target``/``condition``, e.g. to fit the
    normalisation on the training split).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_images: int,
        image_shape: tuple[int, int],
        target_channels: Sequence[str],
        condition_channels: Sequence[str],
        target_units: str | Sequence[str],
        condition_units: str | Sequence[str],
    ) -> None:
        if n_images < 0 or len(image_shape) != 2 or min(image_shape) < 1:
            raise ValueError(f"need n_images >= 0 and image_shape (H, W), got {n_images}, {image_shape}")
        self.path = Path(path)
        self.n_images = int(n_images)
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.target_channels = [str(c) for c in target_channels]
        self.condition_channels = [str(c) for c in condition_channels]
        self._units = (
            _units(target_units, len(self.target_channels), "target_units"),
            _units(condition_units, len(self.condition_channels), "condition_units"),
        )
        self._written = 0
        self._finished = False
        self._ids: list[str] = []
        self._views: list[int] = []

    def __enter__(self) -> ShardWriter:
        self._atomic = atomic_path(self.path)
        self._file = h5py.File(self._atomic.__enter__(), "w")
        n = self.n_images
        for name, chans, units in (
            ("target", self.target_channels, self._units[0]),
            ("condition", self.condition_channels, self._units[1]),
        ):
            shape = (n, len(chans), *self.image_shape)
            chunks = (1, *shape[1:]) if n else None
            ds = self._file.create_dataset(name, shape=shape, dtype=np.float32, chunks=chunks)
            _set_attrs(ds, {"units": units, "dims": "image,channel,y,x", "channels": list(chans)})
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._file.close()
        if exc_type is None and not self._finished:
            exc = RuntimeError(f"{self.path}: ShardWriter closed before finish() (file not written)")
            self._atomic.__exit__(type(exc), exc, None)
            raise exc
        return bool(self._atomic.__exit__(exc_type, exc, tb))

    @property
    def target(self) -> h5py.Dataset:
        return self._file["target"]

    @property
    def condition(self) -> h5py.Dataset:
        return self._file["condition"]

    def append(
        self, target: np.ndarray, condition: np.ndarray, cluster_id: Sequence[str], view: Sequence[int]
    ) -> None:
        """Write the next block: target (B, Ct, H, W), condition (B, Cc, H, W), physical units, finite."""
        target = np.asarray(target, dtype=np.float32)
        condition = np.asarray(condition, dtype=np.float32)
        b = target.shape[0]
        if target.shape != (b, len(self.target_channels), *self.image_shape):
            raise ValueError(
                f"{self.path}: target block {target.shape} is not (B, {len(self.target_channels)}, "
                f"{self.image_shape[0]}, {self.image_shape[1]}) for channels {self.target_channels}"
            )
        if condition.shape != (b, len(self.condition_channels), *self.image_shape):
            raise ValueError(
                f"{self.path}: condition block {condition.shape} is not (B={b}, "
                f"{len(self.condition_channels)}, {self.image_shape[0]}, {self.image_shape[1]}) "
                f"for channels {self.condition_channels}"
            )
        if len(cluster_id) != b or len(view) != b:
            raise ValueError(
                f"cluster_id ({len(cluster_id)}) and view ({len(view)}) need one entry per image ({b})"
            )
        for name, arr in (("target", target), ("condition", condition)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{self.path}: {name} holds NaN or infinite values ({cluster_id[0]})")
        if self._written + b > self.n_images:
            raise ValueError(f"{self.path}: more than the announced {self.n_images} images")
        s = slice(self._written, self._written + b)
        self._file["target"][s] = target
        self._file["condition"][s] = condition
        self._ids += [str(c) for c in cluster_id]
        self._views += [int(v) for v in view]
        self._written += b

    def finish(self, normalisation: Normalisation, attrs: Mapping[str, Any] | None = None) -> None:
        """Write the ids, the normalisation (fitted on the TRAINING split) and the root attributes."""
        if self._written != self.n_images:
            raise ValueError(f"{self.path}: {self._written} of the announced {self.n_images} images written")
        normalisation.select(
            [*self.target_channels, *self.condition_channels]
        )  # raises for a missing channel
        f = self._file
        f.create_dataset("cluster_id", data=np.asarray(self._ids, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("view", data=np.asarray(self._views, dtype=np.int64))
        _write_normalisation(f.create_group("normalisation"), normalisation)
        root = {
            "format": SHARD_FORMAT,
            "format_version": _VERSION,
            "target_channels": self.target_channels,
            "condition_channels": self.condition_channels,
            "target_units": self._units[0],
            "condition_units": self._units[1],
            "n_images": self.n_images,
        }
        _set_attrs(f, {**root, **dict(attrs or {})})
        self._finished = True


def write_shard(
    path: str | os.PathLike,
    *,
    target: np.ndarray,
    condition: np.ndarray,
    target_channels: Sequence[str],
    condition_channels: Sequence[str],
    target_units: str | Sequence[str],
    condition_units: str | Sequence[str],
    cluster_id: Sequence[str],
    view: Sequence[int],
    normalisation: Normalisation,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write one split from in-memory arrays, atomically (:class:`ShardWriter` with one block).

    target: (N, Ct, H, W), condition: (N, Cc, H, W), physical units, finite. cluster_id, view: (N,).
    normalisation: fitted on the TRAINING split and covering every target and condition channel.
    attrs: extra root attributes, e.g. :func:`darkclusters.io.provenance` and pixel scales.
    """
    target = np.asarray(target, dtype=np.float32)
    condition = np.asarray(condition, dtype=np.float32)
    if target.ndim != 4 or condition.ndim != 4:
        raise ValueError(f"target and condition must be (N, C, H, W), got {target.shape}, {condition.shape}")
    if condition.shape[0] != target.shape[0] or condition.shape[2:] != target.shape[2:]:
        raise ValueError(f"condition {condition.shape} does not match target {target.shape}")
    if target.shape[1] != len(target_channels) or condition.shape[1] != len(condition_channels):
        raise ValueError(
            f"channel names {list(target_channels)}, {list(condition_channels)} do not match the arrays' "
            f"{target.shape[1]} and {condition.shape[1]} channels"
        )
    with ShardWriter(
        path,
        n_images=target.shape[0],
        image_shape=target.shape[2:],
        target_channels=target_channels,
        condition_channels=condition_channels,
        target_units=target_units,
        condition_units=condition_units,
    ) as writer:
        if target.shape[0]:
            writer.append(target, condition, cluster_id, view)
        elif len(cluster_id) or len(view):
            raise ValueError(
                f"cluster_id ({len(cluster_id)}) and view ({len(view)}) need one entry per image (0)"
            )
        writer.finish(normalisation, attrs)


def _write_normalisation(group: h5py.Group, norm: Normalisation) -> None:
    _set_attrs(group, {"channels": list(norm.channels), "formula": _FORMULA})
    for name, off, shift, scale in zip(norm.channels, norm.offset, norm.shift, norm.scale, strict=True):
        sub = group.create_group(name)
        sub.attrs["offset"] = off
        sub.attrs["shift"] = shift
        sub.attrs["scale"] = scale


def _str_list(value: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def read_normalisation(path: str | os.PathLike) -> Normalisation:
    """The normalisation stored in a shard; KeyError naming the file if it has none."""
    with h5py.File(path, "r") as f:
        if "normalisation" not in f:
            raise KeyError(f"{path}: no 'normalisation' group (not a darkclusters shard?)")
        g = f["normalisation"]
        chans = _str_list(g.attrs["channels"])
        return Normalisation(
            channels=tuple(chans),
            offset=tuple(float(g[c].attrs["offset"]) for c in chans),
            shift=tuple(float(g[c].attrs["shift"]) for c in chans),
            scale=tuple(float(g[c].attrs["scale"]) for c in chans),
        )


def read_shard_info(path: str | os.PathLike) -> dict[str, Any]:
    """Channels, units, image count and size of a shard: ValueError naming the file if it is not one."""
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 shard ({err})") from err
    with f:
        if f.attrs.get("format") != SHARD_FORMAT:
            raise ValueError(f"{path}: attribute format is {f.attrs.get('format')!r}, not {SHARD_FORMAT!r}")
        return {
            "n_images": int(f["target"].shape[0]),
            "image_shape": tuple(int(s) for s in f["target"].shape[2:]),
            "target_channels": _str_list(f.attrs["target_channels"]),
            "condition_channels": _str_list(f.attrs["condition_channels"]),
            "target_units": _str_list(f.attrs["target_units"]),
            "condition_units": _str_list(f.attrs["condition_units"]),
        }


def augmentation_code(seed: int, epoch: int, index: int) -> int:
    """The dihedral transform (0–7) of image ``index`` in ``epoch``: code % 4 quarter turns, a flip if ≥ 4."""
    return derive_seed(seed, "augment", epoch, index) % 8


def augment_pair(target: np.ndarray, condition: np.ndarray, code: int) -> tuple[np.ndarray, np.ndarray]:
    """Apply the same dihedral transform to both (C, H, W) maps: ``code % 4`` quarter turns counter-clockwise
    in the (y, x) plane, then a left–right flip if ``code >= 4``."""
    if not 0 <= code < 8:
        raise ValueError(f"augmentation code must be in 0..7, got {code}")

    def one(a: np.ndarray) -> np.ndarray:
        a = np.rot90(a, code % 4, axes=(-2, -1))
        return np.ascontiguousarray(a[..., ::-1] if code >= 4 else a)

    return one(target), one(condition)


class ShardDataset(Dataset):
    """Images of one or more shards as normalised ``(target, condition)`` float32 tensors, (Ct, H, W) and
    (Cc, H, W).

    paths: shard files (all with the same channels and image size). normalisation: defaults to the one stored
    in the shards (which must agree). augment: random dihedral transforms keyed by (seed, epoch, index);
    non-square images use only the transforms that keep their shape. The HDF5 files open lazily in each
    process.
    """

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        normalisation: Normalisation | None = None,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        self.paths = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("ShardDataset needs at least one shard path")
        infos = [read_shard_info(p) for p in self.paths]
        first = infos[0]
        for p, info in zip(self.paths, infos, strict=True):
            for key in ("image_shape", "target_channels", "condition_channels"):
                if info[key] != first[key]:
                    raise ValueError(f"{p}: {key} {info[key]} differs from {self.paths[0]}: {first[key]}")
        if normalisation is None:
            norms = [read_normalisation(p) for p in self.paths]
            for p, norm in zip(self.paths, norms, strict=True):
                if norm != norms[0]:
                    raise ValueError(f"{p}: its normalisation differs from {self.paths[0]}'s")
            normalisation = norms[0]
        self.target_channels: list[str] = first["target_channels"]
        self.condition_channels: list[str] = first["condition_channels"]
        self.image_shape: tuple[int, int] = first["image_shape"]
        self.normalisation = normalisation
        self._t_norm = normalisation.select(self.target_channels)
        self._c_norm = normalisation.select(self.condition_channels)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0
        self._offsets = np.cumsum([0] + [info["n_images"] for info in infos])
        self._files: dict[int, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draw used by ``__getitem__``."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample(index, epoch=self.epoch)

    def sample(self, index: int, *, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image ``index`` normalised, with the augmentation of ``epoch`` (if enabled)."""
        target, condition = self.raw(index)
        target = self._t_norm.forward(target.astype(np.float64))
        condition = self._c_norm.forward(condition.astype(np.float64))
        if self.augment:
            code = augmentation_code(self.seed, epoch, index)
            if self.image_shape[0] != self.image_shape[1]:
                code = (code % 2) * 2 + (code // 4) * 4  # 0 or 2 quarter turns: shape-preserving
            target, condition = augment_pair(target, condition, code)
        return torch.from_numpy(target.astype(np.float32)), torch.from_numpy(condition.astype(np.float32))

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` in physical units, un-augmented: (Ct, H, W), (Cc, H, W) float32."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        shard = int(np.searchsorted(self._offsets, index, side="right") - 1)
        f = self._file(shard)
        local = index - int(self._offsets[shard])
        return f["target"][local], f["condition"][local]

    def _file(self, shard: int) -> h5py.File:
        if self._pid != os.getpid():  # a forked worker must not share the parent's HDF5 handles
            self._files, self._pid = {}, os.getpid()
        if shard not in self._files:
            self._files[shard] = h5py.File(self.paths[shard], "r")
        return self._files[shard]

    def close(self) -> None:
        """Close the open HDF5 files (they reopen on the next access)."""
        for f in self._files.values():
            f.close()
        self._files = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"] = {}
        return state

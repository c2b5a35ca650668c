"""Per-channel normalisation of maps for the diffusion networks: a log transform, then shift and scale.

    y = (ln(x + offset) − shift) / scale,        x = exp(y·scale + shift) − offset   (exact inverse)

per channel (axis −3 of (..., C, H, W) arrays). The DarkClusters paper (Appendix B; diegoroyo/InverseBench)
uses fixed constants: mass (ln(Σ + 5e-3) + 5.3)/7.25 and photometry (ln(p + 1e-9) + 20.73)/13.59, i.e. offset
5e-3, shift −5.3, scale 7.25 and offset 1e-9, shift −20.73, scale 13.59 (:func:`paper_normalisation`). Those
constants belong to the paper's map units (shift ≈ ln(offset), so an empty pixel maps to ≈ 0 and the brightest
to ≈ 1). Our maps are in physical units (Σ in Msun kpc⁻², photometry in the observation stage's flux units),
so :meth:`Normalisation.fit` derives all three numbers per channel from the TRAINING split only:

- offset: the ``offset_quantile`` quantile (default 1 %) of the strictly positive pixel values — the level
  below which a pixel counts as empty, playing the role of the paper's 5e-3 — raised to −min(x) + that
  quantile if the training split holds negative values (noisy photometry) — with a margin of 2× (the
  most negative of ~1e5 Gaussian noise pixels lies near −4.5σ, so −9σ is out of reach of validation and test
  images), so every pixel has a finite logarithm;
- shift and scale: the mid-point and half-width of ln(x + offset) over the training split, which maps the
  training range onto [−1, 1] exactly (the network's σ_data = 0.5 assumes data of about that spread).

Validation and test shards reuse the training numbers; a pixel with x + offset ≤ 0 there raises ``ValueError``
(no silent clamp). The parameters go to and from a plain dict (:meth:`Normalisation.to_dict`) for HDF5
attributes and checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["PAPER_CONSTANTS", "Normalisation", "paper_normalisation"]

PAPER_CONSTANTS: dict[str, dict[str, float]] = {
    "mass": {"offset": 5e-3, "shift": -5.3, "scale": 7.25},  # (ln(Σ + 5e-3) + 5.3)/7.25
    "photometry": {"offset": 1e-9, "shift": -20.73, "scale": 13.59},  # (ln(p + 1e-9) + 20.73)/13.59
}

NOISE_MARGIN = 2.0  # offset ≥ this × the deepest negative training pixel, so held-out noise stays above it
_IMAGES_FOR_QUANTILE = 256  # images (evenly spaced through the split) used to estimate the offset quantile


@dataclass(frozen=True)
class Normalisation:
    """Per-channel y = (ln(x + offset) − shift)/scale for the named channels, in this order.

    channels: channel names (e.g. ``sigma_total``, ``F814W``); offset, shift, scale: one float per channel, in
    the channel's own units (offset) and in ln units (shift, scale).
    """

    channels: tuple[str, ...]
    offset: tuple[float, ...]
    shift: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.channels)
        if n == 0 or not len(self.offset) == len(self.shift) == len(self.scale) == n:
            raise ValueError(f"need one offset, shift and scale per channel {self.channels}")
        if len(set(self.channels)) != n:
            raise ValueError(f"channel names repeat: {self.channels}")
        for name, off, sc in zip(self.channels, self.offset, self.scale, strict=True):
            if not (np.isfinite(off) and off > 0 and np.isfinite(sc) and sc > 0):
                raise ValueError(f"channel {name!r}: offset {off} and scale {sc} must be finite and > 0")

    @classmethod
    def fit(
        cls, x: Any, channels: Sequence[str], *, offset_quantile: float = 0.01, chunk: int = 64
    ) -> Normalisation:
        """Fit offset, shift and scale per channel on ``x`` (N, C, H, W): the TRAINING split only.

        x: a numpy array or anything sliceable along the first axis (an ``h5py.Dataset``), read ``chunk``
        images at a time. The offset quantile is computed on at most 256 evenly spaced images; shift and scale
        use every image.
        """
        if not 0.0 < offset_quantile < 1.0:
            raise ValueError(f"offset_quantile must be in (0, 1), got {offset_quantile}")
        n, n_channels = int(x.shape[0]), int(x.shape[1])
        if len(x.shape) != 4 or n == 0 or n_channels != len(channels):
            raise ValueError(f"x must be (N > 0, {len(channels)}, H, W), got {tuple(x.shape)}")
        picks = np.unique(np.linspace(0, n - 1, min(n, _IMAGES_FOR_QUANTILE)).round().astype(np.int64))
        sample = np.stack([np.asarray(x[int(i)], dtype=np.float64) for i in picks])
        lowest = np.min([block.min(axis=(0, 2, 3)) for block in _chunks(x, chunk)], axis=0)
        offsets = []
        for c, name in enumerate(channels):
            values = sample[:, c]
            positive = values[values > 0]
            if positive.size == 0:
                raise ValueError(f"channel {name!r} has no positive pixel in the training split")
            offset = float(np.quantile(positive, offset_quantile))
            if lowest[c] < 0:  # noisy maps: twice the deepest training noise dip (module docstring)
                offset = float(NOISE_MARGIN * -lowest[c] + offset)
            offsets.append(offset)
        lo = np.full(n_channels, np.inf)
        hi = np.full(n_channels, -np.inf)
        off = np.asarray(offsets)[None, :, None, None]
        for block in _chunks(x, chunk):
            logs = np.log(block + off)
            lo = np.minimum(lo, logs.min(axis=(0, 2, 3)))
            hi = np.maximum(hi, logs.max(axis=(0, 2, 3)))
        scale = np.where(hi > lo, (hi - lo) / 2, 1.0)  # a constant channel maps to 0
        return cls(
            channels=tuple(str(c) for c in channels),
            offset=tuple(float(o) for o in offsets),
            shift=tuple(float(s) for s in (hi + lo) / 2),
            scale=tuple(float(s) for s in scale),
        )

    def select(self, names: Iterable[str]) -> Normalisation:
        """The normalisation of a subset of channels, in the order of ``names``."""
        names = list(names)
        missing = [c for c in names if c not in self.channels]
        if missing:
            raise ValueError(f"channels {missing} are not normalised here (have {list(self.channels)})")
        idx = [self.channels.index(c) for c in names]
        return Normalisation(
            channels=tuple(names),
            offset=tuple(self.offset[i] for i in idx),
            shift=tuple(self.shift[i] for i in idx),
            scale=tuple(self.scale[i] for i in idx),
        )

    def forward(self, x: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Physical → normalised: (ln(x + offset) − shift)/scale on (..., C, H, W); numpy in, numpy out."""
        offset, shift, scale = self._params(x)
        shifted = x + offset
        bad = (shifted <= 0).any() if isinstance(x, Tensor) else np.any(shifted <= 0)
        if bool(bad):
            c = int(np.argmax(_per_channel_min(shifted) <= 0))
            raise ValueError(
                f"channel {self.channels[c]!r}: a value ≤ −offset ({-self.offset[c]:.6g}) has no logarithm; "
                f"the smallest value here is {float(_per_channel_min(x)[c]):.6g}"
            )
        logs = shifted.log() if isinstance(x, Tensor) else np.log(shifted)
        return (logs - shift) / scale

    def inverse(self, y: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Normalised → physical: exp(y·scale + shift) − offset on (..., C, H, W); differentiable."""
        offset, shift, scale = self._params(y)
        z = y * scale + shift
        return (z.exp() if isinstance(y, Tensor) else np.exp(z)) - offset

    def to_dict(self) -> dict[str, list]:
        """Plain lists of names and floats, ``{"channels", "offset", "shift", "scale"}``."""
        return {
            "channels": list(self.channels),
            "offset": list(self.offset),
            "shift": list(self.shift),
            "scale": list(self.scale),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Normalisation:
        """Inverse of :meth:`to_dict`; ValueError naming a missing key."""
        missing = {"channels", "offset", "shift", "scale"} - set(d)
        if missing:
            raise ValueError(f"normalisation dict lacks {sorted(missing)}")
        return cls(
            channels=tuple(str(c) for c in d["channels"]),
            offset=tuple(float(v) for v in d["offset"]),
            shift=tuple(float(v) for v in d["shift"]),
            scale=tuple(float(v) for v in d["scale"]),
        )

    def _params(self, x: np.ndarray | Tensor) -> tuple[Any, Any, Any]:
        """offset, shift and scale shaped (C, 1, 1), as arrays or tensors matching x's dtype and device."""
        if x.ndim < 3 or x.shape[-3] != len(self.channels):
            raise ValueError(
                f"expected (..., {len(self.channels)}, H, W) for {self.channels}, got {tuple(x.shape)}"
            )
        values = [self.offset, self.shift, self.scale]
        if isinstance(x, Tensor):
            return tuple(torch.tensor(v, dtype=x.dtype, device=x.device)[:, None, None] for v in values)
        dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
        return tuple(np.asarray(v, dtype=dtype)[:, None, None] for v in values)


def paper_normalisation(mass_channels: Sequence[str], photometry_channels: Sequence[str]) -> Normalisation:
    """The DarkClusters paper's fixed constants (documented defaults, for maps in the paper's units)."""
    chans = [*mass_channels, *photometry_channels]
    kinds = ["mass"] * len(mass_channels) + ["photometry"] * len(photometry_channels)
    return Normalisation(
        channels=tuple(chans),
        offset=tuple(PAPER_CONSTANTS[k]["offset"] for k in kinds),
        shift=tuple(PAPER_CONSTANTS[k]["shift"] for k in kinds),
        scale=tuple(PAPER_CONSTANTS[k]["scale"] for k in kinds),
    )


def _chunks(x: Any, chunk: int) -> Iterable[np.ndarray]:
    """x[i : i + chunk] as float64 numpy arrays."""
    for start in range(0, int(x.shape[0]), chunk):
        yield np.asarray(x[start : start + chunk], dtype=np.float64)


def _per_channel_min(x: np.ndarray | Tensor) -> np.ndarray:
    """Minimum per channel (axis −3) as a numpy array."""
    if isinstance(x, Tensor):
        return x.detach().transpose(0, -3).reshape(x.shape[-3], -1).min(dim=1).values.cpu().double().numpy()
    return np.moveaxis(np.asarray(x), -3, 0).reshape(x.shape[-3], -1).min(axis=1)

"""Per-sample random streams, so that a sample depends on its seed only, not on its batch or batch size.

Each sample owns one ``torch.Generator`` seeded with its own seed; a draw of shape S for a batch of B samples
is the stack of B independent draws of shape S, one from each generator (the idea of NVlabs/edm's
StackedRandomGenerator, written for this project). The same seed therefore gives the same noise whether the
sample sits alone or fourth in a batch of 16, on one device and dtype. Costs one small kernel per sample and
draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["PerSampleGenerator"]

_MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed accepts non-negative 64-bit integers


class PerSampleGenerator:
    """One ``torch.Generator`` per sample seed on ``device``; draws are stacked along a leading batch axis."""

    def __init__(self, seeds: Sequence[int], *, device: torch.device | str | None = None) -> None:
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must hold at least one seed")
        for seed in seeds:
            if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _MAX_SEED:
                raise ValueError(f"each seed must be an integer in [0, 2**63 - 1], got {seed!r}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.seeds = tuple(seeds)
        self.generators = [torch.Generator(device=self.device).manual_seed(seed) for seed in seeds]

    def __len__(self) -> int:
        return len(self.generators)

    def randn(self, shape: Sequence[int], *, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Standard normal draws ``(B, *shape)``, row b from generator b (``shape`` excludes the batch)."""
        shape = tuple(int(n) for n in shape)
        if any(n < 0 for n in shape):
            raise ValueError(f"shape={shape} must be non-negative")
        return torch.stack(
            [torch.randn(shape, generator=g, device=self.device, dtype=dtype) for g in self.generators]
        )

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal draws with x's shape, dtype and device; x's batch equals the number of seeds."""
        if x.ndim < 1 or x.shape[0] != len(self):
            raise ValueError(f"x has batch {tuple(x.shape)[:1]}, expected {len(self)} (one per seed)")
        if x.device != self.device and not (x.device.type == self.device.type == "cuda"):
            raise ValueError(f"x is on {x.device}, the generators on {self.device}")
        return self.randn(x.shape[1:], dtype=x.dtype).to(x.device)

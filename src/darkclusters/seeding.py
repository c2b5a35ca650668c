"""Deterministic seeds: every random choice derives from the config's master seed and the ids of what it
makes.

``derive_seed(master, "tng", 84, 3)`` is stable across processes, machines and Python versions (SHA-256, never
Python's salted ``hash``), so a job's output does not depend on which other jobs ran or in which order.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_rng", "derive_seed"]


def derive_seed(master: int, *keys: object) -> int:
    """A 63-bit seed from the master seed and any keys (strings, ints), stable everywhere."""
    text = "/".join([str(int(master)), *(str(k) for k in keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def derive_rng(master: int, *keys: object) -> np.random.Generator:
    """A numpy Generator seeded with :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(master, *keys))

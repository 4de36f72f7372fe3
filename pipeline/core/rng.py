"""Randomness without globals: every random decision comes from a generator derived from named parts.

Seeds derive from (run seed, stage, sample id, copy, ...), so results depend neither on the order
work is done in nor on the number of workers.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (hash of their reprs); stable across runs and platforms."""
    h = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def rng_for(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded from `derive_seed(*parts)`."""
    return np.random.Generator(np.random.PCG64(derive_seed(*parts)))

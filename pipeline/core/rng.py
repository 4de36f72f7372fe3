"""Randomness without globals: every random decision comes from a generator derived from named parts.

Seeds derive from (run seed, stage, sample id, copy, ...), so results depend neither on the order
work is done in nor on the number of workers.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (hash of their reprs); stable across runs and platforms."""
    h = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def rng_for(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded from `derive_seed(*parts)`."""
    return np.random.Generator(np.random.PCG64(derive_seed(*parts)))


class SeededGenerator:
    """One numpy Generator re-seeded in place, for hot loops that need a fresh stream per item.

    `reset(seed)` puts the PCG64 state derived from `seed` (by sha256) into the same bit generator,
    about 1 microsecond instead of the ~10 a new `PCG64(seed)` costs; objects that hold the
    generator (an albumentations pipeline, for one) keep holding the right stream.
    """

    def __init__(self) -> None:
        self.bit_generator = np.random.PCG64(0)
        self.generator = np.random.Generator(self.bit_generator)

    def reset(self, seed: int) -> np.random.Generator:
        digest = hashlib.sha256(int(seed).to_bytes(16, "little", signed=True)).digest()
        self.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(digest[:16], "little"), "inc": int.from_bytes(digest[16:], "little") | 1},
            "has_uint32": 0,
            "uinteger": 0,
        }
        return self.generator


class StreamRandom(random.Random):
    """A `random.Random` whose draws come from a numpy generator's bit generator.

    Libraries that take a Python generator beside a numpy one (albumentations' `py_random`) then
    follow the numpy stream: re-seeding the numpy generator re-seeds both, and nothing needs a
    Mersenne Twister seeded per item (~5 microseconds each). `random()` is numpy's double
    construction (53 high bits); every other method derives from `random` and `getrandbits`.
    """

    def __init__(self, generator: np.random.Generator) -> None:
        self._raw = generator.bit_generator.random_raw
        super().__init__(0)

    def random(self) -> float:
        return (self._raw() >> 11) * (1.0 / 9007199254740992.0)

    def getrandbits(self, k: int) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        out, have = 0, 0
        while have < k:
            out = (out << 64) | self._raw()
            have += 64
        return out >> (have - k)

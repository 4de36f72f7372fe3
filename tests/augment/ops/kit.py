"""What the op modules' tests share: a resolved op, one offline call, a batch and one online call."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment.recipe import OpConfig, Recipe, parse_recipe
from pipeline.augment.single import Item, SingleOps


def recipe(name: str, p: float = 1.0, **params: object) -> Recipe:
    """A recipe of one op, always applied, nothing dropped for visibility or area."""
    return parse_recipe({"ops": [{"op": name, "p": p, **params}], "visibility": 0.0, "min_area": 0}, "test")


def config(name: str, p: float = 1.0, **params: object) -> OpConfig:
    """One op with every parameter resolved."""
    return recipe(name, p, **params).ops[0]


def offline(name: str, item: Item, seed: int = 0, targets: frozenset[str] = frozenset({"label"}),
            **params: object) -> Item:
    """`item` through the op's albumentations transform, as the offline stage runs it."""
    channels = 1 if item.image.ndim == 2 else item.image.shape[2]
    return SingleOps(recipe(name, **params), channels, set(targets))(item, np.random.default_rng(seed))


def image(h: int = 20, w: int = 24, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A random uint8 image, (H, W) when `channels` is 1."""
    shape = (h, w) if channels == 1 else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def batch(n: int = 4, channels: int = 3, h: int = 12, w: int = 16, seed: int = 0) -> torch.Tensor:
    """A float batch (N, C, H, W) of whole numbers in [0, 255], as the online hook passes it."""
    return torch.randint(0, 256, (n, channels, h, w), generator=torch.Generator().manual_seed(seed)).float()


def soft(n: int = 4, classes: int = 3) -> torch.Tensor:
    """One-hot targets (N, K)."""
    return torch.eye(classes)[torch.arange(n) % classes]


def online(op: OpConfig, x: torch.Tensor, y: torch.Tensor | None = None, seed: int = 0):
    """The op's batched kernel on `x` (and `y` for multi-sample ops) with generators seeded by `seed`."""
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    if op.spec.kind == "single":
        return op.spec.online(op, x, gen, rng)
    return op.spec.online(op, x, y, gen, rng)

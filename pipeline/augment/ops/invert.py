"""`invert`: colour inversion, 255 - x; pixels only."""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import ALL_TARGETS, Op, named


def build(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `InvertImg`."""
    return named(T.InvertImg, op.name)(p=op.p)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """255 - x (no draw)."""
    return 255.0 - x


OPS = (
    Op("invert", "single", {}, ALL_TARGETS, "colour inversion (255 - x)", offline=build, online=batch),
)

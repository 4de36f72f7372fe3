"""`hflip` and `vflip`: mirror the image left-right or top-bottom.

Boxes, polygons and masks are mirrored with it; keypoints are refused (a point named "left_eye"
would end up on the right).
"""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import FLIP_TARGETS, Op, named


def build_hflip(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `HorizontalFlip`."""
    return named(T.HorizontalFlip, op.name)(p=op.p)


def build_vflip(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `VerticalFlip`."""
    return named(T.VerticalFlip, op.name)(p=op.p)


def hflip_batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """The batch mirrored left-right (no draw)."""
    return x.flip(-1)


def vflip_batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """The batch mirrored top-bottom (no draw)."""
    return x.flip(-2)


OPS = (
    Op("hflip", "single", {}, FLIP_TARGETS, "mirror left-right", offline=build_hflip, online=hflip_batch,
       geometric=True),
    Op("vflip", "single", {}, FLIP_TARGETS, "mirror top-bottom", offline=build_vflip, online=vflip_batch,
       geometric=True),
)

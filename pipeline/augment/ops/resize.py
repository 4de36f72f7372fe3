"""`resize` and `random_scale`: the output size changes (to a fixed size, or by a drawn factor).

Offline only: online training takes batches of one size, so both are refused there.
"""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import WARP_TARGETS, Op, Param, always, fail, named, pair, scale_factors


def build_resize(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `Resize`."""
    return named(T.Resize, op.name)(height=op.params["height"], width=op.params["width"], p=op.p)


def build_random_scale(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `RandomScale` (its limits are offsets from 1)."""
    lo, hi = pair(op.params["scale"])
    return named(T.RandomScale, op.name)(scale_limit=(lo - 1.0, hi - 1.0), p=op.p)


def check_resize(where: str, params: dict[str, Any]) -> None:
    """The output size is at least one pixel each way."""
    if params["width"] < 1 or params["height"] < 1:
        raise fail(where, "width/height", "positive integers", [params["width"], params["height"]])


OPS = (
    Op("resize", "single", {"width": Param("int", 32, "output width"), "height": Param("int", 32, "output height")},
       WARP_TARGETS, "resize to a fixed size", offline=build_resize, geometric=True, resizes=always,
       check=check_resize),
    Op("random_scale", "single", {"scale": Param("range", [0.8, 1.2], "size factor range [lo, hi]")},
       WARP_TARGETS, "resize by a random factor (the output size changes)", offline=build_random_scale,
       geometric=True, resizes=always, check=scale_factors),
)

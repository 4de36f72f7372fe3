"""`grayscale`: colour to grey, keeping the channel count; grey images are left as they are."""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import ALL_TARGETS, Op, named


def build(op: Any, channels: int, T: Any) -> Any:
    """albumentations' `ToGray` for colour images; None (nothing to do) for grey ones."""
    if channels != 3:
        return None  # already grey: nothing to do
    return named(T.ToGray, op.name)(num_output_channels=3, p=op.p)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Colour batches to their luma in every channel; other batches unchanged (no draw)."""
    from pipeline.augment import online as O

    return O.grey(x).expand(-1, x.shape[1], -1, -1) if x.shape[1] == 3 else x


OPS = (
    Op("grayscale", "single", {}, ALL_TARGETS, "to grey, keeping the channel count", offline=build, online=batch),
)

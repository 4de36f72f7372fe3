"""`random_crop`: torchvision's `RandomCrop(size, padding)`: pad each side, crop at a random place.

Without a `size` the crop has the input's size, which is an integer shift with the border filled:
offline that is albumentations' `Affine` with a pixel shift (the drop-in of `pipeline.augment.albu`),
online a shift matrix per sample. With a `size`, offline pads and crops (`Pad`, `RandomCrop`), and
online training refuses it (the output size changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.augment.ops.base import FILL, WARP_TARGETS, Op, Param, named


def build(op: Any, channels: int, T: Any) -> Any:
    """A pixel shift (`Affine`, nearest neighbour) or `Sequential([Pad, RandomCrop])` for a given size."""
    import cv2

    k, p, name = op.params, op.p, op.name
    const = cv2.BORDER_CONSTANT
    pad = k["padding"]
    if k["size"] is None:  # pad then crop back to the input size == an integer shift with fill
        return named(T.Affine, name)(translate_px={"x": (-pad, pad), "y": (-pad, pad)}, border_mode=const,
                                     fill=k["fill"], interpolation=cv2.INTER_NEAREST, p=p)
    h, w = k["size"]
    return T.Sequential([
        named(T.Pad, f"{name}.pad")(padding=pad, fill=k["fill"], border_mode=const, p=1.0),
        named(T.RandomCrop, f"{name}.crop")(height=h, width=w, pad_if_needed=True, fill=k["fill"], p=1.0),
    ], p=p)


def draw(op: Any, n: int, h: int, w: int, gen: Any, rng: Any) -> Any:
    """One whole-pixel shift per sample, each axis uniform in [-padding, padding] (both ends included)."""
    import torch

    from pipeline.augment import online as O

    pad = op.params["padding"]
    m = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    m[:, 0, 2] = torch.randint(-pad, pad + 1, (n,), generator=gen).double()
    m[:, 1, 2] = torch.randint(-pad, pad + 1, (n,), generator=gen).double()
    return O.Warp(matrix=m)


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Each sample shifted by whole pixels in [-padding, padding], the border filled."""
    from pipeline.augment import online as O

    n, _, h, w = x.shape
    return O.apply_warp(x, draw(op, n, h, w, gen, rng), op.params["fill"])


def resizes(params: Mapping[str, Any]) -> bool:
    """A crop of a given size changes the image size."""
    return params["size"] is not None


OPS = (
    Op("random_crop", "single", {
        "padding": Param("int", 4, "pixels padded on each side before cropping"),
        "size": Param("size", None, "[height, width] of the crop; default: the input size"),
        "fill": FILL,
    }, WARP_TARGETS, "random crop with padding (torchvision RandomCrop(size, padding))", offline=build, online=batch, warp=draw,
        fast="Affine", geometric=True, resizes=resizes),
)

"""`rotate`: rotation about the image centre by an angle drawn from [-d, d].

Offline: albumentations' `Rotate` (the drop-in of `pipeline.augment.albu`); online: one rotation
matrix per sample through `pipeline.augment.online.warp`.
"""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import FILL, WARP_TARGETS, Op, Param, named, sym


def build(op: Any, channels: int, T: Any) -> Any:
    """`Rotate` with a constant border."""
    import cv2

    k = op.params
    return named(T.Rotate, op.name)(limit=sym(k["degrees"]), border_mode=cv2.BORDER_CONSTANT, fill=k["fill"], p=op.p)


def draw(op: Any, n: int, h: int, w: int, gen: Any, rng: Any) -> Any:
    """One rotation matrix per sample, its angle from U(-d, d) as albumentations' `Rotate`."""
    from pipeline.augment import online as O

    return O.Warp(matrix=O.affine_matrices(n, h, w, gen, degrees=O.as_range(op.params["degrees"], True)))


def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
    """Each sample rotated by its own angle."""
    from pipeline.augment import online as O

    n, _, h, w = x.shape
    return O.apply_warp(x, draw(op, n, h, w, gen, rng), op.params["fill"])


OPS = (
    Op("rotate", "single", {"degrees": Param("range", 15.0, "angle in degrees: d means [-d, d]"), "fill": FILL},
       WARP_TARGETS, "rotation about the centre", offline=build, online=batch, warp=draw, fast="Rotate", geometric=True),
)

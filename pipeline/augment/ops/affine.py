"""`affine`, `shift` and `scale`: rotation, shift, zoom and shear in one warp, or one of them alone.

Offline: albumentations' `Affine` (the drop-in of `pipeline.augment.albu`); online: one matrix per
sample through `pipeline.augment.online.warp`. The three share the transform and the matrix; they
differ in which parameters they expose.
"""

from __future__ import annotations

from typing import Any

from pipeline.augment.ops.base import FILL, WARP_TARGETS, Op, Param, named, pair, scale_factors, sym


def build_affine(op: Any, channels: int, T: Any) -> Any:
    """`Affine` with every part drawn."""
    import cv2

    k = op.params
    t = sym(k["translate"])
    return named(T.Affine, op.name)(rotate=sym(k["degrees"]), translate_percent={"x": t, "y": t},
                                    scale=pair(k["scale"]), shear=sym(k["shear"]), border_mode=cv2.BORDER_CONSTANT,
                                    fill=k["fill"], p=op.p)


def build_shift(op: Any, channels: int, T: Any) -> Any:
    """`Affine` with a shift only."""
    import cv2

    t = sym(op.params["translate"])
    return named(T.Affine, op.name)(translate_percent={"x": t, "y": t}, border_mode=cv2.BORDER_CONSTANT,
                                    fill=op.params["fill"], p=op.p)


def build_scale(op: Any, channels: int, T: Any) -> Any:
    """`Affine` with a zoom only."""
    import cv2

    return named(T.Affine, op.name)(scale=pair(op.params["scale"]), border_mode=cv2.BORDER_CONSTANT,
                                    fill=op.params["fill"], p=op.p)


def affine_draw(op: Any, n: int, h: int, w: int, gen: Any, rng: Any) -> Any:
    """One matrix per sample: rotation, shift, zoom and shear drawn uniformly, as `Affine`."""
    from pipeline.augment import online as O

    k = op.params
    return O.Warp(matrix=O.affine_matrices(n, h, w, gen, degrees=O.as_range(k["degrees"], True),
                                           translate=O.as_range(k["translate"], True),
                                           scale=O.as_range(k["scale"], False), shear=O.as_range(k["shear"], True)))


def shift_draw(op: Any, n: int, h: int, w: int, gen: Any, rng: Any) -> Any:
    """One shift per sample, a uniform fraction of the size on each axis."""
    from pipeline.augment import online as O

    return O.Warp(matrix=O.affine_matrices(n, h, w, gen, translate=O.as_range(op.params["translate"], True)))


def scale_draw(op: Any, n: int, h: int, w: int, gen: Any, rng: Any) -> Any:
    """One zoom about the centre per sample, its factor uniform in the range."""
    from pipeline.augment import online as O

    return O.Warp(matrix=O.affine_matrices(n, h, w, gen, scale=O.as_range(op.params["scale"], False)))


def _applier(draw: Any, doc: str) -> Any:
    def batch(op: Any, x: Any, gen: Any, rng: Any) -> Any:
        from pipeline.augment import online as O

        n, _, h, w = x.shape
        return O.apply_warp(x, draw(op, n, h, w, gen, rng), op.params["fill"])

    batch.__doc__ = doc
    return batch


affine_batch = _applier(affine_draw, "Each sample warped by its own rotation, shift, zoom and shear.")
shift_batch = _applier(shift_draw, "Each sample shifted by its own fraction of the size.")
scale_batch = _applier(scale_draw, "Each sample zoomed about its centre by its own factor.")


OPS = (
    Op("affine", "single", {
        "degrees": Param("range", 0.0, "rotation: d means [-d, d]"),
        "translate": Param("range", 0.0, "shift as a fraction of the size: t means [-t, t]"),
        "scale": Param("range", [1.0, 1.0], "zoom factor range [lo, hi]"),
        "shear": Param("range", 0.0, "shear in degrees: s means [-s, s]"),
        "fill": FILL,
    }, WARP_TARGETS, "rotation, shift, zoom and shear in one warp", offline=build_affine, online=affine_batch, warp=affine_draw,
        fast="Affine", geometric=True, check=scale_factors),
    Op("shift", "single", {"translate": Param("range", 0.1, "fraction of the size: t means [-t, t]"), "fill": FILL},
       WARP_TARGETS, "translation", offline=build_shift, online=shift_batch, warp=shift_draw, fast="Affine", geometric=True),
    Op("scale", "single", {"scale": Param("range", [0.9, 1.1], "zoom factor range [lo, hi]; the size stays"),
                           "fill": FILL},
       WARP_TARGETS, "zoom in or out about the centre, same output size", offline=build_scale, online=scale_batch, warp=scale_draw,
       fast="Affine", geometric=True, check=scale_factors),
)

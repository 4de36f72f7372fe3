"""Multi-sample ops on single samples: what SamplePairing, Mixup, CutMix, Cutout and Mosaic share.

Our own implementation (no library ships all five aware of boxes and soft labels). Each op's
kernel lives in its module of `pipeline.augment.ops` and is declared in its registry entry with
the targets it supports (the caller refuses datasets carrying anything else,
`Recipe.check_targets`); it draws its parameters from the injected generator, takes its partners as
arguments (the caller draws them from the same split) and returns a new `Item`; nothing is
modified in place. This module holds the dispatch (`apply`, `partners_needed`) and the helpers the
kernels share: conforming a partner to the first sample, moving, clipping and weighting objects,
mixing soft labels, recording what was drawn.

Papers: SamplePairing (Inoue 2018), mixup (Zhang et al. 2018), CutMix (Yun et al. 2019),
Cutout (DeVries & Taylor 2017), Mosaic (Bochkovskiy et al., YOLOv4, 2020).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment.single import Item
from pipeline.core.dataset import Obj
from pipeline.core.geometry import (
    bbox_area,
    clip_bbox_to_rect,
    clip_ring,
    hide_keypoints,
    polygon_bbox,
    ring_area,
    transform_points,
)

if TYPE_CHECKING:
    from pipeline.augment.recipe import OpConfig, Recipe


def copy_objects(objs: list[Obj] | None) -> list[Obj] | None:
    """Copies of `objs` (None stays None)."""
    return None if objs is None else [o.copy() for o in objs]


def partners_needed(op: OpConfig) -> int:
    """How many partner samples `op` mixes with the first one."""
    return op.spec.partners(op.params)


def apply(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """Apply one multi-sample op to `a` with `partners` (already single-op augmented)."""
    out = op.spec.offline(op, a, partners, rng, recipe)
    if out.soft is not None and recipe.label_smoothing > 0 and op.spec.smooths_labels:
        out.soft = K.label_smoothing(out.soft, recipe.label_smoothing)
    return out


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def conform(b: Item, width: int, height: int, channels: int) -> Item:
    """`b` resized to (width, height) and converted to `channels`, objects scaled with it."""
    img = K.as_channels(b.image, channels)
    if b.width == width and b.height == height:
        return Item(img, b.soft, copy_objects(b.objects), b.params)
    sx, sy = width / b.width, height / b.height
    return Item(K.resize(img, width, height), b.soft, scale_objects(b.objects, sx, sy, (0.0, 0.0), (width, height)),
                b.params)


def scale_objects(objs: list[Obj] | None, sx: float, sy: float, shift: tuple[float, float],
                   canvas: tuple[int, int]) -> list[Obj] | None:
    """Copies of `objs` scaled by (sx, sy) then shifted; masks resampled onto a `canvas` (w, h)."""
    if objs is None:
        return None
    out = []
    for o in objs:
        n = o.copy()
        if n.bbox is not None:
            b = n.bbox
            n.bbox = [b[0] * sx + shift[0], b[1] * sy + shift[1], b[2] * sx + shift[0], b[3] * sy + shift[1]]
        if n.polygon is not None:
            n.polygon = [transform_points(r, (sx, sy), shift) for r in n.polygon]
        if n.keypoints is not None:
            n.keypoints = [kp if (len(kp) > 2 and kp[2] == 0) else transform_points([kp], (sx, sy), shift)[0]
                           for kp in n.keypoints]
        if n.polyline is not None:
            n.polyline = transform_points(n.polyline, (sx, sy), shift)
        if n.mask is not None:
            m = K.rle_decode(n.mask)
            m = cv2.resize(m, (canvas[0], canvas[1]), interpolation=cv2.INTER_NEAREST)
            n.mask = K.rle_encode(m)
        out.append(n)
    return out


def weighted(objs: list[Obj] | None, factor: float) -> list[Obj]:
    """Copies of `objs`, each weight (1 when unset) multiplied by `factor`."""
    out = []
    for o in objs or ():
        n = o.copy()
        n.weight = round(float((o.weight if o.weight is not None else 1.0) * factor), 6)
        out.append(n)
    return out


def mix_soft(parts: list[tuple[float, np.ndarray | None]]) -> np.ndarray | None:
    """The normalised weighted sum of soft labels; None when any part has none."""
    if any(s is None for _, s in parts):
        return None
    total = sum(w * s for w, s in parts)
    return total / total.sum()


def crop_objects(objs: list[Obj], rect: tuple[float, float, float, float], recipe: Recipe) -> list[Obj]:
    """Objects clipped to `rect`: boxes and polygons kept above the visibility threshold,
    keypoints outside set to not labelled."""
    out = []
    for o in objs:
        n = o.copy()
        keep = True
        if n.polygon is not None:
            before = sum(ring_area(r) for r in n.polygon)
            rings = [clip_ring(r, rect) for r in n.polygon]
            rings = [r for r in rings if len(r) >= 3 and ring_area(r) > 0]
            after = sum(ring_area(r) for r in rings)
            keep = bool(rings) and K.keep_box(before, after, recipe.visibility, recipe.min_area)
            n.polygon = rings
            if keep and n.bbox is not None:
                n.bbox = polygon_bbox(rings)
        elif n.bbox is not None:
            clipped = clip_bbox_to_rect(n.bbox, rect)
            keep = K.keep_box(bbox_area(n.bbox), bbox_area(clipped), recipe.visibility, recipe.min_area)
            n.bbox = clipped
        if n.keypoints is not None:
            n.keypoints = hide_keypoints(n.keypoints, rect, inside=False, hidden=0)
            if n.bbox is None and n.polygon is None:
                keep = any(len(k) < 3 or k[2] for k in n.keypoints)
        if keep:
            out.append(n)
    return out


def record(name: str, **values: object) -> dict:
    """What a multi-sample op drew, JSON-able (floats rounded to 6 places)."""
    def clean(v: object) -> object:
        if isinstance(v, (float, np.floating)):
            return round(float(v), 6)
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.integer):
            return int(v)
        return v

    return {"op": name, **{k: clean(v) for k, v in values.items()}}

"""Multi-sample ops on single samples: SamplePairing, Mixup, CutMix, Cutout, Mosaic.

Our own implementation (no library ships all five aware of boxes and soft labels). Each op
draws its parameters from the injected generator, takes its partners as arguments (the caller
draws them from the same split) and returns a new `Item`; nothing is modified in place. The
targets each op supports are declared in `pipeline.augment.recipe.OPS`; the caller refuses
datasets carrying anything else (`Recipe.check_targets`).

Papers: SamplePairing (Inoue 2018), mixup (Zhang et al. 2018), CutMix (Yun et al. 2019),
Cutout (DeVries & Taylor 2017), Mosaic (Bochkovskiy et al., YOLOv4, 2020).
"""

from __future__ import annotations

import copy

import cv2
import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment.recipe import OpConfig, Recipe
from pipeline.augment.single import Item
from pipeline.core.dataset import Obj
from pipeline.core.geometry import (
    bbox_area,
    bbox_minus_rect,
    clip_bbox_to_rect,
    clip_ring,
    hide_keypoints,
    polygon_bbox,
    ring_area,
    transform_points,
)

PARTNERS = {"sample_pairing": 1, "mixup": 1, "cutmix": 1, "cutout": 0}


def _copy_objects(objs: list[Obj] | None) -> list[Obj] | None:
    return None if objs is None else [o.copy() for o in objs]


def partners_needed(op: OpConfig) -> int:
    """How many partner samples `op` mixes with the first one."""
    if op.name == "mosaic":
        return int(op.params["tiles"]) - 1
    return PARTNERS[op.name]


def apply(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """Apply one multi-sample op to `a` with `partners` (already single-op augmented)."""
    fn = _OPS[op.name]
    out = fn(op, a, partners, rng, recipe)
    if out.soft is not None and recipe.label_smoothing > 0 and op.name != "cutout":
        out.soft = K.label_smoothing(out.soft, recipe.label_smoothing)
    return out


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _conform(b: Item, width: int, height: int, channels: int) -> Item:
    """`b` resized to (width, height) and converted to `channels`, objects scaled with it."""
    img = K.as_channels(b.image, channels)
    if b.width == width and b.height == height:
        return Item(img, b.soft, _copy_objects(b.objects), b.params)
    sx, sy = width / b.width, height / b.height
    return Item(K.resize(img, width, height), b.soft, _scale_objects(b.objects, sx, sy, (0.0, 0.0), (width, height)),
                b.params)


def _scale_objects(objs: list[Obj] | None, sx: float, sy: float, shift: tuple[float, float],
                   canvas: tuple[int, int]) -> list[Obj] | None:
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


def _weighted(objs: list[Obj] | None, factor: float) -> list[Obj]:
    out = []
    for o in objs or ():
        n = o.copy()
        n.weight = round(float((o.weight if o.weight is not None else 1.0) * factor), 6)
        out.append(n)
    return out


def _mix_soft(parts: list[tuple[float, np.ndarray | None]]) -> np.ndarray | None:
    if any(s is None for _, s in parts):
        return None
    total = sum(w * s for w, s in parts)
    return total / total.sum()


def _crop_objects(objs: list[Obj], rect: tuple[float, float, float, float], recipe: Recipe) -> list[Obj]:
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


def _record(name: str, **values: object) -> dict:
    def clean(v: object) -> object:
        if isinstance(v, (float, np.floating)):
            return round(float(v), 6)
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.integer):
            return int(v)
        return v

    return {"op": name, **{k: clean(v) for k, v in values.items()}}


# --------------------------------------------------------------------------------------------
# The ops
# --------------------------------------------------------------------------------------------


def sample_pairing(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """Average of the two images; the label stays the first sample's (Inoue 2018)."""
    b = _conform(partners[0], a.width, a.height, K.channels_of(a.image))
    out = Item(K.blend(a.image, b.image, 0.5), None if a.soft is None else a.soft.copy(), _copy_objects(a.objects),
               copy.deepcopy(a.params))
    out.params.append(_record("sample_pairing", weight=0.5))
    return out


def mixup(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """``lam * a + (1 - lam) * b``, lam ~ Beta(alpha, alpha); soft label (lam, 1 - lam);
    both object sets kept, each object's weight multiplied by its image's share."""
    alpha = op.params["alpha"]
    lam = float(rng.beta(alpha, alpha))
    b = _conform(partners[0], a.width, a.height, K.channels_of(a.image))
    objects = None
    if a.objects is not None or b.objects is not None:
        objects = _weighted(a.objects, lam) + _weighted(b.objects, 1.0 - lam)
    out = Item(K.blend(a.image, b.image, lam), _mix_soft([(lam, a.soft), (1.0 - lam, b.soft)]), objects,
               copy.deepcopy(a.params))
    out.params.append(_record("mixup", **{"lambda": lam}))
    return out


def cutmix(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """A rectangle of b pasted into a; lambda corrected to the pasted area; a's boxes cut by the
    patch (kept above the visibility threshold), b's boxes clipped to the patch."""
    alpha = op.params["alpha"]
    drawn = float(rng.beta(alpha, alpha))
    cx, cy = (float(v) for v in rng.random(2))
    rect, lam = K.cutmix_rect(a.width, a.height, drawn, cx, cy)
    b = _conform(partners[0], a.width, a.height, K.channels_of(a.image))
    objects = None
    if a.objects is not None or b.objects is not None:
        objects = []
        for o in a.objects or ():
            n = o.copy()
            keep = True
            if n.bbox is not None:
                box, visible = bbox_minus_rect(n.bbox, rect)
                keep = visible >= recipe.visibility - 1e-9 and bbox_area(box) >= recipe.min_area and visible > 0
                n.bbox = box
            if n.keypoints is not None:
                n.keypoints = hide_keypoints(n.keypoints, rect, inside=True, hidden=1)
            if keep:
                objects.append(n)
        objects += _crop_objects(b.objects or [], rect, recipe)
    out = Item(K.paste(a.image, b.image, rect), _mix_soft([(lam, a.soft), (1.0 - lam, b.soft)]), objects,
               copy.deepcopy(a.params))
    out.params.append(_record("cutmix", **{"lambda": lam, "lambda_drawn": drawn, "rect": list(rect)}))
    return out


def cutout(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """Erase squares (constant or random fill); objects whose visible part falls below the
    visibility threshold are dropped; keypoints under a square become hidden (v = 1)."""
    lo, hi = op.params["size"] if isinstance(op.params["size"], list) else (op.params["size"],) * 2
    side_base = min(a.width, a.height)
    rects, fills = [], []
    for _ in range(op.params["holes"]):
        side = max(1, int(round(float(rng.uniform(lo, hi)) * side_base)))
        cx, cy = int(rng.integers(0, a.width)), int(rng.integers(0, a.height))
        x1, y1 = max(0, cx - side // 2), max(0, cy - side // 2)
        x2, y2 = min(a.width, cx - side // 2 + side), min(a.height, cy - side // 2 + side)
        rects.append((x1, y1, x2, y2))
        if op.params["fill"] == "random":
            shape = (y2 - y1, x2 - x1) + a.image.shape[2:]
            fills.append(rng.integers(0, 256, size=shape, dtype=np.uint8))
        else:
            fills.append(int(op.params["fill"]))
    covered = np.zeros((a.height, a.width), dtype=bool)
    for x1, y1, x2, y2 in rects:
        covered[y1:y2, x1:x2] = True
    objects = None
    if a.objects is not None:
        objects = []
        for o in a.objects:
            box = o.bbox if o.bbox is not None else (polygon_bbox(o.polygon) if o.polygon else None)
            if box is not None:
                x1, y1 = int(np.floor(box[0])), int(np.floor(box[1]))
                x2, y2 = max(x1 + 1, int(np.ceil(box[2]))), max(y1 + 1, int(np.ceil(box[3])))
                region = covered[max(0, y1):y2, max(0, x1):x2]
                visible = 1.0 - (float(region.mean()) if region.size else 0.0)
                if visible < recipe.visibility - 1e-9:
                    continue
            n = o.copy()
            if n.keypoints is not None:
                for rect in rects:
                    n.keypoints = hide_keypoints(n.keypoints, rect, inside=True, hidden=1)
            objects.append(n)
    out = Item(K.erase(a.image, rects, fills), None if a.soft is None else a.soft.copy(), objects,
               copy.deepcopy(a.params))
    out.params.append(_record("cutout", rects=[list(r) for r in rects]))
    return out


def mosaic(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """4 or 9 tiles on a canvas of a's size, cut around a random centre (or two random lines
    per axis); each tile is a random window of its source scaled to cover the canvas. Boxes and
    polygons are shifted and clipped to their tile, tiny ones removed; soft label by area share."""
    tiles = int(op.params["tiles"])
    w, h, channels = a.width, a.height, K.channels_of(a.image)
    if tiles == 4:
        cuts_x, cuts_y = [float(rng.uniform(0.25, 0.75))], [float(rng.uniform(0.25, 0.75))]
    else:
        cuts_x = sorted(float(v) for v in rng.uniform(0.2, 0.8, 2))
        cuts_y = sorted(float(v) for v in rng.uniform(0.2, 0.8, 2))
    cells = K.mosaic_cells(w, h, tiles, cuts_x, cuts_y)
    sources = [a, *partners]
    order = [int(i) for i in rng.permutation(len(sources))]
    canvas = np.zeros(a.image.shape, dtype=np.uint8)
    objects: list[Obj] | None = [] if any(s.objects is not None for s in sources) else None
    parts: list[tuple[float, np.ndarray | None]] = []
    windows = []
    for cell, idx in zip(cells, order, strict=True):
        src = sources[idx]
        x1, y1, x2, y2 = cell
        cw, ch = x2 - x1, y2 - y1
        scale = max(w / src.width, h / src.height)
        rw, rh = max(w, int(np.ceil(src.width * scale))), max(h, int(np.ceil(src.height * scale)))
        ox = int(rng.integers(0, rw - cw + 1))
        oy = int(rng.integers(0, rh - ch + 1))
        windows.append([idx, ox, oy])
        if cw <= 0 or ch <= 0:
            parts.append((0.0, src.soft))
            continue
        img = K.resize(K.as_channels(src.image, channels), rw, rh)
        canvas[y1:y2, x1:x2] = img[oy:oy + ch, ox:ox + cw]
        parts.append((cw * ch / float(w * h), src.soft))
        if objects is not None and src.objects:
            sx, sy = rw / src.width, rh / src.height
            moved = _scale_objects([o for o in src.objects if o.mask is None], sx, sy, (x1 - ox, y1 - oy), (w, h))
            objects += _crop_objects(moved or [], (float(x1), float(y1), float(x2), float(y2)), recipe)
    out = Item(canvas, _mix_soft(parts), objects, copy.deepcopy(a.params))
    out.params.append(_record("mosaic", tiles=tiles, cells=[list(c) for c in cells], windows=windows))
    return out


_OPS = {"sample_pairing": sample_pairing, "mixup": mixup, "cutmix": cutmix, "cutout": cutout, "mosaic": mosaic}

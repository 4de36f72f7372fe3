"""`mosaic`: tiles from 4 or 9 samples on one canvas (Bochkovskiy et al., YOLOv4, 2020).

The soft label by area share; boxes, polygons and keypoints shifted and clipped to their tile.
Masks are refused.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment import multi as M
from pipeline.augment.ops.base import Op, Param
from pipeline.augment.single import Item

if TYPE_CHECKING:
    from pipeline.augment.recipe import OpConfig, Recipe
    from pipeline.core.dataset import Obj


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
            moved = M.scale_objects([o for o in src.objects if o.mask is None], sx, sy, (x1 - ox, y1 - oy), (w, h))
            objects += M.crop_objects(moved or [], (float(x1), float(y1), float(x2), float(y2)), recipe)
    out = Item(canvas, M.mix_soft(parts), objects, copy.deepcopy(a.params))
    out.params.append(M.record("mosaic", tiles=tiles, cells=[list(c) for c in cells], windows=windows))
    return out


def batch(op: OpConfig, x: Any, y: Any, gen: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """Each sample whose coin comes up cut into aligned cells filled from permutations of the batch."""
    from pipeline.augment import batch as B

    n, _, h, w = x.shape
    return B.mosaic_apply(x, y, **B.draw_mosaic(n, h, w, op.p, int(op.params["tiles"]), gen))


def partners(params: dict[str, Any]) -> int:
    """One partner per tile but the first."""
    return int(params["tiles"]) - 1


OPS = (
    Op("mosaic", "multi", {"tiles": Param("choice", "4", "4 or 9 tiles", choices=("4", "9"))},
       frozenset({"label", "boxes", "polygons", "keypoints"}),
       "tiles from 4 or 9 samples on one canvas; label by area share", offline=mosaic, online=batch,
       partners=partners),
)

"""`cutout`: erase squares (DeVries & Taylor 2017) with a constant or random fill.

Objects whose visible part falls below the recipe's visibility are dropped; keypoints under a
square become hidden (v = 1). Masks are refused.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment import multi as M
from pipeline.augment.ops.base import Op, Param, fail
from pipeline.augment.single import Item
from pipeline.core.geometry import hide_keypoints, polygon_bbox

if TYPE_CHECKING:
    from pipeline.augment.recipe import OpConfig, Recipe


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
    out.params.append(M.record("cutout", rects=[list(r) for r in rects]))
    return out


def batch(op: OpConfig, x: Any, y: Any, gen: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """Each sample whose coin comes up with its own squares erased; targets unchanged."""
    from pipeline.augment import batch as B
    from pipeline.augment import online as O

    k = op.params
    n, c, h, w = x.shape
    size = O.as_range(k["size"], symmetric=False)
    return B.cutout_apply(x, y, **B.draw_cutout(n, h, w, op.p, k["holes"], size, k["fill"], c, gen))


def check(where: str, params: dict[str, Any]) -> None:
    """At least one square."""
    if params["holes"] < 1:
        raise fail(where, "holes", "an integer >= 1", params["holes"])


OPS = (
    Op("cutout", "multi", {
        "holes": Param("int", 1, "number of erased squares"),
        "size": Param("range", [0.2, 0.4], "side as a fraction of the shorter image side"),
        "fill": Param("fill", 0, "0-255, or 'random' for noise", random=True),
    }, frozenset({"label", "boxes", "polygons", "keypoints"}), "erase squares; boxes mostly covered are dropped",
        offline=cutout, online=batch, check=check, partners=lambda params: 0,
        smooths_labels=False),  # nothing is mixed: the label stays the sample's own
)

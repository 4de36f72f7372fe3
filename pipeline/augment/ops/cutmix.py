"""`cutmix`: a rectangle of a partner pasted in (Yun et al. 2019); the label by pasted area.

Polygons and masks are refused (a polygon minus a rectangle is not stored as one polygon).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment import multi as M
from pipeline.augment.ops.base import Op, Param, fail
from pipeline.augment.single import Item
from pipeline.core.geometry import bbox_area, bbox_minus_rect, hide_keypoints

if TYPE_CHECKING:
    from pipeline.augment.recipe import OpConfig, Recipe


def cutmix(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """A rectangle of b pasted into a; lambda corrected to the pasted area; a's boxes cut by the
    patch (kept above the visibility threshold), b's boxes clipped to the patch."""
    alpha = op.params["alpha"]
    drawn = float(rng.beta(alpha, alpha))
    cx, cy = (float(v) for v in rng.random(2))
    rect, lam = K.cutmix_rect(a.width, a.height, drawn, cx, cy)
    b = M.conform(partners[0], a.width, a.height, K.channels_of(a.image))
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
        objects += M.crop_objects(b.objects or [], rect, recipe)
    out = Item(K.paste(a.image, b.image, rect), M.mix_soft([(lam, a.soft), (1.0 - lam, b.soft)]), objects,
               copy.deepcopy(a.params))
    out.params.append(M.record("cutmix", **{"lambda": lam, "lambda_drawn": drawn, "rect": list(rect)}))
    return out


def batch(op: OpConfig, x: Any, y: Any, gen: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """Each sample with a rectangle of a permutation of the batch; lambda from the pasted area."""
    from pipeline.augment import batch as B

    n, _, h, w = x.shape
    return B.cutmix_apply(x, y, **B.draw_cutmix(n, h, w, op.p, op.params["alpha"], gen, rng))


def check(where: str, params: dict[str, Any]) -> None:
    """Beta(alpha, alpha) needs alpha > 0."""
    if params["alpha"] <= 0:
        raise fail(where, "alpha", "a number > 0", params["alpha"])


OPS = (
    Op("cutmix", "multi", {"alpha": Param("number", 1.0, "lambda ~ Beta(alpha, alpha)")},
       frozenset({"label", "boxes", "keypoints"}), "paste a rectangle of the partner; label by pasted area",
       offline=cutmix, online=batch, check=check, partners=lambda params: 1),
)

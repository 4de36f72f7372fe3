"""`mixup`: ``lam * a + (1 - lam) * b``, lam ~ Beta(alpha, alpha) (Zhang et al. 2018).

The soft label mixes with the same weights; for detection both object sets are kept, each object
weighted by its image's share.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment import multi as M
from pipeline.augment.ops.base import ALL_TARGETS, Op, Param, fail
from pipeline.augment.single import Item

if TYPE_CHECKING:
    from pipeline.augment.recipe import OpConfig, Recipe


def mixup(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """``lam * a + (1 - lam) * b``, lam ~ Beta(alpha, alpha); soft label (lam, 1 - lam);
    both object sets kept, each object's weight multiplied by its image's share."""
    alpha = op.params["alpha"]
    lam = float(rng.beta(alpha, alpha))
    b = M.conform(partners[0], a.width, a.height, K.channels_of(a.image))
    objects = None
    if a.objects is not None or b.objects is not None:
        objects = M.weighted(a.objects, lam) + M.weighted(b.objects, 1.0 - lam)
    out = Item(K.blend(a.image, b.image, lam), M.mix_soft([(lam, a.soft), (1.0 - lam, b.soft)]), objects,
               copy.deepcopy(a.params))
    out.params.append(M.record("mixup", **{"lambda": lam}))
    return out


def batch(op: OpConfig, x: Any, y: Any, gen: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """Each sample mixed with a permutation of the batch by its own lambda (1 where its coin fails)."""
    from pipeline.augment import batch as B

    return B.mixup_apply(x, y, **B.draw_mixup(x.shape[0], op.p, op.params["alpha"], gen, rng))


def check(where: str, params: dict[str, Any]) -> None:
    """Beta(alpha, alpha) needs alpha > 0."""
    if params["alpha"] <= 0:
        raise fail(where, "alpha", "a number > 0", params["alpha"])


OPS = (
    Op("mixup", "multi", {"alpha": Param("number", 0.2, "lambda ~ Beta(alpha, alpha)")}, ALL_TARGETS,
       "pixel mix; soft label (lambda, 1-lambda); detection keeps both box sets with weights",
       offline=mixup, online=batch, check=check, partners=lambda params: 1),
)

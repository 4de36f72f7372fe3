"""`sample_pairing`: the average with a partner; the label stays the first sample's (Inoue 2018).

Classification only: the partner's objects would show unlabelled.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.augment import kernels as K
from pipeline.augment import multi as M
from pipeline.augment.ops.base import Op
from pipeline.augment.single import Item

if TYPE_CHECKING:
    from pipeline.augment.recipe import OpConfig, Recipe


def sample_pairing(op: OpConfig, a: Item, partners: list[Item], rng: np.random.Generator, recipe: Recipe) -> Item:
    """Average of the two images; the label stays the first sample's (Inoue 2018)."""
    b = M.conform(partners[0], a.width, a.height, K.channels_of(a.image))
    out = Item(K.blend(a.image, b.image, 0.5), None if a.soft is None else a.soft.copy(), M.copy_objects(a.objects),
               copy.deepcopy(a.params))
    out.params.append(M.record("sample_pairing", weight=0.5))
    return out


def batch(op: OpConfig, x: Any, y: Any, gen: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """Each sample whose coin comes up averaged with a permutation of the batch; targets unchanged."""
    from pipeline.augment import batch as B

    return B.sample_pairing_apply(x, y, **B.draw_sample_pairing(x.shape[0], op.p, gen))


OPS = (
    Op("sample_pairing", "multi", {}, frozenset({"label"}), "average with a partner (Inoue 2018); label of the first",
       offline=sample_pairing, online=batch, partners=lambda params: 1),
)

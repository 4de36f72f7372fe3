"""pipeline.augment.ops.cutout: erased squares, constant or random fill; labels kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.augment.ops.cutout import cutout
from pipeline.augment.single import Item
from pipeline.core.errors import ConfigError
from tests.augment.ops.kit import batch, config, online, recipe, soft


def test_the_recorded_squares_hold_the_fill_and_nothing_else_changes() -> None:
    img = np.full((20, 24), 100, np.uint8)
    out = cutout(config("cutout", holes=2, fill=7), Item(img, np.array([1.0])), [], np.random.default_rng(0),
                 recipe("cutout"))
    covered = np.zeros(img.shape, bool)
    for x1, y1, x2, y2 in out.params[-1]["rects"]:
        covered[y1:y2, x1:x2] = True
    assert covered.any() and (out.image[covered] == 7).all() and (out.image[~covered] == 100).all()
    assert out.soft.tolist() == [1.0] and config("cutout").spec.partners({}) == 0


def test_fill_may_be_random_but_holes_at_least_one() -> None:
    assert config("cutout", fill="random").params["fill"] == "random"
    with pytest.raises(ConfigError, match="holes: expected an integer >= 1"):
        config("cutout", holes=0)


def test_online_targets_never_change_and_failed_coins_change_nothing() -> None:
    x, y = batch(), soft()
    out, target = online(config("cutout", p=1.0, fill=0), x, y)
    assert torch.equal(target, y) and bool((out == 0).any())
    same, _ = online(config("cutout", p=0.0), x, y)
    assert torch.equal(same, x)

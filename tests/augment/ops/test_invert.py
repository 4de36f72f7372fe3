"""pipeline.augment.ops.invert: 255 - x."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment.single import Item
from tests.augment.ops.kit import batch, config, image, offline, online


def test_offline_inversion() -> None:
    img = image()
    np.testing.assert_array_equal(offline("invert", Item(img)).image, 255 - img)


def test_online_inversion_twice_is_the_identity() -> None:
    x = batch()
    once = online(config("invert"), x)
    assert torch.equal(once, 255.0 - x) and torch.equal(online(config("invert"), once), x)

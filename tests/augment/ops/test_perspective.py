"""pipeline.augment.ops.perspective: a four-point warp that keeps the size."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment.single import Item
from pipeline.core.dataset import Obj
from tests.augment.ops.kit import batch, config, image, offline, online


def test_the_size_stays_and_boxes_stay_inside() -> None:
    for seed in range(5):
        out = offline("perspective", Item(image(20, 24), None, [Obj("a", bbox=[1.0, 1.0, 23.0, 19.0])]), seed=seed,
                      targets=frozenset({"boxes"}), scale=[0.1, 0.2])
        assert out.image.shape == (20, 24, 3)
        x1, y1, x2, y2 = out.objects[0].bbox
        assert 0 <= x1 < x2 <= 24 and 0 <= y1 < y2 <= 20


def test_online_without_jitter_is_the_identity_and_with_it_corners_move_inwards() -> None:
    x = batch()
    assert torch.allclose(online(config("perspective", scale=[0.0, 0.0]), x), x, atol=1e-3)
    ones = torch.full((2, 1, 16, 16), 255.0)
    out = online(config("perspective", scale=[0.2, 0.3]), ones)
    assert float(out[:, :, 0, 0].max()) < 255 and float(out[:, :, 8, 8].min()) == 255.0  # corners now border


def test_pixels_change_offline() -> None:
    img = image()
    assert not np.array_equal(offline("perspective", Item(img), scale=[0.1, 0.2]).image, img)

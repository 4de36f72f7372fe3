"""pipeline.augment.ops.rotate: rotation about the centre, offline through the Rotate drop-in."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment import albu
from pipeline.augment.single import Item, build_transform
from pipeline.core.dataset import Obj
from tests.augment.ops.kit import batch, config, image, offline, online


def test_the_transform_is_the_drop_in_with_a_symmetric_limit() -> None:
    t = build_transform(config("rotate", degrees=12, fill=7), 3)
    assert isinstance(t, albu.Rotate) and type(t).__name__ == "rotate"
    assert tuple(t.limit) == (-12.0, 12.0) and t.fill == 7.0


def test_a_zero_angle_leaves_pixels_and_boxes_alone() -> None:
    img = image()
    out = offline("rotate", Item(img, None, [Obj("a", bbox=[2.0, 3.0, 10.0, 9.0])]), targets=frozenset({"boxes"}),
                  degrees=0)
    np.testing.assert_array_equal(out.image, img)
    assert np.allclose(out.objects[0].bbox, [2.0, 3.0, 10.0, 9.0])
    assert out.params == [{"op": "rotate", "angle": 0.0}]


def test_a_half_turn_online_is_a_point_reflection() -> None:
    x = batch()
    out = online(config("rotate", degrees=[180, 180]), x)
    assert torch.allclose(out, x.flip(-1).flip(-2), atol=1e-3)


def test_a_zero_angle_online_is_the_identity() -> None:
    x = batch()
    assert torch.allclose(online(config("rotate", degrees=0), x), x, atol=1e-3)

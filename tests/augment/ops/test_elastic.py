"""pipeline.augment.ops.elastic: a smoothed displacement field, offline through the drop-in."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment import albu
from pipeline.augment.single import Item, build_transform
from pipeline.core.dataset import Obj
from tests.augment.ops.kit import batch, config, image, offline, online


def test_the_transform_is_the_drop_in_remapping_points_directly() -> None:
    t = build_transform(config("elastic", alpha=12, sigma=3), 1)
    assert isinstance(t, albu.ElasticTransform) and t.alpha == 12 and t.sigma == 3
    assert t.keypoint_remapping_method == "direct"


def test_a_strong_field_moves_pixels_and_keypoints() -> None:
    img = image(32, 32, channels=1)
    moved = []
    for seed in range(4):
        out = offline("elastic", Item(img, None, [Obj("a", keypoints=[[16.0, 16.0, 2]])]), seed=seed,
                      targets=frozenset({"keypoints"}), alpha=100, sigma=4)
        assert out.image.shape == img.shape and not np.array_equal(out.image, img)
        moved.append(out.objects[0].keypoints[0][:2] != [16.0, 16.0])
    assert any(moved)


def test_online_without_strength_is_the_identity() -> None:
    x = batch()
    assert torch.allclose(online(config("elastic", alpha=0), x), x, atol=1e-3)
    assert not torch.allclose(online(config("elastic", alpha=30, sigma=2), x), x, atol=1.0)

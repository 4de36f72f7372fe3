"""pipeline.augment.ops.resize: resize and random_scale change the size, offline only."""

from __future__ import annotations

import pytest

from pipeline.augment.online import OnlineAugmenter
from pipeline.augment.single import Item
from pipeline.core.dataset import Obj
from pipeline.core.errors import ConfigError
from tests.augment.ops.kit import config, image, offline, recipe


def test_resize_gives_the_size_asked_for_and_scales_boxes() -> None:
    out = offline("resize", Item(image(20, 24), None, [Obj("a", bbox=[4.0, 2.0, 12.0, 10.0])]),
                  targets=frozenset({"boxes"}), width=48, height=10)
    assert out.image.shape == (10, 48, 3)
    assert out.objects[0].bbox == pytest.approx([8.0, 1.0, 24.0, 5.0])


def test_random_scale_multiplies_both_sides_by_the_drawn_factor() -> None:
    out = offline("random_scale", Item(image(20, 24, channels=1)), scale=[0.5, 0.5])
    assert out.image.shape == (10, 12)


def test_a_size_below_one_pixel_is_refused() -> None:
    with pytest.raises(ConfigError, match="width/height: expected positive integers"):
        config("resize", width=0, height=8)


@pytest.mark.parametrize("name", ["resize", "random_scale"])
def test_both_change_the_size_and_are_refused_online(name: str) -> None:
    op = config(name)
    assert op.spec.resizes(op.params) and op.spec.online is None
    with pytest.raises(ConfigError, match="changes the image size"):
        OnlineAugmenter(recipe(name), ["a", "b"])

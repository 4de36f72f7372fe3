"""pipeline.augment.ops.random_crop: pad then crop; without a size an integer shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.augment.online import OnlineAugmenter
from pipeline.augment.single import Item
from pipeline.core.errors import ConfigError
from tests.augment.ops.kit import batch, config, image, offline, online, recipe


def shifted(img: np.ndarray, dx: int, dy: int, fill: int) -> np.ndarray:
    out = np.full_like(img, fill)
    h, w = img.shape[:2]
    out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = img[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    return out


def test_without_a_size_the_crop_is_a_whole_pixel_shift_within_the_padding() -> None:
    img = image(12, 16, channels=1)
    for seed in range(8):
        out = offline("random_crop", Item(img), seed=seed, padding=3, fill=9)
        assert any(np.array_equal(out.image, shifted(img, dx, dy, 9)) for dx in range(-3, 4) for dy in range(-3, 4))


def test_with_a_size_the_output_has_that_size() -> None:
    out = offline("random_crop", Item(image(12, 16)), padding=2, size=[10, 20])
    assert out.image.shape == (10, 20, 3)


def test_online_each_sample_is_shifted_by_whole_pixels() -> None:
    x = batch(6, 1)
    out = online(config("random_crop", padding=2), x)
    for i in range(6):
        assert any(torch.allclose(out[i, 0], torch.from_numpy(shifted(x[i, 0].numpy(), dx, dy, 0)), atol=1e-3)
                   for dx in range(-2, 3) for dy in range(-2, 3))


def test_only_a_crop_of_another_size_is_refused_online() -> None:
    assert not config("random_crop").spec.resizes(config("random_crop").params)
    OnlineAugmenter(recipe("random_crop"), ["a"])
    with pytest.raises(ConfigError, match="changes the image size"):
        OnlineAugmenter(recipe("random_crop", size=[8, 8]), ["a"])

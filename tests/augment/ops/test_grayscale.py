"""pipeline.augment.ops.grayscale: colour to grey in every channel; grey images left alone."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment.single import Item, build_transform
from tests.augment.ops.kit import batch, config, image, offline, online


def test_colour_becomes_grey_in_three_equal_channels() -> None:
    out = offline("grayscale", Item(image()))
    assert out.image.shape == (20, 24, 3)
    assert np.array_equal(out.image[..., 0], out.image[..., 1]) and np.array_equal(out.image[..., 1], out.image[..., 2])


def test_a_grey_image_has_nothing_to_do() -> None:
    assert build_transform(config("grayscale"), 1) is None
    img = image(channels=1)
    np.testing.assert_array_equal(offline("grayscale", Item(img)).image, img)


def test_online_colour_batches_get_their_luma_and_grey_ones_stay() -> None:
    x = batch(channels=3)
    out = online(config("grayscale"), x)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert all(torch.allclose(out[:, c], luma, atol=1e-3) for c in range(3))
    grey = batch(channels=1)
    assert torch.equal(online(config("grayscale"), grey), grey)

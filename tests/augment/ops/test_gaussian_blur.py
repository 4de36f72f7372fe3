"""pipeline.augment.ops.gaussian_blur: pixels smoothed, labels untouched."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment.single import Item
from tests.augment.ops.kit import batch, config, image, offline, online


def test_offline_blur_lowers_the_contrast_and_keeps_a_flat_image_flat() -> None:
    img = image(24, 24, channels=1)
    out = offline("gaussian_blur", Item(img), sigma=[1.0, 1.5])
    assert out.image.shape == img.shape and out.image.std() < img.std()
    flat = np.full((24, 24), 90, np.uint8)
    np.testing.assert_array_equal(offline("gaussian_blur", Item(flat), sigma=[1.0, 1.5]).image, flat)


def test_online_blur_lowers_the_contrast_of_each_sample() -> None:
    x = batch(3, 3, 16, 16)
    out = online(config("gaussian_blur", sigma=[1.0, 1.5]), x)
    assert out.shape == x.shape
    assert all(float(out[i].std()) < float(x[i].std()) for i in range(3))
    flat = torch.full((2, 1, 16, 16), 90.0)
    assert torch.allclose(online(config("gaussian_blur"), flat), flat, atol=1e-3)

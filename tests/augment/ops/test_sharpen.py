"""pipeline.augment.ops.sharpen: a blend with an unsharp-kernel image."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment.single import Item
from tests.augment.ops.kit import batch, config, image, offline, online


def test_offline_sharpening_raises_the_contrast_of_an_edge() -> None:
    img = np.zeros((16, 16), np.uint8)
    img[:, 8:] = 120
    out = offline("sharpen", Item(img), alpha=[0.5, 0.5], lightness=[1.0, 1.0])
    assert out.image.shape == img.shape and int(out.image[:, 8].min()) > 120  # the bright side of the edge
    assert int(out.image[:, 7].max()) == 0  # the dark side, clipped


def test_online_zero_blend_is_the_identity() -> None:
    x = batch()
    assert torch.allclose(online(config("sharpen", alpha=0.0), x), x, atol=1e-3)


def test_online_sharpening_raises_the_contrast_of_an_edge() -> None:
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:] = 120
    out = online(config("sharpen", alpha=[0.5, 0.5], lightness=[1.0, 1.0]), x)
    assert float(out[0, 0, :, 4].min()) > 120 and float(out[0, 0, :, 3].max()) < 0


def test_pixels_change_offline() -> None:
    img = image()
    assert not np.array_equal(offline("sharpen", Item(img)).image, img)

"""pipeline.augment.ops.noise: additive Gaussian noise, offline through the GaussNoise drop-in."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment import albu
from pipeline.augment.single import Item, build_transform
from tests.augment.ops.kit import batch, config, image, offline, online


def test_the_transform_is_the_drop_in_recording_its_std() -> None:
    assert isinstance(build_transform(config("noise"), 3), albu.GaussNoise)
    out = offline("noise", Item(image()), std=[0.05, 0.05])
    assert out.params == [{"op": "noise", "std": 0.05}]


def test_offline_noise_has_about_the_drawn_std() -> None:
    img = np.full((64, 64), 128, np.uint8)
    out = offline("noise", Item(img), std=[0.1, 0.1])
    assert abs(float(out.image.astype(float).std()) - 0.1 * 255) < 3


def test_online_noise_of_zero_std_is_the_identity_and_otherwise_about_that_std() -> None:
    x = batch()
    assert torch.equal(online(config("noise", std=0.0), x), x)
    flat = torch.full((2, 1, 64, 64), 128.0)
    out = online(config("noise", std=[0.1, 0.1]), flat)
    assert abs(float((out - flat).std()) - 0.1 * 255) < 1.5

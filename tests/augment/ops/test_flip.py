"""pipeline.augment.ops.flip: hflip and vflip mirror the pixels and the labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.augment.single import Item
from pipeline.core.dataset import Obj
from tests.augment.ops.kit import batch, config, image, offline, online


def test_hflip_mirrors_pixels_and_boxes() -> None:
    img = image(20, 24)
    out = offline("hflip", Item(img, None, [Obj("a", bbox=[2.0, 3.0, 10.0, 9.0])]), targets=frozenset({"boxes"}))
    np.testing.assert_array_equal(out.image, img[:, ::-1])
    assert out.objects[0].bbox == pytest.approx([14.0, 3.0, 22.0, 9.0], abs=1e-5)  # x -> W - x (float32 inside)


def test_vflip_mirrors_pixels_and_boxes() -> None:
    img = image(20, 24, channels=1)
    out = offline("vflip", Item(img, None, [Obj("a", bbox=[2.0, 3.0, 10.0, 9.0])]), targets=frozenset({"boxes"}))
    np.testing.assert_array_equal(out.image, img[::-1])
    assert out.objects[0].bbox == pytest.approx([2.0, 11.0, 10.0, 17.0], abs=1e-5)  # y -> H - y


def test_batched_flips_mirror_every_sample_and_twice_is_the_identity() -> None:
    x = batch()
    for name, dim in (("hflip", -1), ("vflip", -2)):
        once = online(config(name), x)
        assert torch.equal(once, x.flip(dim))
        assert torch.equal(online(config(name), once), x)

"""pipeline.augment.ops.sample_pairing: the average with one partner, the first sample's label."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.augment.ops.sample_pairing import sample_pairing
from pipeline.augment.single import Item
from tests.augment.ops.kit import batch, config, image, online, recipe, soft


def test_the_image_is_the_rounded_average_and_the_label_the_first() -> None:
    a, b = Item(image(seed=1), np.array([1.0, 0.0])), Item(image(seed=2), np.array([0.0, 1.0]))
    out = sample_pairing(config("sample_pairing"), a, [b], np.random.default_rng(0), recipe("sample_pairing"))
    expected = np.rint((a.image.astype(np.float32) + b.image.astype(np.float32)) / 2).astype(np.uint8)
    np.testing.assert_array_equal(out.image, expected)
    assert out.soft.tolist() == [1.0, 0.0] and out.params == [{"op": "sample_pairing", "weight": 0.5}]
    assert config("sample_pairing").spec.partners({}) == 1


def test_online_averages_with_a_permutation_and_keeps_the_targets() -> None:
    x, y = batch(), soft()
    out, target = online(config("sample_pairing", p=1.0), x, y)
    assert torch.equal(target, y)
    perm = [next(j for j in range(4) if torch.allclose(out[i], (x[i] + x[j]) / 2)) for i in range(4)]
    assert sorted(perm) == [0, 1, 2, 3]
    same, _ = online(config("sample_pairing", p=0.0), x, y)
    assert torch.equal(same, x)

"""pipeline.augment.ops.mixup: lam * a + (1 - lam) * b, the labels and object weights alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.augment.ops.mixup import mixup
from pipeline.augment.single import Item
from pipeline.core.dataset import Obj
from pipeline.core.errors import ConfigError
from tests.augment.ops.kit import batch, config, image, online, recipe, soft


def test_labels_and_object_weights_follow_the_drawn_lambda() -> None:
    a = Item(image(seed=1), np.array([1.0, 0.0]), [Obj("0", bbox=[1.0, 1.0, 5.0, 5.0])])
    b = Item(image(seed=2), np.array([0.0, 1.0]), [Obj("1", bbox=[2.0, 2.0, 6.0, 6.0], weight=0.5)])
    out = mixup(config("mixup", alpha=0.4), a, [b], np.random.default_rng(3), recipe("mixup"))
    lam = out.params[-1]["lambda"]
    assert 0 <= lam <= 1 and out.soft == pytest.approx([lam, 1 - lam], abs=1e-6)
    assert [o.weight for o in out.objects] == pytest.approx([lam, 0.5 * (1 - lam)], abs=1e-6)
    expected = np.clip(np.rint(lam * a.image.astype(np.float32) + (1 - lam) * b.image.astype(np.float32)), 0, 255)
    assert np.abs(out.image.astype(int) - expected.astype(int)).max() <= 1  # lambda recorded rounded


def test_alpha_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="alpha: expected a number > 0"):
        config("mixup", alpha=0)


def test_online_targets_mix_like_the_pixels_and_failed_coins_change_nothing() -> None:
    x, y = batch(), soft()
    out, target = online(config("mixup", p=1.0, alpha=0.5), x, y)
    assert torch.allclose(target.sum(dim=1), torch.ones(4))
    same, target0 = online(config("mixup", p=0.0), x, y)
    assert torch.equal(same, x) and torch.equal(target0, y)

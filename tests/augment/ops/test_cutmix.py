"""pipeline.augment.ops.cutmix: a pasted rectangle; lambda is the area actually kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.augment.ops.cutmix import cutmix
from pipeline.augment.single import Item
from pipeline.core.errors import ConfigError
from tests.augment.ops.kit import batch, config, online, recipe, soft


def test_the_rectangle_holds_the_partner_and_lambda_its_complement() -> None:
    a = Item(np.zeros((20, 30), np.uint8), np.array([1.0, 0.0]))
    b = Item(np.full((20, 30), 200, np.uint8), np.array([0.0, 1.0]))
    out = cutmix(config("cutmix"), a, [b], np.random.default_rng(4), recipe("cutmix"))
    x1, y1, x2, y2 = out.params[-1]["rect"]
    assert (out.image[y1:y2, x1:x2] == 200).all() and int(out.image.sum()) == 200 * (x2 - x1) * (y2 - y1)
    lam = 1 - (x2 - x1) * (y2 - y1) / 600
    assert out.params[-1]["lambda"] == pytest.approx(lam, abs=1e-6) and out.soft == pytest.approx([lam, 1 - lam])


def test_alpha_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="alpha: expected a number > 0"):
        config("cutmix", alpha=0)


def test_online_targets_are_the_area_shares() -> None:
    x, y = torch.zeros(4, 1, 12, 16), soft()
    x[:, :, :, :] = torch.arange(4).view(4, 1, 1, 1).float()  # each sample its own value
    out, target = online(config("cutmix", p=1.0), x, y)
    assert torch.allclose(target.sum(dim=1), torch.ones(4))
    same, target0 = online(config("cutmix", p=0.0), batch(), y)
    assert torch.equal(target0, y) and torch.equal(same, batch())

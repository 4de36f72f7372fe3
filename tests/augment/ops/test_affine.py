"""pipeline.augment.ops.affine: affine, shift and scale share the Affine drop-in and the matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.augment import albu
from pipeline.augment.single import Item, build_transform
from pipeline.core.errors import ConfigError
from tests.augment.ops.kit import batch, config, image, offline, online


@pytest.mark.parametrize("name", ["affine", "shift", "scale"])
def test_every_member_is_built_on_the_affine_drop_in(name: str) -> None:
    t = build_transform(config(name), 3)
    assert isinstance(t, albu.Affine) and type(t).__name__ == name


def test_the_default_affine_draws_the_identity() -> None:
    img = image()
    out = offline("affine", Item(img), seed=3)
    np.testing.assert_array_equal(out.image, img)
    assert out.params[0]["op"] == "affine" and out.params[0]["rotate"] == 0.0


def test_a_fixed_shift_moves_the_content_by_that_fraction() -> None:
    x = torch.zeros(1, 1, 8, 16)
    x[0, 0, 2:4, 2:4] = 255
    out = online(config("shift", translate=[0.25, 0.25]), x)  # 4 px right, 2 px down
    assert torch.allclose(out[0, 0, 4:6, 6:8], torch.full((2, 2), 255.0), atol=1e-3)
    assert float(out.sum()) == pytest.approx(float(x.sum()), rel=1e-4)


def test_zoom_factors_of_one_online_are_the_identity() -> None:
    x = batch()
    assert torch.allclose(online(config("scale", scale=[1.0, 1.0]), x), x, atol=1e-3)
    assert torch.allclose(online(config("affine"), x), x, atol=1e-3)


@pytest.mark.parametrize("name", ["affine", "scale"])
def test_a_zoom_factor_must_be_positive(name: str) -> None:
    with pytest.raises(ConfigError, match="scale: expected factors > 0"):
        config(name, scale=[0.0, 1.0])

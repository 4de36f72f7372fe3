"""pipeline.augment.ops.color_jitter: brightness, contrast, saturation and hue factors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.augment import albu
from pipeline.augment.single import Item, build_transform
from pipeline.core.errors import ConfigError
from tests.augment.ops.kit import batch, config, image, offline, online


def test_factor_ranges_are_one_plus_minus_the_parameter_never_below_zero() -> None:
    t = build_transform(config("color_jitter", brightness=1.5, contrast=0.2, saturation=0.0, hue=0.1), 3)
    assert isinstance(t, albu.ColorJitter)
    assert tuple(t.brightness) == (0.0, 2.5) and tuple(t.contrast) == pytest.approx((0.8, 1.2))
    assert tuple(t.saturation) == (1.0, 1.0) and tuple(t.hue) == (-0.1, 0.1)


def test_a_hue_shift_over_half_a_turn_is_refused() -> None:
    with pytest.raises(ConfigError, match="hue: expected a number in \\[0, 0.5\\]"):
        config("color_jitter", hue=0.6)


def test_zero_factors_leave_the_pixels_alone() -> None:
    img = image()
    np.testing.assert_array_equal(offline("color_jitter", Item(img), brightness=0, contrast=0).image, img)
    x = batch()
    assert torch.allclose(online(config("color_jitter", brightness=0, contrast=0), x), x, atol=1e-3)


def test_brightness_scales_every_sample_by_its_own_factor() -> None:
    x = torch.full((4, 1, 4, 4), 100.0)
    out = online(config("color_jitter", brightness=0.5, contrast=0), x)
    factors = out[:, 0, 0, 0] / 100.0
    assert all(0.5 <= float(f) <= 1.5 for f in factors) and len(set(factors.tolist())) == 4
    assert torch.allclose(out, factors.view(-1, 1, 1, 1) * x)

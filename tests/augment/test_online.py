"""The online hook used by `pipeline train --augment`, and the tensor helpers the batched kernels share."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.augment import online as O
from pipeline.augment.online import OnlineAugmenter, warp
from pipeline.augment.recipe import parse_recipe
from pipeline.core.errors import ConfigError

CLASSES = [str(i) for i in range(10)]
EVERY = ["hflip", "vflip", "rotate", "affine", "shift", "scale", "random_crop", "perspective", "elastic",
         "gaussian_blur", "color_jitter", "grayscale", "noise", "sharpen", "invert",
         "sample_pairing", "mixup", "cutmix", "cutout", "mosaic"]


def batch(n: int = 16, c: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.nn.functional.one_hot(torch.randint(0, 10, (n,), generator=g), 10).float()
    return x, y


@pytest.mark.parametrize("channels", [1, 3])
def test_every_op_online_keeps_the_contract(channels):
    recipe = parse_recipe({"ops": [{"op": n, "p": 0.6} for n in EVERY], "label_smoothing": 0.1}, "t")
    aug = OnlineAugmenter(recipe, classes=CLASSES, seed=3)
    x, y = batch(12, channels)
    x0, y0 = x.clone(), y.clone()
    out, target = aug(x, y, step=5)
    assert torch.equal(x, x0) and torch.equal(y, y0)  # inputs untouched
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 255
    assert target.dtype == torch.float32 and target.shape == y.shape
    assert torch.allclose(target.sum(dim=1), torch.ones(12), atol=1e-5)
    again, target2 = aug(x, y, step=5)
    assert torch.equal(out, again) and torch.equal(target, target2)  # deterministic from (seed, step)
    other, _ = aug(x, y, step=6)
    assert not torch.equal(out, other)


def test_sizes_changing_ops_are_refused_online():
    with pytest.raises(ConfigError, match="changes the image size"):
        OnlineAugmenter(parse_recipe({"ops": [{"op": "resize", "width": 28, "height": 28}]}, "t"), CLASSES)


def test_warp_with_identity_and_flip_matrices():
    x, _ = batch(4)
    x = x.float()
    eye = torch.eye(3, dtype=torch.float64).repeat(4, 1, 1)
    assert torch.allclose(warp(x, eye), x, atol=1e-3)
    flip = eye.clone()
    flip[:, 0, 0], flip[:, 0, 2] = -1.0, 31.0
    assert torch.allclose(warp(x, flip), x.flip(-1), atol=1e-3)


def test_ranges_read_symmetrically_or_as_given() -> None:
    assert O.as_range(3, symmetric=True) == (-3.0, 3.0) and O.as_range(3, symmetric=False) == (3.0, 3.0)
    assert O.as_range([1, 2], symmetric=True) == (1.0, 2.0)


def test_uniform_draws_stay_in_range_and_follow_the_generator() -> None:
    a = O.uniform(torch.Generator().manual_seed(4), 100, -2.0, 3.0)
    b = O.uniform(torch.Generator().manual_seed(4), 100, -2.0, 3.0)
    assert a.dtype == torch.float64 and torch.equal(a, b)
    assert float(a.min()) >= -2.0 and float(a.max()) <= 3.0


def test_affine_matrices_without_ranges_are_the_identity_and_draw_alike() -> None:
    """Every op of the affine family draws five values per sample in one order, whichever it varies:
    the generator is left in the same state."""
    eye = torch.eye(3, dtype=torch.float64).repeat(5, 1, 1)
    gen = torch.Generator().manual_seed(1)
    assert torch.allclose(O.affine_matrices(5, 10, 12, gen), eye)
    other = torch.Generator().manual_seed(1)
    O.affine_matrices(5, 10, 12, other, degrees=(-30.0, 30.0), shear=(-5.0, 5.0))
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=other))


def test_a_pure_rotation_keeps_the_centre_in_place() -> None:
    m = O.affine_matrices(3, 9, 13, torch.Generator().manual_seed(2), degrees=(-90.0, 90.0))
    centre = torch.tensor([6.0, 4.0, 1.0], dtype=torch.float64)  # ((w - 1) / 2, (h - 1) / 2)
    assert torch.allclose(m @ centre, centre.expand(3, 3))


def test_luma_and_a_zero_hue_turn() -> None:
    x = torch.rand(2, 3, 4, 4) * 255
    assert torch.allclose(O.grey(x), (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]), atol=1e-4)
    assert torch.equal(O.grey(x[:, :1]), x[:, :1])
    assert torch.allclose(O.hue_rotate(x, torch.zeros(2)), x, atol=1e-3)


def test_an_op_without_an_online_kernel_is_refused(monkeypatch) -> None:
    from pipeline.augment.ops import OPS

    recipe = parse_recipe({"ops": [{"op": "invert"}]}, "t")
    monkeypatch.setitem(OPS, "invert", dataclasses.replace(OPS["invert"], online=None))
    with pytest.raises(ConfigError, match="'invert' is not available online"):
        OnlineAugmenter(recipe, CLASSES)

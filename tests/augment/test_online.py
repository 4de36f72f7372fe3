"""Batched ops and the online hook used by `pipeline train --augment`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.augment import batch as B
from pipeline.augment.online import OnlineAugmenter, warp
from pipeline.augment.recipe import parse_recipe
from pipeline.core.errors import ConfigError

SETTINGS = settings(max_examples=15, deadline=None)
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


@SETTINGS
@given(seed=st.integers(0, 2**31), alpha=st.floats(0.1, 4.0))
def test_batched_cutmix_lambda_is_the_pasted_area(seed, alpha):
    n = 8
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 32, 32).contiguous()
    y = torch.eye(n)
    params = B.draw_cutmix(n, 32, 32, 1.0, alpha, torch.Generator().manual_seed(seed), np.random.default_rng(seed))
    out, target = B.cutmix_apply(x, y, **params)
    perm = params["perm"]
    for i in range(n):
        pasted = float((out[i] == perm[i]).float().mean()) if perm[i] != i else 0.0
        if perm[i] != i:
            assert target[i, i] == pytest.approx(1 - pasted, abs=1e-6)
            assert target[i, perm[i]] == pytest.approx(pasted, abs=1e-6)
    assert torch.allclose(target.sum(dim=1), torch.ones(n))


@SETTINGS
@given(seed=st.integers(0, 2**31), tiles=st.sampled_from([4, 9]))
def test_batched_mixup_mosaic_soft_labels_sum_to_one_and_inputs_untouched(seed, tiles):
    x, y = batch(10, 1, seed % 1000)
    x = x.float()
    x0, y0 = x.clone(), y.clone()
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    for out, target in (B.mixup_apply(x, y, **B.draw_mixup(10, 0.7, 0.4, gen, rng)),
                        B.mosaic_apply(x, y, **B.draw_mosaic(10, 32, 32, 0.7, tiles, gen)),
                        B.cutout_apply(x, y, **B.draw_cutout(10, 32, 32, 0.7, 2, (0.2, 0.4), "random", 1, gen)),
                        B.sample_pairing_apply(x, y, **B.draw_sample_pairing(10, 0.7, gen))):
        assert torch.allclose(target.sum(dim=1), torch.ones(10), atol=1e-6)
        assert out.shape == x.shape
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_warp_with_identity_and_flip_matrices():
    x, _ = batch(4)
    x = x.float()
    eye = torch.eye(3, dtype=torch.float64).repeat(4, 1, 1)
    assert torch.allclose(warp(x, eye), x, atol=1e-3)
    flip = eye.clone()
    flip[:, 0, 0], flip[:, 0, 2] = -1.0, 31.0
    assert torch.allclose(warp(x, flip), x.flip(-1), atol=1e-3)

"""The cheaper GaussNoise/ColorJitter drop-ins against albumentations' own transforms: same draws,
same pixels, on grey, grey (H, W, 1), RGB and many-channel images, alone and inside `A.Compose`."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402

from pipeline.augment import fastpixel  # noqa: E402

_rng = np.random.default_rng(0)
IMAGES = {
    "grey": _rng.integers(0, 256, (28, 28), dtype=np.uint8),
    "grey1": _rng.integers(0, 256, (31, 17, 1), dtype=np.uint8),
    "rgb": _rng.integers(0, 256, (60, 80, 3), dtype=np.uint8),
    "rgb_dark": _rng.integers(0, 12, (45, 33, 3), dtype=np.uint8),  # noise pushes many pixels below 0
    "rgb_bright": _rng.integers(243, 256, (45, 33, 3), dtype=np.uint8),  # and above 255
    "six": _rng.integers(0, 256, (20, 24, 6), dtype=np.uint8),
}


def _same(stock, ours, img: np.ndarray, seeds: range) -> None:
    for seed in seeds:
        a = A.Compose([stock], seed=seed, save_applied_params=True)(image=img)
        b = A.Compose([ours], seed=seed, save_applied_params=True)(image=img)
        assert a["image"].shape == b["image"].shape == img.shape
        np.testing.assert_array_equal(a["image"], b["image"])
        assert [n for n, _ in a["applied_transforms"]] == [n for n, _ in b["applied_transforms"]]


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("std", [(0.01, 0.05), (0.2, 0.6)])
def test_noise_equals_albumentations(name: str, std: tuple[float, float]) -> None:
    _same(A.GaussNoise(std_range=std, p=1.0), fastpixel.GaussNoise(std_range=std, p=1.0), IMAGES[name], range(12))


def test_noise_with_mean_and_fallbacks_equal_albumentations() -> None:
    img = IMAGES["rgb"]
    _same(A.GaussNoise(std_range=(0.05, 0.1), mean_range=(-0.2, 0.3), p=1.0),
          fastpixel.GaussNoise(std_range=(0.05, 0.1), mean_range=(-0.2, 0.3), p=1.0), img, range(8))
    for kwargs in ({"per_channel": False}, {"noise_scale_factor": 0.5}):  # the stock code paths
        _same(A.GaussNoise(std_range=(0.05, 0.1), p=1.0, **kwargs),
              fastpixel.GaussNoise(std_range=(0.05, 0.1), p=1.0, **kwargs), img, range(4))
    as_float = img.astype(np.float32) / 255
    _same(A.GaussNoise(std_range=(0.05, 0.1), p=1.0), fastpixel.GaussNoise(std_range=(0.05, 0.1), p=1.0),
          as_float, range(4))


def test_noise_records_its_std_and_leaves_the_input_alone() -> None:
    img = IMAGES["rgb"].copy()
    out = A.Compose([fastpixel.GaussNoise(std_range=(0.02, 0.04), p=1.0)], seed=1, save_applied_params=True)(image=img)
    params = out["applied_transforms"][0][1]
    assert 0.02 <= params["std"] <= 0.04
    np.testing.assert_array_equal(img, IMAGES["rgb"])
    spread = (out["image"].astype(int) - img).std()
    assert 0.5 * params["std"] * 255 < spread < 1.5 * params["std"] * 255


@pytest.mark.parametrize("name", ["grey", "grey1", "rgb", "rgb_dark", "rgb_bright"])
def test_color_jitter_equals_albumentations(name: str) -> None:
    kwargs = dict(brightness=(0.6, 1.4), contrast=(0.6, 1.4), saturation=(0.5, 1.5), hue=(-0.05, 0.05), p=1.0)
    _same(A.ColorJitter(**kwargs), fastpixel.ColorJitter(**kwargs), IMAGES[name], range(16))


def test_color_jitter_edge_factors_equal_albumentations() -> None:
    for contrast in [(0.0, 0.0), (1.0, 1.0), (0.0, 2.0)]:
        kwargs = dict(brightness=(0.0, 2.0), contrast=contrast, saturation=(0.0, 2.0), hue=(-0.5, 0.5), p=1.0)
        for name in ("grey", "rgb"):
            _same(A.ColorJitter(**kwargs), fastpixel.ColorJitter(**kwargs), IMAGES[name], range(10))
    with pytest.raises(TypeError):  # 6 channels: refused as albumentations refuses them
        A.Compose([fastpixel.ColorJitter(p=1.0)])(image=IMAGES["six"])

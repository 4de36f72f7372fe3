"""The cheaper Affine/Rotate drop-ins against albumentations' own transforms: same draws, same
matrices (to 1e-12), same pixels, same boxes."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
from albumentations.augmentations.geometric import functional as fgeometric  # noqa: E402

from pipeline.augment import fastgeom  # noqa: E402

IMAGES = {
    "grey": np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8),
    "grey1": np.random.default_rng(1).integers(0, 256, (31, 17, 1), dtype=np.uint8),
    "rgb": np.random.default_rng(2).integers(0, 256, (60, 80, 3), dtype=np.uint8),
}

CONFIGS = {
    "affine": dict(rotate=(-10, 10), translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)}, scale=(0.8, 1.2),
                   shear=(-5, 5), border_mode=cv2.BORDER_CONSTANT, fill=0),
    "shift_px": dict(translate_px={"x": (-2, 2), "y": (-2, 2)}, border_mode=cv2.BORDER_CONSTANT, fill=0,
                     interpolation=cv2.INTER_NEAREST),
    "scale_fill": dict(scale=(0.7, 1.3), border_mode=cv2.BORDER_CONSTANT, fill=114.0),
    "reflect": dict(rotate=(-30, 30), border_mode=cv2.BORDER_REFLECT_101),
}


def seeded(t, seed: int):
    t.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return t


def draw_and_apply(t, img: np.ndarray) -> tuple[dict, np.ndarray]:
    data = {"image": img}
    params = t.update_transform_params(t.get_params(), data)
    params.update(t.get_params_dependent_on_data(params=params, data=data))
    return params, t.apply(img, **params)


def test_matrix_equals_albumentations() -> None:
    r = random.Random(7)
    for _ in range(2000):
        translate = {"x": r.randint(-50, 50), "y": r.uniform(-50, 50)}
        shear = {"x": r.uniform(-30, 30), "y": r.uniform(-30, 30)}
        scale = {"x": r.uniform(0.2, 3), "y": r.uniform(0.2, 3)}
        rotate, shift = r.uniform(-720, 720), (r.uniform(0, 500), r.uniform(0, 500))
        ours = fastgeom.affine_matrix(translate, shear, scale, rotate, shift)
        theirs = fgeometric.create_affine_transformation_matrix(translate, shear, scale, rotate, shift)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("matrix", [np.eye(3), np.eye(3) + 1e-9, np.eye(3) * (1 + 2e-5), np.eye(3) + np.diag([0, 0, 0]),
                                    np.array([[1, 0, 1e-7], [0, 1, 0], [0, 0, 1]]),
                                    np.array([[1, 0, 3.0], [0, 1, 0], [0, 0, 1]])])
def test_identity_test_agrees_with_allclose(matrix: np.ndarray) -> None:
    assert fastgeom.is_identity(matrix) == fgeometric.is_identity_matrix(matrix)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("image", sorted(IMAGES))
def test_affine_same_draws_and_pixels(config: str, image: str) -> None:
    img = IMAGES[image]
    for seed in range(40):
        stock = seeded(A.Affine(p=1.0, **CONFIGS[config]), seed)
        fast = seeded(fastgeom.Affine(p=1.0, **CONFIGS[config]), seed)
        p1, out1 = draw_and_apply(stock, img)
        p2, out2 = draw_and_apply(fast, img)
        assert p1["rotate"] == p2["rotate"] and p1["scale"] == p2["scale"]
        np.testing.assert_allclose(p2["matrix"], p1["matrix"], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(p2["bbox_matrix"], p1["bbox_matrix"], rtol=1e-12, atol=1e-9)
        assert out2.shape == out1.shape and out2.dtype == out1.dtype
        np.testing.assert_array_equal(out2, out1)


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_rotate_same_draws_and_pixels(image: str) -> None:
    img = IMAGES[image]
    for seed in range(40):
        kwargs = dict(limit=(-25, 25), border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0)
        p1, out1 = draw_and_apply(seeded(A.Rotate(**kwargs), seed), img)
        p2, out2 = draw_and_apply(seeded(fastgeom.Rotate(**kwargs), seed), img)
        np.testing.assert_allclose(p2["matrix"], p1["matrix"], rtol=1e-12, atol=1e-9)
        assert -25 <= p2["angle"] <= 25
        np.testing.assert_array_equal(out2, out1)


def test_boxes_follow_the_same_matrices() -> None:
    """Through `A.Compose` with boxes: the boxes albumentations computes from the fast transform's
    box matrix equal the stock ones."""
    img = IMAGES["rgb"]
    boxes = np.array([[5, 5, 30, 40], [40, 10, 79, 59]], dtype=float)
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["ids"], min_visibility=0.0, clip=True)
    for seed in range(30):
        outs = []
        for cls in (A.Affine, fastgeom.Affine):
            compose = A.Compose([cls(p=1.0, **CONFIGS["affine"])], bbox_params=bbox_params, seed=seed)
            outs.append(compose(image=img, bboxes=boxes, ids=[0, 1]))
        np.testing.assert_array_equal(outs[0]["image"], outs[1]["image"])
        np.testing.assert_allclose(np.asarray(outs[1]["bboxes"]), np.asarray(outs[0]["bboxes"]), atol=1e-6)
        assert list(outs[0]["ids"]) == list(outs[1]["ids"])


def test_outside_the_fast_path_the_stock_code_runs() -> None:
    """fit_output, crop_border and more than 4 channels take albumentations' own methods."""
    img5 = np.random.default_rng(3).integers(0, 256, (20, 24, 5), dtype=np.uint8)
    for seed in range(10):
        for kwargs in (dict(rotate=(-20, 20), fit_output=True), dict(rotate=(-20, 20))):
            p1, out1 = draw_and_apply(seeded(A.Affine(p=1.0, **kwargs), seed), img5)
            p2, out2 = draw_and_apply(seeded(fastgeom.Affine(p=1.0, **kwargs), seed), img5)
            np.testing.assert_array_equal(out2, out1)
        kwargs = dict(limit=(-20, 20), crop_border=True, p=1.0)
        p1, out1 = draw_and_apply(seeded(A.Rotate(**kwargs), seed), IMAGES["rgb"])
        p2, out2 = draw_and_apply(seeded(fastgeom.Rotate(**kwargs), seed), IMAGES["rgb"])
        np.testing.assert_array_equal(out2, out1)


def test_identity_draw_returns_the_input() -> None:
    t = seeded(fastgeom.Affine(translate_px={"x": (0, 0), "y": (0, 0)}, p=1.0), 0)
    params, out = draw_and_apply(t, IMAGES["grey"])
    assert out is IMAGES["grey"]


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_elastic_same_pixels_masks_and_points(image: str) -> None:
    img = IMAGES[image]
    h, w = img.shape[:2]
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[h // 4: h // 2, w // 4: w // 2] = 1
    points = np.array([[3.0, 4.0], [w / 2, h / 2], [w - 2.0, h - 3.0]])
    for seed in range(20):
        outs = []
        for cls in (A.ElasticTransform, fastgeom.ElasticTransform):
            t = cls(alpha=8, sigma=3, border_mode=cv2.BORDER_CONSTANT, fill=0, keypoint_remapping_method="direct", p=1.0)
            compose = A.Compose([t], keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), seed=seed)
            outs.append(compose(image=img, mask=mask, keypoints=points))
        np.testing.assert_array_equal(outs[1]["image"], outs[0]["image"])
        np.testing.assert_array_equal(outs[1]["mask"], outs[0]["mask"])
        np.testing.assert_allclose(np.asarray(outs[1]["keypoints"]), np.asarray(outs[0]["keypoints"]))

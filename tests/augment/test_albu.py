"""pipeline.augment.albu: albumentations loads without torch, and everything that leans on its
internals is held to albumentations' own code.

- The geometry drop-ins (Affine, Rotate, ElasticTransform): same draws, same matrices (to 1e-12),
  same pixels, same boxes.
- The pixel drop-ins (GaussNoise, ColorJitter): same draws, same pixels, on grey, grey (H, W, 1),
  RGB and many-channel images, alone and inside `A.Compose`.
- Compose (re-filtering only after applied transforms, the quick box check) and the direct driver.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
from albumentations.augmentations.geometric import functional as fgeometric  # noqa: E402

from pipeline.augment import albu  # noqa: E402
from pipeline.augment.recipe import parse_recipe  # noqa: E402


def test_load_skips_torch_and_leaves_albumentations_pytorch_importable() -> None:
    code = textwrap.dedent("""
        import sys
        from pipeline.augment.albu import load
        A = load()
        assert "torch" not in sys.modules, "torch was imported"
        assert hasattr(A, "Affine") and hasattr(A, "Compose")
        assert "albumentations.pytorch" not in sys.modules
        from albumentations.pytorch import ToTensorV2  # imports torch now, as usual
        assert "torch" in sys.modules and ToTensorV2 is not None
        assert load() is A
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_with_torch_loaded_nothing_is_blocked() -> None:
    code = textwrap.dedent("""
        import sys
        import torch  # noqa: F401
        from pipeline.augment.albu import load
        A = load()
        assert "albumentations.pytorch" in sys.modules and hasattr(A, "ToTensorV2")
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


# --- geometry drop-ins ---

GEO_IMAGES = {
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
        ours = albu.affine_matrix(translate, shear, scale, rotate, shift)
        theirs = fgeometric.create_affine_transformation_matrix(translate, shear, scale, rotate, shift)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("matrix", [np.eye(3), np.eye(3) + 1e-9, np.eye(3) * (1 + 2e-5), np.eye(3) + np.diag([0, 0, 0]),
                                    np.array([[1, 0, 1e-7], [0, 1, 0], [0, 0, 1]]),
                                    np.array([[1, 0, 3.0], [0, 1, 0], [0, 0, 1]])])
def test_identity_test_agrees_with_allclose(matrix: np.ndarray) -> None:
    assert albu.is_identity(matrix) == fgeometric.is_identity_matrix(matrix)


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("image", sorted(GEO_IMAGES))
def test_affine_same_draws_and_pixels(config: str, image: str) -> None:
    img = GEO_IMAGES[image]
    for seed in range(40):
        stock = seeded(A.Affine(p=1.0, **CONFIGS[config]), seed)
        fast = seeded(albu.Affine(p=1.0, **CONFIGS[config]), seed)
        p1, out1 = draw_and_apply(stock, img)
        p2, out2 = draw_and_apply(fast, img)
        assert p1["rotate"] == p2["rotate"] and p1["scale"] == p2["scale"]
        np.testing.assert_allclose(p2["matrix"], p1["matrix"], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(p2["bbox_matrix"], p1["bbox_matrix"], rtol=1e-12, atol=1e-9)
        assert out2.shape == out1.shape and out2.dtype == out1.dtype
        np.testing.assert_array_equal(out2, out1)


@pytest.mark.parametrize("image", sorted(GEO_IMAGES))
def test_rotate_same_draws_and_pixels(image: str) -> None:
    img = GEO_IMAGES[image]
    for seed in range(40):
        kwargs = dict(limit=(-25, 25), border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0)
        p1, out1 = draw_and_apply(seeded(A.Rotate(**kwargs), seed), img)
        p2, out2 = draw_and_apply(seeded(albu.Rotate(**kwargs), seed), img)
        np.testing.assert_allclose(p2["matrix"], p1["matrix"], rtol=1e-12, atol=1e-9)
        assert -25 <= p2["angle"] <= 25
        np.testing.assert_array_equal(out2, out1)


def test_boxes_follow_the_same_matrices() -> None:
    """Through `A.Compose` with boxes: the boxes albumentations computes from the fast transform's
    box matrix equal the stock ones."""
    img = GEO_IMAGES["rgb"]
    boxes = np.array([[5, 5, 30, 40], [40, 10, 79, 59]], dtype=float)
    bbox_params = A.BboxParams(format="pascal_voc", label_fields=["ids"], min_visibility=0.0, clip=True)
    for seed in range(30):
        outs = []
        for cls in (A.Affine, albu.Affine):
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
            p2, out2 = draw_and_apply(seeded(albu.Affine(p=1.0, **kwargs), seed), img5)
            np.testing.assert_array_equal(out2, out1)
        kwargs = dict(limit=(-20, 20), crop_border=True, p=1.0)
        p1, out1 = draw_and_apply(seeded(A.Rotate(**kwargs), seed), GEO_IMAGES["rgb"])
        p2, out2 = draw_and_apply(seeded(albu.Rotate(**kwargs), seed), GEO_IMAGES["rgb"])
        np.testing.assert_array_equal(out2, out1)


def test_identity_draw_returns_the_input() -> None:
    t = seeded(albu.Affine(translate_px={"x": (0, 0), "y": (0, 0)}, p=1.0), 0)
    params, out = draw_and_apply(t, GEO_IMAGES["grey"])
    assert out is GEO_IMAGES["grey"]


@pytest.mark.parametrize("image", sorted(GEO_IMAGES))
def test_elastic_same_pixels_masks_and_points(image: str) -> None:
    img = GEO_IMAGES[image]
    h, w = img.shape[:2]
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[h // 4: h // 2, w // 4: w // 2] = 1
    points = np.array([[3.0, 4.0], [w / 2, h / 2], [w - 2.0, h - 3.0]])
    for seed in range(20):
        outs = []
        for cls in (A.ElasticTransform, albu.ElasticTransform):
            t = cls(alpha=8, sigma=3, border_mode=cv2.BORDER_CONSTANT, fill=0, keypoint_remapping_method="direct", p=1.0)
            compose = A.Compose([t], keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), seed=seed)
            outs.append(compose(image=img, mask=mask, keypoints=points))
        np.testing.assert_array_equal(outs[1]["image"], outs[0]["image"])
        np.testing.assert_array_equal(outs[1]["mask"], outs[0]["mask"])
        np.testing.assert_allclose(np.asarray(outs[1]["keypoints"]), np.asarray(outs[0]["keypoints"]))


# --- pixel drop-ins ---

_pixel_rng = np.random.default_rng(0)
PIXEL_IMAGES = {
    "grey": _pixel_rng.integers(0, 256, (28, 28), dtype=np.uint8),
    "grey1": _pixel_rng.integers(0, 256, (31, 17, 1), dtype=np.uint8),
    "rgb": _pixel_rng.integers(0, 256, (60, 80, 3), dtype=np.uint8),
    "rgb_dark": _pixel_rng.integers(0, 12, (45, 33, 3), dtype=np.uint8),  # noise pushes many pixels below 0
    "rgb_bright": _pixel_rng.integers(243, 256, (45, 33, 3), dtype=np.uint8),  # and above 255
    "six": _pixel_rng.integers(0, 256, (20, 24, 6), dtype=np.uint8),
}


def _same_pixels(stock, ours, img: np.ndarray, seeds: range) -> None:
    for seed in seeds:
        a = A.Compose([stock], seed=seed, save_applied_params=True)(image=img)
        b = A.Compose([ours], seed=seed, save_applied_params=True)(image=img)
        assert a["image"].shape == b["image"].shape == img.shape
        np.testing.assert_array_equal(a["image"], b["image"])
        assert [n for n, _ in a["applied_transforms"]] == [n for n, _ in b["applied_transforms"]]


@pytest.mark.parametrize("name", sorted(PIXEL_IMAGES))
@pytest.mark.parametrize("std", [(0.01, 0.05), (0.2, 0.6)])
def test_noise_equals_albumentations(name: str, std: tuple[float, float]) -> None:
    _same_pixels(A.GaussNoise(std_range=std, p=1.0), albu.GaussNoise(std_range=std, p=1.0), PIXEL_IMAGES[name], range(12))


def test_noise_with_mean_and_fallbacks_equal_albumentations() -> None:
    img = PIXEL_IMAGES["rgb"]
    _same_pixels(A.GaussNoise(std_range=(0.05, 0.1), mean_range=(-0.2, 0.3), p=1.0),
          albu.GaussNoise(std_range=(0.05, 0.1), mean_range=(-0.2, 0.3), p=1.0), img, range(8))
    for kwargs in ({"per_channel": False}, {"noise_scale_factor": 0.5}):  # the stock code paths
        _same_pixels(A.GaussNoise(std_range=(0.05, 0.1), p=1.0, **kwargs),
              albu.GaussNoise(std_range=(0.05, 0.1), p=1.0, **kwargs), img, range(4))
    as_float = img.astype(np.float32) / 255
    _same_pixels(A.GaussNoise(std_range=(0.05, 0.1), p=1.0), albu.GaussNoise(std_range=(0.05, 0.1), p=1.0),
          as_float, range(4))


def test_noise_records_its_std_and_leaves_the_input_alone() -> None:
    img = PIXEL_IMAGES["rgb"].copy()
    out = A.Compose([albu.GaussNoise(std_range=(0.02, 0.04), p=1.0)], seed=1, save_applied_params=True)(image=img)
    params = out["applied_transforms"][0][1]
    assert 0.02 <= params["std"] <= 0.04
    np.testing.assert_array_equal(img, PIXEL_IMAGES["rgb"])
    spread = (out["image"].astype(int) - img).std()
    assert 0.5 * params["std"] * 255 < spread < 1.5 * params["std"] * 255


@pytest.mark.parametrize("name", ["grey", "grey1", "rgb", "rgb_dark", "rgb_bright"])
def test_color_jitter_equals_albumentations(name: str) -> None:
    kwargs = dict(brightness=(0.6, 1.4), contrast=(0.6, 1.4), saturation=(0.5, 1.5), hue=(-0.05, 0.05), p=1.0)
    _same_pixels(A.ColorJitter(**kwargs), albu.ColorJitter(**kwargs), PIXEL_IMAGES[name], range(16))


def test_color_jitter_edge_factors_equal_albumentations() -> None:
    for contrast in [(0.0, 0.0), (1.0, 1.0), (0.0, 2.0)]:
        kwargs = dict(brightness=(0.0, 2.0), contrast=contrast, saturation=(0.0, 2.0), hue=(-0.5, 0.5), p=1.0)
        for name in ("grey", "rgb"):
            _same_pixels(A.ColorJitter(**kwargs), albu.ColorJitter(**kwargs), PIXEL_IMAGES[name], range(10))
    with pytest.raises(TypeError):  # 6 channels: refused as albumentations refuses them
        A.Compose([albu.ColorJitter(p=1.0)])(image=PIXEL_IMAGES["six"])


# --- Compose ---


def test_compose_that_skips_refiltering_unapplied_transforms_matches_albumentations() -> None:
    from pipeline.augment.single import build_transform

    recipe = parse_recipe({"ops": [{"op": "hflip", "p": 0.5}, {"op": "affine", "p": 0.5, "degrees": 20, "translate": 0.2},
                                   {"op": "perspective", "p": 0.3, "scale": [0.02, 0.08]},
                                   {"op": "random_crop", "p": 0.3, "padding": 4, "size": [48, 48]}],
                           "visibility": 0.3, "min_area": 16}, "test")
    kwargs = {"bbox_params": A.BboxParams(format="pascal_voc", min_visibility=0.3, min_area=16, label_fields=["ids"],
                                          clip=True),
              "keypoint_params": A.KeypointParams(format="xy", remove_invisible=False, label_fields=["pids"])}
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    boxes = np.array([[0, 0, 20, 20], [30, 30, 63, 60], [50, 2, 64, 12], [10, 40, 14, 44]], dtype=float)
    points = np.array([[5.0, 5.0], [40.0, 50.0], [63.0, 1.0]])
    ours = albu.Compose([build_transform(op, 3) for op in recipe.single], save_applied_params=True, **kwargs)
    theirs = A.Compose([build_transform(op, 3) for op in recipe.single], save_applied_params=True, **kwargs)
    for seed in range(60):
        outs = []
        for compose in (ours, theirs):
            compose.set_random_state(np.random.default_rng(seed), __import__("random").Random(seed))
            outs.append(compose(image=img, bboxes=boxes, ids=[0, 1, 2, 3], keypoints=points, pids=[0, 1, 2]))
        np.testing.assert_array_equal(outs[0]["image"], outs[1]["image"])
        np.testing.assert_array_equal(np.asarray(outs[0]["bboxes"]), np.asarray(outs[1]["bboxes"]))
        assert list(outs[0]["ids"]) == list(outs[1]["ids"])
        np.testing.assert_array_equal(np.asarray(outs[0]["keypoints"]), np.asarray(outs[1]["keypoints"]))
        assert [n for n, _ in outs[0]["applied_transforms"]] == [n for n, _ in outs[1]["applied_transforms"]]


@pytest.mark.parametrize("boxes", [
    [[0.0, 0.0, 1.0, 1.0], [0.2, 0.3, 0.4, 0.5]],  # valid: the quick test passes them
    [[0.1, 0.1, 0.2, 0.2], [0.0, 0.0, 1.000001, 0.5]],  # over 1, within isclose's tolerance: valid
    [[-1e-9, 0.1, 0.5, 0.5]],  # under 0, within tolerance: valid
    [[0.1, 0.1, 1.2, 0.5]], [[-0.1, 0.1, 0.5, 0.5]],  # out of range
    [[0.5, 0.1, 0.5, 0.4]], [[0.1, 0.4, 0.5, 0.3]],  # x_max == x_min, y_max < y_min
    [[0.1, float("nan"), 0.5, 0.6]],
    [],
])
def test_the_quick_box_check_accepts_and_refuses_what_albumentations_does(boxes) -> None:
    from albumentations.core.bbox_utils import check_bboxes

    compose = albu.Compose([A.HorizontalFlip(p=1.0)], bbox_params=A.BboxParams(format="pascal_voc", clip=True))
    data = np.array(boxes, dtype=np.float32).reshape(-1, 5 if boxes and len(boxes[0]) == 5 else 4)
    try:
        check_bboxes(data)
        expected = None
    except ValueError as exc:
        expected = str(exc)
    if expected is None:
        compose.processors["bboxes"].check(data, {"height": 10, "width": 10})
    else:
        with pytest.raises(ValueError) as got:
            compose.processors["bboxes"].check(data, {"height": 10, "width": 10})
        assert str(got.value) == expected

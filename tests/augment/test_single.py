"""Single-sample ops: property tests on albumentations-backed ops applied to image and labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.augment.kernels import rle_encode
from pipeline.augment.recipe import parse_recipe
from pipeline.augment.single import Item, SingleOps
from pipeline.core.dataset import Obj

SETTINGS = settings(max_examples=20, deadline=None)
GEOMETRIC = ["hflip", "vflip", "rotate", "affine", "shift", "scale", "random_crop", "perspective"]
ALL_SINGLE = GEOMETRIC + ["elastic", "gaussian_blur", "color_jitter", "grayscale", "noise", "sharpen", "invert"]
_CACHE: dict = {}


def ops_for(name: str, channels: int = 1, targets: frozenset = frozenset({"boxes"}), **params) -> SingleOps:
    key = (name, channels, targets, repr(sorted(params.items())))
    if key not in _CACHE:
        recipe = parse_recipe({"ops": [{"op": name, "p": 1.0, **params}], "visibility": 0.3}, "test")
        _CACHE[key] = SingleOps(recipe, channels, set(targets))
    return _CACHE[key]


boxes = st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(8, 24), st.integers(8, 24))


def painted(box: tuple[int, int, int, int], size: int = 64) -> tuple[np.ndarray, list[float]]:
    x, y, w, h = box
    w, h = min(w, size - x), min(h, size - y)
    img = np.zeros((size, size), dtype=np.uint8)
    img[y : y + h, x : x + w] = 255
    return img, [float(x), float(y), float(x + w), float(y + h)]


@SETTINGS
@given(box=boxes, seed=st.integers(0, 2**32), flip=st.sampled_from(["hflip", "vflip"]))
def test_flipping_twice_is_identity(box, seed, flip):
    img, bbox = painted(box)
    img[0, :5] = 7  # make the image asymmetric
    item = Item(img, None, [Obj("a", bbox=bbox)])
    ops = ops_for(flip)
    twice = ops(ops(item, np.random.default_rng(seed)), np.random.default_rng(seed + 1))
    assert np.array_equal(twice.image, img)
    assert np.allclose(twice.objects[0].bbox, bbox)


@SETTINGS
@given(box=boxes, seed=st.integers(0, 2**32), op=st.sampled_from(ALL_SINGLE))
def test_boxes_stay_inside_the_image_and_inputs_are_not_modified(box, seed, op):
    img, bbox = painted(box)
    rgb = np.repeat(img[:, :, None], 3, axis=2)
    obj = Obj("a", bbox=[bbox[0] - 5, bbox[1] - 5, bbox[2] + 30, bbox[3] + 30])  # partly outside on purpose
    item = Item(rgb, np.array([1.0, 0.0]), [obj])
    before_img, before_obj = rgb.copy(), Obj.from_json(obj.to_json())
    out = ops_for(op, 3)(item, np.random.default_rng(seed))
    assert np.array_equal(item.image, before_img) and item.objects[0] == before_obj
    for o in out.objects:
        x1, y1, x2, y2 = o.bbox
        assert 0 <= x1 <= x2 <= out.width and 0 <= y1 <= y2 <= out.height


@SETTINGS
@given(box=boxes, seed=st.integers(0, 2**32), op=st.sampled_from(GEOMETRIC))
@example(box=(34, 19, 24, 8), seed=374096, op="perspective")  # a corner drawn out into a faint sliver
def test_a_box_still_covers_its_content_after_a_geometric_op(box, seed, op):
    """Paint the box, augment, compare the painted region's bounds with the transformed box.

    Every pixel the painted region reaches counts (> 0): a corner that a warp draws out into a
    sliver thinner than a pixel keeps only faint values, and the box must still reach it."""
    img, bbox = painted(box)
    out = ops_for(op)(Item(img, None, [Obj("a", bbox=bbox)]), np.random.default_rng(seed))
    ys, xs = np.nonzero(out.image > 0)
    if not out.objects:  # dropped: little of the painted region may remain visible
        assert xs.size <= 0.3 * (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) + 4 * 64
        return
    got = out.objects[0].bbox
    assert xs.size > 0
    painted_box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    tol = 2.5 + 0.08 * max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    assert np.allclose(got, painted_box, atol=tol), (op, got, painted_box)


@SETTINGS
@given(seed=st.integers(0, 2**32), op=st.sampled_from(["rotate", "affine", "perspective", "shift", "random_crop"]))
def test_polygons_keypoints_and_masks_move_with_the_image(seed, op):
    img, bbox = painted((20, 16, 20, 24))
    x1, y1, x2, y2 = bbox
    mask = (img > 0).astype(np.uint8)
    obj = Obj("a", bbox=bbox, polygon=[[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]],
              keypoints=[[x1 + 4.5, y1 + 4.5, 2], [x2 - 4.5, y2 - 4.5, 2]], mask=rle_encode(mask))
    targets = frozenset({"boxes", "polygons", "keypoints", "masks"})
    out = ops_for(op, 1, targets)(Item(img, None, [obj]), np.random.default_rng(seed))
    if not out.objects:
        return
    o = out.objects[0]
    for ring in o.polygon:
        for x, y in ring:
            assert 0 <= x <= 64 and 0 <= y <= 64
    for x, y, v in o.keypoints:
        if v:
            assert out.image[int(y), int(x)] > 100  # still on the painted region
    assert o.mask["size"] == [64, 64]


def test_same_seed_same_bytes_and_params_recorded():
    recipe = parse_recipe({"ops": [{"op": n, "p": 0.7} for n in ALL_SINGLE]}, "test")
    ops = SingleOps(recipe, 3, {"boxes"})
    img = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    item = Item(img, None, [Obj("a", bbox=[5.0, 5.0, 30.0, 30.0])])
    a = ops(item, np.random.default_rng(7))
    b = ops(item, np.random.default_rng(7))
    c = ops(item, np.random.default_rng(8))
    assert a.image.tobytes() == b.image.tobytes() and a.objects == b.objects and a.params == b.params
    assert a.image.tobytes() != c.image.tobytes()
    assert all("op" in p for p in a.params) and {p["op"] for p in a.params} <= set(ALL_SINGLE)


@pytest.mark.parametrize("op", ["resize", "random_scale", "random_crop"])
def test_ops_that_change_the_size_scale_boxes_with_it(op):
    params = {"resize": {"width": 32, "height": 16}, "random_scale": {"scale": [0.5, 0.5]},
              "random_crop": {"size": [40, 40], "padding": 0}}[op]
    img, bbox = painted((8, 8, 24, 24))
    out = ops_for(op, **params)(Item(img, None, [Obj("a", bbox=bbox)]), np.random.default_rng(1))
    expected = {"resize": (16, 32), "random_scale": (32, 32), "random_crop": (40, 40)}[op]
    assert out.image.shape == expected
    for o in out.objects:
        assert 0 <= o.bbox[0] <= o.bbox[2] <= out.width and 0 <= o.bbox[1] <= o.bbox[3] <= out.height


@pytest.mark.parametrize("channels", [1, 3])
def test_direct_driver_draws_and_applies_as_compose(channels: int) -> None:
    """Without boxes, points or masks the ops run without `A.Compose`: the same draws from the same
    generators, so the same pixels and the same recorded parameters as the Compose path."""
    import albumentations as A

    from pipeline.augment.single import _record, build_transform
    from pipeline.core.rng import StreamRandom

    ops = [{"op": "rotate", "p": 0.5, "degrees": 10}, {"op": "random_crop", "p": 0.5, "padding": 2},
           {"op": "random_crop", "p": 0.3, "padding": 3, "size": [20, 20]}, {"op": "scale", "p": 0.3, "scale": [0.9, 1.1]},
           {"op": "elastic", "p": 0.3, "alpha": 8, "sigma": 3}, {"op": "gaussian_blur", "p": 0.3, "sigma": [0.1, 0.8]},
           {"op": "noise", "p": 0.3, "std": [0.01, 0.05]}, {"op": "hflip", "p": 0.5}]
    if channels == 3:
        ops += [{"op": "color_jitter", "p": 0.5, "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.05},
                {"op": "grayscale", "p": 0.2}]
    recipe = parse_recipe({"ops": ops}, "test")
    single = SingleOps(recipe, channels, {"label"})
    assert [kind for kind, _ in single.segments] == ["direct"]
    shape = (24, 24) if channels == 1 else (24, 24, 3)
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    transforms = [t for t in (build_transform(op, channels) for op in recipe.single) if t is not None]
    compose = A.Compose(transforms, save_applied_params=True)
    for seed in range(40):
        ours = single(Item(img, soft=np.eye(10)[3]), np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        compose.set_random_state(rng, StreamRandom(rng))
        out = compose(image=img)
        np.testing.assert_array_equal(ours.image, out["image"])
        assert ours.params == [_record(n, p, single._unrecorded.get(n, frozenset())) for n, p in out["applied_transforms"]]
        assert ours.soft.tolist() == np.eye(10)[3].tolist()


def test_a_sample_without_objects_in_a_dataset_with_boxes() -> None:
    """Geometry runs through the box-carrying Compose even when this sample has no objects."""
    recipe = parse_recipe({"ops": [{"op": "affine", "p": 1.0, "degrees": 10}, {"op": "color_jitter", "p": 1.0}]}, "test")
    ops = SingleOps(recipe, 3, {"boxes"})
    img = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    out = ops(Item(img), np.random.default_rng(1))
    assert out.objects is None and out.image.shape == img.shape and not np.array_equal(out.image, img)
    assert [p["op"] for p in out.params] == ["affine", "color_jitter"]

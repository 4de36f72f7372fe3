"""Multi-sample ops on single samples: labels, boxes, declared targets, purity."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.augment import kernels as K
from pipeline.augment import multi
from pipeline.augment.ops.cutmix import cutmix
from pipeline.augment.ops.cutout import cutout
from pipeline.augment.recipe import OPS, TARGETS, parse_recipe
from pipeline.augment.single import Item
from pipeline.core.dataset import Obj

SETTINGS = settings(max_examples=25, deadline=None)
MULTI = ["sample_pairing", "mixup", "cutmix", "cutout", "mosaic"]
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20)]


def recipe_for(name: str, smoothing: float = 0.0, **params):
    return parse_recipe({"ops": [{"op": name, **params}], "label_smoothing": smoothing, "visibility": 0.3}, "t")


def scene(rng: np.random.Generator, w: int, h: int, k: int = 3, classes: int = 4) -> Item:
    """Non-overlapping coloured rectangles on dark noise; each object's colour identifies its class."""
    img = rng.integers(0, 40, size=(h, w, 3), dtype=np.uint8)
    objs: list[Obj] = []
    for _ in range(50 * k):
        if len(objs) == k:
            break
        c = int(rng.integers(0, classes))
        bw, bh = int(rng.integers(8, max(9, w // 2))), int(rng.integers(8, max(9, h // 2)))
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        if any(x < o.bbox[2] and o.bbox[0] < x + bw and y < o.bbox[3] and o.bbox[1] < y + bh for o in objs):
            continue
        img[y : y + bh, x : x + bw] = COLOURS[c]
        objs.append(Obj(str(c), bbox=[float(x), float(y), float(x + bw), float(y + bh)]))
    soft = np.zeros(classes)
    soft[int(rng.integers(0, classes))] = 1.0
    return Item(img, soft, objs)


def colour_fraction(img: np.ndarray, box: list[float], colour: tuple[int, int, int]) -> float:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    region = img[y1:y2, x1:x2].astype(int)
    if region.size == 0:
        return 0.0
    return float((np.abs(region - np.array(colour)).max(axis=2) < 40).mean())


@SETTINGS
@given(seed=st.integers(0, 2**32), op=st.sampled_from(MULTI), smoothing=st.sampled_from([0.0, 0.1]),
       tiles=st.sampled_from(["4", "9"]))
def test_soft_labels_sum_to_one_and_inputs_are_untouched(seed, op, smoothing, tiles):
    rng = np.random.default_rng(seed)
    params = {"tiles": tiles} if op == "mosaic" else {}
    recipe = recipe_for(op, smoothing, **params)
    a = scene(rng, 48, 40)
    partners = [scene(rng, int(rng.integers(20, 80)), int(rng.integers(20, 80))) for _ in
                range(multi.partners_needed(recipe.ops[0]))]
    if op == "sample_pairing":
        a.objects = None
        for p in partners:
            p.objects = None
    snapshot = copy.deepcopy((a, partners))
    out = multi.apply(recipe.ops[0], a, partners, np.random.default_rng(seed), recipe)
    assert abs(out.soft.sum() - 1.0) < 1e-9 and (out.soft >= 0).all()
    assert out.image.shape == a.image.shape and out.image.dtype == np.uint8
    assert np.array_equal(a.image, snapshot[0].image) and a.objects == snapshot[0].objects
    for p, q in zip(partners, snapshot[1], strict=True):
        assert np.array_equal(p.image, q.image) and p.objects == q.objects
    for o in out.objects or ():
        x1, y1, x2, y2 = o.bbox
        assert 0 <= x1 <= x2 <= out.width and 0 <= y1 <= y2 <= out.height
        assert (x2 - x1) * (y2 - y1) >= recipe.min_area


@SETTINGS
@given(lam=st.floats(0.0, 1.0), cx=st.floats(0.0, 1.0), cy=st.floats(0.0, 1.0),
       w=st.integers(4, 64), h=st.integers(4, 64))
def test_cutmix_lambda_equals_the_pasted_area_ratio(lam, cx, cy, w, h):
    (x1, y1, x2, y2), corrected = K.cutmix_rect(w, h, lam, cx, cy)
    a, b = np.zeros((h, w), np.uint8), np.full((h, w), 255, np.uint8)
    pasted = K.paste(a, b, (x1, y1, x2, y2))
    assert abs((1.0 - corrected) - (pasted == 255).mean()) < 1e-12


@SETTINGS
@given(seed=st.integers(0, 2**32))
def test_cutmix_soft_label_is_the_area_share(seed):
    rng = np.random.default_rng(seed)
    a, b = scene(rng, 40, 30), scene(rng, 40, 30)
    a.soft, b.soft = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    a.image[:] = 0
    b.image[:] = 255
    out = cutmix(recipe_for("cutmix").ops[0], a, [b], np.random.default_rng(seed), recipe_for("cutmix"))
    share = (out.image[:, :, 0] == 255).mean()
    assert np.allclose(out.soft, [1 - share, share, 0, 0])
    assert out.params[-1]["lambda"] == pytest.approx(1 - share, abs=1e-6)


@SETTINGS
@given(seed=st.integers(0, 2**32), op=st.sampled_from(["cutmix", "mosaic", "mixup"]), tiles=st.sampled_from(["4", "9"]))
def test_kept_boxes_still_cover_their_object(seed, op, tiles):
    """Every kept box still shows its object's colour (mixup: both sets kept with weights)."""
    rng = np.random.default_rng(seed)
    recipe = recipe_for(op, **({"tiles": tiles} if op == "mosaic" else {}))
    a = scene(rng, 64, 48, k=2)
    partners = [scene(rng, 64, 48, k=2) for _ in range(multi.partners_needed(recipe.ops[0]))]
    out = multi.apply(recipe.ops[0], a, partners, np.random.default_rng(seed), recipe)
    if op == "mixup":
        lam = out.params[-1]["lambda"]
        assert len(out.objects) == 4
        assert [o.weight for o in out.objects] == pytest.approx([lam, lam, 1 - lam, 1 - lam], abs=1e-6)
        return
    for o in out.objects:
        frac = colour_fraction(out.image, o.bbox, COLOURS[int(o.label)])
        # cutmix: a's boxes may keep a pasted hole inside (at least `visibility` shows); mosaic: clipped
        # to the tile, so the box is all object (up to resampling at its edges)
        assert frac >= (0.29 if op == "cutmix" else 0.95), (o, frac)


@pytest.mark.parametrize("op", MULTI)
def test_declared_targets_match_what_the_op_handles(op):
    """Each declared target goes through the op; the others are refused by check_targets."""
    spec = OPS[op]
    rng = np.random.default_rng(0)
    recipe = recipe_for(op)
    mask = np.zeros((40, 48), np.uint8)
    mask[5:20, 5:20] = 1
    full = Obj("0", bbox=[5.0, 5.0, 20.0, 20.0], polygon=[[[5, 5], [20, 5], [20, 20], [5, 20]]],
               keypoints=[[8.0, 8.0, 2]], mask=K.rle_encode(mask), polyline=[[5, 5], [10, 10]])
    for target in TARGETS:
        if target == "label":
            continue
        keep = {"boxes": "bbox", "polygons": "polygon", "keypoints": "keypoints", "masks": "mask", "polylines": "polyline"}
        obj = Obj("0", **{keep[target]: getattr(full, keep[target])})
        if target not in spec.targets:
            with pytest.raises(Exception, match=f"cannot handle {target}"):
                recipe.check_targets({"label", target})
            continue
        a = scene(rng, 48, 40, k=0)
        a.objects = [obj]
        partners = [scene(rng, 48, 40, k=1) for _ in range(multi.partners_needed(recipe.ops[0]))]
        out = multi.apply(recipe.ops[0], a, partners, np.random.default_rng(1), recipe)
        assert out.image.shape == a.image.shape


def test_cutout_drops_mostly_covered_boxes_and_hides_keypoints():
    recipe = recipe_for("cutout", holes=1, size=[1.0, 1.0], fill=0)
    a = Item(np.full((20, 20), 200, np.uint8), None,
             [Obj("0", bbox=[2.0, 2.0, 18.0, 18.0]), Obj("0", keypoints=[[10.0, 10.0, 2]])])
    out = cutout(recipe.ops[0], a, [], np.random.default_rng(0), recipe)
    assert [o.bbox for o in out.objects if o.bbox] == []  # the box is mostly erased: dropped
    kp = [o.keypoints for o in out.objects if o.keypoints][0]
    assert kp[0][2] == 1 if out.image[10, 10] == 0 else 2

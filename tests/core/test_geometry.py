"""Geometry: boxes, polygons, circles, keypoints, masks, the box of an object; RLE checked against
pycocotools as the oracle."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from pipeline.core.dataset import Obj
from pipeline.core.geometry import (
    BOX_SOURCES,
    CIRCLE_TOLERANCE,
    bbox_area,
    bbox_iou,
    bbox_minus_rect,
    bbox_union,
    circle_to_polygon,
    circle_vertices,
    clip_bbox,
    clip_bbox_to_rect,
    clip_ring,
    flat_to_ring,
    hide_keypoints,
    mask_bbox,
    object_box,
    object_box_source,
    polygon_area,
    polygon_bbox,
    polygon_to_mask,
    ring_area,
    ring_to_flat,
    rle_area,
    rle_bbox,
    rle_decode,
    rle_encode,
    rle_string_decode,
    rle_string_encode,
    signed_ring_area,
    transform_points,
)


@pytest.mark.parametrize(
    ("box", "clipped"),
    [
        ([1, 2, 3, 4], [1, 2, 3, 4]),  # inside: unchanged
        ([-5, -1, 20, 30], [0, 0, 10, 8]),  # larger than the image
        ([12, 9, 15, 11], [10, 8, 10, 8]),  # wholly outside: empty, never negative
    ],
)
def test_clip_bbox(box: list[float], clipped: list[float]) -> None:
    before = list(box)
    assert clip_bbox(box, 10, 8) == clipped
    assert box == before


def test_area_iou_union() -> None:
    assert bbox_area([0, 0, 4, 3]) == 12 and bbox_area([3, 3, 1, 1]) == 0
    assert bbox_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert bbox_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0
    assert bbox_union([0, 1, 2, 3], [1, 0, 5, 2]) == [0, 0, 5, 3] and bbox_union(None, None) is None


def test_polygons() -> None:
    assert polygon_area([[0, 0], [4, 0], [4, 3]]) == 6 and polygon_area([[0, 0], [1, 1]]) == 0
    two = [[[0, 0], [2, 0], [2, 2], [0, 2]], [[5, 5], [6, 5], [6, 6]]]
    assert polygon_area(two) == 4.5  # parts add up, orientation does not matter
    assert polygon_bbox([[[1, 5], [3, 2]], [[0, 4]]]) == [0, 2, 3, 5] and polygon_bbox([]) is None
    assert flat_to_ring([1, 2, 3, 4]) == [[1, 2], [3, 4]] and ring_to_flat([[1, 2], [3, 4]]) == [1, 2, 3, 4]


def test_polygon_to_mask_pixel_centres() -> None:
    m = polygon_to_mask([[[1, 1], [4, 1], [4, 3], [1, 3]]], 6, 5)
    expect = np.zeros((5, 6), bool)
    expect[1:3, 1:4] = True
    assert np.array_equal(m, expect)


def test_circle_to_polygon_within_tolerance() -> None:
    for r in (0.5, 3, 50, 400, 5000):
        ring = circle_to_polygon(10, 20, r)
        n = len(ring)
        assert 16 <= n <= 1024 and n % 4 == 0
        assert all(abs(math.hypot(x - 10, y - 20) - r) < 1e-9 for x, y in ring)
        if n < 1024:
            assert r * (1 - math.cos(math.pi / n)) <= 0.25 + 1e-12
    assert len(circle_to_polygon(0, 0, 1, 6)) == 6
    with pytest.raises(ValueError):
        circle_to_polygon(0, 0, 1, 2)


@pytest.mark.parametrize("seed", range(6))
def test_rle_agrees_with_pycocotools(seed: int) -> None:
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    m = rng.random((h, w)) > (0.2 + 0.1 * seed)
    m[0, 0] = bool(seed % 2)  # a set first pixel starts the counts with 0
    frozen = m.copy()
    rle = rle_encode(m)
    assert np.array_equal(m, frozen)  # input untouched
    oracle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert rle_string_encode(rle["counts"]) == oracle["counts"].decode()
    assert rle_string_decode(oracle["counts"]) == rle["counts"]
    assert np.array_equal(rle_decode(rle), m)
    assert np.array_equal(rle_decode({"size": [h, w], "counts": oracle["counts"].decode()}), m)
    assert np.array_equal(mask_utils.decode(mask_utils.frPyObjects(rle, h, w)).astype(bool), m)
    assert rle_area(rle) == int(mask_utils.area(oracle)) == int(m.sum())
    box = rle_bbox(rle)
    if m.any():
        x, y, bw, bh = mask_utils.toBbox(oracle).tolist()
        assert box == [x, y, x + bw, y + bh] == mask_bbox(m)
    else:
        assert box is None and mask_bbox(m) is None


def test_rle_string_with_large_and_negative_deltas() -> None:
    counts = [0, 5000, 3, 70000, 1, 2, 100000 - 75006]
    assert rle_string_decode(rle_string_encode(counts)) == counts


def test_rle_bbox_of_runs_that_wrap_columns() -> None:
    m = np.zeros((4, 5), bool)
    m[3, 1] = m[0, 2] = True  # one run crossing from column 1 into column 2
    assert rle_bbox(rle_encode(m)) == mask_bbox(m) == [1.0, 0.0, 3.0, 4.0]


def test_rle_decode_rejects_bad_counts() -> None:
    with pytest.raises(ValueError, match="sum to 5"):
        rle_decode({"size": [2, 3], "counts": [2, 3]})
    with pytest.raises(ValueError, match="invalid character"):
        rle_string_decode("ab~")


def test_inputs_not_mutated() -> None:
    rings = [[[0.0, 0.0], [3.0, 0.0], [3.0, 3.0]]]
    frozen = copy.deepcopy(rings)
    polygon_area(rings), polygon_bbox(rings), polygon_to_mask(rings, 4, 4)
    ring_area(rings[0]), signed_ring_area(rings[0]), clip_ring(rings[0], (1, 1, 2, 2))
    transform_points(rings[0], (2.0, 2.0), (1.0, 1.0))
    assert rings == frozen
    box, rect = [1.0, 1.0, 5.0, 5.0], (0.0, 0.0, 3.0, 3.0)
    clip_bbox(box, 3, 3), clip_bbox_to_rect(box, rect), bbox_minus_rect(box, rect)
    assert box == [1.0, 1.0, 5.0, 5.0] and rect == (0.0, 0.0, 3.0, 3.0)
    kps = [[1.0, 1.0, 2], [5.0, 5.0, 1]]
    hide_keypoints(kps, rect, inside=True, hidden=1)
    obj = Obj("a", polygon=copy.deepcopy(rings), keypoints=copy.deepcopy(kps))
    object_box(obj)
    assert kps == [[1.0, 1.0, 2], [5.0, 5.0, 1]] and obj.polygon == rings and obj.keypoints == kps


# --------------------------------------------------------------------------------------------
# Boxes cut to a rectangle (the augmentations' crops)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("box", "rect", "clipped"),
    [
        ([1, 2, 3, 4], (0, 0, 10, 8), [1.0, 2.0, 3.0, 4.0]),  # inside: unchanged, as floats
        ([-5, -1, 20, 30], (0, 0, 10, 8), [0.0, 0.0, 10.0, 8.0]),  # larger than the rect
        ([12, 9, 15, 11], (0, 0, 10, 8), [10.0, 8.0, 10.0, 8.0]),  # wholly outside: empty
        ([0, 0, 4, 4], (2, 1, 6, 3), [2.0, 1.0, 4.0, 3.0]),  # a rect not at the origin
        ([5, 5, 1, 1], (0, 0, 10, 10), [5.0, 5.0, 5.0, 5.0]),  # an inverted box comes back empty, never inverted
    ],
)
def test_clip_bbox_to_rect(box: list[float], rect: tuple, clipped: list[float]) -> None:
    out = clip_bbox_to_rect(box, rect)
    assert out == clipped and all(type(v) is float for v in out)


def test_clip_bbox_keeps_the_image_size_type() -> None:
    # an edge cut at the image size is the size itself: byte-identical datasets rely on it
    assert [type(v) for v in clip_bbox([-1.0, 2.5, 12.0, 3.0], 10, 8)] == [float, float, int, float]


@pytest.mark.parametrize(
    ("box", "rect", "expected", "visible"),
    [
        ([0, 0, 10, 10], (20, 20, 30, 30), [0.0, 0.0, 10.0, 10.0], 1.0),  # the cut misses the box
        ([0, 0, 10, 10], (-1, -1, 11, 4), [0.0, 4.0, 10.0, 10.0], 0.6),  # a band across the top
        ([0, 0, 10, 10], (-1, 6, 11, 11), [0.0, 0.0, 10.0, 6.0], 0.6),  # a band across the bottom
        ([0, 0, 10, 10], (-1, -1, 2, 11), [2.0, 0.0, 10.0, 10.0], 0.8),  # a band down the left side
        ([0, 0, 10, 10], (8, -1, 11, 11), [0.0, 0.0, 8.0, 10.0], 0.8),  # a band down the right side
        ([0, 0, 10, 10], (4, 4, 6, 6), [0.0, 0.0, 10.0, 10.0], 0.96),  # a hole inside: the box stays
        ([0, 0, 10, 10], (-1, -1, 11, 11), [0.0, 0.0, 0.0, 0.0], 0.0),  # covered: empty
        ([3, 3, 3, 5], (0, 0, 1, 1), [3.0, 3.0, 3.0, 5.0], 0.0),  # no area to begin with
    ],
)
def test_bbox_minus_rect(box: list[float], rect: tuple, expected: list[float], visible: float) -> None:
    out, vis = bbox_minus_rect(box, rect)
    assert out == expected and vis == pytest.approx(visible)


# --------------------------------------------------------------------------------------------
# Rings: absolute and signed areas, clipping
# --------------------------------------------------------------------------------------------


def test_ring_areas_absolute_and_signed() -> None:
    ccw = [[0, 0], [4, 0], [4, 3]]  # counter-clockwise with y up
    assert signed_ring_area(ccw) == 6 and signed_ring_area(ccw[::-1]) == -6
    assert ring_area(ccw) == ring_area(ccw[::-1]) == 6
    assert ring_area([[0, 0], [1, 1]]) == signed_ring_area([[0, 0], [1, 1]]) == 0
    rng = np.random.default_rng(3)
    for _ in range(20):
        ring = rng.uniform(-50, 50, (int(rng.integers(3, 12)), 2)).tolist()
        assert ring_area(ring) == pytest.approx(abs(signed_ring_area(ring)))


@pytest.mark.parametrize(
    ("ring", "rect", "area"),
    [
        ([[0, 0], [4, 0], [4, 4], [0, 4]], (0, 0, 10, 10), 16),  # inside: unchanged
        ([[0, 0], [4, 0], [4, 4], [0, 4]], (2, 2, 10, 10), 4),  # a corner kept
        ([[0, 0], [4, 0], [4, 4], [0, 4]], (1, -5, 3, 9), 8),  # a vertical band
        ([[0, 0], [4, 0], [0, 4]], (0, 0, 2, 2), 4),  # the triangle's hypotenuse misses the 2x2 corner
        ([[0, 0], [4, 0], [4, 4], [0, 4]], (5, 5, 9, 9), 0),  # outside: nothing left
    ],
)
def test_clip_ring(ring: list, rect: tuple, area: float) -> None:
    out = clip_ring(ring, rect)
    assert ring_area(out) == pytest.approx(area)
    for x, y in out:
        assert rect[0] <= x <= rect[2] and rect[1] <= y <= rect[3]


# --------------------------------------------------------------------------------------------
# Points and keypoints
# --------------------------------------------------------------------------------------------


def test_transform_points_keeps_extra_columns() -> None:
    assert transform_points([[1, 2], [3, 4, 2]], (2.0, 0.5), (10.0, -1.0)) == [[12.0, 0.0], [16.0, 1.0, 2]]


@pytest.mark.parametrize(
    ("inside", "hidden", "expected"),
    [
        # under a cutout: labelled points inside become hidden (v = 1), a 2-d point gains a visibility
        (True, 1, [[1.0, 1.0, 1], [5.0, 5.0, 2], [0.0, 0.0, 0], [2.0, 2.0, 1]]),
        # outside a crop: labelled points outside become unlabelled (0, 0, 0), the rest stay
        (False, 0, [[1.0, 1.0, 2], [0.0, 0.0, 0], [0.0, 0.0, 0], [2.0, 2.0]]),
    ],
)
def test_hide_keypoints(inside: bool, hidden: int, expected: list) -> None:
    kps = [[1, 1, 2], [5, 5, 2], [0, 0, 0], [2, 2]]  # the third is unlabelled: never touched
    assert hide_keypoints(kps, (0, 0, 3, 3), inside=inside, hidden=hidden) == expected


# --------------------------------------------------------------------------------------------
# Circles
# --------------------------------------------------------------------------------------------


def test_circle_vertices_stay_within_tolerance() -> None:
    for r in (0.1, 0.5, 3, 50, 400, 5000):
        n = circle_vertices(r)
        assert 16 <= n <= 1024 and n % 4 == 0
        if n < 1024:
            assert r * (1 - math.cos(math.pi / n)) <= CIRCLE_TOLERANCE + 1e-12
            assert n == 16 or r * (1 - math.cos(math.pi / (n - 4))) > CIRCLE_TOLERANCE  # and no more
        assert len(circle_to_polygon(0, 0, r)) == n
    assert circle_vertices(0.0) == 16 and circle_vertices(10.0, tolerance=0.0) == 16


# --------------------------------------------------------------------------------------------
# The box of an object
# --------------------------------------------------------------------------------------------

SQUARE = [[[2, 2], [6, 2], [6, 6], [2, 6]]]
MASK = {"size": [4, 4], "counts": [5, 2, 2, 2, 5]}  # pixels (1..2, 1..2): box [1, 1, 3, 3]
EMPTY_MASK = {"size": [2, 2], "counts": [4]}


@pytest.mark.parametrize(
    ("obj", "kw", "box", "source"),
    [
        # 1. the object's own box wins over everything else, as floats
        (Obj("a", bbox=[0, 0, 1, 1], polygon=SQUARE, mask=MASK, keypoints=[[9, 9, 2]]), {}, [0.0, 0.0, 1.0, 1.0],
         "bbox"),
        # 2. without a box, the polygon's vertices
        (Obj("a", polygon=SQUARE, mask=MASK, keypoints=[[9, 9, 2]]), {}, [2.0, 2.0, 6.0, 6.0], "polygon"),
        # 2. every ring counts, short ones too, by default
        (Obj("a", polygon=[[[1, 5], [3, 2]], [[0, 4]]]), {}, [0.0, 2.0, 3.0, 5.0], "polygon"),
        # 2. with min_ring=3 (COCO) short rings are left out: the mask decides
        (Obj("a", polygon=[[[1, 5], [3, 2]]], mask=MASK), {"min_ring": 3}, [1.0, 1.0, 3.0, 3.0], "mask"),
        # 2. a polygon without vertices gives no box: the next field decides
        (Obj("a", polygon=[[]], keypoints=[[4, 5, 2]]), {}, [4.0, 5.0, 4.0, 5.0], "keypoints"),
        # 3. without box or polygon, the mask's set pixels
        (Obj("a", mask=MASK, keypoints=[[9, 9, 2]]), {}, [1.0, 1.0, 3.0, 3.0], "mask"),
        # 3. an empty mask gives none: the keypoints decide
        (Obj("a", mask=EMPTY_MASK, keypoints=[[4, 5, 2]]), {}, [4.0, 5.0, 4.0, 5.0], "keypoints"),
        # 4. labelled keypoints only (v = 0 has no position), hidden ones (v = 1) count
        (Obj("a", keypoints=[[0, 0, 0], [2, 3, 1], [5, 1, 2]]), {}, [2.0, 1.0, 5.0, 3.0], "keypoints"),
        # 4. keypoints without a visibility count as labelled
        (Obj("a", keypoints=[[2, 3], [5, 1]]), {}, [2.0, 1.0, 5.0, 3.0], "keypoints"),
        # 5. no labelled keypoint: the polyline decides
        (Obj("a", keypoints=[[0, 0, 0]], polyline=[[1, 2], [5, 0]]), {}, [1.0, 0.0, 5.0, 2.0], "polyline"),
        # 5. a polyline alone
        (Obj("a", polyline=[[1, 2], [5, 0]]), {}, [1.0, 0.0, 5.0, 2.0], "polyline"),
        # points=False: keypoints and polylines have no area and give no box
        (Obj("a", keypoints=[[1, 1, 2]], polyline=[[1, 2], [5, 0]]), {"points": False}, None, None),
        # points=False still takes the area fields
        (Obj("a", mask=MASK, keypoints=[[9, 9, 2]]), {"points": False}, [1.0, 1.0, 3.0, 3.0], "mask"),
        # nothing at all
        (Obj("a", mask=EMPTY_MASK), {}, None, None),
    ],
)
def test_object_box_priority(obj: Obj, kw: dict, box: list[float] | None, source: str | None) -> None:
    assert object_box_source(obj, **kw) == (box, source)
    assert object_box(obj, **kw) == box
    assert source is None or source in BOX_SOURCES

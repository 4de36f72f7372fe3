"""Geometry: boxes, polygons, circles, masks; RLE checked against pycocotools as the oracle."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from pipeline.core.geometry import (
    bbox_area,
    bbox_iou,
    bbox_union,
    circle_to_polygon,
    clip_bbox,
    flat_to_ring,
    mask_bbox,
    polygon_area,
    polygon_bbox,
    polygon_to_mask,
    ring_to_flat,
    rle_area,
    rle_bbox,
    rle_decode,
    rle_encode,
    rle_string_decode,
    rle_string_encode,
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
    assert rings == frozen

"""pipeline.augment.kernels: the pixel work of the multi-sample ops, masks, points and label mixing.

Every kernel returns new arrays and leaves its inputs alone (checked on each call below).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from pipeline.augment import kernels as K

RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


@contextlib.contextmanager
def untouched(*arrays: np.ndarray) -> Iterator[None]:
    """Check that `arrays` hold the same bytes after the block."""
    before = [a.copy() for a in arrays]
    yield
    for a, b in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("img", "channels", "shape"), [
    (GREY, 1, (6, 8)), (GREY, 3, (6, 8, 3)), (RGB, 1, (6, 8)), (RGB, 3, (6, 8, 3)),
    (GREY[:, :, None], 1, (6, 8)),  # (H, W, 1) becomes (H, W)
])
def test_as_channels_converts_and_copies(img: np.ndarray, channels: int, shape: tuple[int, ...]) -> None:
    with untouched(img):
        out = K.as_channels(img, channels)
    assert out.shape == shape and not np.shares_memory(out, img)
    assert K.channels_of(out) == channels
    if img.ndim == 2 and channels == 3:
        assert (out == img[:, :, None]).all()


def test_resize_copies_at_the_same_size_and_scales_otherwise() -> None:
    with untouched(RGB):
        same, big, small = K.resize(RGB, 8, 6), K.resize(RGB, 16, 12), K.resize(RGB, 4, 3)
    assert np.array_equal(same, RGB) and not np.shares_memory(same, RGB)
    assert big.shape == (12, 16, 3) and small.shape == (3, 4, 3)
    assert K.resize(np.full((6, 8), 77, np.uint8), 3, 2).tolist() == [[77] * 3] * 2


def test_blend_rounds_the_weighted_mean() -> None:
    a, b = np.array([[0, 255]], np.uint8), np.array([[255, 0]], np.uint8)
    with untouched(a, b):
        assert K.blend(a, b, 0.5).tolist() == [[128, 128]]  # 127.5 rounds to even: 128
        assert K.blend(a, b, 1.0).tolist() == a.tolist() and K.blend(a, b, 0.2).tolist() == [[204, 51]]


def test_paste_and_erase_change_only_their_rectangles() -> None:
    a, b = np.zeros((4, 5), np.uint8), np.full((4, 5), 9, np.uint8)
    with untouched(a, b):
        pasted = K.paste(a, b, (1, 1, 3, 2))
        erased = K.erase(b, [(0, 0, 2, 2), (4, 3, 5, 4)], [5, np.array([[1]], np.uint8)])
    assert pasted.sum() == 9 * 2 and (pasted[1, 1:3] == 9).all()
    assert (erased[:2, :2] == 5).all() and erased[3, 4] == 1 and erased.sum() == 9 * 15 + 5 * 4 + 1


@pytest.mark.parametrize(("lam", "cx", "cy"), [
    (0.75, 0.5, 0.5),  # a centred patch of half the side
    (0.75, 0.0, 0.0),  # clipped at the corner: less pasted, lambda corrected up
    (1.0, 0.3, 0.3),  # nothing pasted
    (0.0, 0.5, 0.5),  # the whole image
])
def test_cutmix_rect_lambda_is_the_area_kept(lam: float, cx: float, cy: float) -> None:
    (x1, y1, x2, y2), kept = K.cutmix_rect(20, 10, lam, cx, cy)
    assert 0 <= x1 <= x2 <= 20 and 0 <= y1 <= y2 <= 10
    assert kept == pytest.approx(1 - (x2 - x1) * (y2 - y1) / 200)
    assert kept >= lam - 1e-9


@pytest.mark.parametrize(("tiles", "cuts"), [(4, [0.5]), (9, [0.3, 0.6])])
def test_mosaic_cells_tile_the_canvas_row_by_row(tiles: int, cuts: list[float]) -> None:
    cells = K.mosaic_cells(20, 10, tiles, cuts, cuts)
    assert len(cells) == tiles and sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in cells) == 200
    assert cells[0][:2] == (0, 0) and cells[-1][2:] == (20, 10)
    assert [c[1] for c in cells] == sorted(c[1] for c in cells)  # rows top to bottom


def test_label_smoothing_keeps_the_sum() -> None:
    soft = np.array([0.0, 1.0, 0.0, 0.0])
    with untouched(soft):
        out = K.label_smoothing(soft, 0.2)
        assert K.label_smoothing(soft, 0.0) is not soft
    assert out.tolist() == pytest.approx([0.05, 0.85, 0.05, 0.05]) and out.sum() == pytest.approx(1.0)


def test_masks_survive_an_rle_round_trip() -> None:
    mask = (RNG.random((7, 9)) > 0.6).astype(np.uint8)
    rle = K.rle_encode(mask)
    assert rle["size"] == [7, 9]
    decoded = K.rle_decode(rle)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, mask)


def test_points_are_scaled_then_shifted_keeping_extra_columns() -> None:
    assert K.transform_points([[1.0, 2.0, 2], [0.0, 0.0]], (2.0, 3.0), (1.0, -1.0)) == [[3.0, 5.0, 2], [1.0, -1.0]]


def test_hidden_keypoints_follow_the_coco_convention() -> None:
    kps = [[1.0, 1.0, 2], [5.0, 5.0, 2], [1.5, 1.5, 0], [2.0, 2.0]]
    inside = K.hide_keypoints(kps, (0, 0, 3, 3), inside=True, hidden=1)
    assert inside == [[1.0, 1.0, 1], [5.0, 5.0, 2], [1.5, 1.5, 0], [2.0, 2.0, 1]]
    outside = K.hide_keypoints(kps, (0, 0, 3, 3), inside=False, hidden=0)
    assert outside[1] == [0.0, 0.0, 0] and outside[0] == [1.0, 1.0, 2] and outside[3] == [2.0, 2.0]


@pytest.mark.parametrize(("before", "after", "visibility", "min_area", "keep"), [
    (100, 40, 0.3, 1, True),
    (100, 20, 0.3, 1, False),  # too little left visible
    (100, 40, 0.3, 50, False),  # too small
    (0, 5, 0.3, 1, True),  # nothing to compare with: the area decides
    (100, 0, 0.0, 0, False),  # nothing left
])
def test_keep_box(before: float, after: float, visibility: float, min_area: float, keep: bool) -> None:
    assert K.keep_box(before, after, visibility, min_area) is keep


def test_box_minus_rect_shrinks_only_across_a_full_band() -> None:
    assert K.box_minus_rect([0, 0, 10, 10], [0, 0, 10, 4]) == ([0.0, 4.0, 10.0, 10.0], pytest.approx(0.6))
    assert K.box_minus_rect([0, 0, 10, 10], [2, 2, 4, 4]) == ([0.0, 0.0, 10.0, 10.0], pytest.approx(0.96))
    assert K.box_minus_rect([0, 0, 10, 10], [-1, -1, 11, 11])[1] == 0.0


def test_rings_are_clipped_to_the_rectangle_and_bounded() -> None:
    ring = [[-2.0, -2.0], [4.0, -2.0], [4.0, 4.0], [-2.0, 4.0]]
    clipped = K.clip_ring(ring, (0, 0, 10, 10))
    assert sorted(map(tuple, clipped)) == [(0.0, 0.0), (0.0, 4.0), (4.0, 0.0), (4.0, 4.0)]
    assert K.ring_bounds([clipped, [[6.0, 7.0]]]) == [0.0, 0.0, 6.0, 7.0] and K.ring_bounds([]) is None
    assert K.clip_ring(ring, (5, 5, 10, 10)) == []

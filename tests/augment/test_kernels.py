"""Augmentation kernels: the keep rule for clipped objects, the uint8 mask bridge and the pixel work
of the multi-sample ops; every kernel returns new arrays and leaves its inputs alone."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.augment import kernels as K


@pytest.mark.parametrize(
    ("before", "after", "visibility", "min_area", "keep"),
    [
        (100.0, 100.0, 0.5, 0.0, True),  # untouched
        (100.0, 50.0, 0.5, 0.0, True),  # exactly at the visibility threshold
        (100.0, 49.0, 0.5, 0.0, False),  # below it
        (100.0, 50.0 - 1e-12, 0.5, 0.0, True),  # float noise at the threshold still keeps
        (100.0, 30.0, 0.0, 40.0, False),  # visible enough but under min_area pixels
        (100.0, 0.0, 0.0, 0.0, False),  # nothing left
        (0.0, 5.0, 0.9, 0.0, True),  # no area to begin with: only min_area decides
    ],
)
def test_keep_box(before: float, after: float, visibility: float, min_area: float, keep: bool) -> None:
    assert K.keep_box(before, after, visibility, min_area) is keep


def test_rle_bridge_is_uint8_and_round_trips() -> None:
    mask = np.zeros((5, 7), np.uint8)
    mask[1:3, 2:6] = 1
    rle = K.rle_encode(mask)
    back = K.rle_decode(rle)
    assert back.dtype == np.uint8 and np.array_equal(back, mask)
    assert rle["size"] == [5, 7] and sum(rle["counts"][1::2]) == 8


@pytest.mark.parametrize(
    ("shape", "channels", "out_shape"),
    [
        ((4, 6), 1, (4, 6)),  # grey stays grey
        ((4, 6, 1), 1, (4, 6)),  # a single channel axis is dropped
        ((4, 6), 3, (4, 6, 3)),  # grey repeated into RGB
        ((4, 6, 3), 1, (4, 6)),  # RGB to grey
        ((4, 6, 4), 3, (4, 6, 3)),  # RGBA loses alpha
    ],
)
def test_as_channels(shape: tuple, channels: int, out_shape: tuple) -> None:
    img = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    frozen = img.copy()
    out = K.as_channels(img, channels)
    assert out.shape == out_shape and K.channels_of(out) == channels
    assert np.array_equal(img, frozen) and not np.shares_memory(out, img)


def test_resize_copies_and_scales() -> None:
    img = np.full((8, 10, 3), 7, np.uint8)
    same = K.resize(img, 10, 8)
    assert np.array_equal(same, img) and not np.shares_memory(same, img)
    assert K.resize(img, 5, 4).shape == (4, 5, 3) and K.resize(img, 20, 16).shape == (16, 20, 3)


def test_blend_paste_erase() -> None:
    a, b = np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)
    frozen = a.copy(), b.copy()
    assert (K.blend(a, b, 0.5) == 128).all()  # 127.5 rounds to even: 128
    assert (K.blend(a, b, 1.0) == 0).all() and (K.blend(a, b, 0.0) == 255).all()
    pasted = K.paste(a, b, (1, 0, 3, 2))
    assert int(pasted.sum()) == 4 * 255 and (pasted[0:2, 1:3] == 255).all()
    erased = K.erase(b, [(0, 0, 2, 2), (2, 2, 4, 4)], [0, np.full((2, 2), 9, np.uint8)])
    assert (erased[0:2, 0:2] == 0).all() and (erased[2:4, 2:4] == 9).all() and (erased[0:2, 2:4] == 255).all()
    assert np.array_equal(a, frozen[0]) and np.array_equal(b, frozen[1])


@pytest.mark.parametrize(
    ("lam", "cx", "cy", "rect", "corrected"),
    [
        (1.0, 0.5, 0.5, (5, 5, 5, 5), 1.0),  # lambda 1: no patch
        (0.75, 0.5, 0.5, (3, 3, 8, 8), 0.75),  # a centred quarter of the image
        (0.75, 0.0, 0.0, (0, 0, 3, 3), 0.91),  # at a corner the patch is clipped; lambda follows
    ],
)
def test_cutmix_rect(lam: float, cx: float, cy: float, rect: tuple, corrected: float) -> None:
    got, lam_out = K.cutmix_rect(10, 10, lam, cx, cy)
    assert got == rect and lam_out == pytest.approx(corrected)


def test_mosaic_cells_tile_the_canvas() -> None:
    cells = K.mosaic_cells(10, 8, 4, [0.3], [0.5])
    assert cells == [(0, 0, 3, 4), (3, 0, 10, 4), (0, 4, 3, 8), (3, 4, 10, 8)]
    nine = K.mosaic_cells(9, 9, 9, [0.7, 0.3], [0.3, 0.7])  # cut lines in any order
    assert sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in nine) == 81 and nine[0] == (0, 0, 3, 3)


def test_label_smoothing() -> None:
    soft = np.array([0.0, 1.0, 0.0, 0.0])
    out = K.label_smoothing(soft, 0.2)
    assert out == pytest.approx([0.05, 0.85, 0.05, 0.05]) and out.sum() == pytest.approx(1.0)
    same = K.label_smoothing(soft, 0.0)
    assert np.array_equal(same, soft) and not np.shares_memory(same, soft)

"""Pure numpy kernels for augmentation: the rule that keeps or drops a clipped object and the pixel
work of the multi-sample ops (SamplePairing, Mixup, CutMix, Cutout, Mosaic). The geometry of boxes,
polygons and keypoints they use is `pipeline.core.geometry`'s.

Every function takes its random parameters as arguments (drawn elsewhere from an injected
generator) and returns new arrays; none modifies its inputs (tests check this).
Coordinates are absolute-pixel floats, boxes ``[x1, y1, x2, y2]``, the image spanning
``[0, W] x [0, H]``; rectangles below are ``(x1, y1, x2, y2)`` in integer pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Rect = tuple[int, int, int, int]


# --------------------------------------------------------------------------------------------
# Keeping objects (the geometry itself lives in pipeline.core.geometry)
# --------------------------------------------------------------------------------------------


def keep_box(before: float, after: float, visibility: float, min_area: float) -> bool:
    """True when a box keeps at least `visibility` of its area and at least `min_area` pixels."""
    if after <= 0 or after < min_area:
        return False
    return before <= 0 or after / before >= visibility - 1e-9


# --------------------------------------------------------------------------------------------
# COCO RLE (pipeline.core.geometry reads uncompressed counts and compressed strings)
# --------------------------------------------------------------------------------------------


def rle_decode(rle: dict) -> np.ndarray:
    """A uint8 (H, W) 0/1 mask from COCO RLE."""
    from pipeline.core.geometry import rle_decode as decode

    return decode(rle).astype(np.uint8)


def rle_encode(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a (H, W) mask."""
    from pipeline.core.geometry import rle_encode as encode

    return encode(mask)


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def as_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """`img` (H, W) or (H, W, C) as (H, W) when channels == 1, else (H, W, channels); a new array."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if channels == 1:
        if img.ndim == 2:
            return img.copy()
        return cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], channels, axis=2)
    return img[:, :, :channels].copy()


def channels_of(img: np.ndarray) -> int:
    return 1 if img.ndim == 2 else int(img.shape[2])


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """A resized copy (area interpolation when shrinking, linear when growing)."""
    if img.shape[1] == width and img.shape[0] == height:
        return img.copy()
    shrink = width < img.shape[1] or height < img.shape[0]
    out = cv2.resize(img, (int(width), int(height)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


def blend(a: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    """``lam * a + (1 - lam) * b`` rounded to uint8 (SamplePairing uses lam = 0.5)."""
    out = lam * a.astype(np.float32) + (1.0 - lam) * b.astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def paste(a: np.ndarray, b: np.ndarray, rect: Rect) -> np.ndarray:
    """A copy of `a` with `b`'s pixels inside `rect` (same-size images)."""
    x1, y1, x2, y2 = rect
    out = a.copy()
    out[y1:y2, x1:x2] = b[y1:y2, x1:x2]
    return out


def erase(a: np.ndarray, rects: Sequence[Rect], fills: Sequence[np.ndarray | int]) -> np.ndarray:
    """A copy of `a` with each rect filled by a constant or by an array of the rect's shape."""
    out = a.copy()
    for (x1, y1, x2, y2), fill in zip(rects, fills, strict=True):
        out[y1:y2, x1:x2] = fill
    return out


def cutmix_rect(width: int, height: int, lam: float, cx: float, cy: float) -> tuple[Rect, float]:
    """The CutMix patch for a drawn lambda and centre (fractions), clipped to the image,
    and lambda corrected to the area actually pasted: ``1 - patch_area / image_area``."""
    cut = np.sqrt(max(0.0, 1.0 - lam))
    cw, ch = int(round(width * cut)), int(round(height * cut))
    x, y = int(round(cx * width)), int(round(cy * height))
    x1, x2 = max(0, x - cw // 2), min(width, x + cw - cw // 2)
    y1, y2 = max(0, y - ch // 2), min(height, y + ch - ch // 2)
    area = max(0, x2 - x1) * max(0, y2 - y1)
    return (x1, y1, x2, y2), 1.0 - area / float(width * height)


def mosaic_cells(width: int, height: int, tiles: int, cuts_x: Sequence[float], cuts_y: Sequence[float]) -> list[Rect]:
    """Cells of a 2x2 (4 tiles) or 3x3 (9 tiles) mosaic with inner cut lines at the given fractions,
    row by row."""
    n = {4: 2, 9: 3}[tiles]
    xs = [0] + sorted(int(round(c * width)) for c in cuts_x) + [width]
    ys = [0] + sorted(int(round(c * height)) for c in cuts_y) + [height]
    assert len(xs) == n + 1 and len(ys) == n + 1
    return [(xs[j], ys[i], xs[j + 1], ys[i + 1]) for i in range(n) for j in range(n)]


def label_smoothing(soft: np.ndarray, eps: float) -> np.ndarray:
    """``soft * (1 - eps) + eps / K``; sums stay 1."""
    if eps <= 0:
        return soft.copy()
    return soft * (1.0 - eps) + eps / soft.shape[-1]

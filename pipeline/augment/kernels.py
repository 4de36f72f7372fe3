"""Pure numpy kernels for augmentation: geometry of boxes/polygons/keypoints and the pixel work of
the multi-sample ops (SamplePairing, Mixup, CutMix, Cutout, Mosaic).

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
# Boxes
# --------------------------------------------------------------------------------------------


def box_area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def clip_box(box: Sequence[float], rect: Sequence[float]) -> list[float]:
    """`box` clipped to `rect` (may become empty: x1 == x2 or y1 == y2)."""
    x1 = min(max(box[0], rect[0]), rect[2])
    y1 = min(max(box[1], rect[1]), rect[3])
    x2 = min(max(box[2], rect[0]), rect[2])
    y2 = min(max(box[3], rect[1]), rect[3])
    return [float(x1), float(y1), float(max(x1, x2)), float(max(y1, y2))]


def box_minus_rect(box: Sequence[float], rect: Sequence[float]) -> tuple[list[float], float]:
    """The bounding box of `box` with `rect` cut out, and the fraction of `box`'s area left visible.

    The bounding box shrinks only when the cut spans the whole box along one axis (the visible
    part is then a rectangle); otherwise it stays the original box.
    """
    area = box_area(box)
    inter = clip_box(box, rect)
    cut = box_area(inter)
    if area <= 0:
        return list(map(float, box)), 0.0
    visible = max(0.0, 1.0 - cut / area)
    x1, y1, x2, y2 = map(float, box)
    spans_x = inter[0] <= x1 and inter[2] >= x2 and cut > 0
    spans_y = inter[1] <= y1 and inter[3] >= y2 and cut > 0
    if spans_x and spans_y:
        return [x1, y1, x1, y1], 0.0
    if spans_x:  # the cut is a horizontal band across the box
        if inter[1] <= y1:
            y1 = inter[3]
        elif inter[3] >= y2:
            y2 = inter[1]
    elif spans_y:  # a vertical band
        if inter[0] <= x1:
            x1 = inter[2]
        elif inter[2] >= x2:
            x2 = inter[0]
    return [x1, y1, x2, y2], visible


def keep_box(before: float, after: float, visibility: float, min_area: float) -> bool:
    """True when a box keeps at least `visibility` of its area and at least `min_area` pixels."""
    if after <= 0 or after < min_area:
        return False
    return before <= 0 or after / before >= visibility - 1e-9


# --------------------------------------------------------------------------------------------
# Polygons and keypoints
# --------------------------------------------------------------------------------------------


def ring_area(ring: Sequence[Sequence[float]]) -> float:
    """Absolute area of a closed ring (shoelace formula)."""
    if len(ring) < 3:
        return 0.0
    pts = np.asarray(ring, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def clip_ring(ring: Sequence[Sequence[float]], rect: Sequence[float]) -> list[list[float]]:
    """Sutherland-Hodgman clipping of a ring to an axis-aligned rectangle."""
    pts = [(float(p[0]), float(p[1])) for p in ring]
    x1, y1, x2, y2 = (float(v) for v in rect)
    edges = (
        (lambda p: p[0] >= x1, lambda a, b: _cut_x(a, b, x1)),
        (lambda p: p[0] <= x2, lambda a, b: _cut_x(a, b, x2)),
        (lambda p: p[1] >= y1, lambda a, b: _cut_y(a, b, y1)),
        (lambda p: p[1] <= y2, lambda a, b: _cut_y(a, b, y2)),
    )
    for inside, cut in edges:
        if not pts:
            break
        out: list[tuple[float, float]] = []
        prev = pts[-1]
        for cur in pts:
            if inside(cur):
                if not inside(prev):
                    out.append(cut(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cut(prev, cur))
            prev = cur
        pts = out
    return [[x, y] for x, y in pts]


def _cut_x(a: tuple[float, float], b: tuple[float, float], x: float) -> tuple[float, float]:
    t = (x - a[0]) / (b[0] - a[0])
    return (x, a[1] + t * (b[1] - a[1]))


def _cut_y(a: tuple[float, float], b: tuple[float, float], y: float) -> tuple[float, float]:
    t = (y - a[1]) / (b[1] - a[1])
    return (a[0] + t * (b[0] - a[0]), y)


def ring_bounds(rings: Sequence[Sequence[Sequence[float]]]) -> list[float] | None:
    pts = [p for r in rings for p in r]
    if not pts:
        return None
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]


def transform_points(points: Sequence[Sequence[float]], scale: tuple[float, float], shift: tuple[float, float]) -> list[list[float]]:
    """Points scaled then shifted; extra columns (keypoint visibility) kept."""
    return [[p[0] * scale[0] + shift[0], p[1] * scale[1] + shift[1], *p[2:]] for p in points]


def hide_keypoints(keypoints: Sequence[Sequence[float]], rect: Sequence[float], *, inside: bool, hidden: float) -> list[list[float]]:
    """Keypoints with visibility set to `hidden` when they lie inside (or outside) `rect`.

    COCO convention: 0 not labelled (x = y = 0), 1 labelled but hidden, 2 visible.
    """
    out = []
    for kp in keypoints:
        x, y = kp[0], kp[1]
        v = kp[2] if len(kp) > 2 else 2
        within = rect[0] <= x < rect[2] and rect[1] <= y < rect[3]
        if v and within == inside:
            out.append([0.0, 0.0, 0] if hidden == 0 else [float(x), float(y), hidden])
        else:
            out.append([float(x), float(y), v] if len(kp) > 2 else [float(x), float(y)])
    return out


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

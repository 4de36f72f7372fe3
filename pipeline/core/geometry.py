"""Pure geometry on the package's own coordinates: absolute-pixel float ``[x1, y1, x2, y2]`` boxes,
polygons as lists of rings of ``[x, y]``, keypoints ``[x, y, v]``, and masks as uncompressed COCO
run-length encodings. The one home of every geometric rule: formats, stats, crop, check and the
augmentations all call these functions (`object_box` is the box of any object, whatever it holds).

Areas are never negative except where the name says so (`signed_ring_area`).

Masks follow COCO's RLE (``pycocotools/common/maskApi.c``): runs over the pixels in column-major
order (down the first column, then the next), alternating background/foreground, the first count
always background (0 when the first pixel is set). ``{"size": [h, w], "counts": [...]}`` is the
uncompressed form; `rle_string_decode`/`rle_string_encode` read and write COCO's compressed
``counts`` string (6-bit chunks, differential after the third run).

No function here mutates its inputs; every one returns new lists or arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.core.dataset import Obj

Box = list[float]
Ring = list[list[float]]

# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------


def clip_bbox(bbox: Sequence[float], width: float, height: float) -> Box:
    """The box limited to the image ``[0, width] x [0, height]`` (it may become empty).

    A coordinate cut at the far edge is `width` or `height` itself, of its type: the importers
    have always written an int image size there, and datasets compare byte for byte.
    """
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)]


def clip_bbox_to_rect(bbox: Sequence[float], rect: Sequence[float]) -> Box:
    """The box limited to `rect` ``(x1, y1, x2, y2)``: it may become empty (x1 == x2 or y1 == y2),
    never inverted."""
    x1 = min(max(bbox[0], rect[0]), rect[2])
    y1 = min(max(bbox[1], rect[1]), rect[3])
    x2 = min(max(bbox[2], rect[0]), rect[2])
    y2 = min(max(bbox[3], rect[1]), rect[3])
    return [float(x1), float(y1), float(max(x1, x2)), float(max(y1, y2))]


def bbox_area(bbox: Sequence[float]) -> float:
    """Area of a box; 0 for an empty or inverted one."""
    return max(0.0, float(bbox[2]) - float(bbox[0])) * max(0.0, float(bbox[3]) - float(bbox[1]))


def bbox_minus_rect(bbox: Sequence[float], rect: Sequence[float]) -> tuple[Box, float]:
    """The bounding box of `bbox` with `rect` cut out, and the fraction of `bbox`'s area left visible.

    The bounding box shrinks only when the cut spans the whole box along one axis (the visible
    part is then a rectangle); otherwise it stays the original box.
    """
    area = bbox_area(bbox)
    inter = clip_bbox_to_rect(bbox, rect)
    cut = bbox_area(inter)
    if area <= 0:
        return list(map(float, bbox)), 0.0
    visible = max(0.0, 1.0 - cut / area)
    x1, y1, x2, y2 = map(float, bbox)
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


def bbox_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes (0 when both are empty)."""
    inter = bbox_area([max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])])
    union = bbox_area(a) + bbox_area(b) - inter
    return inter / union if union > 0 else 0.0


def bbox_union(a: Sequence[float] | None, b: Sequence[float] | None) -> Box | None:
    """The smallest box holding both (either may be None)."""
    if a is None:
        return None if b is None else [float(v) for v in b]
    if b is None:
        return [float(v) for v in a]
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


# --------------------------------------------------------------------------------------------
# Polygons
# --------------------------------------------------------------------------------------------


def polygon_bbox(rings: Sequence[Sequence[Sequence[float]]]) -> Box | None:
    """Bounding box of every vertex of every ring; None when there are no vertices."""
    xs = [float(p[0]) for ring in rings for p in ring]
    ys = [float(p[1]) for ring in rings for p in ring]
    if not xs:
        return None
    return [min(xs), min(ys), max(xs), max(ys)]


def signed_ring_area(ring: Sequence[Sequence[float]]) -> float:
    """Signed shoelace area of one ring (positive when counter-clockwise with y up)."""
    n = len(ring)
    if n < 3:
        return 0.0
    s = 0.0
    for i in range(n):
        x1, y1 = ring[i][0], ring[i][1]
        x2, y2 = ring[(i + 1) % n][0], ring[(i + 1) % n][1]
        s += x1 * y2 - x2 * y1
    return s / 2.0


def polygon_area(polygon: Sequence) -> float:
    """Area of one ring ``[[x, y], ...]`` or of an instance's rings (COCO's convention: the parts add up)."""
    if not polygon:
        return 0.0
    first = polygon[0]
    if first and isinstance(first[0], (int, float)):  # a single ring
        return abs(signed_ring_area(polygon))
    return sum(abs(signed_ring_area(r)) for r in polygon)


def ring_area(ring: Sequence[Sequence[float]]) -> float:
    """Absolute shoelace area of one ring (numpy; the augmentations' visibility rule uses it)."""
    if len(ring) < 3:
        return 0.0
    pts = np.asarray(ring, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def clip_ring(ring: Sequence[Sequence[float]], rect: Sequence[float]) -> Ring:
    """Sutherland-Hodgman clipping of a ring to an axis-aligned rectangle ``(x1, y1, x2, y2)``."""
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


CIRCLE_TOLERANCE = 0.25  # default largest distance (px) between a circle and its polygon


def circle_vertices(r: float, tolerance: float = CIRCLE_TOLERANCE) -> int:
    """Vertices a polygon needs to stay within `tolerance` px of a circle of radius `r`: a multiple
    of 4 (the extremes stay exact), 16..1024. The sagitta ``r (1 - cos(pi / n))`` must not exceed
    the tolerance."""
    need = math.pi / math.acos(max(-1.0, 1.0 - tolerance / r)) if 0 < tolerance < r else 4
    return min(1024, max(16, 4 * math.ceil(need / 4)))


def circle_to_polygon(cx: float, cy: float, r: float, n: int | None = None,
                      tolerance: float = CIRCLE_TOLERANCE) -> Ring:
    """Vertices on the circle, the first at angle 0 (to the right), in increasing angle; without
    `n`, `circle_vertices` of them."""
    if n is None:
        n = circle_vertices(r, tolerance)
    if n < 3:
        raise ValueError(f"a circle needs at least 3 vertices, got {n}")
    return [[cx + r * math.cos(2 * math.pi * k / n), cy + r * math.sin(2 * math.pi * k / n)] for k in range(n)]


def flat_to_ring(flat: Sequence[float]) -> Ring:
    """COCO's ``[x1, y1, x2, y2, ...]`` as ``[[x1, y1], [x2, y2], ...]``."""
    return [[float(flat[i]), float(flat[i + 1])] for i in range(0, len(flat) - 1, 2)]


def ring_to_flat(ring: Sequence[Sequence[float]]) -> list[float]:
    """``[[x, y], ...]`` as COCO's flat ``[x1, y1, x2, y2, ...]``."""
    return [float(v) for p in ring for v in (p[0], p[1])]


def polygon_to_mask(rings: Sequence[Sequence[Sequence[float]]], width: int, height: int) -> np.ndarray:
    """Rasterise the rings into a bool ``(height, width)`` array: a pixel is set when its centre lies
    inside a ring (even-odd rule within a ring; the rings of an instance are OR-ed, as COCO merges them).
    """
    h, w = int(height), int(width)
    out = np.zeros((h, w), dtype=bool)
    centres = np.arange(h, dtype=np.float64) + 0.5
    for ring in rings:
        if len(ring) < 3:
            continue
        pts = np.asarray([[float(p[0]), float(p[1])] for p in ring], dtype=np.float64)
        x0, y0 = pts[:, 0], pts[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        yc = centres[:, None]
        crosses = ((y0 <= yc) & (yc < y1)) | ((y1 <= yc) & (yc < y0))  # (rows, edges)
        dy = np.where(y1 == y0, 1.0, y1 - y0)
        xs = x0 + (yc - y0) * (x1 - x0) / dy
        layer = np.zeros((h, w), dtype=bool)
        for row in np.flatnonzero(crosses.any(axis=1)):
            hits = np.sort(xs[row][crosses[row]])
            for xa, xb in zip(hits[0::2], hits[1::2], strict=False):
                c1 = max(0, math.ceil(xa - 0.5))
                c2 = min(w, math.ceil(xb - 0.5))
                if c2 > c1:
                    layer[row, c1:c2] ^= True
        out |= layer
    return out


# --------------------------------------------------------------------------------------------
# Points and keypoints
# --------------------------------------------------------------------------------------------


def transform_points(points: Sequence[Sequence[float]], scale: tuple[float, float],
                     shift: tuple[float, float]) -> list[list[float]]:
    """Points scaled then shifted; extra columns (keypoint visibility) kept."""
    return [[p[0] * scale[0] + shift[0], p[1] * scale[1] + shift[1], *p[2:]] for p in points]


def hide_keypoints(keypoints: Sequence[Sequence[float]], rect: Sequence[float], *, inside: bool,
                   hidden: float) -> list[list[float]]:
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
# Objects
# --------------------------------------------------------------------------------------------

BOX_SOURCES = ("bbox", "polygon", "mask", "keypoints", "polyline")  # object_box's priority


def object_box_source(obj: Obj, *, points: bool = True, min_ring: int = 1) -> tuple[Box | None, str | None]:
    """The box of an object and the field it comes from (one of `BOX_SOURCES`); ``(None, None)``
    when no field gives one. The first field, in this order, that gives a box wins:

    1. ``bbox``: the object's own box, as floats;
    2. ``polygon``: the bounds of every vertex of its rings, rings of fewer than `min_ring`
       vertices left out (COCO passes 3: it writes no shorter ring, and its box matches what it writes);
    3. ``mask``: the bounds of its set pixels (an empty mask gives none);
    4. ``keypoints``: the bounds of its labelled keypoints (``v > 0``, or no ``v``); COCO's
       unlabelled ``v = 0`` points have no position;
    5. ``polyline``: the bounds of its points.

    Without `points`, only the fields with an area count (1-3): crop, and formats whose boxes stand
    for an area. Duck-typed: any object with these five attributes will do.
    """
    if obj.bbox is not None:
        return [float(v) for v in obj.bbox], "bbox"
    if obj.polygon:
        rings = obj.polygon if min_ring <= 1 else [r for r in obj.polygon if len(r) >= min_ring]
        box = polygon_bbox(rings)
        if box is not None:
            return box, "polygon"
    if obj.mask is not None:
        box = rle_bbox(obj.mask)
        if box is not None:
            return box, "mask"
    if points:
        if obj.keypoints:
            box = polygon_bbox([[k for k in obj.keypoints if len(k) < 3 or k[2] > 0]])
            if box is not None:
                return box, "keypoints"
        if obj.polyline:
            box = polygon_bbox([obj.polyline])
            if box is not None:
                return box, "polyline"
    return None, None


def object_box(obj: Obj, *, points: bool = True, min_ring: int = 1) -> Box | None:
    """The box of an object by `object_box_source`'s priority: bbox, polygon, mask, then (with
    `points`) labelled keypoints and polyline; None when it has none."""
    return object_box_source(obj, points=points, min_ring=min_ring)[0]


# --------------------------------------------------------------------------------------------
# Run-length encoded masks (COCO)
# --------------------------------------------------------------------------------------------


def mask_bbox(mask: np.ndarray) -> Box | None:
    """Tight box ``[x1, y1, x2, y2]`` around the set pixels of a bool array (pixel edges); None when empty."""
    m = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def rle_encode(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a bool ``(h, w)`` array."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {m.shape}")
    h, w = int(m.shape[0]), int(m.shape[1])
    flat = m.astype(bool).ravel(order="F")
    if flat.size == 0:
        return {"size": [h, w], "counts": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"size": [h, w], "counts": [int(c) for c in counts]}


def _counts(rle: dict) -> list[int]:
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        return rle_string_decode(counts)
    return [int(c) for c in counts]


def rle_decode(rle: dict) -> np.ndarray:
    """Bool ``(h, w)`` array of an RLE (uncompressed counts, or COCO's compressed string)."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(_counts(rle), dtype=np.int64)
    if counts.size and counts.min() < 0:
        raise ValueError("RLE counts must not be negative")
    if int(counts.sum()) != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {h}x{w} = {h * w}")
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    return np.repeat(values, counts).reshape((h, w), order="F")


def rle_area(rle: dict) -> int:
    """Number of set pixels."""
    return int(sum(_counts(rle)[1::2]))


def rle_bbox(rle: dict) -> Box | None:
    """Tight box ``[x1, y1, x2, y2]`` around the set pixels (pixel edges); None when empty.

    Computed from the runs, without decoding the mask.
    """
    h, _w = (int(v) for v in rle["size"])
    counts = _counts(rle)
    x1 = y1 = math.inf
    x2 = y2 = -math.inf
    pos = 0
    for i, c in enumerate(counts):
        if i % 2 == 1 and c > 0:
            first, last = pos, pos + c - 1
            c1, c2 = divmod(first, h)[0], divmod(last, h)[0]
            r1, r2 = first % h, last % h
            x1, x2 = min(x1, c1), max(x2, c2)
            if c1 == c2:
                y1, y2 = min(y1, r1), max(y2, r2)
            else:  # the run wraps into the next column: its rows reach the bottom and the top
                y1, y2 = 0, h - 1
        pos += c
    if x1 == math.inf:
        return None
    return [float(x1), float(y1), float(x2 + 1), float(y2 + 1)]


def rle_string_decode(counts: str | bytes) -> list[int]:
    """COCO's compressed RLE string (``maskApi.c: rleFrString``) as a list of run lengths."""
    s = counts.decode("ascii") if isinstance(counts, bytes) else counts
    out: list[int] = []
    p = 0
    n = len(s)
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                raise ValueError("truncated RLE string")
            c = ord(s[p]) - 48
            if c < 0 or c > 63:
                raise ValueError(f"invalid character {s[p]!r} in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def rle_string_encode(counts: Sequence[int]) -> str:
    """Run lengths as COCO's compressed RLE string (``maskApi.c: rleToString``)."""
    chars: list[str] = []
    for i, c in enumerate(counts):
        x = int(c)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = not ((ch & 0x10) == 0 and x == 0 or (ch & 0x10) != 0 and x == -1)
            if more:
                ch |= 0x20
            chars.append(chr(ch + 48))
    return "".join(chars)

"""labelme JSON (wkentaro/labelme), every version from the unversioned 2017 files to 5.x.

One JSON file per image::

    {"version": "5.7.0", "flags": {"cat": true}, "imagePath": "0001.jpg", "imageData": null,
     "imageHeight": 480, "imageWidth": 640,
     "shapes": [{"label": "dog", "points": [[x, y], ...], "group_id": null, "shape_type": "polygon",
                 "flags": {}, "description": "", "mask": null}]}

labelme's points are absolute pixel coordinates in the image as labelme shows it (EXIF orientation
applied), the image spanning ``[0, width] x [0, height]`` -- the package's own convention, so points
are taken as they are. Shapes become objects:

- ``rectangle``: two opposite corners, in any order -> ``bbox``.
- ``polygon`` (and legacy shapes without ``shape_type``) -> ``polygon`` + its ``bbox``.
- ``circle``: centre and a point on the rim -> a ``polygon`` with enough vertices to stay within a
  quarter pixel of the circle, plus the circle's exact ``bbox``.
- ``oriented_rectangle`` (and X-AnyLabeling's ``rotation``): four corners -> ``polygon`` + ``bbox``.
- ``line`` / ``linestrip`` -> ``polyline`` (no box: a line has no area).
- ``point`` -> ``keypoints`` (never a fake polygon).
- ``mask``: a base64 PNG covering the rows/columns ``int(y1)..int(y2)``, ``int(x1)..int(x2)`` of its
  two points (as labelme's ``shapes_to_label``) -> a full-image RLE ``mask`` + the mask's tight ``bbox``.

Shapes with the same ``label`` and ``group_id`` are one instance: their geometries merge into one
object (polygon rings, union box, keypoints, OR-ed masks). Per-shape ``flags`` and ``description``
are kept in the object's attributes. Image-level ``flags`` are classification labels: one true flag
becomes the sample's ``label``; several true flags become a ``soft_label`` with equal weights; flag
names wrapped in double underscores (labelme's ``__ignore__``) are never classes. All flags are
kept in ``meta["flags"]`` so an export writes them back.

``imagePath`` is resolved relative to the JSON file (Windows backslashes accepted) and must stay
inside the import folder; an absolute path from another machine, or a wrong relative one, is looked
up by file name (``formats.common.ImageFinder``). When that finds no image (or the JSON itself, as
in labelme's tutorial), the embedded ``imageData`` is used; ``imageData`` longer than
`MAX_IMAGE_DATA` characters is refused. labelme labels the EXIF-rotated (upright) frame; the
declared ``imageWidth``/``imageHeight`` settle the frame per image (``formats.common.decide_frame``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.dataset import Dataset, Obj, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.geometry import bbox_union, circle_to_polygon, rle_bbox, rle_decode, rle_encode
from pipeline.core.images import sniff
from pipeline.core.limits import (
    MAX_ANNOTATION_JSON_BYTES,
    MAX_EMBEDDED_IMAGE_CHARS,
    MAX_OBJECTS,
    MAX_POINTS,
    check_count,
    load_json,
)
from pipeline.core.numbers import is_number, is_real
from pipeline.core.paths import SafeFiles, read_fd, sha256_bytes
from pipeline.formats.base import Detection, ExportReport, ImportContext, relative_files
from pipeline.formats.common import (
    ExportNames,
    ImageFinder,
    ImageProbe,
    Labels,
    add_image_sample,
    decide_frame,
    hint_name,
    layout_free_id,
    probe_bytes,
    walk_files,
)
from pipeline.formats.splits import split_from_path

NAME = "labelme"
LOOKS_FOR = 'JSON file with "shapes" (labelme)'
TASK = "detection"

# "rotation" is X-AnyLabeling's rotated box in the same files: four corners, read as oriented_rectangle.
SHAPE_TYPES = ("rectangle", "polygon", "circle", "line", "linestrip", "point", "mask", "oriented_rectangle",
               "rotation")
MAX_IMAGE_DATA = MAX_EMBEDDED_IMAGE_CHARS  # characters of base64 (about 48 MB of image); larger ones are refused
_MAX_JSON_EXTRA = MAX_ANNOTATION_JSON_BYTES  # a file may hold this much beside imageData before it is refused unread
EDGE_TOLERANCE = 1.0  # pixels a point may lie outside the image before --on-invalid applies


# --------------------------------------------------------------------------------------------
# Parsing (pure: a decoded JSON document in, validated shapes out)
# --------------------------------------------------------------------------------------------


@dataclass
class Shape:
    """One validated labelme shape, coordinates as written in the file."""

    index: int
    label: str
    kind: str
    points: list[list[float]]
    group_id: Any = None
    flags: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    mask_b64: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys labelme does not define, kept as attributes


# Shape keys labelme defines (and the colours of files before 4.0); any other key is kept.
SHAPE_KEYS = frozenset({"label", "points", "group_id", "description", "shape_type", "flags", "mask",
                        "line_color", "fill_color"})
# Attributes this module writes into labelme's own fields rather than as extra keys.
_OWN_ATTRIBUTES = frozenset({"group_id", "flags", "description", "shape_type", "circle"})



@dataclass
class LabelmeFile:
    """The parts of a labelme JSON document the importer uses."""

    shapes: list[Shape]
    flags: dict[str, bool]
    image_path: str | None
    image_data: str | None
    width: int | None
    height: int | None
    version: str | None


_NUMBER = (int, float)


def parse_document(data: object, where: str, *, max_image_data: int = MAX_IMAGE_DATA) -> LabelmeFile:
    """Validate a decoded labelme document; errors name the file and the field (``shapes[2].points[1]``)."""
    if not isinstance(data, dict):
        raise DataError(where, "not a labelme file", expected="a JSON object", got=type(data).__name__, fix=FILE_FIX)
    shapes_raw = data.get("shapes")
    if shapes_raw is None:
        shapes_raw = []
    if not isinstance(shapes_raw, list):
        raise DataError(where, "", field="shapes", expected="a list of shapes", got=type(shapes_raw).__name__,
                        fix=FIX)
    check_count(len(shapes_raw), MAX_OBJECTS, where, "shapes", field="shapes")
    shapes = [_parse_shape(s, i, where) for i, s in enumerate(shapes_raw)]

    flags_raw = data.get("flags") or {}
    if not isinstance(flags_raw, dict):
        raise DataError(where, "", field="flags", expected="an object of name: true/false", got=flags_raw, fix=FILE_FIX)
    flags: dict[str, bool] = {}
    for name, value in flags_raw.items():
        if not isinstance(value, bool):
            raise DataError(where, "", field=f"flags.{name}", expected="true or false", got=value, fix=FILE_FIX)
        flags[str(name)] = value

    image_path = data.get("imagePath")
    if image_path is not None and not isinstance(image_path, str):
        raise DataError(where, "", field="imagePath", expected="a path string", got=image_path, fix=FILE_FIX)
    image_data = data.get("imageData")
    if image_data is not None and not isinstance(image_data, str):
        raise DataError(where, "", field="imageData", expected="base64 text or null", got=type(image_data).__name__, fix=FILE_FIX)
    if image_data is not None and len(image_data) > max_image_data:
        raise DataError(
            where, "embedded image too large", field="imageData",
            expected=f"at most {max_image_data} characters of base64", got=f"{len(image_data)} characters",
            fix="save the image beside the JSON and set imageData to null (labelme: File > Save With Image Data off)",
        )
    size: dict[str, int | None] = {}
    for key in ("imageWidth", "imageHeight"):
        value = data.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            if isinstance(value, float) and value.is_integer() and value > 0:
                value = int(value)
            else:
                raise DataError(where, "", field=key, expected="a positive integer", got=value, fix=FILE_FIX)
        size[key] = value
    version = data.get("version")
    return LabelmeFile(
        shapes=shapes, flags=flags, image_path=image_path or None, image_data=image_data or None,
        width=size["imageWidth"], height=size["imageHeight"], version=str(version) if version is not None else None,
    )


FIX = "fix or delete the shape in labelme"
FILE_FIX = "fix the file in labelme (or the JSON), or move it out of the import folder"

# A polygon needs 3 points to enclose an area (labelme itself refuses fewer when drawing).
_MIN_POINTS = {"rectangle": 2, "polygon": 3, "circle": 2, "line": 2, "linestrip": 2, "point": 1, "mask": 2,
               "oriented_rectangle": 4, "rotation": 4}


def _parse_shape(s: object, i: int, where: str) -> Shape:
    # Field names ("shapes[3].points[1]") are formatted only for an error: this runs once per shape
    # of every file.
    if type(s) is not dict and not isinstance(s, dict):
        raise DataError(where, "", field=f"shapes[{i}]", expected="an object", got=type(s).__name__, fix=FIX)
    label = s.get("label")
    if type(label) is not str or not label.strip():
        raise DataError(where, "", field=f"shapes[{i}].label", expected="a non-empty class name", got=label, fix=FIX)
    kind = s.get("shape_type") or "polygon"  # files before labelme 3 have no shape_type: polygons
    need = _MIN_POINTS.get(kind) if type(kind) is str else None
    if need is None:
        raise DataError(where, "unknown shape type", field=f"shapes[{i}].shape_type", expected=" | ".join(SHAPE_TYPES),
                        got=kind, fix="convert the shape in labelme, or remove it")
    points = s.get("points")
    if type(points) is not list:
        raise DataError(where, "", field=f"shapes[{i}].points", expected="a list of [x, y]", got=points, fix=FIX)
    if len(points) > MAX_POINTS:
        check_count(len(points), MAX_POINTS, where, "points", field=f"shapes[{i}].points")
    clean: list[list[float]] = []
    add = clean.append
    number = _NUMBER
    for p in points:
        # The usual [x, y] of ints/floats (bool is excluded: type(True) is bool): the `is_number`
        # rule inlined, as this loop runs for every point of every file.
        if type(p) is list and len(p) == 2:
            x, y = p
            if type(x) in number and type(y) in number:
                x, y = float(x), float(y)
                if x - x == 0.0 and y - y == 0.0:  # finite: inf - inf and nan - nan are nan
                    add([x, y])
                    continue
        clean = _checked_points(points, i, where)  # anything else: every point checked, the first bad one named
        break
    if len(clean) < need:
        raise DataError(where, f"a {kind} needs at least {need} points", field=f"shapes[{i}].points",
                        expected=f">= {need} points", got=len(clean), fix=FIX)
    flags = s.get("flags") or {}
    if not isinstance(flags, dict):
        raise DataError(where, "", field=f"shapes[{i}].flags", expected="an object", got=flags, fix=FIX)
    description = s.get("description") or ""
    if not isinstance(description, str):
        raise DataError(where, "", field=f"shapes[{i}].description", expected="text", got=description, fix=FIX)
    mask_b64 = s.get("mask")
    if kind == "mask":
        if not isinstance(mask_b64, str) or not mask_b64:
            raise DataError(where, "", field=f"shapes[{i}].mask", expected="a base64 PNG", got=mask_b64, fix=FIX)
    else:
        mask_b64 = None
    group_id = s.get("group_id")
    if group_id is not None and not isinstance(group_id, (int, str)):
        raise DataError(where, "", field=f"shapes[{i}].group_id", expected="an integer or null", got=group_id, fix=FIX)
    extra = {} if SHAPE_KEYS.issuperset(s) else {k: v for k, v in s.items() if k not in SHAPE_KEYS}
    return Shape(i, label, kind, clean, group_id, dict(flags), description, mask_b64, extra)


def _checked_points(points: list, i: int, where: str) -> list[list[float]]:
    """Every point of shape `i` as [x, y] floats; the first that is not two finite numbers is a
    `DataError` naming it (``shapes[i].points[j]``)."""
    clean: list[list[float]] = []
    for j, p in enumerate(points):
        if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(is_real(v) for v in p)):
            raise DataError(where, "", field=f"shapes[{i}].points[{j}]", expected="[x, y] numbers", got=p, fix=FIX)
        if not (is_number(p[0]) and is_number(p[1])):
            raise DataError(where, "", field=f"shapes[{i}].points[{j}]", expected="finite numbers", got=p,
                            fix="fix or delete the shape in labelme")
        clean.append([float(p[0]), float(p[1])])
    return clean


# --------------------------------------------------------------------------------------------
# Shapes -> objects
# --------------------------------------------------------------------------------------------


def _bbox_of(points: list[list[float]]) -> list[float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return [min(xs), min(ys), max(xs), max(ys)]


def decode_mask(shape: Shape, width: int, height: int, where: str) -> np.ndarray:
    """A labelme mask shape as a full-image boolean array (labelme's ``shapes_to_label`` placement)."""
    from pipeline.core.images import open_image_bytes

    fld = f"shapes[{shape.index}].mask"
    try:
        raw = base64.b64decode(shape.mask_b64 or "", validate=False)
    except (binascii.Error, ValueError) as exc:
        raise DataError(where, f"not base64 ({exc})", field=fld, fix=FIX) from exc
    img = open_image_bytes(raw, f"{where}: {fld}")
    part = np.asarray(img.convert("L")) > 0
    (x1, y1), (x2, y2) = shape.points[0], shape.points[1]
    x0, y0 = int(min(x1, x2)), int(min(y1, y2))
    full = np.zeros((height, width), dtype=bool)
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(height, y0 + part.shape[0]), min(width, x0 + part.shape[1])
    if ye > ys and xe > xs:
        full[ys:ye, xs:xe] = part[ys - y0 : ye - y0, xs - x0 : xe - x0]
    return full


class _Outside(Exception):
    """A shape whose points lie outside the image by more than the tolerance."""

    def __init__(self, field: str, point: list[float]) -> None:
        super().__init__(field)
        self.field = field
        self.point = point


def _fit_points(shape: Shape, width: int, height: int, on_invalid: str) -> list[list[float]] | None:
    """Points clamped to the image. Beyond `EDGE_TOLERANCE`: error (raise), clip, or skip (None)."""
    xs = [p[0] for p in shape.points]
    ys = [p[1] for p in shape.points]
    if min(xs) >= 0.0 and min(ys) >= 0.0 and max(xs) <= width and max(ys) <= height:
        return shape.points  # inside already (the usual case)
    out = []
    for j, (x, y) in enumerate(shape.points):
        far = x < -EDGE_TOLERANCE or y < -EDGE_TOLERANCE or x > width + EDGE_TOLERANCE or y > height + EDGE_TOLERANCE
        if far and shape.kind != "circle":
            if on_invalid == "error":
                raise _Outside(f"shapes[{shape.index}].points[{j}]", [x, y])
            if on_invalid == "skip":
                return None
        out.append([min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))])
    return out


def shapes_to_objects(
    shapes: list[Shape],
    width: int,
    height: int,
    *,
    where: str,
    label: Callable[[str, str], str] = lambda name, fld: name,
    on_invalid: str = "error",
    counts: dict[str, int] | None = None,
    known: dict[str, str] | None = None,
) -> list[Obj]:
    """Convert validated shapes into objects for an image of `width` x `height`.

    `label(name, field)` maps and checks a class name; `known` (optional): names `label` checked
    already and their class names, looked up first. Shapes sharing ``label`` and ``group_id`` are
    merged into one object. `counts` (optional) receives what was converted or skipped.
    """
    counts = counts if counts is not None else {}
    known = known if known is not None else {}

    def bump(key: str, n: int = 1) -> None:
        counts[key] = counts.get(key, 0) + n

    groups: dict[tuple, dict[str, Any]] = {}
    order: list[tuple | Obj] = []  # group keys, or finished objects of plain shapes
    kinds: dict[str, int] = {}
    for shape in shapes:
        name = known.get(shape.label)
        if name is None:
            name = label(shape.label, f"shapes[{shape.index}].label")
        pts = shape.points
        # The box of the points, and whether they lie inside the image (`_fit_points`' test, which
        # then keeps them as they are): one pass over the points for both.
        if len(pts) == 2:  # rectangles, circles, lines: min/max of two without building lists
            (ax, ay), (bx, by) = pts
            box = [bx if bx < ax else ax, by if by < ay else ay, bx if bx > ax else ax, by if by > ay else ay]
        else:
            box = _bbox_of(pts)
        if not (box[0] >= 0.0 and box[1] >= 0.0 and box[2] <= width and box[3] <= height):
            try:
                pts = _fit_points(shape, width, height, on_invalid)
            except _Outside as out:
                raise DataError(
                    where, "point outside the image", field=out.field,
                    expected=f"x in [0, {width}] and y in [0, {height}]", got=out.point,
                    fix="fix the shape in labelme, or import with --on-invalid clip|skip",
                ) from None
            if pts is None:
                bump("shapes outside the image (skipped)")
                continue
            box = _bbox_of(pts)
        kind = shape.kind
        if (shape.group_id is None and kind in ("rectangle", "polygon")
                and not (shape.flags or shape.extra or shape.description)):
            # The common case, one plain shape per object: no group bookkeeping.
            order.append(Obj(label=name, bbox=box) if kind == "rectangle" else Obj(label=name, bbox=box,
                                                                                   polygon=[pts]))
            kinds[kind] = kinds.get(kind, 0) + 1
            continue
        key = (name, "group", shape.group_id) if shape.group_id is not None else (name, "shape", shape.index)
        g = groups.get(key)
        if g is None:
            g = {"label": name, "bbox": None, "rect": None, "rings": [], "kps": [], "lines": [], "mask": None,
                 "kinds": [], "flags": {}, "descriptions": [], "circle": None, "extra": {}}
            groups[key] = g
            order.append(key)
        g["kinds"].append(kind)
        if shape.flags:
            g["flags"].update(shape.flags)
        if shape.extra:
            g["extra"].update(shape.extra)
        if shape.description and shape.description not in g["descriptions"]:
            g["descriptions"].append(shape.description)
        if kind == "rectangle":
            g["rect"] = bbox_union(g["rect"], box)
        elif kind in ("polygon", "oriented_rectangle", "rotation"):
            g["rings"].append(pts)
            g["bbox"] = bbox_union(g["bbox"], box)
        elif kind == "circle":
            (cx, cy), (px, py) = shape.points[0], shape.points[1]
            r = math.hypot(px - cx, py - cy)
            ring = [[min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height))]
                    for x, y in circle_to_polygon(cx, cy, r)]
            g["rings"].append(ring)
            box = [max(0.0, cx - r), max(0.0, cy - r), min(float(width), cx + r), min(float(height), cy + r)]
            g["bbox"] = bbox_union(g["bbox"], box)
            g["circle"] = [cx, cy, r]
            bump("circles -> polygons")
        elif kind in ("line", "linestrip"):
            g["lines"].append(pts)
        elif kind == "point":
            g["kps"].append([pts[0][0], pts[0][1], 2])
        elif kind == "mask":
            m = decode_mask(shape, width, height, where)
            g["mask"] = m if g["mask"] is None else (g["mask"] | m)
            box = rle_bbox(rle_encode(m))
            if box is None:
                bump("empty masks (box from the shape's points)")
                box = _bbox_of(pts)  # (the points as fitted)
            g["bbox"] = bbox_union(g["bbox"], box)

    objects: list[Obj] = []
    for key in order:
        if isinstance(key, Obj):
            objects.append(key)
            continue
        g = groups[key]
        attrs: dict[str, Any] = dict(g["extra"])
        if key[1] == "group":
            attrs["group_id"] = key[2]
        if g["flags"]:
            attrs["flags"] = g["flags"]
        if g["descriptions"]:
            attrs["description"] = "\n".join(g["descriptions"])
        group_kinds = set(g["kinds"])
        for special in ("circle", "oriented_rectangle", "rotation", "line", "mask"):
            if special in group_kinds:
                attrs.setdefault("shape_type", special)
        if g["circle"] is not None and group_kinds == {"circle"}:
            attrs["circle"] = g["circle"]
        lines = g["lines"]
        obj = Obj(label=g["label"], attributes=attrs)
        obj.bbox = bbox_union(g["bbox"], g["rect"])
        if g["rings"]:
            obj.polygon = g["rings"]
        if g["kps"]:
            obj.keypoints = g["kps"]
        if g["mask"] is not None:
            obj.mask = rle_encode(g["mask"])
        if lines:
            obj.polyline = lines[0]
            objects.append(obj)
            for extra in lines[1:]:  # an object holds one open line; more in one group become their own objects
                more = Obj(label=g["label"], polyline=extra, attributes=dict(attrs))
                objects.append(more)
                bump("lines in one group kept as separate objects")
        else:
            objects.append(obj)
        for kind in g["kinds"]:
            kinds[kind] = kinds.get(kind, 0) + 1
    for kind, n in kinds.items():
        bump(f"shapes: {kind}", n)
    return objects


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _candidates(root: Path, files: SafeFiles | None = None) -> list[str]:
    if root.is_file():
        return [os.path.abspath(root)] if root.suffix.lower() == ".json" else []
    return walk_files(root, (".json",), files)


def _looks_like_labelme(head: bytes) -> bool:
    return b'"shapes"' in head and (b'"imagePath"' in head or b'"imageData"' in head or b'"points"' in head)


def detect(root: Path) -> Detection | None:
    root = Path(root)
    if not root.exists():
        return None
    files = _candidates(root)
    if not files:
        return None
    found: list[str] = []
    checked = 0
    for path in files[:50]:
        checked += 1
        try:
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
        except OSError:
            continue
        if _looks_like_labelme(head):
            found.append(path)
    hits = len(found)
    if hits == 0:
        return None
    total = len(files)
    return Detection(score=40 + 10 * hits / checked,
                     description=f"labelme JSON ({hits} of the first {checked} of {total} JSON files have shapes)",
                     files=relative_files(root, [str(f) for f in found]))


def count(root: Path, paths: list[Path]) -> dict[str, int]:
    """A cheap count for `pipeline detect`: images, shapes and classes in `paths` (the files `detect` recognised)."""
    objects = 0
    classes: set[str] = set()
    for path in paths:
        shapes = json.loads(path.read_bytes()).get("shapes") or []
        objects += len(shapes)
        classes |= {str(s.get("label")) for s in shapes if isinstance(s, dict)}
    return {"images": len(paths), "shapes": objects, "classes": len(classes)}  # (grouped shapes make one object)


def _read_json(path: str | os.PathLike, where: str, max_image_data: int) -> tuple[bytes, object]:
    limit = max_image_data + _MAX_JSON_EXTRA
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size > limit:
                raise DataError(where, "file too large for a labelme annotation", expected=f"at most "
                                f"{limit // 2**20} MiB", got=f"{size / 2**20:.0f} MiB",
                                fix="save the image beside the JSON and set imageData to null")
            raw = read_fd(fd, size)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DataError(where, f"unreadable ({exc.strerror})", fix="check the file's permissions") from exc
    return raw, load_json(raw, where, limit=limit, fix="re-save the file in labelme, or repair it")


@functools.lru_cache(maxsize=1024)
def _normpath(folder: str) -> str:
    return os.path.normpath(folder)


def resolve_image_path(image_path: str, json_path: str | os.PathLike, root: str | os.PathLike,
                       where: str, files: SafeFiles | None = None) -> str | None:
    """The file a relative `imagePath` names (relative to the JSON file), or None when absent.

    Only a regular file inside `root` is returned (`files`, default: the rule for `root`): a link
    out of it or a FIFO is None, reported through `files`. Backslashes (labelme on Windows) are
    path separators. A relative path that leaves `root` is a
    `DataError` naming the file and field; an absolute path (written on another machine) is never
    opened as it is (None: the caller looks its file name up instead).
    """
    text = image_path.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    # Both paths are absolute already when they come from `read` (abspath is a no-op then).
    folder = os.path.dirname(json_path)
    if "/" not in text and text not in (".", "..") and folder and os.sep == "/":
        folder = _normpath(folder)  # a file name beside the JSON: its folder normalized once
        joined = folder + text if folder.endswith("/") else folder + "/" + text
    else:
        joined = os.path.normpath(os.path.join(folder, text))
    root_abs = str(root)
    if not os.path.isabs(joined) or not os.path.isabs(root_abs):
        joined, root_abs = os.path.abspath(joined), os.path.abspath(root_abs)
    if not (joined == root_abs or joined.startswith(root_abs.rstrip(os.sep) + os.sep)):
        raise DataError(
            where, "points outside the import folder", field="imagePath", expected=f"a path inside {root_abs}",
            got=image_path, fix="import a folder that holds both the JSON files and the images",
        )
    return joined if (files if files is not None else SafeFiles([root_abs])).is_file(joined) else None


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    files = _candidates(root, ctx.files)
    if not files:
        raise UsageError(f"{root}: no .json files found", fix="point at a folder of labelme JSON files")
    base = os.path.abspath(root if root.is_dir() else root.parent)
    finder = ImageFinder(base, ctx.files, images=ctx.options.images)
    labels = Labels(ctx)
    max_image_data = int(ctx.options.extra.get("max_image_data", MAX_IMAGE_DATA))
    state = {"shapes": 0, "flag_only": 0}
    ctx.default_fix = FILE_FIX
    for path in ctx.progress(files, total=len(files), desc="import labelme", unit="file"):
        where = (path[len(base) + 1:] if path.startswith(base + os.sep) else os.path.relpath(path, base))
        where = where.replace(os.sep, "/")
        try:
            raw, doc = _read_json(path, where, max_image_data)
            if not isinstance(doc, dict) or "shapes" not in doc:
                ctx.skip("JSON files that are not labelme annotations (no 'shapes')")
                continue
            ctx.inputs[where] = sha256_bytes(raw)
            parsed = parse_document(doc, where, max_image_data=max_image_data)
            _import_one(ctx, path, base, where, parsed, labels, finder)
            if parsed.shapes:
                state["shapes"] += 1
            elif any(v for k, v in parsed.flags.items() if not _reserved(k)):
                state["flag_only"] += 1
        except DataError as err:
            ctx.bad(err)
    if state["shapes"] == 0 and state["flag_only"] > 0:
        ctx.writer.task = "classification"  # flags only (labelme's classification mode)


def _reserved(flag: str) -> bool:
    return flag.startswith("__") and flag.endswith("__")


def _image_label(flags: dict[str, bool], ctx: ImportContext, where: str,
                 labels: Labels) -> tuple[str | None, dict | None]:
    if not flags:
        return None, None
    on = [name for name, value in flags.items() if value and not _reserved(name)]
    names = list(dict.fromkeys(labels(name, where, f"flags.{name}") for name in on))
    if not names:
        return None, None
    if len(names) == 1:
        return names[0], None
    ctx.report.counts["images with several true flags (soft label, equal weights)"] += 1
    return None, {name: 1.0 / len(names) for name in names}


def _probe_file(path: str, where: str) -> ImageProbe | None:
    """The image at `path` probed, or None when the file is not an image (e.g. the JSON itself)."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            blob = read_fd(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
    except OSError as exc:
        raise DataError(where, f"image {path}: {exc.strerror}", field="imagePath", fix="check that the image is readable") from exc
    if sniff(blob[:16]) is None and not path.lower().endswith((".webp", ".pbm")):
        return None
    try:
        return probe_bytes(blob, "imagePath", path)
    except DataError as err:
        raise DataError(where, f"image {posixpath.basename(path)}: {err.message.split(': ', 1)[-1]}",
                        field="imagePath", fix=err.fix) from err


def find_image(parsed: LabelmeFile, path: str, base: str, where: str, finder: ImageFinder) -> ImageProbe:
    """The probed image of one labelme file: `imagePath` relative to the JSON, else that file name
    looked up beside it / in an images folder / at the root (with ``--images DIR``: under DIR by
    that name), else the embedded `imageData`."""
    rejected = ""
    if parsed.image_path:
        # --images DIR: images are under DIR alone, looked up by imagePath's name there
        found = None if finder.images else resolve_image_path(parsed.image_path, path, base, where, finder.safe)
        if found is None:
            found = finder.find(path, [hint_name(parsed.image_path)])
        if found is not None:
            itself = os.path.normcase(found) == os.path.normcase(path)
            probe = None if itself else _probe_file(found, where)
            if probe is not None:
                return probe
            rejected = "the JSON file itself" if itself else "a file that is not an image"
    if not parsed.image_data:
        if rejected:
            raise DataError(where, f"names {rejected} and there is no embedded imageData", field="imagePath",
                            expected="an image file", got=parsed.image_path,
                            fix="correct imagePath, or re-save in labelme with the image data")
        raise DataError(where, "image not found and no embedded imageData", field="imagePath",
                        expected="an image file relative to the JSON", got=parsed.image_path,
                        fix="put the image beside the JSON or correct imagePath")
    try:
        data = base64.b64decode(parsed.image_data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise DataError(where, f"not base64 ({exc})", field="imageData", fix="re-save the file in labelme with the image data, or put the image beside the JSON") from exc
    try:
        return probe_bytes(data, "imageData")
    except DataError as err:
        raise DataError(where, f"embedded image: {err.message.split(': ', 1)[-1]}", field="imageData",
                        fix=err.fix) from err


def _import_one(ctx: ImportContext, path: str, base: str, where: str, parsed: LabelmeFile, labels: Labels,
                finder: ImageFinder) -> None:
    probe = find_image(parsed, path, base, where, finder)
    if not probe.path:
        ctx.report.counts["images from embedded imageData"] += 1
    declared = (parsed.width, parsed.height) if parsed.width and parsed.height else None
    # labelme shows (and labels) photos with their EXIF orientation applied: the upright frame,
    # unless the declared size says the raw one.
    frame = decide_frame((probe.width, probe.height), probe.orientation, declared, default="upright")
    if frame.mismatch:
        w, h = frame.size
        raise DataError(where, f"declared {parsed.width}x{parsed.height} but the image is {w}x{h}",
                        field="imageWidth/imageHeight",
                        fix="check that imagePath names the image that was labelled, or re-save the file in labelme")
    split = split_from_path(posixpath.dirname(where))
    sid = layout_free_id(where, split, ctx.writer.has_sample)  # train/a.json: "a", as the export writes it
    image_label, soft = _image_label(parsed.flags, ctx, where, labels)
    sample = Sample(id=sid, label=image_label, soft_label=soft, split=split, source={"file": where})
    if parsed.flags:
        sample.meta["flags"] = dict(parsed.flags)
    width, height = frame.source_size
    counts: dict[str, int] = {}
    objects = shapes_to_objects(
        parsed.shapes, width, height, where=where,
        label=lambda name, fld: labels(name, where, fld),
        on_invalid=ctx.options.on_invalid, counts=counts, known=labels.seen,
    )
    for k, v in counts.items():
        ctx.report.counts[k] += v
    # No shapes but an image-level class: a classification sample, not an image without objects.
    sample.objects = objects if (parsed.shapes or sample.label is None and sample.soft_label is None) else None
    add_image_sample(ctx, probe.path or None, sample, probe=probe, frame=frame, where=where)


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _pts(points: list[list[float]]) -> list[list[float]]:
    return [[float(x), float(y)] for x, y, *_ in points]


def _shape(label: str, kind: str, points: list[list[float]], group_id: Any, attrs: dict, mask: str | None = None) -> dict:
    out = {
        "label": label,
        "points": points,
        "group_id": group_id,
        "description": attrs.get("description", ""),
        "shape_type": kind,
        "flags": dict(attrs.get("flags") or {}),
        "mask": mask,
    }
    # Other attributes (VOC's difficult/truncated/pose, COCO's iscrowd, ...) as extra shape keys,
    # which labelme 5 keeps when it re-saves a file.
    for key, value in attrs.items():
        if key not in _OWN_ATTRIBUTES and key not in SHAPE_KEYS:
            out[key] = value
    return out


def _close(a: list[float], b: list[float], tol: float = 0.5) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def object_to_shapes(obj: Obj, next_group: Callable[[], int], report: ExportReport | None = None, *,
                     width: float = math.inf, height: float = math.inf) -> list[dict]:
    """The labelme shapes of one object (several shapes share a ``group_id``) in a `width` x `height` image."""
    attrs = obj.attributes or {}
    kind_hint = attrs.get("shape_type")
    parts: list[tuple[str, list[list[float]], str | None]] = []
    area_box = None
    circle = attrs.get("circle")
    rings = [r for r in (obj.polygon or []) if r]
    if circle and len(rings) == 1 and obj.bbox is not None and len(circle) == 3:
        cx, cy, r = circle
        # Written back as a circle only while the recorded circle still is this object (an
        # augmentation that moved the polygon leaves a stale record: then the polygon is written).
        box = [max(0.0, cx - r), max(0.0, cy - r), min(width, cx + r), min(height, cy + r)]
        if _close(box, obj.bbox) and _close(_bbox_of(rings[0]), obj.bbox, 1.0):
            parts.append(("circle", [[cx, cy], [cx + r, cy]], None))
            area_box = obj.bbox
            rings = []
    for ring in rings:
        kind = "oriented_rectangle" if kind_hint == "oriented_rectangle" and len(ring) == 4 else "polygon"
        parts.append((kind, _pts(ring), None))
        area_box = bbox_union(area_box, _bbox_of(ring))
    if obj.mask is not None and not obj.polygon:
        m = rle_decode(obj.mask)
        box = rle_bbox(obj.mask)
        if box is not None:
            x1, y1, x2, y2 = (int(v) for v in box)
            from PIL import Image

            from pipeline.core.images import encode_png

            png = encode_png(Image.fromarray(m[y1:y2, x1:x2].astype(np.uint8)))
            # labelme's mask covers int(x1)..int(x2) inclusive: the second point is the last pixel.
            parts.append(("mask", [[float(x1), float(y1)], [float(x2 - 1), float(y2 - 1)]],
                          base64.b64encode(png).decode("ascii")))
            area_box = bbox_union(area_box, box)
    elif obj.mask is not None and report is not None:
        report.dropped["masks of objects that also have a polygon (polygon written)"] += 1
    if obj.weight is not None and obj.weight != 1 and report is not None:
        report.dropped["object weights (labelme has none)"] += 1
    if obj.bbox is not None and (area_box is None or not _close(area_box, obj.bbox)):
        x1, y1, x2, y2 = obj.bbox
        parts.append(("rectangle", [[x1, y1], [x2, y2]], None))
    if obj.polyline:
        kind = "line" if len(obj.polyline) == 2 and kind_hint == "line" else "linestrip"
        parts.append((kind, _pts(obj.polyline), None))
    for kp in obj.keypoints or []:
        if len(kp) > 2 and kp[2] == 0:
            if report is not None:
                report.dropped["keypoints marked absent (v=0)"] += 1
            continue
        if len(kp) > 2 and kp[2] == 1 and report is not None:
            report.converted["hidden keypoints (v=1) -> points (labelme has no visibility)"] += 1
        parts.append(("point", [[float(kp[0]), float(kp[1])]], None))
    group_id = attrs.get("group_id")
    if group_id is None and len(parts) > 1:
        group_id = next_group()
    return [_shape(obj.label, kind, pts, group_id, attrs, mask) for kind, pts, mask in parts]


def sample_to_document(sample: Sample, image_name: str, report: ExportReport | None = None) -> dict:
    """The labelme document of one sample (imageData null; the image sits beside it)."""
    used = {o.attributes.get("group_id") for o in sample.objects or [] if isinstance(o.attributes.get("group_id"), int)}
    counter = [max([g for g in used if g is not None], default=-1)]

    def next_group() -> int:
        counter[0] += 1
        return counter[0]

    shapes: list[dict] = []
    for obj in sample.objects or []:
        shapes.extend(object_to_shapes(obj, next_group, report, width=sample.width, height=sample.height))
    flags = {k: bool(v) for k, v in (sample.meta.get("flags") or {}).items()}
    names = [sample.label] if sample.label else [k for k, v in (sample.soft_label or {}).items() if v > 0]
    for name in flags:
        if not _reserved(name):
            flags[name] = name in names
    for name in names:
        flags[name] = True
    return {
        "version": "5.7.0",
        "flags": flags,
        "shapes": shapes,
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": sample.height,
        "imageWidth": sample.width,
    }


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """One JSON per sample beside a copy of its image (``imagePath`` relative, ``imageData`` null).

    Sample ids become the file paths (``scene/001`` -> ``scene/001.json`` + ``scene/001.png``),
    under a folder named after the sample's split (``val/scene/001.json``) unless the id's own
    folders name it already; the import reads the split back from the folders.
    """
    out = Path(out)
    names = ExportNames()
    for s in dataset.samples:
        stem = names.stem(s, flat=False)
        named = split_from_path(posixpath.dirname(stem))
        if s.split is not None and named != s.split:
            stem = f"{s.split}/{stem}"
        elif s.split is None and named is not None:
            report.converted[f"samples without a split in a folder named {named!r} -> {named}"] += 1
        ext = os.path.splitext(s.image)[1].lower() or ".png"
        dataset.copy_image(s, out / (stem + ext))
        if s.soft_label and len([v for v in s.soft_label.values() if v > 0]) > 1:
            report.converted["soft labels -> several true flags"] += 1
        doc = sample_to_document(s, posixpath.basename(stem) + ext, report)
        text = json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False)
        (out / (stem + ".json")).write_text(text + "\n", encoding="utf-8")
        report.written += 1
        report.files += 2

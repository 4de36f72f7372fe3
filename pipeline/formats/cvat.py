"""CVAT for images 1.1 XML (CVAT's "CVAT for images" export of a task, a project or a job).

One ``annotations.xml`` for the whole export, the images in ``images/`` beside it::

    <annotations>
      <version>1.1</version>
      <meta>
        <task> ... <subset>Train</subset> <labels><label><name>car</name> ...</label></labels> </task>
        (a project export: <project> <labels>...</labels> <tasks><task>...</task></tasks> </project>;
         a job export: <job> ... <labels>...</labels> </job>)
      </meta>
      <image id="0" name="sub/a (1).jpg" width="640" height="480" subset="Train" task_id="3">
        <box label="car" source="manual" occluded="0" xtl="10.00" ytl="20.00" xbr="50.50" ybr="60.00"
             rotation="30.00" z_order="0" group_id="1"><attribute name="color">red</attribute></box>
        <polygon label="car" points="1.00,2.00;10.00,2.00;5.00,9.00" occluded="0" z_order="0"/>
        <polyline label="lane" points="..."/>   <points label="nose" points="..."/>
        <mask label="car" rle="5, 3, 7" left="10" top="20" width="3" height="5" occluded="0"/>
        <tag label="daytime" source="manual"/>
      </image>
    </annotations>

Read here and nowhere else:

- **Boxes**: ``xtl ytl xbr ybr`` are pixel edges, as inside the package (``[xtl, ytl, xbr, ybr]``).
  A ``rotation`` (degrees, clockwise on screen, about the box centre) makes a rotated box: kept as
  a 4-point polygon (corners top-left, top-right, bottom-right, bottom-left of the unrotated box,
  rotated) with its enclosing ``bbox`` and ``attributes["rotation"]`` in degrees, as YOLO OBB rows are.
- **Polygons** (``points="x,y;x,y;..."``) become one polygon ring with its extent as ``bbox``;
  **polylines** become ``polyline``; **points** become ``keypoints`` with v = 2 (a point set).
- **Masks**: CVAT's ``rle`` counts runs over the ``width`` x ``height`` box at ``left, top`` in row
  order, starting with a run of background; it becomes a full-image COCO RLE in ``Obj.mask``
  (column order) with the mask's extent as ``bbox``.
- ``<attribute name="k">v</attribute>`` children go into ``Obj.attributes`` as written (text);
  ``occluded``, ``z_order`` and ``group_id`` as integers and ``source`` as text beside them.
- **Tags** (image-level labels) are kept in ``Sample.meta["tags"]`` (label, attributes) so an
  export writes them back; one tag label on an image is also its ``label``, several are an equal
  ``soft_label``. A document with tags and no shapes imports as a classification dataset.
- **Subsets**: the image's ``subset`` (project exports), else its task's ``<subset>``, else the
  document's; ``Train``/``Validation``/``Test`` (any case, the words of
  `pipeline.formats.splits`) become splits, ``default`` and other names none (the name is kept in
  ``Sample.source["subset"]``).
- **Classes** are the ``<meta>`` labels in their order (project labels, then each task's), so class
  ids keep CVAT's order; labels used but not declared follow, sorted. ``--classes`` overrides.
- **Images** are found by ``name`` below ``images/`` beside the XML (or ``images/<subset>/``, or
  beside the XML itself); names may hold folders, spaces and parentheses. A name that is absolute
  or leaves the import folder is looked up by its file name only; nothing outside is opened. A
  missing image is a problem of that image alone; images in ``images/`` that no ``<image>`` names
  are counted in the report. The declared ``width``/``height`` decide the EXIF
  frame (CVAT shows images upright).
- **Several annotators** (``--annotations all``): an image file that several tasks or jobs label
  (project exports, consensus replica jobs, several job exports) becomes one sample whose
  ``annotations`` hold each task's or job's labels, the annotator being its ``<assignee>`` (else
  ``<owner>``) user name; the sample's own labels are the first one's. Without the option each
  task's copy stays a sample of its own (``task<ID>/<name>``).

Files are parsed with defusedxml (DTDs, entities and external references refused), one image at a
time, within `MAX_DOCUMENT_BYTES`, `MAX_SHAPES`, `MAX_IMAGE_SHAPES`, `MAX_POINTS` and `MAX_DEPTH`;
class names are at most `MAX_NAME` characters. Anything malformed is a `DataError` naming the file, the field
(``image[3].box[2].xtl``), what was expected and what was found: a broken document is left out
whole, a broken image alone. Cuboids, skeletons, ellipses and tracks (CVAT for video) are not read:
an image holding one is reported, never imported without it.

Export writes the task layout: ``annotations.xml`` (labels in class order, their attributes
declared as text) and ``images/<name>``; splits become ``subset`` attributes (``Train``,
``Validation``, ``Test``). An object with a polygon of 4 corners forming a rectangle and a
``rotation`` attribute goes back as a rotated ``<box>``; an object with several geometries is
written as several shapes sharing a ``group_id``. What CVAT cannot hold is listed in the export
report.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as DET

from pipeline.core import limits
from pipeline.core.dataset import Annotation, Dataset, Obj, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.paths import SafeFiles, natural_sorted
from pipeline.formats.base import Detection, ExportReport, ImportContext, relative_files
from pipeline.formats.common import (
    EDGE_TOLERANCE,
    OUTSIDE_CLIPPED,
    OUTSIDE_SKIPPED,
    XML_ERRORS,
    ExportNames,
    ImageFinder,
    Labels,
    add_image_sample,
    decide_frame,
    fit_box,
    probe_image,
    walk_files,
    xml_error,
)
from pipeline.formats.splits import split_from_path

NAME = "cvat"
LOOKS_FOR = "XML file whose root <annotations> holds <version> or <meta> (CVAT for images 1.1)"
TASK = "detection"

EXPORT_FILE = "annotations.xml"
IMAGES = "images"
VERSION = "1.1"

# The caps, from the one place every reader takes them (`pipeline.core.limits`).
MAX_DOCUMENT_BYTES = limits.MAX_DOCUMENT_BYTES  # an annotations.xml larger than this is refused
MAX_SHAPES = limits.MAX_DOCUMENT_ENTRIES  # shapes and tags in one document
MAX_IMAGE_SHAPES = limits.MAX_OBJECTS  # shapes and tags of one image
MAX_POINTS = limits.MAX_POINTS  # vertices of one shape, and runs of one mask
MAX_DEPTH = limits.MAX_XML_DEPTH  # element nesting (CVAT's own go 6 deep)
MAX_NAME = limits.MAX_CLASS_NAME  # characters of a class name

FIX = "fix the element in the XML, or re-export the annotations from CVAT"
SHAPES = ("box", "polygon", "polyline", "points", "mask")
NOT_READ = ("cuboid", "skeleton", "ellipse")
OWN_ATTRIBUTES = ("occluded", "z_order", "group_id", "source", "rotation")  # XML attributes, not <attribute>
NOT_CVAT = "XML files that are not CVAT annotations"
SUBSET_NAMES = {"train": "Train", "val": "Validation", "test": "Test"}
ROTATION_TOLERANCE = 1e-3  # degrees below which a rotation is none

_ROOT = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>\s*)?(?:(?:<!--.*?-->|<!DOCTYPE[^\[>]*(?:\[.*?\])?\s*>)\s*)*"
                   rb"<([A-Za-z_][\w.\-]*)", re.S)


# --------------------------------------------------------------------------------------------
# Coordinates: the one place CVAT's conventions are converted
# --------------------------------------------------------------------------------------------


def box_corners(xtl: float, ytl: float, xbr: float, ybr: float, rotation: float) -> list[list[float]]:
    """The corners of a CVAT box rotated by `rotation` degrees (clockwise on screen, y down) about
    its centre: top-left, top-right, bottom-right, bottom-left of the unrotated box."""
    cx, cy = (xtl + xbr) / 2, (ytl + ybr) / 2
    a = math.radians(rotation)
    c, s = math.cos(a), math.sin(a)
    out = []
    for x, y in ((xtl, ytl), (xbr, ytl), (xbr, ybr), (xtl, ybr)):
        dx, dy = x - cx, y - cy
        out.append([cx + dx * c - dy * s, cy + dx * s + dy * c])
    return out


def rotated_box(ring: list[list[float]], tol: float = 1e-3) -> tuple[list[float], float] | None:
    """The CVAT box ``[xtl, ytl, xbr, ybr]`` and rotation (degrees in [0, 360)) of a 4-corner ring
    that is a rectangle (the inverse of `box_corners`); None when the ring is not one."""
    if len(ring) != 4:
        return None
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = ((float(p[0]), float(p[1])) for p in ring)
    w, h = math.hypot(x1 - x0, y1 - y0), math.hypot(x2 - x1, y2 - y1)
    if w <= 0 or h <= 0:
        return None
    scale = max(w, h)
    # A rectangle: opposite sides equal and parallel (p0 + p2 == p1 + p3), adjacent sides at right angles.
    if (abs(x0 + x2 - x1 - x3) > tol * scale or abs(y0 + y2 - y1 - y3) > tol * scale
            or abs((x1 - x0) * (x2 - x1) + (y1 - y0) * (y2 - y1)) > tol * scale * scale):
        return None
    cx, cy = (x0 + x2) / 2, (y0 + y2) / 2
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0)) % 360.0
    if (x1 - x0) * (y2 - y1) - (y1 - y0) * (x2 - x1) < 0:  # corners run the other way (a mirrored ring)
        angle = (angle + 180.0) % 360.0
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], angle


def mask_from_cvat(counts: list[int], left: int, top: int, width: int, height: int,
                   image_w: int, image_h: int) -> dict:
    """CVAT's mask (runs over the ``width`` x ``height`` box at ``left, top``, row order, background
    first) as a full-image COCO RLE (column order)."""
    import numpy as np

    from pipeline.core.geometry import rle_encode

    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    crop = np.repeat(values, np.asarray(counts, dtype=np.int64)).reshape((height, width))
    full = np.zeros((image_h, image_w), dtype=bool)
    full[top:top + height, left:left + width] = crop
    return rle_encode(full)


def mask_to_cvat(rle: dict) -> tuple[list[int], int, int, int, int] | None:
    """A full-image COCO RLE as CVAT's ``(rle counts, left, top, width, height)``; None when empty."""
    import numpy as np

    from pipeline.core.geometry import mask_bbox, rle_decode

    m = rle_decode(rle)
    box = mask_bbox(m)
    if box is None:
        return None
    left, top, right, bottom = (int(v) for v in box)
    flat = m[top:bottom, left:right].ravel(order="C")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], change, [flat.size]))).tolist()
    if flat[0]:
        counts = [0, *counts]
    return [int(c) for c in counts], left, top, right - left, bottom - top


def format_points(points: list[list[float]]) -> str:
    """Points as CVAT writes them: ``x,y;x,y`` with two decimals."""
    return ";".join(f"{p[0]:.2f},{p[1]:.2f}" for p in points)


# --------------------------------------------------------------------------------------------
# Parsing (pure: bytes in, validated records out)
# --------------------------------------------------------------------------------------------


@dataclass
class Shape:
    """One shape of an image as written (CVAT's coordinates), validated."""

    kind: str  # one of SHAPES, or "tag"
    label: str
    index: int  # position among the image's shapes of this kind
    attributes: dict[str, Any] = field(default_factory=dict)
    box: list[float] | None = None  # xtl, ytl, xbr, ybr
    rotation: float = 0.0
    points: list[list[float]] | None = None
    mask: tuple[list[int], int, int, int, int] | None = None  # counts, left, top, width, height


@dataclass
class ImageRecord:
    """One ``<image>``: its attributes and shapes, or the error that leaves it out."""

    index: int
    name: str
    width: int
    height: int
    subset: str | None = None
    task_id: str | None = None
    shapes: list[Shape] = field(default_factory=list)
    error: DataError | None = None


@dataclass
class Document:
    """A parsed CVAT for images document."""

    kind: str  # "task", "project", "job" or "" (no meta)
    version: str | None
    labels: list[str]  # declared labels, in order (project first, then each task)
    subset: str | None  # the task's or job's own subset
    task_subsets: dict[str, str]  # task id -> subset (project exports)
    images: list[ImageRecord]
    tracks: int = 0
    annotator: str | None = None  # the task's or job's assignee (else owner) user name
    id: str | None = None  # the task's or job's id
    task_annotators: dict[str, str] = field(default_factory=dict)  # task id -> assignee (else owner) (projects)


def _number(text: str | None, where: str, fld: str) -> float:
    """A decimal number as CVAT writes it (``12.50``, ``-3``, ``1e-2``); NaN, infinities, ``1_0`` and
    non-ASCII digits (all of which Python's `float` takes) are refused."""
    if text is None:
        raise DataError(where, "missing value", field=fld, expected="a number", got=None,
                        fix="re-export the annotations from CVAT")
    if text.isascii() and "_" not in text:
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            if value - value == 0.0:  # finite (inf - inf and nan - nan are nan)
                return value
            raise DataError(where, "", field=fld, expected="a finite number", got=text, fix=FIX)
    raise DataError(where, "", field=fld, expected="a number", got=text, fix=FIX)


def _integer(text: str | None, where: str, fld: str, *, minimum: int = 0) -> int:
    value = _number(text, where, fld)
    if value != int(value) or value < minimum or value > 1 << 31:
        raise DataError(where, "", field=fld, expected=f"an integer >= {minimum}", got=text, fix=FIX)
    return int(value)


def _name(text: str | None, where: str, fld: str) -> str:
    name = (text or "").strip()
    if not name:
        raise DataError(where, "", field=fld, expected="a label name", got=text, fix=FIX)
    if len(name) > MAX_NAME:
        raise DataError(where, "label name too long", field=fld, expected=f"at most {MAX_NAME} characters",
                        got=f"{len(name)} characters", fix="shorten the label in CVAT")
    return name


def parse_points(text: str | None, where: str, fld: str, minimum: int = 1) -> list[list[float]]:
    """CVAT ``points="x,y;x,y;..."`` as ``[[x, y], ...]`` (at least `minimum`, at most `MAX_POINTS`)."""
    if text is None or not text.strip():
        raise DataError(where, "", field=fld, expected="x,y;x,y;... points", got=text, fix=FIX)
    pairs = text.strip().split(";")
    if len(pairs) > MAX_POINTS:
        raise DataError(where, "too many points", field=fld, expected=f"at most {MAX_POINTS}", got=len(pairs), fix=FIX)
    out = []
    for k, pair in enumerate(pairs):
        xy = pair.split(",")
        if len(xy) != 2:
            raise DataError(where, "", field=f"{fld}[{k}]", expected="x,y", got=pair, fix=FIX)
        out.append([_number(xy[0], where, f"{fld}[{k}].x"), _number(xy[1], where, f"{fld}[{k}].y")])
    if len(out) < minimum:
        raise DataError(where, "", field=fld, expected=f"at least {minimum} points", got=len(out), fix=FIX)
    return out


def parse_rle(text: str | None, width: int, height: int, where: str, fld: str) -> list[int]:
    """CVAT's mask ``rle="a, b, c"``: run lengths >= 0 covering ``width`` x ``height`` pixels."""
    parts = (text or "").replace(",", " ").split()
    if not parts:
        raise DataError(where, "", field=fld, expected="run lengths, e.g. rle=\"5, 3, 7\"", got=text, fix=FIX)
    if len(parts) > MAX_POINTS:
        raise DataError(where, "too many runs", field=fld, expected=f"at most {MAX_POINTS}", got=len(parts), fix=FIX)
    counts = []
    for k, p in enumerate(parts):
        if not p.isdigit() or not p.isascii():
            raise DataError(where, "", field=f"{fld}[{k}]", expected="a run length (an integer >= 0)", got=p, fix=FIX)
        counts.append(int(p))
    if sum(counts) != width * height:
        raise DataError(where, "runs do not cover the mask", field=fld,
                        expected=f"runs summing to width x height = {width * height}", got=sum(counts),
                        fix="re-export the annotations from CVAT")
    return counts


def _own_attributes(attrib: dict, where: str, fld: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("occluded", "z_order", "group_id"):
        if attrib.get(key) not in (None, ""):
            minimum = -(1 << 31) if key == "z_order" else 0
            value = _number(attrib[key], where, f"{fld}.{key}")
            if value != int(value) or value < minimum:
                raise DataError(where, "", field=f"{fld}.{key}", expected="an integer", got=attrib[key], fix=FIX)
            out[key] = int(value)
    if attrib.get("source"):
        out["source"] = attrib["source"]
    return out


def parse_shape(el, k: int, where: str, fld: str) -> Shape:
    """One shape element (``<box>``, ``<polygon>``, ``<polyline>``, ``<points>``, ``<mask>``, ``<tag>``)."""
    a = el.attrib
    shape = Shape(kind=el.tag, label=_name(a.get("label"), where, f"{fld}.label"), index=k)
    shape.attributes = _own_attributes(a, where, fld)
    for j, child in enumerate(el):
        if child.tag != "attribute":
            raise DataError(where, "unexpected element", field=f"{fld}.{child.tag}", expected="<attribute>",
                            got=child.tag, fix=FIX)
        key = (child.get("name") or "").strip()
        if not key:
            raise DataError(where, "", field=f"{fld}.attribute[{j}].name", expected="an attribute name", got=None, fix=FIX)
        if key in OWN_ATTRIBUTES:
            raise DataError(where, "attribute name taken by CVAT", field=f"{fld}.attribute[{j}].name",
                            expected=f"a name other than {', '.join(OWN_ATTRIBUTES)}", got=key, fix=FIX)
        shape.attributes[key] = child.text or ""
    if el.tag == "box":
        shape.box = [_number(a.get(t), where, f"{fld}.{t}") for t in ("xtl", "ytl", "xbr", "ybr")]
        if shape.box[0] > shape.box[2] or shape.box[1] > shape.box[3]:
            raise DataError(where, "inverted box", field=fld, expected="xtl <= xbr and ytl <= ybr", got=shape.box,
                            fix="fix the box in CVAT")
        if a.get("rotation") not in (None, ""):
            shape.rotation = _number(a["rotation"], where, f"{fld}.rotation") % 360.0
    elif el.tag in ("polygon", "polyline", "points"):
        shape.points = parse_points(a.get("points"), where, f"{fld}.points",
                                    {"polygon": 3, "polyline": 2, "points": 1}[el.tag])
    elif el.tag == "mask":
        left, top = _integer(a.get("left"), where, f"{fld}.left"), _integer(a.get("top"), where, f"{fld}.top")
        w = _integer(a.get("width"), where, f"{fld}.width", minimum=1)
        h = _integer(a.get("height"), where, f"{fld}.height", minimum=1)
        shape.mask = (parse_rle(a.get("rle"), w, h, where, f"{fld}.rle"), left, top, w, h)
    return shape


def parse_image(el, index: int, where: str) -> ImageRecord:
    """One ``<image>`` element; raises DataError when it or one of its shapes is malformed."""
    fld = f"image[{index}]"
    a = el.attrib
    name = (a.get("name") or "").strip()
    if not name:
        raise DataError(where, "", field=f"{fld}.name", expected="an image file name", got=a.get("name"), fix=FIX)
    rec = ImageRecord(index=index, name=name, width=_integer(a.get("width"), where, f"{fld}.width", minimum=1),
                      height=_integer(a.get("height"), where, f"{fld}.height", minimum=1),
                      subset=(a.get("subset") or "").strip() or None, task_id=(a.get("task_id") or "").strip() or None)
    seen: dict[str, int] = defaultdict(int)
    for child in el:
        if child.tag in NOT_READ:
            raise DataError(where, f"<{child.tag}> shapes are not read", field=f"{fld}.{child.tag}",
                            expected="boxes, polygons, polylines, points, masks and tags", got=child.tag,
                            fix=f"delete the {child.tag}s in CVAT, or convert them to polygons or points")
        if child.tag not in SHAPES and child.tag != "tag":
            raise DataError(where, "unexpected element", field=f"{fld}.{child.tag}",
                            expected="<box>, <polygon>, <polyline>, <points>, <mask> or <tag>", got=child.tag, fix=FIX)
        k = seen[child.tag]
        seen[child.tag] += 1
        rec.shapes.append(parse_shape(child, k, where, f"{fld}.{child.tag}[{k}]"))
    return rec


def _labels(el) -> list[str]:
    """Names of the ``<labels><label><name>`` under `el`, in order."""
    labels = el.find("labels")
    return [] if labels is None else [(lab.findtext("name") or "").strip() for lab in labels.findall("label")]


def _annotator(node) -> str | None:
    """Who labelled a task or job: its ``<assignee><username>``, else its ``<owner><username>``."""
    for who in ("assignee", "owner"):
        name = (node.findtext(f"{who}/username") or "").strip()
        if name:
            return name
    return None


def parse_people(meta) -> tuple[str | None, str | None, dict[str, str]]:
    """``<meta>``: (the task's or job's assignee or owner, its id, task id -> assignee or owner of a
    project's tasks): who labelled what, for ``--annotations all``."""
    for node in meta:
        if node.tag in ("task", "project", "job"):
            tasks = {}
            for task in node.iterfind("tasks/task"):
                tid, who = (task.findtext("id") or "").strip(), _annotator(task)
                if tid and who:
                    tasks[tid] = who
            return _annotator(node), (node.findtext("id") or "").strip() or None, tasks
    return None, None, {}


def parse_meta(meta, where: str) -> tuple[str, list[str], str | None, dict[str, str]]:
    """``<meta>``: (export kind, declared labels in order, own subset, task id -> subset)."""
    names: list[str] = []
    task_subsets: dict[str, str] = {}
    kind, subset = "", None
    for node in meta:
        if node.tag not in ("task", "project", "job"):
            continue
        kind = node.tag
        names.extend(_labels(node))
        subset = (node.findtext("subset") or "").strip() or None
        for task in node.iterfind("tasks/task"):
            names.extend(_labels(task))
            tid, sub = (task.findtext("id") or "").strip(), (task.findtext("subset") or "").strip()
            if tid and sub:
                task_subsets[tid] = sub
    order: list[str] = []
    for i, n in enumerate(names):
        n = _name(n, where, f"meta.labels[{i}].name")
        if n not in order:
            order.append(n)
    return kind, order, subset, task_subsets


def parse_document(data: bytes, where: str) -> Document | None:
    """Parse a CVAT for images document; None when it is XML but not CVAT's (another root).

    Streams with defusedxml, one image at a time. A document that is malformed (not XML, a DTD or
    entity, too deep, too many shapes, bad meta) raises DataError; a malformed image is returned
    with its `error` set, so the rest of the document still imports.
    """
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DataError(where, "document too large", expected=f"at most {MAX_DOCUMENT_BYTES >> 20} MiB",
                        got=f"{len(data) >> 20} MiB", fix="export the CVAT task in parts (jobs)")
    doc = Document(kind="", version=None, labels=[], subset=None, task_subsets={}, images=[])
    depth, shapes, root = 0, 0, None
    in_image: int | None = None  # shapes of the open <image> so far
    try:
        for event, el in DET.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True):
            if event == "start":
                depth += 1
                if depth == 1:
                    if el.tag != "annotations":
                        return None
                    root = el
                elif depth > MAX_DEPTH:
                    raise DataError(where, "elements nested too deep", field=el.tag,
                                    expected=f"at most {MAX_DEPTH} levels", got=depth, fix=FIX)
                elif depth == 2 and el.tag == "image":
                    in_image = 0
                elif depth == 3 and in_image is not None:  # a shape or tag, counted before its image is built
                    shapes, in_image = shapes + 1, in_image + 1
                    if shapes > MAX_SHAPES or in_image > MAX_IMAGE_SHAPES:
                        cap = MAX_SHAPES if shapes > MAX_SHAPES else MAX_IMAGE_SHAPES
                        raise DataError(where, "too many shapes", field=f"image[{len(doc.images)}]",
                                        expected=f"at most {cap}" + (" in one image" if cap == MAX_IMAGE_SHAPES
                                                                     else " in one document"),
                                        got=f"{cap + 1} or more", fix="export the CVAT task in parts (jobs)")
                continue
            depth -= 1
            if depth != 1:
                continue
            if el.tag == "version":
                doc.version = (el.text or "").strip()
            elif el.tag == "meta":
                doc.kind, doc.labels, doc.subset, doc.task_subsets = parse_meta(el, where)
                doc.annotator, doc.id, doc.task_annotators = parse_people(el)
            elif el.tag == "image":
                in_image = None
                index = len(doc.images)
                try:
                    doc.images.append(parse_image(el, index, where))
                except DataError as err:
                    doc.images.append(ImageRecord(index, el.get("name") or "", 0, 0, error=err))
            elif el.tag == "track":
                doc.tracks += 1
            if root is not None:
                root.clear()  # the element is handled: keep memory flat
    except XML_ERRORS as exc:
        raise xml_error(exc, where, fix="re-export the annotations from CVAT",
                        encoding_fix="re-export the annotations from CVAT (UTF-8)") from None
    return doc


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def root_tag(head: bytes) -> str | None:
    """The name of the first element of an XML document's first bytes (after its prolog and comments)."""
    m = _ROOT.match(head)
    return m.group(1).decode("ascii", "replace") if m else None


def is_cvat(head: bytes) -> bool:
    """True when the start of an XML file is a CVAT document: root ``<annotations>`` holding
    ``<version>`` or ``<meta>``."""
    return root_tag(head) == "annotations" and (b"<version" in head or b"<meta" in head)


def _peek(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return is_cvat(fh.read(4096))
    except OSError:
        return False


def _documents(root: Path, files: SafeFiles | None = None) -> list[str]:
    if root.is_file():
        return [str(root.resolve())]
    return [f for f in walk_files(root, (".xml",), files) if _peek(f)] if root.is_dir() else []


def detect(root: Path) -> Detection | None:
    root = Path(root)
    files = [str(root)] if root.is_file() else walk_files(root, (".xml",)) if root.is_dir() else []
    found = [f for f in files[:200] if _peek(f)]
    if not found:
        return None
    return Detection(score=80, description=f"CVAT for images XML ({len(found)} file(s))",
                     files=relative_files(root, found))


SHAPE_TAGS = ("box", "polygon", "polyline", "points", "mask")


def count(root: Path, paths: list[Path]) -> dict[str, int]:
    """A cheap count for `pipeline detect`: images, objects and classes in `paths` (the files `detect` recognised)."""
    images = objects = 0
    classes: set[str] = set()
    for path in paths:
        doc = DET.fromstring(path.read_bytes(), forbid_dtd=True)
        for image in doc.iter("image"):
            images += 1
            shapes = [child for child in image if child.tag in SHAPE_TAGS]
            objects += len(shapes)
            classes |= {child.get("label") or "" for child in shapes}
        classes |= {(label.findtext("name") or "").strip() for label in doc.iter("label")}
    classes.discard("")
    return {"images": images, "objects": objects, "classes": len(classes)}


def _inside(path: str, real_root: str) -> bool:
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def find_image(name: str, subset: str | None, xml_path: str, finder: ImageFinder) -> str | None:
    """The image file of ``<image name=...>``: ``images/<name>`` (or ``images/<subset>/<name>``, or
    ``<name>``) beside the XML; a name that is absolute or leaves the import folder by its file name
    only (`ImageFinder`). Nothing outside the import folder, links included, is returned; with
    ``--images DIR``, nothing outside DIR."""
    if finder.images:  # --images DIR: the images are under DIR alone (its subset folder first)
        found = finder.find(xml_path, [name], extra_names=[subset] if subset else ())
        return found if found is not None and _inside(found, os.path.realpath(finder.images)) else None
    xml_dir = os.path.dirname(os.path.abspath(xml_path))
    real_root = os.path.realpath(finder.root)
    rel = name.replace("\\", "/")
    if not rel.startswith("/") and not re.match(r"^[A-Za-z]:", rel):
        bases = [os.path.join(xml_dir, IMAGES, subset)] if subset else []
        for base in [*bases, os.path.join(xml_dir, IMAGES), xml_dir]:
            cand = os.path.normpath(os.path.join(base, rel))
            if finder.inside(cand) and os.path.isfile(cand) and _inside(cand, real_root):
                return cand
    found = finder.find(xml_path, [name])
    return found if found is not None and _inside(found, real_root) else None


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    if not root.exists():
        raise UsageError(f"{root}: no such file or folder", fix="point at a CVAT for images annotations.xml or its folder")
    ctx.default_fix = FIX
    files = _documents(root, ctx.files)
    if not files:
        raise UsageError(f"{root}: no CVAT for images XML found",
                         fix="point at annotations.xml of a CVAT export, or its folder")
    base = os.path.abspath(root if root.is_dir() else root.resolve().parent)
    finder = ImageFinder(base, ctx.files, images=ctx.options.images)
    labels = Labels(ctx)
    state = _State(base=base)
    for path in files:
        where = state.rel(path)
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_DOCUMENT_BYTES + 1)
            doc = parse_document(data, where)
            if doc is None:
                ctx.skip(NOT_CVAT)
                continue
            ctx.input_file(path, data)
            state.folders.add(os.path.join(os.path.dirname(path), IMAGES))
            _read_document(ctx, doc, path, where, finder, labels, state)
        except DataError as err:
            ctx.bad(err)
    _finish(ctx, labels, state)


@dataclass
class _State:
    base: str  # the import folder (the XML's folder when a file was named)
    declared: dict[str, None] = field(default_factory=dict)  # labels of every document, in order (an ordered set)
    ids: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)  # image files claimed by an <image> (real paths)
    by_image: dict[str, Sample] = field(default_factory=dict)  # --annotations all: image file -> its sample
    folders: set[str] = field(default_factory=set)  # the images/ folders beside the documents
    shapes: int = 0
    tags: int = 0

    def rel(self, path: str) -> str:
        """A path as the user knows it: relative to the import folder, with ``/``."""
        return os.path.relpath(path, self.base).replace(os.sep, "/")


def _read_document(ctx: ImportContext, doc: Document, path: str, where: str, finder: ImageFinder,
                   labels: Labels, state: _State) -> None:
    if doc.tracks:
        raise DataError(where, "CVAT for video tracks are not read", field="track", expected="<image> elements",
                        got=f"{doc.tracks} <track> elements", fix="export the task as 'CVAT for images 1.1'")
    if doc.version not in (None, VERSION):
        ctx.warn(f"{where}: CVAT XML version {doc.version}; read as {VERSION}")
    if ctx.options.classes is None:  # a fixed list (--classes) need not name every declared label
        for i, name in enumerate(doc.labels):
            mapped = labels(name, where, f"meta.labels[{i}].name")
            state.declared.setdefault(mapped)
    ctx.report.counts[f"CVAT {doc.kind or 'unknown'} exports"] += 1
    xml_dir = os.path.dirname(path)
    for rec in ctx.progress(doc.images, total=len(doc.images), desc=f"import cvat {where}", unit="img"):
        if rec.name:  # named, even when the image is left out: not an unlisted image
            state.used.add(os.path.realpath(os.path.join(xml_dir, IMAGES, rec.name)))
        try:
            if rec.error is not None:
                raise rec.error
            _read_image(ctx, doc, rec, path, where, finder, labels, state)
        except DataError as err:
            ctx.bad(err)


def _read_image(ctx: ImportContext, doc: Document, rec: ImageRecord, path: str, where: str,
                finder: ImageFinder, labels: Labels, state: _State) -> None:
    fld = f"image[{rec.index}]"
    subset = rec.subset or doc.task_subsets.get(rec.task_id or "") or doc.subset
    image = find_image(rec.name, subset, path, finder)
    if image is None:
        raise DataError(where, "image not found", field=f"{fld}.name",
                        expected=f"the image in {IMAGES}/ beside the XML, inside the import folder", got=rec.name,
                        fix="export the CVAT task with images, or put the images there")
    state.used.add(os.path.realpath(image))
    rel_image = finder.rel(image)
    probe = probe_image(image, rel_image)
    frame = decide_frame((probe.width, probe.height), probe.orientation, (rec.width, rec.height), "upright")
    sw, sh = frame.source_size
    objects: list[Obj] = []
    tags: list[dict] = []
    for shape in rec.shapes:
        sfld = f"{fld}.{shape.kind}[{shape.index}]"
        label = labels(shape.label, where, f"{sfld}.label")
        if shape.kind == "tag":
            tags.append({"label": label, **({"attributes": shape.attributes} if shape.attributes else {})})
            continue
        obj = to_object(shape, label, sw, sh, ctx, where, sfld)
        if obj is not None:
            objects.append(obj)
    keep_all = ctx.options.extra.get("annotations", "newest") == "all"
    if keep_all:
        annotation = _annotation(doc, rec, where, objects, tags)
        earlier = state.by_image.get(os.path.realpath(image))
        if earlier is not None:  # the same image labelled again in another job or task: one more annotator
            earlier.annotations = [*(earlier.annotations or []), annotation]
            ctx.report.counts["annotations of images labelled in several jobs or tasks"] += 1
            return
    sid = os.path.splitext(rec.name.replace("\\", "/").lstrip("/"))[0] or f"image-{rec.index}"
    if sid in state.ids:
        sid = f"task{rec.task_id}/{sid}" if rec.task_id else f"{sid}-{rec.index}"
    if sid in state.ids:
        raise DataError(where, "image listed twice", field=f"{fld}.name", expected="unique names", got=rec.name, fix=FIX)
    state.ids.add(sid)
    split = split_from_path(subset) if subset else None
    source: dict[str, Any] = {"file": where, "image": rel_image, "name": rec.name}
    if subset:
        source["subset"] = subset
        if split is None and subset.casefold() != "default":
            ctx.report.counts["images in a CVAT subset that names no split (unsplit)"] += 1
    if rec.task_id:
        source["task_id"] = rec.task_id
    sample = Sample(id=sid, split=split, objects=objects, source=source)
    _set_tags(sample, tags)
    if keep_all:
        sample.annotations = [annotation]
        state.by_image[os.path.realpath(image)] = sample
    add_image_sample(ctx, image, sample, probe=probe, frame=frame, declared_size=(rec.width, rec.height),
                     where=where)
    state.shapes += len(objects)
    state.tags += len(tags)
    ctx.report.counts["objects"] += len(objects)


def _annotation(doc: Document, rec: ImageRecord, where: str, objects: list[Obj], tags: list[dict]) -> Annotation:
    """One annotator's labels of an image (``--annotations all``): who (the task's or job's assignee,
    else owner, else the task or the document), its one tag label, its shapes."""
    who = (doc.task_annotators.get(rec.task_id or "") or (f"task {rec.task_id}" if rec.task_id else None)
           or doc.annotator or where)
    names = list(dict.fromkeys(t["label"] for t in tags))
    label = names[0] if len(names) == 1 else None
    ref = rec.task_id or doc.id
    return Annotation(annotator=who, label=label,
                      objects=[Obj.from_json(o.to_json()) for o in objects] if objects or label is None else None,
                      source_id=f"{'task' if rec.task_id else doc.kind or 'document'} {ref}" if ref else None)


def _set_tags(sample: Sample, tags: list[dict]) -> None:
    """Tags into ``meta["tags"]``, and the image's label (one tag label) or equal soft label (several)."""
    if not tags:
        return
    sample.meta["tags"] = tags
    names = list(dict.fromkeys(t["label"] for t in tags))
    if len(names) == 1:
        sample.label = names[0]
    else:
        sample.soft_label = {n: 1.0 / len(names) for n in names}


def _fit_points(points: list[list[float]], w: int, h: int, on_invalid: str, ctx: ImportContext, where: str,
                fld: str, clip_near: bool = True) -> list[list[float]] | None:
    """Points checked against the image as `fit_box` checks boxes: within `EDGE_TOLERANCE` clipped
    (kept as they are without `clip_near`); further out an error, clipped, or the object left out
    (None), as `on_invalid` says."""
    t = EDGE_TOLERANCE
    far = [p for p in points if p[0] < -t or p[1] < -t or p[0] > w + t or p[1] > h + t]
    if far:
        if on_invalid == "skip":
            ctx.report.counts[OUTSIDE_SKIPPED] += 1
            return None
        if on_invalid != "clip":
            raise DataError(where, "point outside the image", field=fld, expected=f"inside 0..{w} x 0..{h}",
                            got=[round(v, 3) for v in far[0]],
                            fix="fix the shape in CVAT, or import with --on-invalid clip|skip")
        ctx.report.counts[OUTSIDE_CLIPPED] += 1
    elif not clip_near:
        return points
    return [[min(max(p[0], 0.0), float(w)), min(max(p[1], 0.0), float(h))] for p in points]


def to_object(shape: Shape, label: str, w: int, h: int, ctx: ImportContext, where: str, fld: str) -> Obj | None:
    """A parsed shape as an object in absolute pixels (None when `--on-invalid skip` leaves it out)."""
    from pipeline.core.geometry import polygon_bbox, rle_bbox

    on_invalid = ctx.options.on_invalid
    attrs = dict(shape.attributes)
    if shape.kind == "box":
        assert shape.box is not None
        if abs(((shape.rotation + 180.0) % 360.0) - 180.0) <= ROTATION_TOLERANCE:
            box = fit_box(shape.box, w, h, on_invalid, ctx, where, fld)
            return None if box is None else Obj(label=label, bbox=box, attributes=attrs)
        ring = _fit_points(box_corners(*shape.box, shape.rotation), w, h, on_invalid, ctx, where, fld,
                           clip_near=False)  # corners a little outside stay: the box stays a rectangle
        if ring is None:
            return None
        attrs["rotation"] = round(shape.rotation, 6)
        ctx.report.counts["rotated boxes (4-point polygons, attribute rotation)"] += 1
        return Obj(label=label, bbox=polygon_bbox([ring]), polygon=[ring], attributes=attrs)
    if shape.kind == "mask":
        assert shape.mask is not None
        counts, left, top, mw, mh = shape.mask
        if left + mw > w or top + mh > h:
            raise DataError(where, "mask outside the image", field=fld, expected=f"inside 0..{w} x 0..{h}",
                            got=[left, top, left + mw, top + mh], fix="re-export the annotations from CVAT")
        rle = mask_from_cvat(counts, left, top, mw, mh, w, h)
        box = rle_bbox(rle)
        if box is None:
            ctx.report.counts["empty masks (left out)"] += 1
            return None
        ctx.report.counts["masks"] += 1
        return Obj(label=label, bbox=box, mask=rle, attributes=attrs)
    assert shape.points is not None
    pts = _fit_points(shape.points, w, h, on_invalid, ctx, where, f"{fld}.points")
    if pts is None:
        return None
    if shape.kind == "polygon":
        ctx.report.counts["polygons"] += 1
        return Obj(label=label, bbox=polygon_bbox([pts]), polygon=[pts], attributes=attrs)
    if shape.kind == "polyline":
        ctx.report.counts["polylines"] += 1
        return Obj(label=label, polyline=pts, attributes=attrs)
    ctx.report.counts["point sets (keypoints, v=2)"] += 1
    return Obj(label=label, keypoints=[[x, y, 2] for x, y in pts], attributes=attrs)


def _unlisted_images(state: _State, files: SafeFiles) -> list[str]:
    """Images in the ``images/`` folders beside the documents that no ``<image>`` names."""
    from pipeline.core.images import IMAGE_EXTS

    found: list[str] = []
    for folder in sorted(state.folders):
        if os.path.isdir(folder):
            found += [p for p in walk_files(Path(folder), tuple(sorted(IMAGE_EXTS)), files) if os.path.realpath(p) not in state.used]
    return found


def _finish(ctx: ImportContext, labels: Labels, state: _State) -> None:
    """Class order from the documents' labels, the task of a tags-only document, images no document names."""
    unlisted = _unlisted_images(state, ctx.files)
    if unlisted:
        ctx.report.counts["images without an <image> entry (left out)"] += len(unlisted)
        for p in unlisted[:5]:
            ctx.warn(f"{state.rel(p)}: image not named by any <image> of the XML; left out")
    if ctx.options.classes is None and state.declared:
        used = set(labels.seen.values())
        ctx.writer.declare_classes(list(state.declared) + natural_sorted(used - state.declared.keys()))
    if state.tags and not state.shapes and ctx.writer.samples:
        ctx.writer.task = "classification"
        for s in ctx.writer.samples.values():
            s.objects = None
    if state.tags:
        ctx.report.counts["image tags (sample label, meta.tags)"] += state.tags


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _num(v: float) -> str:
    return f"{float(v):.2f}"


def _text_attributes(o: Obj, report: ExportReport | None) -> dict[str, str]:
    """The object's attributes CVAT holds as ``<attribute>`` children (text); others are counted."""
    out: dict[str, str] = {}
    for k, v in (o.attributes or {}).items():
        if k in OWN_ATTRIBUTES:
            continue
        if isinstance(v, bool):
            out[str(k)] = "true" if v else "false"
        elif isinstance(v, (str, int, float)):
            out[str(k)] = str(v)
        elif report is not None:
            report.dropped[f"attributes that are not text or numbers ({k})"] += 1
    return out


def shapes_of(o: Obj, report: ExportReport | None = None) -> list[tuple[str, dict[str, str]]]:
    """The CVAT shapes of one object: ``(tag, XML attributes)`` without label, shared attributes and group."""
    from pipeline.core.geometry import polygon_bbox

    out: list[tuple[str, dict[str, str]]] = []
    rings = [r for r in (o.polygon or []) if len(r) >= 3]
    rotated = rotated_box(rings[0]) if len(rings) == 1 and "rotation" in (o.attributes or {}) else None
    if rotated is not None:
        (xtl, ytl, xbr, ybr), angle = rotated
        out.append(("box", {"xtl": _num(xtl), "ytl": _num(ytl), "xbr": _num(xbr), "ybr": _num(ybr),
                            "rotation": _num(angle)}))
    elif rings:
        out.extend(("polygon", {"points": format_points(r)}) for r in rings)
        if "rotation" in (o.attributes or {}) and report is not None:
            report.converted["rotated boxes that are no longer rectangles -> polygons (rotation not written)"] += 1
        if len(rings) > 1 and report is not None:
            report.converted["polygons of several rings -> one <polygon> per ring (same group_id)"] += 1
        ext = polygon_bbox(rings)
        if o.bbox is not None and ext is not None and any(abs(a - b) > 0.5 for a, b in zip(o.bbox, ext, strict=True)):
            if report is not None:
                report.converted["boxes of objects with a polygon -> the polygon's extent"] += 1
    if o.mask is not None:
        if rings:
            if report is not None:
                report.dropped["masks of objects with a polygon (polygon written)"] += 1
        else:
            cvat = mask_to_cvat(o.mask)
            if cvat is None:
                if report is not None:
                    report.dropped["empty masks"] += 1
            else:
                counts, left, top, w, h = cvat
                out.append(("mask", {"rle": ", ".join(str(c) for c in counts), "left": str(left), "top": str(top),
                                     "width": str(w), "height": str(h)}))
    if o.bbox is not None and not rings and o.mask is None:
        x1, y1, x2, y2 = o.bbox
        out.append(("box", {"xtl": _num(x1), "ytl": _num(y1), "xbr": _num(x2), "ybr": _num(y2)}))
    if o.keypoints:
        pts = [p for p in o.keypoints if len(p) < 3 or p[2] > 0]
        if len(pts) < len(o.keypoints) and report is not None:
            report.dropped["keypoints marked absent (v=0; CVAT points have no visibility)"] += 1
        if pts:
            out.append(("points", {"points": format_points(pts)}))
    if o.polyline and len(o.polyline) >= 2:
        out.append(("polyline", {"points": format_points(o.polyline)}))
    return out


def image_xml(s: Sample, index: int, name: str, report: ExportReport | None = None) -> list[str]:
    """The ``<image>`` element of one sample, as lines."""
    head = {"id": str(index), "name": name}
    if s.split:
        head["subset"] = SUBSET_NAMES.get(s.split, s.split)
    head.update({"width": str(s.width), "height": str(s.height)})
    lines = ["  <image " + " ".join(f"{k}={quoteattr(v)}" for k, v in head.items()) + ">"]
    groups = [int(o.attributes["group_id"]) for o in s.objects or [] if isinstance(o.attributes.get("group_id"), int)]
    next_group = max(groups, default=0) + 1
    for o in s.objects or []:
        shapes = shapes_of(o, report)
        if not shapes:
            if report is not None:
                report.dropped["objects without a box, polygon, mask, points or polyline"] += 1
            continue
        a = o.attributes or {}
        group = a.get("group_id") if isinstance(a.get("group_id"), int) else None
        if group is None and len(shapes) > 1:
            group, next_group = next_group, next_group + 1
            if report is not None:
                report.converted["objects with several geometries -> shapes sharing a group_id"] += 1
        shared = {"label": o.label, "source": str(a.get("source", "manual")),
                  "occluded": "1" if str(a.get("occluded", 0)).strip().lower() in ("1", "true", "yes") else "0"}
        children = "".join(f"\n      <attribute name={quoteattr(k)}>{escape(v)}</attribute>"
                           for k, v in _text_attributes(o, report).items())
        for tag, geometry in shapes:
            attrs = {**shared, **geometry, "z_order": str(_integer_or(a.get("z_order"), 0))}
            if group is not None:
                attrs["group_id"] = str(group)
            lines.append(f"    <{tag} " + " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items()) + ">"
                         + children + f"\n    </{tag}>")
    for tag in _tags_of(s):
        children = "".join(f"\n      <attribute name={quoteattr(str(k))}>{escape(str(v))}</attribute>"
                           for k, v in (tag.get("attributes") or {}).items() if k not in OWN_ATTRIBUTES)
        lines.append(f"    <tag label={quoteattr(tag['label'])} source={quoteattr(str((tag.get('attributes') or {}).get('source', 'manual')))}>"
                     + children + "\n    </tag>")
    lines.append("  </image>")
    return lines


def _integer_or(value: object, default: int) -> int:
    """`value` when it is an integer (not a bool), else `default`."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _tags_of(s: Sample) -> list[dict]:
    """The image's tags: those recorded at import, then its label and soft label's classes not among them."""
    tags = [t for t in (s.meta.get("tags") or []) if isinstance(t, dict) and isinstance(t.get("label"), str)]
    have = {t["label"] for t in tags}
    wanted = ([s.label] if s.label is not None else []) + sorted(s.soft_label or {})
    tags += [{"label": n} for n in wanted if n not in have]
    return tags


def meta_xml(classes: list[str], attributes: dict[str, list[str]], size: int) -> list[str]:
    """``<meta>`` of a task export: its size and labels (with their attributes) in class order."""
    lines = ["  <meta>", "    <task>", "      <id>0</id>", "      <name>pipeline export</name>",
             f"      <size>{size}</size>", "      <mode>annotation</mode>", "      <overlap>0</overlap>",
             "      <labels>"]
    for c in classes:
        lines += ["        <label>", f"          <name>{escape(c)}</name>", "          <type>any</type>",
                  "          <attributes>"]
        for k in attributes.get(c, []):
            lines += ["            <attribute>", f"              <name>{escape(k)}</name>",
                      "              <mutable>False</mutable>", "              <input_type>text</input_type>",
                      "              <default_value></default_value>", "              <values></values>",
                      "            </attribute>"]
        lines += ["          </attributes>", "        </label>"]
    lines += ["      </labels>", "    </task>", "  </meta>"]
    return lines


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """``annotations.xml`` (CVAT for images 1.1, task layout) and ``images/<name>``."""
    out = Path(out)
    names = ExportNames()
    body: list[str] = []
    attributes: dict[str, list[str]] = defaultdict(list)
    for index, s in enumerate(dataset.samples):
        name = f"{names.stem(s, flat=False)}{Path(s.image).suffix.lower() or '.png'}"
        dataset.copy_image(s, out / IMAGES / name)
        body += image_xml(s, index, name, report)
        for o in s.objects or []:
            for k in _text_attributes(o, None):
                if k not in attributes[o.label]:
                    attributes[o.label].append(k)
        report.written += 1
        report.files += 1
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", f"  <version>{VERSION}</version>",
             *meta_xml(dataset.classes, attributes, len(dataset.samples)), *body, "</annotations>"]
    (out / EXPORT_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    report.files += 1

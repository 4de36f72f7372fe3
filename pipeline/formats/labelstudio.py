"""Label Studio JSON: the full JSON export and JSON-MIN, read; the full task format, written.

Follows Label Studio's task and result formats (labelstud.io/guide/task_format, export_formats).
The **full export** is a list of tasks::

    [{"id": 3, "data": {"image": "/data/upload/1/5f2c1a0b-dog.jpg"},
      "annotations": [{"id": 11, "completed_by": 2, "was_cancelled": false, "updated_at": "2026-...",
                       "result": [{"id": "r1", "type": "rectanglelabels", "from_name": "label",
                                   "to_name": "image", "original_width": 640, "original_height": 480,
                                   "value": {"x": 10, "y": 10, "width": 40, "height": 40, "rotation": 0,
                                             "rectanglelabels": ["dog"]}}]}],
      "predictions": [{"model_version": "v3", "score": 0.8, "result": [...]}]}]

**JSON-MIN** is one flat row per task: the image URL, ``annotator``, ``annotation_id``,
``created_at``/``updated_at`` and one key per control tag (``"label": [{"x": .., "rectanglelabels":
[..], "original_width": ..}]`` for regions, ``"choice": "cat"`` for a choice). JSON-MIN does not
name the control type: a text value is read as an image-level choice, and without result ids
per-region choices cannot be linked. A task's data keys sit at the top of its row too: ``sample_id``
and ``split`` (written by our export and by ``pipeline prelabel``) are read as in the full export.

Coordinates are percent of the image (``x``, ``y``, ``width``, ``height``, polygon ``points``,
keypoint ``x``/``y``, all 0..100), converted here and nowhere else: ``x_px = x / 100 * width``.
A rectangle's ``rotation`` is in degrees, clockwise about its top-left corner (``x``, ``y``); a
rotated rectangle is kept as a 4-point polygon with its enclosing ``bbox`` and
``attributes["rotation"]``, and written back as a rotated rectangle. Result types read:
``rectanglelabels``, ``polygonlabels``, ``keypointlabels`` (one visible keypoint per region),
``rectangle``/``polygon``/``keypoint`` with a ``labels`` result of the same id giving the class,
and ``choices``: a ``choices`` result whose ``id`` (or ``parent_id``) is a region's id is a
per-region choice, kept in that object's ``attributes["choices"]`` (``{control name: [values]}``;
classes are never taken from them); any other ``choices`` result is the image's class (``label``;
one choice per image). Every object keeps its result id in ``attributes["region_id"]``. Results
that are not labels (``textarea``, ``rating``, ``relation``, ...) are counted in the summary; other
shapes (brushes, ellipses, ...) make the task a problem.

**Annotations**: a cancelled annotation (``was_cancelled``) is left out and counted. By default the
newest of the others (``updated_at``, else ``created_at``) gives the sample's ``label``/``objects``
and its annotator and id go into ``source``; with ``--annotations all`` every one is kept in the
sample's ``annotations`` (annotator, time, source id) as well. **Predictions** are kept in the
sample's ``predictions`` (model version, score, each region's own ``score``). A task without any
annotation is imported unlabelled (no ``objects``). A project export of the Label Studio server
lists a task's predictions by id only (``"predictions": [2]``): those are counted, not read.

**Classes** follow the labelling config when the export carries one (an ``.xml`` file with a
``<View>`` root at the top of SRC, e.g. the ``label_config.xml`` that export writes): the ``value``
of every ``<Label>`` and of every ``<Choice>`` of a ``<Choices>`` that is not ``perRegion``, in
document order. Without it, classes are in first-seen order. ``--classes`` overrides both.

**Images** are found by file name under ``--images DIR`` (default: SRC); nothing outside it is
read. URL styles: ``/data/upload/N/<8 hex>-name.jpg`` (tried as stored, then without the hash
prefix Label Studio adds), ``/data/local-files/?d=path`` (the path under the images folder, then
its file name), ``http(s)://host/.../name.jpg``, ``s3://``/``gs://`` and bare ``/name.jpg``. A
missing image, or a name two files share, is a problem of that task, naming its id and URL.
Label Studio shows images with EXIF orientation applied, so coordinates are taken as upright.

Limits (hostile input): a JSON file of at most 512 MiB, 2,000,000 tasks per file, 100,000
results per annotation and 100,000 points per polygon; class names of at most 256 characters.

**Export** writes ``tasks.json`` (tasks Label Studio imports as they are), ``label_config.xml``
(the labelling config to create the project with: one ``RectangleLabels``/``PolygonLabels``/
``KeyPointLabels``/``Choices`` control per kind used, every class in dataset order) and the images
under ``images/``. Image URLs are ``/data/local-files/?d=images/<name>``: serve them by starting
Label Studio with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to the export folder, and add a Local Files storage
for its ``images`` folder. Splits go into ``data.split`` (read back on import).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import quoteattr

from pipeline.core import limits
from pipeline.core.dataset import DATASET_JSON, SPLITS, Annotation, Dataset, Obj, Prediction, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import IMAGE_EXTS
from pipeline.core.numbers import is_number
from pipeline.core.paths import SafeFiles
from pipeline.formats.base import Detection, ExportReport, ImportContext, relative_files
from pipeline.formats.common import (
    EDGE_TOLERANCE,
    OUTSIDE_CLIPPED,
    OUTSIDE_SKIPPED,
    ExportNames,
    Labels,
    add_image_sample,
    decide_frame,
    fit_box,
    probe_image,
    walk_files,
)

NAME = "labelstudio"
LOOKS_FOR = "JSON list of tasks with data.image (Label Studio export)"
FIX = "fix the task in the JSON, or export the project again from Label Studio"
TASK = "detection"  # classification when the tasks hold image-level choices only
HOLDS_REVIEWS = True  # keeps per-sample annotations and predictions (see ingest.count_reviews_not_held)

# The caps, from the one place every reader takes them (`pipeline.core.limits`).
MAX_FILE_BYTES = limits.MAX_DOCUMENT_BYTES  # a JSON export larger than this is refused
MAX_CONFIG_BYTES = limits.MAX_LABEL_CONFIG_BYTES  # a labelling config larger than this is ignored with a warning
MAX_TASKS = limits.MAX_DOCUMENT_ENTRIES  # tasks (rows) per file
MAX_RESULTS = limits.MAX_OBJECTS  # results per annotation or prediction
MAX_POINTS = limits.MAX_POINTS  # points per polygon
MAX_NAME = limits.MAX_CLASS_NAME  # characters of a class name or a control name

NOT_LABEL_STUDIO = "JSON files that are not Label Studio exports"
CANCELLED = "cancelled annotations left out"
UNANNOTATED = "tasks without annotations (imported unlabelled)"
REGION_TYPES = {"rectanglelabels": "rectangle", "polygonlabels": "polygon", "keypointlabels": "keypoint",
                "rectangle": "rectangle", "polygon": "polygon", "keypoint": "keypoint"}
NOT_LABELS = {"textarea", "rating", "number", "datetime", "taxonomy", "relation", "pairwise", "ranker",
              "hypertextlabels", "paragraphlabels"}
MIN_META = {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement",
            "drafts", "predictions", "annotations", "meta", "total_annotations", "cancelled_annotations",
            "total_predictions", "file_upload", "inner_id", "sample_id", "split"}  # (the last two: our tasks' data)
UPLOAD_HASH = re.compile(r"^[0-9a-fA-F]{8}-(.+)$")  # /data/upload/N/<8 hex>-name.jpg


# --------------------------------------------------------------------------------------------
# Percent coordinates
# --------------------------------------------------------------------------------------------


def rect_corners(x: float, y: float, w: float, h: float, rotation: float) -> list[list[float]]:
    """The corners of a Label Studio rectangle in pixels: top-left (x, y), size (w, h), rotated
    `rotation` degrees clockwise (y down) about the top-left corner; in drawing order."""
    t = math.radians(rotation)
    c, s = math.cos(t), math.sin(t)
    return [[x, y], [x + w * c, y + w * s], [x + w * c - h * s, y + w * s + h * c], [x - h * s, y + h * c]]


def corners_to_rect(ring: list[list[float]]) -> tuple[float, float, float, float, float]:
    """The inverse of `rect_corners`: (x, y, w, h, rotation in [0, 360)) from four corners."""
    (x0, y0), (x1, y1), _, (x3, y3) = (p[:2] for p in ring)
    w = math.hypot(x1 - x0, y1 - y0)
    h = math.hypot(x3 - x0, y3 - y0)
    rotation = math.degrees(math.atan2(y1 - y0, x1 - x0)) % 360.0
    return x0, y0, w, h, rotation


def _pct(v: float, size: int) -> float:
    return v / size * 100.0 if size else 0.0  # full precision: pixels come back exact after `_px`


def _px(v: float, size: int) -> float:
    """Percent -> pixels, to a millionth of a pixel (so 100/3 % of 48 px reads back as 16.0)."""
    return round(float(v) / 100.0 * size, 6)


# --------------------------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------------------------


@dataclass
class Parsed:
    """The labels of one annotation or prediction: an image-level class and objects."""

    label: str | None = None
    objects: list[Obj] = field(default_factory=list)


def _num(value: dict, key: str, where: str, fld: str, default: float | None = None) -> float:
    v = value.get(key, default) if default is not None else value.get(key)
    if not is_number(v):
        raise DataError(where, "", field=f"{fld}.{key}", expected="a finite number", got=v, fix=FIX)
    return float(v)


def _names(value: object, where: str, fld: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise DataError(where, "", field=fld, expected="a non-empty list of names", got=value, fix=FIX)
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip() or len(v) > MAX_NAME:
            raise DataError(where, "", field=f"{fld}[{i}]", expected=f"a name of 1..{MAX_NAME} characters", got=v, fix=FIX)
        out.append(v.strip())
    return out


def _rid(value: object) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return None


class ResultReader:
    """Turns the `result` list of one annotation or prediction into a `Parsed` (pixels), for one
    image of (width, height) pixels in the frame the coordinates are in."""

    def __init__(self, ctx: ImportContext, labels: Labels, size: tuple[int, int]) -> None:
        self.ctx, self.labels, (self.width, self.height) = ctx, labels, size

    def read(self, results: object, where: str, fld: str, *, scores: bool = False) -> Parsed:
        if not isinstance(results, list):
            raise DataError(where, "", field=fld, expected="a list of results", got=type(results).__name__, fix=FIX)
        if len(results) > MAX_RESULTS:
            raise DataError(where, "too many results", field=fld, expected=f"at most {MAX_RESULTS}",
                            got=len(results), fix=FIX)
        regions: dict[str, Obj] = {}
        objects: list[tuple[Obj, str, str]] = []  # (object, result type, field)
        later: list[tuple[int, dict]] = []  # choices and labels, once every region is known
        for i, r in enumerate(results):
            rf = f"{fld}[{i}]"
            if not isinstance(r, dict):
                raise DataError(where, "", field=rf, expected="a result object", got=r, fix=FIX)
            kind = r.get("type")
            if not isinstance(kind, str):
                raise DataError(where, "", field=f"{rf}.type", expected="a result type", got=kind, fix=FIX)
            if kind in REGION_TYPES:
                try:
                    obj = self.region(r, kind, where, rf)
                except _Skipped:
                    continue
                if scores and r.get("score") is not None:
                    if not is_number(r["score"]):
                        raise DataError(where, "", field=f"{rf}.score", expected="a finite number", got=r["score"], fix=FIX)
                    obj.score = float(r["score"])
                rid = _rid(r.get("id"))
                if rid is not None:
                    if rid in regions:
                        raise DataError(where, "two regions with the same id", field=f"{rf}.id",
                                        expected="unique result ids", got=rid, fix=FIX)
                    obj.attributes["region_id"] = rid
                    regions[rid] = obj
                objects.append((obj, kind, rf))
            elif kind in ("choices", "labels"):
                later.append((i, r))
            elif kind in NOT_LABELS:
                self.ctx.skip(f"results of type {kind} (not labels)")
            else:
                raise DataError(where, "result type not imported", field=f"{rf}.type",
                                expected="rectanglelabels, polygonlabels, keypointlabels, choices or labels",
                                got=kind, fix="convert those regions in Label Studio, or remove them")
        parsed = Parsed()
        for i, r in later:
            self._linked(r, f"{fld}[{i}]", where, regions, parsed)
        for obj, kind, rf in objects:
            if obj.label == "":
                raise DataError(where, f"a {kind} region without a class", field=rf,
                                expected=f"a labels result with the same id, or a {kind}labels result",
                                got=r_id if (r_id := obj.attributes.get("region_id")) else "no id", fix=FIX)
        parsed.objects = [o for o, _k, _f in objects]
        return parsed

    def _linked(self, r: dict, rf: str, where: str, regions: dict[str, Obj], parsed: Parsed) -> None:
        """A `labels` or `choices` result: a region's class or per-region choice, or the image's class."""
        value = r.get("value")
        if not isinstance(value, dict):
            raise DataError(where, "", field=f"{rf}.value", expected="an object", got=value, fix=FIX)
        linked = regions.get(_rid(r.get("id")) or "") or regions.get(_rid(r.get("parent_id")) or "")
        if r["type"] == "labels":
            if linked is None:
                self.ctx.skip("labels results without a region")
                return
            names = _names(value.get("labels"), where, f"{rf}.value.labels")
            linked.label = self.labels(self._one(names, where, f"{rf}.value.labels"), where, f"{rf}.value.labels")
            return
        names = _names(value.get("choices"), where, f"{rf}.value.choices")
        if linked is not None:
            control = r.get("from_name")
            if not isinstance(control, str) or not control or len(control) > MAX_NAME:
                raise DataError(where, "", field=f"{rf}.from_name", expected="the name of a Choices control",
                                got=control, fix=FIX)
            linked.attributes.setdefault("choices", {})[control] = names
            return
        label = self.labels(self._one(names, where, f"{rf}.value.choices"), where, f"{rf}.value.choices")
        if parsed.label is not None and parsed.label != label:
            raise DataError(where, "several image-level choices", field=f"{rf}.value.choices",
                            expected="one class per image (the dataset holds one label)", got=[parsed.label, label], fix=FIX)
        parsed.label = label

    @staticmethod
    def _one(names: list[str], where: str, fld: str) -> str:
        if len(names) != 1:
            raise DataError(where, "several classes on one region or image", field=fld,
                            expected="one class (the dataset holds one label per region and image)", got=names, fix=FIX)
        return names[0]

    def region(self, r: dict, kind: str, where: str, rf: str) -> Obj:
        """One region result -> an object in pixels (label "" until a `labels` result names it)."""
        value = r.get("value")
        if not isinstance(value, dict):
            raise DataError(where, "", field=f"{rf}.value", expected="an object", got=value, fix=FIX)
        label = ""
        if kind.endswith("labels"):
            names = _names(value.get(kind), where, f"{rf}.value.{kind}")
            label = self.labels(self._one(names, where, f"{rf}.value.{kind}"), where, f"{rf}.value.{kind}")
        shape = REGION_TYPES[kind]
        W, H = self.width, self.height
        vf = f"{rf}.value"
        if shape == "rectangle":
            x, y = _px(_num(value, "x", where, vf), W), _px(_num(value, "y", where, vf), H)
            w, h = _px(_num(value, "width", where, vf), W), _px(_num(value, "height", where, vf), H)
            rotation = _num(value, "rotation", where, vf, default=0.0)
            if w < 0 or h < 0:
                raise DataError(where, "negative size", field=vf, expected="width >= 0 and height >= 0",
                                got=[value.get("width"), value.get("height")], fix=FIX)
            if rotation % 360.0 == 0.0:
                return self._boxed(Obj(label=label, bbox=[x, y, x + w, y + h]), where, vf)
            ring = [[round(v, 6) for v in p] for p in rect_corners(x, y, w, h, rotation)]
            obj = Obj(label=label, polygon=[ring], attributes={"rotation": rotation})
            return self._boxed(obj, where, vf)
        if shape == "polygon":
            pts = value.get("points")
            if not isinstance(pts, list) or len(pts) < 3 or len(pts) > MAX_POINTS:
                raise DataError(where, "", field=f"{vf}.points", expected=f"3..{MAX_POINTS} [x, y] points",
                                got=pts if not isinstance(pts, list) else f"{len(pts)} points", fix=FIX)
            ring = []
            for j, p in enumerate(pts):
                if not (isinstance(p, list) and len(p) == 2 and all(is_number(v) for v in p)):
                    raise DataError(where, "", field=f"{vf}.points[{j}]", expected="[x, y] of finite numbers", got=p, fix=FIX)
                ring.append([_px(p[0], W), _px(p[1], H)])
            return self._boxed(Obj(label=label, polygon=[ring]), where, vf)
        x, y = _px(_num(value, "x", where, vf), W), _px(_num(value, "y", where, vf), H)
        obj = self._boxed(Obj(label=label, bbox=[x, y, x, y]), where, vf)
        return Obj(label=label, keypoints=[[obj.bbox[0], obj.bbox[1], 2]])

    def _boxed(self, obj: Obj, where: str, fld: str) -> Obj:
        """The object's box (its polygon's bounds) checked against the image (--on-invalid); a clipped
        polygon has its points clamped. A skipped object is returned with `label` None."""
        from pipeline.core.geometry import polygon_bbox

        box = obj.bbox if obj.bbox is not None else polygon_bbox(obj.polygon)
        assert box is not None
        on_invalid = self.ctx.options.on_invalid
        t = EDGE_TOLERANCE
        outside = box[0] < -t or box[1] < -t or box[2] > self.width + t or box[3] > self.height + t
        if outside and on_invalid == "skip":
            self.ctx.report.counts[OUTSIDE_SKIPPED] += 1
            raise _Skipped()
        fitted = fit_box(list(box), self.width, self.height, "clip" if on_invalid == "clip" else "error",
                         None, where, fld)
        if outside:
            self.ctx.report.counts[OUTSIDE_CLIPPED] += 1
        assert fitted is not None
        obj.bbox = fitted
        if obj.polygon is not None and (outside or fitted != list(box)):
            obj.polygon = [[[min(max(px, 0.0), self.width), min(max(py, 0.0), self.height)] for px, py in ring]
                           for ring in obj.polygon]
        return obj


class _Skipped(Exception):  # noqa: N818 - control flow: a region left out by --on-invalid skip
    """Raised by `ResultReader.region` for a region outside the image under ``--on-invalid skip``."""


# --------------------------------------------------------------------------------------------
# Image URLs
# --------------------------------------------------------------------------------------------


def url_candidates(url: str) -> tuple[str | None, list[str]]:
    """(a path to try under the images folder or None, file names to look up in order) for an image URL."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.path.endswith("/data/local-files/") or parts.path == "/data/local-files":
        d = parse_qs(parts.query).get("d", [""])[0]
        rel = d.replace("\\", "/").lstrip("/")
        name = rel.rsplit("/", 1)[-1]
        return (rel or None), ([name] if name else [])
    path = unquote(parts.path).replace("\\", "/")
    name = path.rstrip("/").rsplit("/", 1)[-1].strip()
    if not name:
        return None, []
    names = [name]
    if "/data/upload/" in path or path.startswith("data/upload/"):
        m = UPLOAD_HASH.match(name)
        if m:
            names.append(m.group(1))
    return None, names


class ImageIndex:
    """Every image file under the images folder, by case-folded file name (listed once). Hidden
    folders, ``__MACOSX`` and pipeline datasets inside it (a folder with a ``dataset.json``, such as
    an earlier import written into SRC) are not entered."""

    def __init__(self, root: Path, files: SafeFiles | None = None) -> None:
        self.root = os.path.realpath(root)
        self.files = files if files is not None else SafeFiles([self.root])
        self.by_name: dict[str, list[str]] = {}
        for dirpath, dirnames, filenames in self.files.walk(self.root):
            if dirpath != self.root and DATASET_JSON in filenames:
                dirnames[:] = []
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d.casefold() != "__macosx")
            for name in sorted(filenames):
                if os.path.splitext(name)[1].lower() in IMAGE_EXTS and not name.startswith("._"):
                    self.by_name.setdefault(name.casefold(), []).append(os.path.join(dirpath, name))

    def inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def find(self, url: str, where: str, fld: str) -> str:
        rel, names = url_candidates(url)
        if rel and ".." not in rel.split("/"):
            cand = os.path.normpath(os.path.join(self.root, rel))
            if self.inside(cand) and self.files.is_file(cand):
                return cand
        for name in names:
            found = self.by_name.get(name.casefold(), [])
            if len(found) > 1:
                shown = [os.path.relpath(f, self.root) for f in found[:3]]
                raise DataError(where, "ambiguous image name", field=fld,
                                expected="one image of that name under the images folder",
                                got=f"{url} -> {shown}", fix="keep one of them, or point --images at one folder")
            if found:
                if not self.inside(found[0]):
                    raise DataError(where, "image link leads outside the images folder", field=fld,
                                    expected="a file inside it", got=url, fix=FIX)
                return found[0]
        raise DataError(where, "image not found", field=fld, expected="an image of that name under the images folder",
                        got=url, fix="point --images at the folder holding the task images")


# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------


def read_document(path: str, where: str) -> bytes:
    """A JSON file's bytes, size-capped."""
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise DataError(where, "file too large", expected=f"at most {MAX_FILE_BYTES} bytes", got=size,
                        fix="split the export into several files")
    return Path(path).read_bytes()


def load_document(path: str, where: str) -> object:
    """A JSON file, size-capped, parsed (`parse_document`)."""
    return parse_document(read_document(path, where), where)


def parse_document(raw: bytes, where: str) -> object:
    """JSON text; malformed or too deeply nested text, or a number over Python's digit limit, is a
    `DataError` (`pipeline.core.limits.load_json`)."""
    return limits.load_json(raw, where, limit=MAX_FILE_BYTES,
                            fix="export the project again from Label Studio")


def kind_of(doc: object) -> str | None:
    """"full" (tasks with data), "min" (JSON-MIN rows) or None (not a Label Studio export)."""
    if not isinstance(doc, list) or not doc or not all(isinstance(t, dict) for t in doc[:50]):
        return None
    first = doc[0]
    if isinstance(first.get("data"), dict) and ("annotations" in first or "predictions" in first or "id" in first):
        return "full"
    if "data" not in first and ("annotation_id" in first or "annotator" in first) and _image_url(first):
        return "min"
    return None


def _image_url(data: dict) -> str | None:
    url = data.get("image")
    if isinstance(url, str) and url.strip():
        return url
    for key, v in data.items():
        if key in MIN_META or not isinstance(v, str):
            continue
        _rel, names = url_candidates(v)
        if names and os.path.splitext(names[-1])[1].lower() in IMAGE_EXTS:
            return v
    return None


def _peek(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8192).lstrip()
    except OSError:
        return None
    if not head.startswith(b"["):
        return None
    if b'"data"' in head and (b'"annotations"' in head or b'"predictions"' in head):
        return "full"
    if b'"annotation_id"' in head and b'"annotator"' in head:
        return "min"
    return None


def count(root: Path, paths: list[Path]) -> dict[str, int]:
    """A cheap count for `pipeline detect`: the tasks (one image each) in `paths`; objects and classes
    need the import."""
    return {"images": sum(len(json.loads(p.read_bytes())) for p in paths)}


def config_classes(root: Path, ctx: ImportContext | None = None) -> list[str] | None:
    """Class names in the order of a labelling config (`<View>` XML at the top of `root`), or None."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    if not root.is_dir():
        return None
    safe = ctx.files if ctx is not None else SafeFiles([root])
    for path in sorted(p for p in root.iterdir() if p.suffix.lower() == ".xml" and safe.is_file(p)):
        if path.stat().st_size > MAX_CONFIG_BYTES:
            if ctx is not None:
                ctx.warn(f"{path.name}: larger than {MAX_CONFIG_BYTES} bytes; not read as a labelling config")
            continue
        try:
            tree = DET.fromstring(path.read_bytes(), forbid_dtd=True)
        except (ParseError, DefusedXmlException, ValueError) as exc:
            if ctx is not None:
                ctx.warn(f"{path.name}: not read as a labelling config ({exc})")
            continue
        if tree.tag != "View":
            continue
        names: list[str] = []
        for el in tree.iter():
            tag = el.tag if isinstance(el.tag, str) else ""
            if tag.endswith("Labels"):
                values = [c.get("value") for c in el if c.tag == "Label"]
            elif tag == "Choices" and el.get("perRegion", "").lower() != "true":
                values = [c.get("value") for c in el if c.tag == "Choice"]
            else:
                continue
            for v in values:
                if isinstance(v, str) and v.strip() and len(v) <= MAX_NAME and v.strip() not in names:
                    names.append(v.strip())
        if ctx is not None:
            ctx.input_file(path, path.read_bytes())
        return names
    return None


def detect(root: Path) -> Detection | None:
    root = Path(root)
    files = [str(root)] if root.is_file() and root.suffix.lower() == ".json" else (
        walk_files(root, (".json",))[:200] if root.is_dir() else [])
    peeked = [(f, _peek(f)) for f in files]
    kinds = [k for _, k in peeked if k]
    if not kinds:
        return None
    what = "full export" if "full" in kinds else "JSON-MIN"
    return Detection(score=70, description=f"Label Studio JSON {what} ({len(kinds)} file(s) of tasks)",
                     files=relative_files(root, [f for f, k in peeked if k]))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _annotator(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("email") or value.get("id")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)):
        text = str(value).strip()
        return text[:MAX_NAME] or None
    return None


def _time(entry: dict) -> str | None:
    for key in ("updated_at", "created_at"):
        v = entry.get(key)
        if isinstance(v, str) and v.strip():
            return v.strip()[:64]  # ISO 8601 times are far shorter; a longer text is cut, not stored whole
    return None


def _time_key(text: str | None) -> tuple:
    if not text:
        return (0, "")
    try:
        return (1, datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except (ValueError, OverflowError):  # not ISO 8601, or outside what a timestamp holds
        return (1, 0.0, text)


@dataclass
class Task:
    """One task, whatever the export flavour: its image URL and raw annotations/predictions."""

    id: object
    url: str
    fld: str  # where in the file: "[3]"
    url_field: str  # where the URL is: "[3].data.image"
    split: str | None
    annotations: list[dict]
    predictions: list[dict]
    sample_id: str | None = None  # data.sample_id, written by our export: the sample's id kept


def _safe_id(value: object) -> bool:
    if not isinstance(value, str) or not value.strip() or len(value) > 1024 or "\0" in value:
        return False
    parts = value.split("/")
    return not value.startswith(("/", "\\")) and ".." not in parts and "" not in parts and ":" not in parts[0]


def tasks_of(doc: list, kind: str, where: str) -> list[Task]:
    """The tasks of a full export or the rows of a JSON-MIN file (structure checked per task)."""
    if len(doc) > MAX_TASKS:
        raise DataError(where, "too many tasks", expected=f"at most {MAX_TASKS}", got=len(doc), fix=FIX)
    return [_task(t, kind, where, f"[{i}]") for i, t in enumerate(doc)]


def _task(t: object, kind: str, where: str, fld: str) -> Task | DataError:
    if not isinstance(t, dict):
        return DataError(where, "", field=fld, expected="a task object", got=t, fix=FIX)
    if kind == "full":
        data = t.get("data")
        if not isinstance(data, dict):
            return DataError(where, "", field=f"{fld}.data", expected="an object with the image URL", got=data, fix=FIX)
        url = _image_url(data)
        if url is None:
            return DataError(where, "", field=f"{fld}.data.image", expected="an image URL", got=data.get("image"), fix=FIX)
        anns, preds = t.get("annotations", []), t.get("predictions", [])
        for key, v in (("annotations", anns), ("predictions", preds)):
            if not isinstance(v, list):
                return DataError(where, "", field=f"{fld}.{key}", expected="a list", got=type(v).__name__, fix=FIX)
        split = data.get("split") if data.get("split") in SPLITS else None
        sample_id = data.get("sample_id")
        if sample_id is not None and not _safe_id(sample_id):
            return DataError(where, "", field=f"{fld}.data.sample_id", expected="a relative name without '..'",
                             got=sample_id, fix=FIX)
        return Task(t.get("id"), url, fld, f"{fld}.data.image", split, anns, preds, sample_id)
    url = _image_url(t)
    if url is None:
        return DataError(where, "", field=f"{fld}.image", expected="an image URL", got=t.get("image"), fix=FIX)
    sample_id = t.get("sample_id")  # JSON-MIN puts a task's data keys at the top of its row
    if sample_id is not None and not _safe_id(sample_id):
        return DataError(where, "", field=f"{fld}.sample_id", expected="a relative name without '..'",
                         got=sample_id, fix=FIX)
    split = t.get("split") if t.get("split") in SPLITS else None
    return Task(t.get("id"), url, fld, f"{fld}.image", split, [_min_annotation(t, url)], [], sample_id)


def _min_annotation(row: dict, url: str) -> dict:
    """A JSON-MIN row as a full-export annotation (results rebuilt from its control keys)."""
    results: list[dict] = []
    for key, v in row.items():
        if key in MIN_META or key == "image" or v == url:
            continue
        items = v if isinstance(v, list) else [v]
        for item in items:
            if isinstance(item, str):
                results.append({"type": "choices", "from_name": key, "value": {"choices": [item]}})
            elif isinstance(item, dict) and isinstance(item.get("choices"), list):
                results.append({"type": "choices", "from_name": key, "value": {"choices": item["choices"]}})
            elif isinstance(item, dict):
                kind = next((k for k in item if k in REGION_TYPES and k.endswith("labels")), None)
                if kind is None:
                    results.append({"type": f"{key} (unknown JSON-MIN value)", "value": item})
                    continue
                results.append({"type": kind, "from_name": key, "value": item,
                                "original_width": item.get("original_width"),
                                "original_height": item.get("original_height")})
            else:
                results.append({"type": f"{key} (unknown JSON-MIN value)", "value": item})
    return {"id": row.get("annotation_id"), "completed_by": row.get("annotator"), "result": results,
            "created_at": row.get("created_at"), "updated_at": row.get("updated_at")}


def _declared_size(task: Task) -> tuple[int, int] | None:
    for entry in (*task.annotations, *task.predictions):
        results = entry.get("result") if isinstance(entry, dict) else None
        for r in results if isinstance(results, list) else ():
            if isinstance(r, dict):
                w, h = r.get("original_width"), r.get("original_height")
                if isinstance(w, int) and isinstance(h, int) and not isinstance(w, bool) and w > 0 and h > 0:
                    return w, h
    return None


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    if not root.exists():
        raise UsageError(f"{root}: no such file or folder", fix="point at a Label Studio JSON export or its folder")
    ctx.default_fix = FIX
    mode = ctx.options.extra.get("annotations", "newest")
    if mode not in ("newest", "all"):
        raise UsageError(f"--annotations {mode!r}: expected newest or all", fix="point at a Label Studio JSON export or its folder")
    files = [str(root)] if root.is_file() else walk_files(root, (".json",), ctx.files)
    base = os.path.abspath(root if root.is_dir() else root.parent)
    index = ImageIndex(ctx.images_root, ctx.files)
    labels = Labels(ctx)
    order = config_classes(root, ctx) if root.is_dir() else None
    seen_images: dict[str, str] = {}
    kinds = {"objects": 0, "labels": 0}
    for path in ctx.progress(files, total=len(files), desc="import labelstudio", unit="file"):
        where = os.path.relpath(path, base).replace(os.sep, "/")
        try:
            raw = read_document(path, where) if _peek(path) or root.is_file() else None
            doc = parse_document(raw, where) if raw is not None else None
            kind = kind_of(doc)
            if kind is None:
                ctx.skip(NOT_LABEL_STUDIO)
                continue
            assert raw is not None
            ctx.input_file(path, raw)
            assert isinstance(doc, list)
            tasks = tasks_of(doc, kind, where)
        except DataError as err:
            ctx.bad(err)
            continue
        for task in tasks:
            try:
                if isinstance(task, DataError):
                    raise task
                _read_task(ctx, task, where, index, labels, mode, seen_images, kinds)
            except DataError as err:
                ctx.bad(err)
    _settle_classes(ctx, order, labels)
    if kinds["labels"] and not kinds["objects"]:
        ctx.writer.task = "classification"


def _task_where(where: str, task: Task) -> str:
    tid = _source_id(task.id)
    return f"{where}: task {str(tid)[:64]}" if tid is not None else where


def _read_task(ctx: ImportContext, task: Task, where: str, index: ImageIndex, labels: Labels, mode: str,
               seen: dict[str, str], kinds: dict[str, int]) -> None:
    at = _task_where(where, task)
    fld = task.url_field
    image = index.find(task.url, at, fld)
    if image in seen:
        raise DataError(at, "image in two tasks", field=fld, expected="one task per image",
                        got=f"{task.url} (also {seen[image]})", fix=FIX)
    rel_image = os.path.relpath(image, index.root).replace(os.sep, "/")
    probe = probe_image(image, rel_image)
    frame = decide_frame((probe.width, probe.height), probe.orientation, _declared_size(task), "upright")
    reader = ResultReader(ctx, labels, frame.source_size)

    anns = _annotations(ctx, reader, task, at)
    predictions = _predictions(reader, task, at)
    newest = anns[-1] if anns else None
    own = [o.copy() for o in newest.objects or []] if newest is not None else None
    if frame.rotate and frame.orientation != 1:  # add_image_sample turns the sample's own objects; these here
        for a in (*anns, *predictions):
            a.objects = [frame.obj(o) for o in a.objects] if a.objects is not None else None
    source: dict[str, Any] = {"file": where, "image": rel_image, "url": task.url}
    if _source_id(task.id) is not None:
        source["task"] = task.id
    sample = Sample(id=task.sample_id or os.path.splitext(rel_image)[0], split=task.split, source=source)
    if newest is not None:
        sample.label = newest.label
        sample.objects = own
        if newest.annotator is not None:
            source["annotator"] = newest.annotator
        if newest.source_id is not None:
            source["annotation"] = newest.source_id
        if mode == "all":
            sample.annotations = anns
    else:
        ctx.skip(UNANNOTATED)
    if predictions:
        sample.predictions = predictions
    seen[image] = at
    add_image_sample(ctx, image, sample, probe=probe, frame=frame, where=at)
    if sample.label is not None:
        kinds["labels"] += 1
    if sample.objects:
        kinds["objects"] += 1
    ctx.report.counts["objects"] += len(sample.objects or [])
    if predictions:
        ctx.report.counts["predictions"] += len(predictions)
    listed = sum(map(_is_id, task.predictions))
    if listed:
        ctx.report.counts["predictions listed by id only (not in the export)"] += listed
    if mode == "all" and anns:
        ctx.report.counts["annotations kept"] += len(anns)


def _annotations(ctx: ImportContext, reader: ResultReader, task: Task, at: str) -> list[Annotation]:
    """The task's annotations that were not cancelled, oldest first (by `updated_at`, else
    `created_at`; ties and missing times in file order)."""
    kept: list[tuple[tuple, Annotation]] = []
    for i, ann in enumerate(task.annotations):
        af = f"{task.fld}.annotations[{i}]"
        if not isinstance(ann, dict):
            raise DataError(at, "", field=af, expected="an annotation object", got=ann, fix=FIX)
        if ann.get("was_cancelled") is True:
            ctx.skip(CANCELLED)
            continue
        parsed = reader.read(ann.get("result", []), at, f"{af}.result")
        time = _time(ann)
        kept.append(((_time_key(time), i), Annotation(
            annotator=_annotator(ann.get("completed_by")), label=parsed.label, objects=parsed.objects, time=time,
            source_id=_source_id(ann.get("id")))))
    kept.sort(key=lambda kv: kv[0])
    return [a for _k, a in kept]


def _predictions(reader: ResultReader, task: Task, at: str) -> list[Prediction]:
    """The task's predictions, each with its model version, score and region scores."""
    out: list[Prediction] = []
    for i, pred in enumerate(task.predictions):
        pf = f"{task.fld}.predictions[{i}]"
        if _is_id(pred):  # Label Studio's project export lists a task's predictions by id only
            continue
        if not isinstance(pred, dict):
            raise DataError(at, "", field=pf, expected="a prediction object", got=pred, fix=FIX)
        parsed = reader.read(pred.get("result", []), at, f"{pf}.result", scores=True)
        score = pred.get("score")
        if score is not None and not is_number(score):
            raise DataError(at, "", field=f"{pf}.score", expected="a finite number or null", got=score, fix=FIX)
        version = pred.get("model_version")
        out.append(Prediction(
            model_version=None if version is None else str(version)[:MAX_NAME],
            score=None if score is None else float(score), label=parsed.label, objects=parsed.objects,
            source_id=_source_id(pred.get("id"))))
    return out


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _source_id(value: object) -> str | int | None:
    """An id as the tool wrote it (a string or an integer); anything else is no id."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return value


def _settle_classes(ctx: ImportContext, order: list[str] | None, labels: Labels) -> None:
    """Classes in the labelling config's order, then in first-seen order (unless --classes fixed them)."""
    if ctx.options.classes is not None:
        return
    ordered: list[str] = []
    for name in order or []:
        mapped = ctx.writer.class_map.get(name, name)
        if mapped not in ordered:
            ordered.append(mapped)
    outside = [n for n in dict.fromkeys(labels.seen.values()) if n not in ordered]
    if order is not None and outside:
        ctx.warn(f"classes not in the labelling config, added after its classes: {outside}")
    ctx.writer.declare_classes(ordered + outside)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

CONTROLS = {"rectangle": "label", "polygon": "polygon", "keypoint": "keypoint", "choice": "choice"}
OWN_ATTRIBUTES = {"region_id", "rotation", "choices"}


def _region_id(sample: Sample, kind: str, i: int) -> str:
    return hashlib.sha1(f"{sample.id}\0{kind}\0{i}".encode()).hexdigest()[:10]


class TaskWriter:
    """Builds the `result` lists of one sample's annotations and predictions, counting what Label
    Studio cannot hold, and the controls the labelling config needs."""

    def __init__(self, report: ExportReport) -> None:
        self.report = report
        self.used: set[str] = set()  # kinds of control used: rectangle, polygon, keypoint, choice
        self.region_choices: dict[str, list[str]] = {}  # per-region Choices control -> values in order

    def results(self, sample: Sample, label: str | None, objects: list[Obj] | None, tag: str,
                scores: bool = False) -> list[dict]:
        out: list[dict] = []
        base = {"to_name": "image", "original_width": sample.width, "original_height": sample.height,
                "image_rotation": 0}
        taken: set[str] = set()

        def add(kind: str, rid: str, value: dict, obj: Obj | None = None) -> None:
            while rid in taken:
                rid = f"{rid}-{len(taken)}"
            taken.add(rid)
            item = {"id": rid, "type": f"{kind}labels" if kind != "choice" else "choices",
                    "from_name": CONTROLS[kind], **base, "value": value}
            if scores and obj is not None and obj.score is not None:
                item["score"] = obj.score
            out.append(item)
            self.used.add(kind)
            if obj is not None:
                for control, values in (obj.attributes.get("choices") or {}).items():
                    if isinstance(values, str):
                        values = [values]
                    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                        self.report.dropped["per-region choices that are not lists of names"] += 1
                        continue
                    known = self.region_choices.setdefault(str(control), [])
                    known.extend(v for v in values if v not in known)
                    out.append({"id": rid, "type": "choices", "from_name": str(control), **base,
                                "value": {"choices": list(values)}})

        if label is not None:
            add("choice", _region_id(sample, tag + "choice", 0), {"choices": [label]})
        for i, o in enumerate(objects or []):
            rid = str(o.attributes.get("region_id") or _region_id(sample, tag, i))
            if set(o.attributes) - OWN_ATTRIBUTES:
                self.report.dropped["object attributes (Label Studio keeps per-region choices)"] += 1
            if o.weight is not None:
                self.report.dropped["object weights"] += 1
            self._object(sample, o, rid, add)
        return out

    def _object(self, sample: Sample, o: Obj, rid: str, add) -> None:
        from pipeline.core.geometry import object_box

        W, H = sample.width, sample.height
        rotation = o.attributes.get("rotation")
        wrote = False
        if o.polygon and is_number(rotation) and len(o.polygon) == 1 and len(o.polygon[0]) == 4:
            x, y, w, h, rot = corners_to_rect(o.polygon[0])
            add("rectangle", rid, {"x": _pct(x, W), "y": _pct(y, H), "width": _pct(w, W), "height": _pct(h, H),
                                   "rotation": round(rot, 6), "rectanglelabels": [o.label]}, o)
            wrote = True
        elif o.polygon:
            rings = [r for r in o.polygon if len(r) >= 3]
            if len(rings) > 1:
                self.report.converted["polygon parts -> one polygon region each"] += len(rings) - 1
            for k, ring in enumerate(rings):
                add("polygon", rid if k == 0 else f"{rid}-{k}",
                    {"points": [[_pct(p[0], W), _pct(p[1], H)] for p in ring], "closed": True,
                     "polygonlabels": [o.label]}, o if k == 0 else None)
                wrote = True
        if not wrote and (o.bbox is not None or o.mask is not None):
            box = o.bbox if o.bbox is not None else object_box(o)
            if o.bbox is None:
                self.report.converted["mask -> its bounding box"] += 1
            elif o.mask is not None:
                self.report.dropped["masks (Label Studio JSON holds boxes and polygons; the box is written)"] += 1
            if box is not None:
                x1, y1, x2, y2 = box
                add("rectangle", rid, {"x": _pct(x1, W), "y": _pct(y1, H), "width": _pct(x2 - x1, W),
                                       "height": _pct(y2 - y1, H), "rotation": 0, "rectanglelabels": [o.label]}, o)
                wrote = True
        if o.keypoints:
            visible = [p for p in o.keypoints if len(p) < 3 or p[2] > 0]
            if len(visible) < len(o.keypoints):
                self.report.dropped["keypoints marked absent (v=0)"] += len(o.keypoints) - len(visible)
            if wrote or len(visible) > 1:
                self.report.converted["keypoints -> one keypointlabels region each"] += len(visible)
            for k, p in enumerate(visible):
                add("keypoint", rid if not wrote and k == 0 else f"{rid}-kp{k}",
                    {"x": _pct(p[0], W), "y": _pct(p[1], H), "width": 0.5, "keypointlabels": [o.label]},
                    o if not wrote and k == 0 else None)
        if o.polyline:
            self.report.dropped["polylines (not written to Label Studio JSON)"] += 1


def label_config(classes: list[str], used: set[str], region_choices: dict[str, list[str]]) -> str:
    """The labelling config for these classes: one control per kind of result used."""
    def labels(tag: str, name: str, child: str) -> list[str]:
        rows = [f"  <{tag} name={quoteattr(name)} toName=\"image\">"]
        rows += [f"    <{child} value={quoteattr(c)}/>" for c in classes]
        return rows + [f"  </{tag}>"]

    lines = ["<View>", '  <Image name="image" value="$image"/>']
    shapes = [("rectangle", "RectangleLabels"), ("polygon", "PolygonLabels"), ("keypoint", "KeyPointLabels")]
    kinds = [k for k, _ in shapes if k in used] or ([] if "choice" in used else ["rectangle"])
    for kind, tag in shapes:
        if kind in kinds:
            lines += labels(tag, CONTROLS[kind], "Label")
    if "choice" in used:
        lines += labels("Choices", CONTROLS["choice"], "Choice")
    for control, values in sorted(region_choices.items()):
        lines.append(f"  <Choices name={quoteattr(control)} toName=\"image\" perRegion=\"true\">")
        lines += [f"    <Choice value={quoteattr(v)}/>" for v in values]
        lines.append("  </Choices>")
    return "\n".join(lines + ["</View>"]) + "\n"


def _completed_by(annotator: str | None) -> int | str | None:
    if annotator is None:
        return None
    return int(annotator) if annotator.isdigit() and len(annotator) < 19 else annotator


def task_of(sample: Sample, url: str, writer: TaskWriter) -> dict:
    """The Label Studio task of one sample."""
    data: dict[str, Any] = {"image": url, "sample_id": sample.id}
    if sample.split:
        data["split"] = sample.split
    task: dict[str, Any] = {"data": data}
    anns: list[dict] = []
    if sample.annotations is not None:
        entries = [(a.annotator, a.label, a.objects, a.time, a.source_id) for a in sample.annotations]
    elif sample.label is not None or sample.objects is not None:
        entries = [(sample.source.get("annotator"), sample.label, sample.objects, None,
                    sample.source.get("annotation"))]
    else:
        entries = []
    if sample.soft_label:
        writer.report.dropped["soft labels (Label Studio holds one class per image)"] += 1
    for i, (annotator, label, objects, time, source_id) in enumerate(entries):
        ann: dict[str, Any] = {}
        if isinstance(source_id, (int, str)) and not isinstance(source_id, bool):
            ann["id"] = source_id
        by = _completed_by(annotator if isinstance(annotator, str) else None)
        if by is not None:
            ann["completed_by"] = by
        ann["result"] = writer.results(sample, label, objects, f"a{i}")
        ann["was_cancelled"] = False
        ann["ground_truth"] = False
        if time:
            ann["created_at"] = ann["updated_at"] = time
        anns.append(ann)
    task["annotations"] = anns
    preds = []
    for i, p in enumerate(sample.predictions or []):
        pred: dict[str, Any] = {}
        if p.source_id is not None:
            pred["id"] = p.source_id
        if p.model_version is not None:
            pred["model_version"] = p.model_version
        if p.score is not None:
            pred["score"] = p.score
        pred["result"] = writer.results(sample, p.label, p.objects, f"p{i}", scores=True)
        preds.append(pred)
    if preds:
        task["predictions"] = preds
    return task


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """``tasks.json``, ``label_config.xml`` and ``images/`` (see the module docstring)."""
    from urllib.parse import quote

    out = Path(out)
    names = ExportNames(dataset.samples)
    writer = TaskWriter(report)
    tasks = []
    (out / "images").mkdir(parents=True, exist_ok=True)
    for s in dataset.samples:
        name = f"{names.stem(s)}{Path(s.image).suffix.lower() or '.png'}"
        dataset.copy_image(s, out / "images" / name, make_parent=False)
        tasks.append(task_of(s, f"/data/local-files/?d={quote('images/' + name)}", writer))
        report.written += 1
        report.files += 1
    text = json.dumps(tasks, ensure_ascii=False, indent=1, allow_nan=False)
    (out / "tasks.json").write_text(text + "\n", encoding="utf-8")
    (out / "label_config.xml").write_text(label_config(dataset.classes, writer.used, writer.region_choices),
                                          encoding="utf-8")
    report.files += 2

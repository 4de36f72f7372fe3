"""COCO instances JSON (cocodataset.org "Data format", object detection and keypoints).

One JSON file per split::

    {"images": [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 480}],
     "categories": [{"id": 18, "name": "dog"}],
     "annotations": [{"id": 1, "image_id": 7, "category_id": 18, "bbox": [x, y, w, h], "iscrowd": 0,
                      "segmentation": [[x1, y1, x2, y2, ...]] | {"size": [h, w], "counts": [...] | "..."},
                      "keypoints": [x, y, v, ...], "area": ...}]}

Read here and nowhere else: ``bbox`` is the top-left corner and size in absolute pixels, so
``[x, y, x + w, y + h]``; polygons are flat ``x, y`` lists in the same pixel coordinates; RLE
masks (``iscrowd`` regions, uncompressed count lists or COCO's compressed strings, which are
decoded by `pipeline.core.geometry.rle_string_decode` without pycocotools) become full-image
masks; keypoints are ``[x, y, v]`` triples. Category ids may be anything (COCO's own skip numbers);
classes are taken by name. ``iscrowd`` and any ``attributes`` object (CVAT) are kept as object
attributes. An annotation without ``bbox`` gets the box of its segmentation. The image is found by
``file_name`` (a relative path inside the import folder, else by file name beside the JSON, in an
images folder or in the split's folder: ``annotations/instances_val2017.json`` beside ``val2017/``,
``train/ val/``; else anywhere under the import folder when the name is unique; with ``--images
DIR``, under DIR alone). The split comes from the file name (``instances_val2017.json``) or its folder
(``valid/_annotations.coco.json``). The declared ``width``/``height`` decide the EXIF frame (COCO
tools label the upright image).

Export writes ``_annotations.coco.json`` beside the images, one folder per split when the dataset
has splits; category ids are 1..N in the dataset's class order, images and annotations numbered
from 1 in sample order, so the same dataset always gives the same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from array import array
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from itertools import chain, repeat
from json.decoder import scanstring
from json.encoder import encode_basestring
from operator import eq
from pathlib import Path

from pipeline.core.dataset import Dataset, Obj, RenderedObjects, Sample, dumps_box_object, join_objects
from pipeline.core.errors import DataError, UsageError
from pipeline.core.limits import (
    MAX_DOCUMENT_BYTES,
    MAX_OBJECTS,
    MAX_POINTS,
    check_count,
    decode_text,
    load_json_text,
    read_capped,
)
from pipeline.core.numbers import is_number
from pipeline.formats.base import Detection, ExportReport, ImportContext, relative_files
from pipeline.formats.common import (
    EDGE_TOLERANCE,
    ExportNames,
    ImageFinder,
    ImageProbe,
    Labels,
    add_image_sample,
    count_attributes,
    decide_frame,
    fit_box,
    layout_free_id,
    light_probe,
    prefetched,
    prefetching,
    probe_image,
    walk_files,
)
from pipeline.formats.splits import SPLIT_WORDS, split_from_path

NAME = "coco"
STREAMS = True  # samples go to the dataset as rendered lines (DatasetWriter keep_samples=False)
LOOKS_FOR = 'JSON file with "images" and "annotations" or "categories" (COCO instances)'
TASK = "detection"

EXPORT_FILE = "_annotations.coco.json"
NOT_COCO = "JSON files that are not COCO annotations"
FIX = "fix the entry in the JSON, or re-export the annotations from the labelling tool"


# --------------------------------------------------------------------------------------------
# Parsing (pure: a decoded document in, validated pieces out)
# --------------------------------------------------------------------------------------------


def bbox_to_xyxy(bbox: object, where: str, fld: str) -> list[float]:
    """COCO ``[x, y, width, height]`` (top-left corner and size) -> ``[x1, y1, x2, y2]``."""
    if not (isinstance(bbox, list) and len(bbox) == 4):
        raise DataError(where, "", field=fld, expected="[x, y, width, height]", got=bbox, fix=FIX)
    for k, v in enumerate(bbox):
        if not is_number(v):
            raise DataError(where, "", field=f"{fld}[{k}]", expected="a finite number", got=v, fix=FIX)
    x, y, w, h = (float(v) for v in bbox)
    if w < 0 or h < 0:
        raise DataError(where, "negative size", field=fld, expected="width >= 0 and height >= 0", got=bbox, fix=FIX)
    return [x, y, x + w, y + h]


def xyxy_to_bbox(box: list[float]) -> list[float]:
    """``[x1, y1, x2, y2]`` -> COCO ``[x, y, width, height]``."""
    return [_r(box[0]), _r(box[1]), _r(box[2] - box[0]), _r(box[3] - box[1])]


def _r(v: float) -> float:
    return round(float(v), 4)


def parse_segmentation(seg: object, height: int, width: int, where: str, fld: str) -> tuple[list | None, dict | None]:
    """COCO ``segmentation`` -> (polygon rings or None, uncompressed full-image RLE or None)."""
    from pipeline.core.geometry import flat_to_ring, rle_string_decode

    if seg is None or seg == []:
        return None, None
    if isinstance(seg, list):
        rings = []
        for k, flat in enumerate(seg):
            if isinstance(flat, list):
                check_count(len(flat) // 2, MAX_POINTS, where, "polygon points", field=f"{fld}[{k}]")
            if not (isinstance(flat, list) and len(flat) % 2 == 0 and all(is_number(v) for v in flat)):
                raise DataError(where, "", field=f"{fld}[{k}]", expected="a flat list of x, y numbers",
                                got=flat, fix=FIX)
            if len(flat) >= 6:
                rings.append(flat_to_ring(flat))
        return (rings or None), None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
            raise DataError(where, "", field=f"{fld}.size", expected="[height, width]", got=size, fix=FIX)
        if isinstance(counts, str):
            try:
                counts = rle_string_decode(counts)
            except ValueError as exc:
                raise DataError(where, f"bad compressed RLE ({exc})", field=f"{fld}.counts", fix=FIX) from None
        if not (isinstance(counts, list) and all(isinstance(c, int) and c >= 0 for c in counts)):
            raise DataError(where, "", field=f"{fld}.counts", expected="run lengths >= 0 or a COCO RLE string",
                            got=counts, fix=FIX)
        if sum(counts) != size[0] * size[1]:
            raise DataError(where, "RLE does not cover the image", field=f"{fld}.counts",
                            expected=f"counts summing to {size[0]} x {size[1]}", got=sum(counts), fix=FIX)
        if list(size) != [height, width]:
            raise DataError(where, "", field=f"{fld}.size", expected=f"the image size [{height}, {width}]", got=size, fix=FIX)
        return None, {"size": [int(size[0]), int(size[1])], "counts": counts}
    raise DataError(where, "", field=fld, expected="polygons or an RLE object", got=type(seg).__name__, fix=FIX)


def parse_keypoints(kps: object, where: str, fld: str) -> list[list[float]] | None:
    if kps is None or kps == []:
        return None
    if isinstance(kps, list):
        check_count(len(kps) // 3, MAX_POINTS, where, "keypoints", field=fld)
    if not (isinstance(kps, list) and len(kps) % 3 == 0 and all(is_number(v) for v in kps)):
        raise DataError(where, "", field=fld, expected="x, y, v triples of numbers", got=kps, fix=FIX)
    pts = [[float(kps[i]), float(kps[i + 1]), float(kps[i + 2])] for i in range(0, len(kps), 3)]
    return pts if any(p[2] > 0 for p in pts) else None


def categories(doc: dict, where: str) -> dict[int, str]:
    """Category id -> name (ids as in the file, any integers)."""
    cats = doc.get("categories")
    if cats is None:
        cats = []
    if not isinstance(cats, list):
        raise DataError(where, "", field="categories", expected="a list", got=type(cats).__name__, fix=FIX)
    out: dict[int, str] = {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or isinstance(c.get("id"), bool):
            raise DataError(where, "", field=f"categories[{i}]", expected='{"id": integer, "name": text}', got=c, fix=FIX)
        name = c.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DataError(where, "", field=f"categories[{i}].name", expected="a class name", got=name, fix=FIX)
        if c["id"] in out:
            raise DataError(where, "duplicate category id", field=f"categories[{i}].id", expected="unique ids",
                            got=c["id"], fix=FIX)
        out[c["id"]] = name.strip()
    return out


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def _peek(path: str) -> bool:
    """A JSON object with an ``images`` key and an ``annotations`` or ``categories`` key. COCO's own
    files list thousands of images before their annotations and end with the categories, so past
    the first 64 KiB the keys are looked for in the whole file (mapped, not read into memory)."""
    import mmap

    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
            if not head.lstrip().startswith(b"{"):
                return False
            if b'"images"' in head and (b'"annotations"' in head or b'"categories"' in head):
                return True
            if len(head) < 1 << 16:
                return False
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as whole:
                return whole.find(b'"images"') >= 0 and (whole.find(b'"annotations"') >= 0
                                                         or whole.find(b'"categories"') >= 0)
    except (OSError, ValueError):
        return False


def detect(root: Path) -> Detection | None:
    root = Path(root)
    files = [str(root)] if root.is_file() else walk_files(root, (".json",)) if root.is_dir() else []
    found = [f for f in files[:500] if _peek(f)]
    if not found:
        return None
    return Detection(score=75, description=f"COCO instances JSON ({len(found)} file(s))",
                     files=relative_files(root, found))


def count(root: Path, paths: list[Path]) -> dict[str, int]:
    """A cheap count for `pipeline detect`: images, objects and classes in `paths` (the files `detect` recognised)."""
    images = objects = 0
    classes: set[str] = set()
    for path in paths:
        doc = json.loads(path.read_bytes())
        images += len(doc.get("images") or [])
        objects += len(doc.get("annotations") or [])
        classes |= {str(c.get("name")) for c in doc.get("categories") or [] if isinstance(c, dict)}
    return {"images": images, "objects": objects, "classes": len(classes)}


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _read_text(path: str, where: str, ctx: ImportContext | None) -> tuple[str, str]:
    """The file's text (UTF-8 checked) and its sha256; the bytes are not kept beside the text."""
    from pipeline.core.paths import sha256_bytes

    raw = read_capped(path, where, MAX_DOCUMENT_BYTES, what="COCO JSON file", fix="split the file by split or by image")
    digest = sha256_bytes(raw)
    return decode_text(raw, where, fix="re-export the file"), digest


def _not_coco(doc: object, where: str) -> DataError:
    """Why a JSON document named as COCO is not a COCO instances file, naming the field."""
    if not isinstance(doc, dict):
        return DataError(where, "not a COCO instances file", expected="a JSON object with images, annotations and "
                         "categories", got=type(doc).__name__, fix="point at a COCO instances JSON or its folder")
    images = doc.get("images")
    return DataError(where, "not a COCO instances file", field="images", expected="a list of image entries",
                     got="no images key" if images is None else type(images).__name__,
                     fix="point at a COCO instances JSON (images, annotations, categories) or its folder")


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    if root.is_file():
        files, base = [str(root.resolve())], root.resolve().parent
    elif root.is_dir():
        files, base = walk_files(root, (".json",), ctx.files), root
    else:
        raise UsageError(f"{root}: no such file or folder", fix="point at a COCO instances JSON or its folder")
    base_s = os.path.abspath(base)
    finder = ImageFinder(base, ctx.files, images=ctx.options.images)
    labels = Labels(ctx)
    done: dict[str, str] = {}
    probes: dict[str, ImageProbe] = {}  # (`_probe_ahead`)
    workers = 1 if prefetching() else ctx.options.workers or default_workers()  # (Ray's workers read the images)
    coco_files = 0
    ctx.default_fix = FIX
    named = root.is_file()  # a file given by name is COCO or an error, never skipped
    for path in files:
        where = os.path.relpath(path, base_s).replace(os.sep, "/")
        if not named and not _peek(path):
            ctx.skip(NOT_COCO)
            continue
        try:
            text, digest = _read_text(path, where, ctx)
            ahead = None if prefetching() else partial(_probe_ahead, path=path, base=base_s, finder=finder,
                                                       probes=probes)
            stream = _Stream(text, where, labels, ctx, workers, ahead)
            doc = stream.scan()
            if doc is None:  # not laid out as the stream expects (or not valid JSON): read whole
                doc = load_json_text(text, where, fix="re-export the file")
            if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
                if named or (isinstance(doc, dict) and "images" in doc):  # named, or COCO with broken images
                    raise _not_coco(doc, where)
                ctx.skip(NOT_COCO)
                continue
            ctx.inputs[ctx.rel(path)] = digest
            coco_files += 1
            with prefetched(probes) if probes else contextlib.nullcontext():
                _read_file(ctx, path, where, doc, base_s, finder, labels, done, stream if stream.streamed else None)
        except DataError as err:
            if named:  # the only file: its error is the import's
                raise
            ctx.bad(err)
    if coco_files == 0 and not ctx.report.problems:
        raise UsageError(f"{root}: no COCO annotation file found", fix="point at a COCO instances JSON or its folder")


def _probe_ahead(doc: dict, path: str, base: str, finder: ImageFinder, probes: dict[str, ImageProbe]) -> None:
    """The images of `doc` found and probed (read, hashed, their headers read: `light_probe`) while
    a forked process reads annotations, so that `_read_file` takes them from `probes`; one that
    is not found, or needs the importer's own look, is left to `_read_file` (which names it)."""
    images = doc.get("images")
    if type(images) is not list:
        return
    folders = split_folders(path, split_from_path(os.path.relpath(path, base)))
    for im in images:
        name = im.get("file_name") if type(im) is dict else None
        if type(name) is not str or not name.strip():
            continue
        try:
            image = finder.find(path, [name], extra_names=folders)
        except DataError:
            continue
        if image is not None and os.path.abspath(image) not in probes:
            probe = light_probe(image)
            if probe is not None:
                probes[os.path.abspath(image)] = probe


def split_folders(path: str, split: str | None) -> list[str]:
    """Folder names that may hold the images of annotation file `path`, tried before the images
    folder: COCO's own ``instances_val2017.json`` -> ``val2017`` (the part after the last ``_``),
    then the split's words (``val``, ``valid``, ``validation``, ``dev``)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    out = [stem.rsplit("_", 1)[-1]] if "_" in stem else []
    if split is not None:
        out += [w for w, s in SPLIT_WORDS.items() if s == split]
    return [n for i, n in enumerate(out) if n and n not in out[:i]]


def _read_file(ctx: ImportContext, path: str, where: str, doc: dict, base: str, finder: ImageFinder,
               labels: Labels, done: dict[str, str], stream: _Stream | None = None) -> None:
    cats = categories(doc, where)
    ctx.declare_classes(list(cats.values()), list(cats), where=where)  # the file's order and ids
    if stream is not None:  # the annotations were grouped while the file was read
        by_image = stream.finish(cats)
    else:
        anns = doc.get("annotations") or []
        if not isinstance(anns, list):
            raise DataError(where, "", field="annotations", expected="a list", got=type(anns).__name__, fix=FIX)
        by_image = defaultdict(_Group)
        for k, a in enumerate(anns):
            if (err := _unusable(a, k, where)) is not None:
                ctx.bad(err)
            else:
                by_image[a.get("image_id")].add_decoded(k, a)
    split = split_from_path(os.path.relpath(path, base))  # the file's name, then its folders
    folders = split_folders(path, split)
    images = doc["images"]
    listed = {im["id"] for im in images if isinstance(im, dict) and _is_id(im.get("id"))}  # bad ids: per image
    if by_image and listed and not listed.intersection(by_image):  # every annotation lost: refuse the file
        raise DataError(where, f"none of the {sum(g.count for g in by_image.values())} annotations refers to an "
                               f"image id listed in images ({len(listed)} images)", field="annotations[].image_id",
                        expected="ids of the images list", got=sorted(map(str, by_image))[:3],
                        fix="export the annotations and the images list from the same project")
    on_invalid = ctx.options.on_invalid
    seen_ids: set[object] = set()
    for i, im in ctx.progress(list(enumerate(images)), total=len(images), desc=f"import coco {where}", unit="img"):
        try:
            fld = f"images[{i}]"
            if not isinstance(im, dict):
                raise DataError(where, "", field=fld, expected="an object", got=im, fix=FIX)
            iid, name = im.get("id"), im.get("file_name")
            if not _is_id(iid):
                raise DataError(where, "", field=f"{fld}.id", expected="an image id (integer or text)", got=iid, fix=FIX)
            if iid in seen_ids:
                raise DataError(where, "duplicate image id", field=f"{fld}.id", expected="unique ids", got=iid, fix=FIX)
            seen_ids.add(iid)
            if not isinstance(name, str) or not name.strip():
                raise DataError(where, "", field=f"{fld}.file_name", expected="an image file name", got=name, fix=FIX)
            declared = None
            if isinstance(im.get("width"), int) and isinstance(im.get("height"), int) and im["width"] > 0 < im["height"]:
                declared = (im["width"], im["height"])
            image = finder.find(path, [name], extra_names=folders)
            if image is None:
                raise DataError(where, "image not found", field=f"{fld}.file_name",
                                expected="an image inside the import folder" + (" or --images" if finder.images else ""),
                                got=name, fix="put the images beside the JSON, in an images or split folder, or "
                                              "name their folder with --images DIR")
            rel_image = finder.rel(image)
            if image in done:
                raise DataError(where, "image already imported", field=f"{fld}.file_name",
                                expected="each image in one file", got=f"{name} (from {done[image]})",
                                fix="import one annotation file per split (not instances and keypoints together)")
            group = by_image.pop(iid, None)  # (its rendered texts freed once the sample holds them)
            check_count(group.count if group else 0, MAX_OBJECTS, where, "objects", field=f"{fld} (annotations)")
            probe = probe_image(image, rel_image)
            frame = decide_frame((probe.width, probe.height), probe.orientation, declared, "upright")
            sw, sh = frame.source_size
            objects: list[Obj] | None = []
            rendered: RenderedObjects | None = None
            if group is not None and group.rendered(declared, probe.orientation, (probe.width, probe.height)):
                objects, rendered = None, group.objects()  # as read: the usual case
                if group.polygons:
                    ctx.report.counts["polygons"] += group.polygons
            elif group is not None:
                for k, a in group.decoded(stream):
                    obj = _object(a, k, cats, labels, where, sw, sh, on_invalid, ctx)
                    if obj is not None:
                        objects.append(obj)
            done[image] = where
            sample = Sample(id=layout_free_id(rel_image, split, ctx.writer.has_sample), split=split, objects=objects,
                            source={"file": where, "image": rel_image, "image_id": iid})
            add_image_sample(ctx, image, sample, probe=probe, frame=frame, declared_size=declared, where=where,
                             objects=rendered)
            ctx.report.counts["objects"] += group.count if rendered is not None else len(objects or ())
        except DataError as err:
            ctx.bad(err)
    orphans = sum(g.count for key, g in by_image.items() if key not in seen_ids)  # (the images' own were taken)
    if orphans:
        ctx.report.counts["annotations whose image_id is not in images (left out)"] += orphans
        ctx.warn(f"{where}: {orphans} annotation(s) refer to image ids not listed in images")


# --------------------------------------------------------------------------------------------
# Streaming: a large file read in chunks of annotations, each decoded, checked and rendered as it comes
# --------------------------------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_SEP = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")  # between two values of a list, or its end
_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # the C scanner: (value, end) at an index


def _DECODE(text: str, i: int) -> tuple[object, int]:
    """The JSON value at `i` in `text` and the index after it; ValueError when there is none."""
    try:
        return _SCAN(text, i)
    except StopIteration:
        raise ValueError(f"no JSON value at {i}") from None
_NUMBERS = frozenset({int, float})  # (by exact type: a bool is no coordinate)
_IDS = frozenset({int, str})
_LISTS = frozenset({list})
_BOUNDARY = re.compile(r"\}[ \t\n\r]*,[ \t\n\r]*\{")  # between two objects of a list (or inside a string)
_CHUNK = 1 << 16  # characters of annotations decoded at once (a few hundred annotations)
_WINDOW = 1 << 16  # characters past a chunk's size looked through for its end
_UNKNOWN = array("q", [-1])
_SAFE_COORD = 1e250  # coordinates whose sums cannot overflow (larger: checked one by one)
_SPLIT_MIN = 1 << 20  # characters of annotations from which two processes read them (below: no time saved)
_SPLIT_AT = 0.5  # the share of the array this process reads before the images (the forked one: the rest)


def default_workers() -> int:
    """Processes reading one file when ``--workers`` is not given: the CPUs this process may use, at most 2."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(2, cpus))


def _ranges(counts):
    """``0 .. c - 1`` for each count `c` of the numpy array `counts`, concatenated."""
    import numpy as np

    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def _template(label: str, lens: int | tuple[int, ...], crowd: bool) -> str:
    """`dumps_box_object`'s text of an object of this label, rings of these coordinate counts and
    iscrowd flag, with ``%r`` for each number (the box's four, then the rings' coordinates)."""
    text = '{"label":%s,"bbox":[%%r,%%r,%%r,%%r]' % encode_basestring(label).replace("%", "%%")  # noqa: UP031
    if type(lens) is int:  # (one ring's count; 0: none)
        lens = (lens,) if lens else ()
    if lens:
        text += ',"polygon":[' + ",".join("[" + ",".join(["[%r,%r]"] * (n // 2)) + "]" for n in lens) + "]"
    if crowd:
        text += ',"attributes":{"iscrowd":1}'
    return text + "}"


def _unusable(a: object, k: int, where: str) -> DataError | None:
    """Why annotation `k` cannot be grouped under its image (not an object, no image id); None when it can."""
    if not isinstance(a, dict):
        return DataError(where, "", field=f"annotations[{k}]", expected="an object", got=a, fix=FIX)
    if not _is_id(a.get("image_id")):
        return DataError(where, "", field=f"annotations[{k}].image_id", expected="an image id (integer or text)",
                         got=a.get("image_id"), fix=FIX)
    return None


def _finite(values: list) -> bool:
    """Plain finite numbers (ints and floats, no bools), checked at C speed; False sends the
    annotation to the checks that name the bad field."""
    if not _NUMBERS.issuperset(map(type, values)):
        return False
    try:
        total = sum(values)
        return total - total == 0  # (nan and inf are not; a sum that overflows is sent on too)
    except OverflowError:
        return False


class _Group:
    """The annotations of one image: decoded dicts (a file read whole), or their indexes in the
    file's annotations array (`ks`, decoded again from the text when needed) and their rendered
    objects, comma-separated in one buffer (`rendered_utf8`: no Python object per annotation);
    `fast` is False once one was not taken by the fast checks: every one is then decoded again and
    read by `_object`."""

    __slots__ = ("count", "dicts", "ks", "rendered_utf8", "labels", "polygons", "fast")

    def __init__(self) -> None:
        self.count = 0
        self.dicts: list[tuple[int, dict]] = []
        self.ks = array("q")
        self.rendered_utf8 = bytearray()
        self.labels: set[str] = set()
        self.polygons = 0
        self.fast = True

    def add_decoded(self, k: int, a: dict) -> None:
        self.count += 1
        self.dicts.append((k, a))
        self.fast = False

    def add(self, k: int, text: str | None, label: str | None, polygon: bool) -> None:
        self.count += 1
        self.ks.append(k)
        if text is None:
            self.fast = False
        elif self.fast:
            if self.rendered_utf8:
                self.rendered_utf8 += b","
            self.rendered_utf8 += text.encode("utf-8")
            self.labels.add(label)  # type: ignore[arg-type]
            self.polygons += polygon

    def add_run(self, k: int, texts: list[str], labels: list[str], polygons: int) -> None:
        """Annotations k, k + 1, ... in a row, every one rendered (`add` of each, at once)."""
        self.count += len(texts)
        self.ks.extend(range(k, k + len(texts)))
        if self.fast:
            if self.rendered_utf8:
                self.rendered_utf8 += b","
            self.rendered_utf8 += ",".join(texts).encode("utf-8")
            self.labels.update(labels)
            self.polygons += polygons

    def objects(self) -> RenderedObjects:
        """The rendered objects, as the sample's line holds them."""
        return join_objects([str(self.rendered_utf8, "utf-8")] if self.count else [], self.labels)

    def rendered(self, declared: tuple[int, int] | None, orientation: int, size: tuple[int, int]) -> bool:
        """Whether the rendered texts are the objects as stored: every one taken by the fast checks,
        which fitted them to the declared size, and that is the image's own, upright size."""
        return self.fast and not self.dicts and orientation == 1 and declared == size

    def decoded(self, stream: _Stream | None) -> list[tuple[int, dict]]:
        if self.dicts or stream is None:
            return self.dicts
        text, start = stream.text, stream.start
        return [(k, _DECODE(text, start(k))[0]) for k in self.ks]


class _Stream:
    """One COCO file read key by key: every top-level value but ``annotations`` decoded whole,
    the annotations a few hundred at a time (`_annotations`), each grouped under its image and,
    where the categories and the image's declared size are known by then (COCO's own order:
    images, annotations, categories, the categories found ahead), checked and rendered at once,
    so that no annotation is kept as Python objects past its chunk. `scan` returns None when the
    text is not laid out so (not an object, broken JSON, a key twice): the caller then reads it
    whole, with the errors `load_json` names."""

    def __init__(self, text: str, where: str, labels: Labels, ctx: ImportContext, workers: int = 1,
                 ahead: Callable[[dict], None] | None = None) -> None:
        self.text, self.where, self.labels_of, self.ctx = text, where, labels, ctx
        self.workers = workers  # processes reading the annotations (`_split`)
        self.ahead = ahead  # work on the top-level values read so far while a forked process reads annotations
        self.streamed = False
        self.groups: dict[object, _Group] = defaultdict(_Group)
        self.sizes: dict[object, tuple[int, int]] | None = None  # image id -> declared size, once images are read
        self.cats: dict[int, str] | None = None
        self.label_cache: dict[object, str | None] = {}
        self.unusable: list[tuple[int, object]] = []  # (element number, element) of those with no image id
        self.tolerance = EDGE_TOLERANCE
        self.known = array("q")  # where each annotation starts in the text (-1: not noted, see `start`)
        self.chunks: list[int] = []  # the first annotation of each chunk decoded at once
        self.chunk_at: list[int] = []  # and where it starts
        self.templates: dict[tuple, str] = {}  # (`_format`)

    def scan(self) -> dict | None:
        try:
            doc = self._scan()
        except (ValueError, RecursionError, IndexError):
            doc = None
        if doc is None:  # (what was grouped so far is dropped: the whole read groups it again)
            self.streamed = False
            self.groups.clear()
            self.unusable.clear()
        return doc

    def _scan(self) -> dict | None:
        text, ws = self.text, _WS.match
        i = ws(text, 0).end()
        if text[i:i + 1] != "{":
            return None
        i = ws(text, i + 1).end()
        doc: dict = {}
        if text[i:i + 1] == "}":
            return doc if ws(text, i + 1).end() == len(text) else None
        while True:
            if text[i:i + 1] != '"':
                return None
            key, i = scanstring(text, i + 1)
            i = ws(text, i).end()
            if text[i:i + 1] != ":" or key in doc:
                return None
            i = ws(text, i + 1).end()
            if key == "annotations" and text[i:i + 1] == "[":
                i = self._annotations(i + 1, doc)
                doc[key] = None  # (streamed into the groups)
                self.streamed = True
            else:
                doc[key], i = _DECODE(text, i)
                if key == "images":
                    self.sizes = _declared_sizes(doc[key])
            i = ws(text, i).end()
            c = text[i:i + 1]
            if c == "}":
                break
            if c != ",":
                return None
            i = ws(text, i + 1).end()
        if ws(text, i + 1).end() != len(text):
            return None
        if self.streamed:
            doc["annotations"] = []  # (an empty list: `_read_file` takes the groups)
        return doc

    def _categories_ahead(self, doc: dict) -> dict[int, str] | None:
        """The categories, decoded already or found ahead (the last top-level-looking key)."""
        value = doc.get("categories")
        if "categories" not in doc:
            at = self.text.rfind('"categories"')
            if at < 0:
                return None
            i = _WS.match(self.text, at + len('"categories"')).end()
            if self.text[i:i + 1] != ":":
                return None
            try:
                value = _DECODE(self.text, _WS.match(self.text, i + 1).end())[0]
            except ValueError:
                return None
        try:
            return categories({"categories": value}, self.where)
        except DataError:
            return None  # (named when the file's own categories are read)

    def _annotations(self, i: int, doc: dict) -> int:
        """Read the annotations array from `i` (after its ``[``) to its end; the index after it.
        Decoded in chunks of about `_CHUNK` characters by the C decoder (``json.loads`` of the
        elements between two found boundaries), each chunk checked and rendered at once
        (`_chunk`); where no boundary is found or the slice is not whole elements (a ``},{``
        inside a string), one element at a time (`_elements`). A chunk with annotations that
        will be decoded again (keypoints, masks: see `_Group.decoded`) sends the next stretch,
        twice as long each time up to 64 chunks, one element at a time, which notes where each
        one starts on the way (a file of keypoints is read about as fast as one at a time).

        With two workers and an array of `_SPLIT_MIN` characters or more, a forked process reads
        the second half (`_Half`) while this one reads the first; its groups are taken when this
        one ended exactly where the other began (the cut was between two elements), else the
        second half is read here as well: the same groups either way."""
        text = self.text
        self.cats = self._categories_ahead(doc)
        i = _WS.match(text, i).end()
        if text[i:i + 1] == "]":
            return i + 1
        k = 0
        half = self._split(i) if self.workers > 1 else None
        if half is not None:
            cut, worker = half
            try:
                i, k, ended = self._read(i, 0, cut)
                taken = not ended and i == cut.end() - 1
                if taken and self.ahead is not None:
                    self.ahead(doc)
                got = worker.result() if taken else None
            finally:
                worker.close()
            if got is not None:
                return self._merge(got, k)
            if ended:
                return i
        return self._read(i, k)[0]

    def _split(self, i: int) -> tuple[re.Match, _Half] | None:
        """Where the array from `i` is cut in two (a boundary between two elements near its middle,
        by characters) and the process reading the second half; None when it is too short."""
        text = self.text
        end = text.rfind('"categories"')  # (COCO's own order: the categories after the annotations)
        if end < i:
            end = len(text)
        if end - i < _SPLIT_MIN or not hasattr(os, "fork"):
            return None
        middle = i + int((end - i) * _SPLIT_AT)
        cut = _BOUNDARY.search(text, middle, middle + _WINDOW)
        if cut is None:
            return None
        try:
            return cut, _Half(self, cut.end() - 1)
        except OSError:  # (no temporary file or no process to be had: one process reads it all)
            return None

    def _read(self, i: int, k: int, cut: re.Match | None = None) -> tuple[int, int, bool]:
        """Elements from `i` (an element's start, numbered `k`) to the array's end, or to `cut`'s
        next element (or just past it: the cut was not between two elements): (the index after,
        the next element's number, whether the array ended)."""
        text = self.text
        stop = cut.end() - 1 if cut is not None else len(text)
        fails = stretch = 0  # (stretch: characters to read one at a time before a chunk is tried)
        loads, boundary = json.loads, _BOUNDARY.search
        while i < stop:
            if not stretch:
                if cut is not None and i + _CHUNK + _WINDOW >= stop:
                    m = cut  # (the last chunk before the cut ends there)
                else:
                    m = boundary(text, i + _CHUNK, i + _CHUNK + _WINDOW)
                items = None
                if m is not None:
                    try:
                        items = loads("[" + text[i:m.start() + 1] + "]")
                    except (ValueError, RecursionError):
                        items = None
                if items is not None:
                    whole = self._chunk(items, k, i)
                    k += len(items)
                    i = m.end() - 1  # (the next element's "{")
                    fails = 0 if whole else min(fails + 1, 6)
                    stretch = 0 if whole else _CHUNK << fails
                    continue
                stretch = _CHUNK  # (no chunk here)
            i, k, ended = self._elements(i, k, min(i + stretch, stop))
            stretch = 0
            if ended:
                return i, k, True
        return i, k, False

    def second_half(self, at: int) -> tuple:
        """In the forked process: the elements from `at` (numbered from 0) to the array's end, read
        as `_read` reads them: (the index after the array, the number of elements, the groups,
        where the elements start, the chunks' first elements and starts, the unusable ones)."""
        self.groups = defaultdict(_Group)
        self.known, self.chunks, self.chunk_at, self.unusable = array("q"), [], [], []
        i, k, ended = self._read(at, 0)
        if not ended:
            raise ValueError("the annotations array has no end")
        return i, k, self.groups, self.known, self.chunks, self.chunk_at, self.unusable

    def _merge(self, got: tuple, k0: int) -> int:
        """The second half's groups and starts after this process's first `k0` elements; the index
        after the array."""
        import numpy as np

        end, _count, groups, known, chunks, chunk_at, unusable = got
        self.known.extend(known)
        self.chunks.extend(c + k0 for c in chunks)
        self.chunk_at.extend(chunk_at)
        self.unusable.extend((k + k0, a) for k, a in unusable)
        mine = self.groups
        for iid, g in groups.items():
            ks = array("q", (np.frombuffer(g.ks, dtype=np.int64) + k0).tobytes()) if len(g.ks) else g.ks
            own = mine.get(iid)
            if own is None:
                g.ks = ks
                mine[iid] = g
                continue
            own.count += g.count
            own.ks.extend(ks)
            if own.fast and g.fast:
                if own.rendered_utf8 and g.rendered_utf8:
                    own.rendered_utf8 += b","
                own.rendered_utf8 += g.rendered_utf8
                own.labels.update(g.labels)
                own.polygons += g.polygons
            own.fast = own.fast and g.fast
        return end

    def _elements(self, i: int, k: int, until: int) -> tuple[int, int, bool]:
        """Elements one at a time from `i` (an element's start) until past `until` or the array's
        end: (the index after, the next element's number, whether the array ended)."""
        text, sep, scan, element, starts = self.text, _SEP.match, _SCAN, self._element, self.known
        while True:
            starts.append(i)
            try:
                a, i = scan(text, i)
            except StopIteration:
                raise ValueError("no annotation") from None
            element(a, k)
            k += 1
            m = sep(text, i)
            if m is None:
                raise ValueError("expected , or ]")
            i = m.end()
            if m.group(1) == "]":
                return i, k, True
            if i >= until:
                return i, k, False

    def _element(self, a: object, k: int) -> bool:
        """Annotation `k` grouped under its image, rendered where it can be (see `_render`);
        False when it was not (it is decoded again with its image)."""
        iid = a.get("image_id") if type(a) is dict else None
        if (type(iid) is int or type(iid) is str) and iid != "":
            rendered = label = None
            polygon = False
            size = (self.sizes or {}).get(iid)
            if size is not None:
                cid = a.get("category_id")
                if type(cid) is int or type(cid) is str:  # (anything else: named by `_object`)
                    label = self._label(cid)
                if label is not None:
                    rendered, polygon = self._render(a, label, size)
            self.groups[iid].add(k, rendered, label, polygon)
            return rendered is not None
        self.unusable.append((k, a))  # (reported by `finish`: a file read
        # whole again reports its own)
        return True

    def _chunk(self, items: list, k: int, at: int) -> bool:
        """Annotations k, k + 1, ... (decoded from index `at`), grouped and rendered as `_element`
        does each: the plain ones (`_plain`) all at once, the others by `_render`. False when
        some were not rendered (decoded again with their image: where they start is found then)."""
        self.chunks.append(k)
        self.chunk_at.append(at)
        self.known.extend(_UNKNOWN * len(items))
        try:
            found = self._plain(items)
        except (TypeError, ValueError, OverflowError):
            found = None  # (not laid out as `_plain` takes them: one at a time)
        if found is None:
            return all([self._element(a, k + j) for j, a in enumerate(items)])
        iids, texts, labels, polygons = found
        groups, n, j = self.groups, len(items), 0
        while j < n:  # runs of one image's annotations (a file sorted by image: one run per image)
            iid, end = iids[j], j + 1
            while end < n and iids[end] == iid:
                end += 1
            group = groups[iid]
            run = texts[j:end]
            if None in run:
                for r in range(j, end):
                    group.add(k + r, texts[r], labels[r], polygons[r])
            else:
                group.add_run(k + j, run, labels[j:end], sum(polygons[j:end]))
            j = end
        return None not in texts

    def _plain(self, items: list) -> tuple[list, list, list, list] | None:
        """For a chunk of decoded annotations of usable image ids: each one's image id, its
        rendered text (None where `_render` gives none), label and whether it has a polygon. The
        plain ones (a box and polygons of finite numbers inside the declared size, nothing
        `_render` sends on or clips) are checked with numpy and rendered in one formatting; the
        others are given to `_render` one by one. None when the chunk is not laid out so (an
        element that is not an object, an image id that is not usable, boxes that are not lists
        of four numbers): `_element` then takes each."""
        import numpy as np

        n = len(items)
        if set(map(type, items)) != {dict}:
            return None
        get = dict.get
        iids = list(map(get, items, repeat("image_id")))
        if not _IDS.issuperset(map(type, iids)) or "" in iids:
            return None
        cids = list(map(get, items, repeat("category_id")))
        if not _IDS.issuperset(map(type, cids)):  # (no 1 and 1.0 or True taken for one key below)
            return None
        label_of = {cid: self._label(cid) for cid in set(cids)}
        labels = list(map(label_of.__getitem__, cids))
        bboxes = list(map(get, items, repeat("bbox")))
        if set(map(type, bboxes)) != {list} or set(map(len, bboxes)) != {4}:
            return None
        values = list(chain.from_iterable(bboxes))
        if not _NUMBERS.issuperset(map(type, values)):
            return None
        box = np.array(values, dtype=np.float64).reshape(n, 4)
        x, y, w, h = box.T
        sizes = self.sizes or {}
        dims = list(map(sizes.get, iids))
        if None in dims:
            dims = [d or (np.nan, np.nan) for d in dims]
        size = np.array(dims, dtype=np.float64).reshape(n, 2)
        width, height = size[:, 0], size[:, 1]
        x2, y2 = x + w, y + h
        with np.errstate(invalid="ignore", over="ignore"):
            total = x + y + w + h
            plain = (np.isfinite(total) & (w >= 0) & (h >= 0) & (x >= 0) & (y >= 0) & (x2 <= width)
                     & (y2 <= height))  # (inside: no clipping; nan sizes: none declared)
        if None in labels:
            plain &= np.array([label is not None for label in labels], dtype=bool)
        plain &= ~np.fromiter(map(dict.__contains__, items, repeat("attributes")), dtype=bool, count=n)
        keypoints = list(map(get, items, repeat("keypoints")))
        if set(map(type, keypoints)) != {type(None)}:
            plain &= np.array([kp is None or kp == [] for kp in keypoints], dtype=bool)
        crowds = list(map(eq, map(get, items, repeat("iscrowd")), repeat(1)))  # (1 or True, as `in (1, True)`)
        segs = list(map(get, items, repeat("segmentation")))
        seg_types = set(map(type, segs))
        if not seg_types <= {list, type(None)}:  # (RLE masks and the like: `_render` sends them on)
            plain &= np.array([s is None or type(s) is list for s in segs], dtype=bool)
            segs = [s if type(s) is list else None for s in segs]
        if type(None) in seg_types or not seg_types <= {list}:
            segs = [s or [] for s in segs]
        rings = list(chain.from_iterable(segs))
        counts = np.fromiter(map(len, segs), dtype=np.int64, count=n)  # rings per annotation
        if not _LISTS.issuperset(map(type, rings)):
            return None
        lens = np.fromiter(map(len, rings), dtype=np.int64, count=len(rings))
        coords = list(chain.from_iterable(rings))
        if not _NUMBERS.issuperset(map(type, coords)):
            return None
        coord = np.array(coords, dtype=np.float64)
        owner = np.repeat(np.arange(n), counts)  # the annotation of each ring
        # A ring of an odd count, too long or shorter than 3 points (which `_render` leaves out),
        # or a coordinate whose sums could overflow (which `_render` checks): rendered by `_render`.
        odd = (lens % 2 == 1) | (lens > 2 * MAX_POINTS) | (lens < 6)
        with np.errstate(invalid="ignore"):
            wild = ~(np.abs(coord) <= _SAFE_COORD)
        if wild.any():
            odd |= np.bincount(np.repeat(np.arange(len(rings)), lens)[wild], minlength=len(rings)) > 0
        plain &= ~(np.bincount(owner[odd], minlength=n) > 0)
        texts: list = [None] * n
        polygons = counts > 0
        if plain.any():
            rows = np.flatnonzero(plain)
            texts_plain = self._format(rows, labels, crowds, lens, counts, np.stack([x, y, x2, y2], axis=1), coord)
            for r, text in zip(rows.tolist(), texts_plain, strict=True):
                texts[r] = text
        polygons = polygons.tolist()
        for r in np.flatnonzero(~plain).tolist():
            label, dim = labels[r], dims[r]
            if label is not None and not np.isnan(dim[0]):
                texts[r], polygons[r] = self._render(items[r], label, dim)
        return iids, texts, labels, polygons

    def _format(self, rows, labels: list, crowds: list, lens, counts, boxes, coord) -> list[str]:
        """The rendered texts of annotations `rows` (plain): `dumps_box_object`'s text, every
        number as its ``repr``, in one formatting of the rows' templates."""
        import numpy as np

        ring_at = np.cumsum(counts) - counts  # each annotation's first ring
        coord_at = np.cumsum(lens) - lens  # each ring's first coordinate
        # each row's template by (label, its rings' coordinate counts, iscrowd): one ring's count
        # as an int, none as 0, several as a tuple
        one = counts[rows] == 1
        shapes = np.where(one, lens[np.minimum(ring_at[rows], max(len(lens) - 1, 0))] if len(lens) else 0, 0).tolist()
        if not one.all():
            lens_l, counts_l, ring_at_l = lens.tolist(), counts.tolist(), ring_at.tolist()
            for j in np.flatnonzero(counts[rows] > 1).tolist():
                r = int(rows[j])
                shapes[j] = tuple(lens_l[ring_at_l[r]:ring_at_l[r] + counts_l[r]])
        if len(rows) == len(labels):
            keys = list(zip(labels, shapes, crowds, strict=True))
        else:
            keys = [(labels[r], shape, crowds[r]) for r, shape in zip(rows.tolist(), shapes, strict=True)]
        cache = self.templates
        templates = list(map(cache.get, keys))
        if None in templates:
            for key in set(keys).difference(cache):
                cache[key] = _template(*key)
            templates = list(map(cache.__getitem__, keys))
        # the numbers in template order: each row's box, then its rings' coordinates
        take_rings = np.repeat(ring_at[rows], counts[rows]) + _ranges(counts[rows])
        take_coords = np.repeat(coord_at[take_rings], lens[take_rings]) + _ranges(lens[take_rings])
        per_row = 4 + np.bincount(np.repeat(np.arange(len(rows)), counts[rows]), weights=lens[take_rings],
                                  minlength=len(rows)).astype(np.int64)
        out = np.empty(int(per_row.sum()), dtype=np.float64)
        row_at = np.cumsum(per_row) - per_row
        out[(row_at[:, None] + np.arange(4)).ravel()] = boxes[rows].ravel()
        is_coord = np.ones(len(out), dtype=bool)
        is_coord[(row_at[:, None] + np.arange(4)).ravel()] = False
        out[is_coord] = coord[take_coords]
        return ("\0".join(templates) % tuple(out.tolist())).split("\0")

    def start(self, k: int) -> int:
        """Where annotation `k` starts in the text: noted when it was read one at a time, else
        found by reading its chunk again one element at a time (once per chunk)."""
        at = self.known[k]
        if at < 0:
            c = bisect_right(self.chunks, k) - 1
            first, i = self.chunks[c], self.chunk_at[c]
            last = self.chunks[c + 1] if c + 1 < len(self.chunks) else len(self.known)
            text, sep, scan = self.text, _SEP.match, _SCAN
            for j in range(first, last):
                if self.known[j] >= 0:  # (read one at a time after the chunk)
                    break
                self.known[j] = i
                i = sep(text, scan(text, i)[1]).end()
            at = self.known[k]
        return at

    def _label(self, cid: object) -> str | None:
        if cid in self.label_cache:
            return self.label_cache[cid]
        label = None
        if self.cats is not None and (type(cid) is int or type(cid) is str) and cid in self.cats:
            try:
                label = self.labels_of(self.cats[cid], self.where, "category_id")
            except DataError:
                label = None  # (the annotation's own read names it)
        self.label_cache[cid] = label
        return label

    def _render(self, a: dict, label: str, size: tuple[int, int]) -> tuple[str | None, bool]:
        """The stored object of a plain annotation (a box inside the image, polygons, iscrowd),
        rendered as `_object` would make it; (None, False) for anything else, which `_object` reads."""
        from pipeline.core.geometry import clip_bbox

        bbox = a.get("bbox")
        if type(bbox) is not list or len(bbox) != 4:
            return None, False
        bx, by, bw, bh = bbox
        numbers = _NUMBERS
        if not (type(bx) in numbers and type(by) in numbers and type(bw) in numbers and type(bh) in numbers):
            return None, False
        try:
            x, y, w, h = float(bx), float(by), float(bw), float(bh)
        except OverflowError:
            return None, False
        total = x + y + w + h
        if total - total != 0 or w < 0 or h < 0 or "attributes" in a:
            return None, False  # (nan, inf, a negative size: named by `_object`)
        keypoints = a.get("keypoints")
        if keypoints is not None and keypoints != []:
            return None, False
        box = [x, y, x + w, y + h]
        width, height = size
        t = self.tolerance
        if not (x >= -t and y >= -t and box[2] <= width + t and box[3] <= height + t):
            return None, False  # (--on-invalid decides)
        if x < 0 or y < 0 or box[2] > width or box[3] > height:
            box = clip_bbox(box, width, height)
        seg = a.get("segmentation")
        rings = ()
        if seg is not None and seg != []:
            if type(seg) is not list:
                return None, False  # (an RLE mask)
            rings = []
            for flat in seg:
                n = len(flat) if type(flat) is list else 1
                if n % 2 or n > 2 * MAX_POINTS or not _finite(flat):
                    return None, False
                if n >= 6:
                    rings.append(flat)
        crowd = {"iscrowd": 1} if a.get("iscrowd") in (1, True) else None
        return dumps_box_object(label, box, rings, crowd), bool(rings)

    def finish(self, cats: dict[int, str]) -> dict[object, _Group]:
        """The groups, each image's annotations in file order; rendered texts only where the
        categories they were rendered with are the file's."""
        for k, a in self.unusable:
            self.ctx.bad(_unusable(a, k, self.where))
        if self.cats != cats:  # (found ahead, but not the file's own: every annotation read again)
            for group in self.groups.values():
                group.fast = False
                group.rendered_utf8 = bytearray()
        return self.groups


class _Half:
    """The second half of an annotations array (from index `at`), read by a forked process
    (`_Stream.second_half`) while this one reads the first. It writes its groups to an unlinked
    temporary file and ends (its memory freed before this process takes them): one pickle of
    everything but the rendered texts, then each group's rendered texts as UTF-8 bytes, one after
    another (read here into one bytes object per group). `result` is None when the process failed
    (broken JSON, a signal, anything raised): the caller then reads the second half itself, so
    that the import is the one of a single process, errors included."""

    def __init__(self, stream: _Stream, at: int) -> None:
        import tempfile

        self.file = tempfile.TemporaryFile(prefix="pipeline-coco-")  # (unlinked: nothing left behind)
        try:
            pid = os.fork()
        except OSError:
            self.file.close()
            raise
        if pid == 0:  # the forked process: writes its half, never returns
            code = 1
            try:
                code = _send(stream.second_half(at), self.file.fileno())
            except BaseException:  # noqa: BLE001 - any failure: the parent reads the half itself
                code = 1
            finally:
                os._exit(code)
        self.pid = pid

    def result(self) -> tuple | None:
        """What `_Stream.second_half` returned in the forked process, or None when it failed."""
        if self._wait() != 0:
            self.close()
            return None
        try:
            got = self._receive()
        except Exception:  # noqa: BLE001 - a short or broken message: the process failed
            got = None
        self.close()
        return got

    def _receive(self) -> tuple | None:
        import pickle

        fh = self.file
        fh.seek(0)
        size = int.from_bytes(fh.read(8), "little")
        got = pickle.loads(fh.read(size))
        for g in got[2].values():  # (each group's texts its own bytes: freed with the group)
            n = g.rendered_utf8
            g.rendered_utf8 = fh.read(n)
            if len(g.rendered_utf8) != n:
                return None
        if fh.read(1):
            return None
        return got

    def _wait(self) -> int:
        pid, self.pid = self.pid, 0
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) if pid else -1

    def close(self) -> None:
        """Stop the process if it still runs (its half was not needed) and free the file."""
        import signal

        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait()
        self.file.close()


def _send(got: tuple, fd: int) -> int:
    """`_Half`'s message of `got` written to the file `fd`: 0 once it is all written."""
    import pickle

    groups = got[2]
    texts = []
    for g in groups.values():
        texts.append(g.rendered_utf8)
        g.rendered_utf8 = len(g.rendered_utf8)
    head = pickle.dumps(got, protocol=pickle.HIGHEST_PROTOCOL)
    with open(fd, "wb", closefd=False) as out:
        out.write(len(head).to_bytes(8, "little"))
        out.write(head)
        for text in texts:
            out.write(text)
    return 0


def _declared_sizes(images: object) -> dict[object, tuple[int, int]] | None:
    """Image id -> the width and height an entry declares (as `_read_file` takes them)."""
    if not isinstance(images, list):
        return None
    out: dict[object, tuple[int, int]] = {}
    for im in images:
        if isinstance(im, dict) and _is_id(im.get("id")) and im["id"] not in out:
            w, h = im.get("width"), im.get("height")
            if isinstance(w, int) and isinstance(h, int) and w > 0 < h:
                out[im["id"]] = (w, h)
    return out


def _is_id(value: object) -> bool:
    """An id COCO files use: an integer or a string (never a bool, a float or a list)."""
    return (type(value) is int or type(value) is str) and value != ""


def _object(a: dict, k: int, cats: dict[int, str], labels: Labels, where: str, w: int, h: int,
            on_invalid: str, ctx: ImportContext) -> Obj | None:
    from pipeline.core.geometry import object_box

    fld = f"annotations[{k}]"
    cid = a.get("category_id")
    if not _is_id(cid) or cid not in cats:
        raise DataError(where, "unknown category", field=f"{fld}.category_id",
                        expected=f"one of the category ids {sorted(cats)[:12]}", got=cid,
                        fix="add the category to the categories list")
    label = labels(cats[cid], where, f"{fld}.category_id")
    rings, mask = parse_segmentation(a.get("segmentation"), h, w, where, f"{fld}.segmentation")
    keypoints = parse_keypoints(a.get("keypoints"), where, f"{fld}.keypoints")
    box = bbox_to_xyxy(a["bbox"], where, f"{fld}.bbox") if a.get("bbox") is not None else None
    if box is None:  # the box of the segmentation (keypoints alone give none on import)
        box = object_box(Obj(label, polygon=rings, mask=mask), points=False)
    if box is None and rings is None and mask is None and keypoints is None:
        raise DataError(where, "annotation without geometry", field=fld,
                        expected="bbox, segmentation or keypoints", got=None, fix=FIX)
    if box is not None:
        box = fit_box(box, w, h, on_invalid, ctx, where, f"{fld}.bbox")
        if box is None:
            return None
    attrs: dict = {}
    if a.get("iscrowd") in (1, True):
        attrs["iscrowd"] = 1
    extra = a.get("attributes")
    if isinstance(extra, dict):
        attrs.update({str(key): v for key, v in extra.items() if isinstance(v, (str, int, float, bool))})
    if rings:
        ctx.report.counts["polygons"] += 1
    if mask is not None:
        ctx.report.counts["RLE masks"] += 1
    if keypoints is not None:
        ctx.report.counts["objects with keypoints"] += 1
    return Obj(label=label, bbox=box, polygon=rings, mask=mask, keypoints=keypoints, attributes=attrs)


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def annotation(o: Obj, ann_id: int, image_id: int, category_id: int, report: ExportReport | None = None) -> dict | None:
    """The COCO annotation of one object; None when it has nothing COCO holds."""
    from pipeline.core.geometry import bbox_area, object_box_source, polygon_area, ring_to_flat, rle_area

    # COCO writes rings of 3 vertices or more, and has no lines: the box is that of what is written.
    box, source = object_box_source(o, min_ring=3)
    if source == "polyline":
        box = None
    seg: list | dict = []
    area = None
    rings = [r for r in (o.polygon or []) if len(r) >= 3]
    if rings:
        seg = [[_r(v) for v in ring_to_flat(r)] for r in rings]
        area = polygon_area(rings)
        if o.mask is not None and report is not None:
            report.dropped["masks of objects with a polygon (polygon written)"] += 1
    elif o.mask is not None:
        seg = {"size": list(o.mask["size"]), "counts": list(o.mask["counts"])} if isinstance(
            o.mask["counts"], list) else dict(o.mask)
        area = rle_area(o.mask)
    kps = None
    if o.keypoints:
        kps = [v for p in o.keypoints for v in (_r(p[0]), _r(p[1]), int(p[2]) if len(p) > 2 else 2)]
        if report is not None and source == "keypoints":
            report.converted["keypoints-only objects -> box around the keypoints"] += 1
    if o.polyline and report is not None:
        report.dropped["polylines (COCO has none)"] += 1
    if box is None:
        if report is not None:
            report.dropped["objects without a box, polygon, mask or keypoints"] += 1
        return None
    attrs = dict(o.attributes or {})
    iscrowd = 1 if attrs.pop("iscrowd", 0) in (1, True, "1") else 0
    out = {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": xyxy_to_bbox(box),
           "area": _r(area if area is not None else bbox_area(box)), "iscrowd": iscrowd, "segmentation": seg}
    if kps is not None:
        out["keypoints"] = kps
        out["num_keypoints"] = sum(1 for i in range(2, len(kps), 3) if kps[i] > 0)
    simple = {k: v for k, v in attrs.items() if isinstance(v, (str, int, float, bool))}
    count_attributes(report, o, "COCO", kept=("iscrowd", *simple))  # (lists and objects)
    if simple:
        out["attributes"] = simple
    return out


def document(samples: list[tuple[Sample, str]], classes: list[str], report: ExportReport | None = None,
             class_ids: dict[str, int] | None = None) -> dict:
    """The COCO document of `samples` (each with its exported file name). Category ids are
    `class_ids` (the source's, recorded in dataset.json) where given, else positions from 1."""
    cat_ids = dict(class_ids) if class_ids is not None else {c: i + 1 for i, c in enumerate(classes)}
    images, anns = [], []
    kp_count: dict[str, int] = {}
    for image_id, (s, name) in enumerate(samples, start=1):
        images.append({"id": image_id, "file_name": name, "width": s.width, "height": s.height})
        if s.label is not None or s.soft_label:
            if report is not None:
                report.dropped["image-level labels (COCO instances hold objects)"] += 1
        for o in s.objects or []:
            a = annotation(o, len(anns) + 1, image_id, cat_ids[o.label], report)
            if a is not None:
                anns.append(a)
                if o.keypoints:
                    kp_count[o.label] = max(kp_count.get(o.label, 0), len(o.keypoints))
    cats = []
    for c in classes:
        cat = {"id": cat_ids[c], "name": c, "supercategory": "none"}
        if c in kp_count:
            cat["keypoints"] = [str(i + 1) for i in range(kp_count[c])]
            cat["skeleton"] = []
        cats.append(cat)
    return {"info": {"description": "", "version": "1.0"}, "licenses": [], "images": images,
            "annotations": anns, "categories": cats}


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """``_annotations.coco.json`` beside the images; one folder per split when the dataset has splits."""
    out = Path(out)
    use_splits = any(s.split for s in dataset.samples)
    names = ExportNames(dataset.samples, report, "COCO")
    groups: dict[str, list[tuple[Sample, str]]] = defaultdict(list)
    for s in dataset.samples:
        folder = (s.split or "train") if use_splits else ""
        if use_splits and not s.split:
            report.converted["samples without a split -> train"] += 1
        name = f"{names.stem(s)}{Path(s.image).suffix.lower() or '.png'}"
        dataset.copy_image(s, out / folder / name)
        groups[folder].append((s, name))
        report.written += 1
        report.files += 1
    for folder, samples in sorted(groups.items()):
        ids = dataset.info.class_ids if options.get("ids", "source") == "source" else None  # None: 1..N
        doc = document(samples, dataset.classes, report, ids)
        (out / folder).mkdir(parents=True, exist_ok=True)
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        (out / folder / EXPORT_FILE).write_text(text + "\n", encoding="utf-8")
        report.files += 1

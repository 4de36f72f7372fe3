"""Pascal VOC XML as labelImg writes it (also CVAT's, datumaro's and labelme's VOC exports).

One ``<annotation>`` file per image::

    <annotation>
      <folder>images</folder> <filename>a.jpg</filename> <path>/Users/x/images/a.jpg</path>
      <size><width>650</width><height>417</height><depth>3</depth></size>
      <object><name>raccoon</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>
        <bndbox><xmin>81</xmin><ymin>88</ymin><xmax>522</xmax><ymax>408</ymax></bndbox></object>
    </annotation>

Files are parsed safely: a document with any markup declaration (``<!DOCTYPE``, ``<!ENTITY``,
anything after ``<!`` other than a comment or CDATA), and any document not in an ASCII-compatible
encoding, goes through defusedxml with DTDs, entities and external references refused; only
documents free of declarations -- which therefore cannot define entities or name external
resources -- take the C parser directly (`_plain_xml`), four times faster. Coordinates
may be decimals. ``<size>`` may be missing or empty (the size is then read from the image header).
``difficult``, ``truncated``, ``occluded``, ``pose`` and CVAT's ``<attributes>`` become object
attributes (difficult objects are kept, never dropped). ``<polygon>`` children (``<x1>``, ``<y1>``,
... as supervision writes them) become the object's polygon. The image is found by ``<filename>``, then
by the file name in ``<path>`` (absolute paths from another machine are never opened), then by the
XML file's own name, beside the XML or in an ``images``/``JPEGImages`` folder
(`pipeline.formats.common.ImageFinder`). ``ImageSets/Main/{train,val,test,trainval}.txt`` give
the splits when present, else folder names do (Roboflow's ``train/``, ``valid/``, ``test/``).

Pixel convention, converted in `to_xyxy`/`from_xyxy` and nowhere else: the VOC devkit's
``bndbox`` holds 1-based indices of the first and last pixel inside the box, so the package box
(continuous, 0-based, far edge exclusive) is ``[xmin - 1, ymin - 1, xmax, ymax]``; supervision's
reader and writer and detectron2 use the same reading, and labelImg never writes 0 (it clamps
``xmin``/``ymin`` to 1). Some exporters write plain 0-based edges instead: datumaro and CVAT
(their exports carry ``labelmap.txt``) and labelme's ``labelme2voc`` (``class_names.txt`` beside
``JPEGImages/``). Folders with those marks are read as 0-based and the summary says so;
``--voc-zero-based`` / ``--voc-one-based`` (``ImportOptions.extra["voc_one_based"]``) decide
explicitly. Export writes the devkit convention (option ``one_based=False`` writes 0-based edges).

EXIF: labelImg shows the raw pixels, so rotated photos are taken to be labelled in the raw frame
unless ``<size>`` names the upright one (`pipeline.formats.common.decide_frame`).

Export writes ``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/<split>.txt``.
"""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
from collections import defaultdict
from pathlib import Path
from xml.etree.ElementTree import fromstring as _c_fromstring
from xml.sax.saxutils import escape

import defusedxml.ElementTree as DET

from pipeline.core.dataset import Dataset, Obj, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.limits import MAX_OBJECTS, MAX_POINTS, check_count, read_capped
from pipeline.formats.base import Detection, ExportReport, ImportContext, relative_files
from pipeline.formats.common import (
    XML_ERRORS,
    ExportNames,
    ImageFinder,
    Labels,
    add_image_sample,
    count_attributes,
    decide_frame,
    fit_box,
    probe_image,
    unused_images,
    walk_files,
    xml_error,
)
from pipeline.formats.splits import split_from_path

NAME = "voc"
LOOKS_FOR = "Pascal VOC XML file (<annotation> with <object>)"
TASK = "detection"

SPLIT_FILES = ("train", "val", "test", "trainval")
ATTRIBUTE_TAGS = ("difficult", "truncated", "occluded", "pose")
BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
NOT_VOC = "XML files that are not VOC annotations"
FIX = "fix the object in labelImg (or the XML), or delete it"


# --------------------------------------------------------------------------------------------
# Coordinates: the one place VOC's convention is converted
# --------------------------------------------------------------------------------------------


def to_xyxy(xmin: float, ymin: float, xmax: float, ymax: float, one_based: bool = True) -> list[float]:
    """VOC ``bndbox`` -> package ``[x1, y1, x2, y2]`` (1-based inclusive indices when `one_based`)."""
    off = 1.0 if one_based else 0.0
    return [xmin - off, ymin - off, xmax, ymax]


def from_xyxy(box: list[float], one_based: bool = True) -> list[float]:
    """Package box -> VOC ``xmin, ymin, xmax, ymax`` (the inverse of `to_xyxy`)."""
    off = 1.0 if one_based else 0.0
    return [box[0] + off, box[1] + off, box[2], box[3]]


def polygon_from_voc(ring: list[list[float]], one_based: bool = True) -> list[list[float]]:
    """VOC ``<polygon>`` vertices -> package points (vertices are points: all shift by one when 1-based)."""
    off = 1.0 if one_based else 0.0
    return [[x - off, y - off] for x, y in ring]


def polygon_to_voc(ring: list[list[float]], one_based: bool = True) -> list[list[float]]:
    off = 1.0 if one_based else 0.0
    return [[p[0] + off, p[1] + off] for p in ring]


# --------------------------------------------------------------------------------------------
# Parsing (pure: bytes in, a validated record out)
# --------------------------------------------------------------------------------------------


class VocFile:
    """The parts of one VOC annotation the importer uses."""

    __slots__ = ("filename", "path", "size", "objects")

    def __init__(self, filename: str | None, path: str | None, size: tuple[int, int] | None,
                 objects: list[tuple[str, list[float], dict, list | None]]) -> None:
        self.filename = filename
        self.path = path
        self.size = size
        self.objects = objects  # (name, [xmin, ymin, xmax, ymax] as written, attributes, polygon rings or None)


def _text(el, tag: str) -> str | None:
    text = el.findtext(tag)
    if not text:
        return None
    text = text.strip()
    return text or None


def _texts(el) -> dict:
    """Each direct child's stripped text (None when empty) by tag, the first child of a tag winning:
    `_text` for every tag of an element in one pass over its children."""
    out: dict = {}
    for child in el:
        tag = child.tag
        if tag not in out:
            text = child.text
            out[tag] = (text.strip() or None) if text else None
    return out


def _number(text: str | None, where: str, fld: str) -> float:
    if text is None:
        raise DataError(where, "missing value", field=fld, expected="a number", got=None,
                        fix="fix the box in labelImg, or delete the object")
    try:
        value = float(text)
    except ValueError:
        raise DataError(where, "", field=fld, expected="a number", got=text, fix=FIX) from None
    if not math.isfinite(value):
        raise DataError(where, "", field=fld, expected="a finite number", got=text,
                        fix="fix the box in labelImg, or delete the object")
    return value


def _polygon(el, where: str, fld: str) -> list[list[float]]:
    """``<polygon><x1>..</x1><y1>..</y1>...</polygon>`` (supervision's VOC polygons) as [x, y] points."""
    check_count(len(el) // 2, MAX_POINTS, where, "polygon points", field=fld)
    values = [_number((c.text or "").strip() or None, where, f"{fld}.{c.tag}") for c in el]
    if len(values) % 2:
        raise DataError(where, "", field=fld, expected="x, y pairs", got=f"{len(values)} values", fix=FIX)
    return [[values[i], values[i + 1]] for i in range(0, len(values), 2)]


def _attr_value(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
            return value if math.isfinite(value) else text
        except ValueError:
            return text


def _size(el, where: str) -> tuple[int, int] | None:
    size = el.find("size")
    if size is None:
        return None
    w, h = _text(size, "width"), _text(size, "height")
    if w is None or h is None:
        return None
    try:
        wv, hv = float(w), float(h)
    except ValueError:
        raise DataError(where, "", field="size", expected="numbers", got=f"{w} x {h}",
                        fix="correct <size> or delete it (the size is then read from the image)") from None
    if not (math.isfinite(wv) and math.isfinite(hv)) or wv <= 0 or hv <= 0:
        return None  # labelImg writes 0 x 0 when it could not read the image: read the size from the file
    return int(round(wv)), int(round(hv))


def _plain_xml(data: bytes) -> bool:
    """True when `data` is ASCII-compatible XML without markup declarations (no DTD, no entities)."""
    head = data[:4]
    if head.startswith((b"\xfe\xff", b"\xff\xfe", b"\x00", b"\x4c\x6f\xa7\x94")) or b"\x00" in head:
        return False  # UTF-16/32 or EBCDIC: let defusedxml decode and check it
    i = data.find(b"<!")
    while i != -1:
        if not (data.startswith(b"<!--", i) or data.startswith(b"<![CDATA[", i)):
            return False
        end = data.find(b"-->", i + 4) if data.startswith(b"<!--", i) else data.find(b"]]>", i + 9)
        if end == -1:
            return False
        i = data.find(b"<!", end)
    return True


def _parse_tree(data: bytes):
    if _plain_xml(data):
        return _c_fromstring(data)
    return DET.fromstring(data, forbid_dtd=True)


def parse_xml(data: bytes, where: str) -> VocFile | None:
    """Parse one VOC file; None when it is XML but not a VOC annotation. Errors name the file and field."""
    try:
        root = _parse_tree(data)
    except XML_ERRORS as exc:
        raise xml_error(exc, where, fix="re-save the file from the labelling tool",
                        encoding_fix="re-save the file as UTF-8 from the labelling tool") from None
    if root.tag != "annotation":
        return None
    objects: list[tuple[str, list[float], dict, list | None]] = []
    for i, obj in enumerate(root.iter("object")):
        fld = f"object[{i}]"
        check_count(i + 1, MAX_OBJECTS, where, "objects", field=fld)
        texts = _texts(obj)
        name = texts.get("name")
        if name is None:
            raise DataError(where, "", field=f"{fld}.name", expected="a class name", got=None, fix=FIX)
        box = obj.find("bndbox")
        if box is None:
            raise DataError(where, "object without a box", field=f"{fld}.bndbox", expected="<bndbox>", got=None,
                            fix="only boxes are read from VOC files; delete the object or add its box")
        corners = _texts(box)
        try:  # the usual four numbers, read at once; anything else gets `_number`'s error
            xmin, ymin, xmax, ymax = (float(corners["xmin"]), float(corners["ymin"]), float(corners["xmax"]),
                                      float(corners["ymax"]))
            finite = xmin - xmin == 0.0 and ymin - ymin == 0.0 and xmax - xmax == 0.0 and ymax - ymax == 0.0
        except (KeyError, TypeError, ValueError):
            finite = False
        if not finite:
            xmin, ymin, xmax, ymax = (_number(corners.get(t), where, f"{fld}.bndbox.{t}") for t in BOX_TAGS)
        if xmin > xmax or ymin > ymax:
            raise DataError(where, "inverted box", field=f"{fld}.bndbox", expected="xmin <= xmax and ymin <= ymax",
                            got=[xmin, ymin, xmax, ymax], fix="swap the corners in the file")
        attrs: dict = {}
        for tag in ATTRIBUTE_TAGS:
            text = texts.get(tag)
            if text is not None:
                attrs[tag] = text if tag == "pose" else _attr_value(text)
        extra = obj.find("attributes") if "attributes" in texts else None  # (texts: every child's tag)
        if extra is not None:  # CVAT: <attributes><attribute><name>k</name><value>v</value></attribute>
            for a in extra.iter("attribute"):
                key, value = _text(a, "name"), _text(a, "value")
                if key:
                    attrs[key] = _attr_value(value) if value is not None else ""
        rings = [_polygon(poly, where, f"{fld}.polygon[{k}]") for k, poly in enumerate(obj.findall("polygon"))] \
            if "polygon" in texts else []
        objects.append((name, [xmin, ymin, xmax, ymax], attrs, [r for r in rings if len(r) >= 3] or None))
    return VocFile(_text(root, "filename"), _text(root, "path"), _size(root, where), objects)


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def _xml_kind(path: str) -> str | None:
    """What an XML file's first bytes are: "voc" (root ``<annotation>``), "labelme-xml" (MIT LabelMe:
    root ``<annotation>`` with ``<object><polygon><pt>`` and no ``<bndbox>``), or None (another root,
    e.g. CVAT's ``<annotations>``, which `pipeline.formats.cvat` reads)."""
    from pipeline.formats.cvat import root_tag

    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return None
    if root_tag(head) != "annotation":
        return None
    return "labelme-xml" if b"<pt>" in head and b"<bndbox>" not in head else "voc"


def detect(root: Path) -> Detection | None:
    """Pascal VOC files under `root`; None when there are none. A folder whose XML files are all MIT
    LabelMe's (polygons as ``<pt>`` points, no boxes) is refused with a UsageError saying so."""
    root = Path(root)
    if not root.is_dir():
        return None
    files = walk_files(root, (".xml",))
    kinds = [_xml_kind(f) for f in files[:20]]
    if "voc" not in kinds:
        if "labelme-xml" in kinds:
            raise UsageError(f"{root}: MIT LabelMe XML (<object><polygon><pt>), not Pascal VOC; this format is not read",
                             fix="convert the files to labelme JSON, COCO or VOC first")
        return None
    splits = _find_split_files(root, files)
    desc = f"Pascal VOC XML: {len(files)} .xml files" + (f", splits from {', '.join(sorted({s for s in splits}))}"
                                                        if splits else "")
    voc = [f for f, k in zip(files[:len(kinds)], kinds, strict=True) if k == "voc"] + files[len(kinds):]
    return Detection(score=60, description=desc, files=relative_files(root, voc))


def count(root: Path, paths: list[Path]) -> dict[str, int]:
    """A cheap count for `pipeline detect`: images, objects and classes in `paths` (the files `detect` recognised)."""
    objects = 0
    classes: set[str] = set()
    for path in paths:
        names = [(o.findtext("name") or "").strip() for o in DET.fromstring(path.read_bytes(), forbid_dtd=True).iter("object")]
        objects += len(names)
        classes.update(names)
    return {"images": len(paths), "objects": objects, "classes": len(classes)}


def _find_split_files(root: Path, files: list[str]) -> dict[str, list[str]]:
    """split name -> the ImageSets/Main/<split>.txt files (at the root or beside the XML folders)."""
    bases = {os.path.abspath(root)}
    for f in files:
        d = os.path.dirname(f)
        bases.add(d)
        bases.add(os.path.dirname(d))
    found: dict[str, list[str]] = defaultdict(list)
    for base in sorted(bases):
        main = os.path.join(base, "ImageSets", "Main")
        if not os.path.isdir(main):
            continue
        for split in SPLIT_FILES:
            p = os.path.join(main, f"{split}.txt")
            if os.path.isfile(p):
                found[split].append(p)
    return dict(found)


def _read_splits(root: Path, files: list[str], ctx: ImportContext) -> dict[str, str]:
    """Image id (stem) -> split from ImageSets/Main; trainval counts as train when train/val are absent."""
    found = _find_split_files(root, files)
    out: dict[str, str] = {}
    order = ["test", "val", "train"] + ([] if "train" in found or "val" in found else ["trainval"])
    for split in order:
        for p in found.get(split, []):
            if not ctx.files.is_file(p):  # a link out of the import folder, a FIFO: skipped, reported
                continue
            text = Path(p).read_text(encoding="utf-8-sig", errors="replace")
            ctx.input_file(p, text.encode("utf-8"))
            for line in text.splitlines():
                parts = line.split()
                if not parts:
                    continue
                name = "train" if split == "trainval" else split
                if parts[0] in out and out[parts[0]] != name:
                    ctx.warn(f"{ctx.rel(p)}: {parts[0]} is also listed in {out[parts[0]]}; kept in {out[parts[0]]}")
                    continue
                out[parts[0]] = name
    return out


def zero_based_exporter(root: Path, files: list[str]) -> str | None:
    """The exporter that left this folder, when it is one known to write 0-based edges."""
    bases = {os.path.abspath(root)} | {os.path.dirname(os.path.dirname(f)) for f in files[:50]}
    for base in sorted(bases):
        if os.path.isfile(os.path.join(base, "labelmap.txt")):
            return "labelmap.txt: a datumaro/CVAT export"
        if os.path.isfile(os.path.join(base, "class_names.txt")) and os.path.isdir(os.path.join(base, "JPEGImages")):
            return "class_names.txt: a labelme2voc export"
    return None


def _common_dir(files: list[str]) -> str:
    """The deepest folder holding every file (sample ids are paths relative to it)."""
    dirs = {os.path.dirname(f) for f in files}
    return os.path.commonpath(sorted(dirs)) if dirs else ""


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder", fix="point at the folder holding the VOC .xml files")
    files = walk_files(root, (".xml",), ctx.files)
    if not files:
        raise UsageError(f"{root}: no .xml files found", fix="point at a folder of Pascal VOC annotations")
    one_based = ctx.options.extra.get("voc_one_based")
    if one_based is None:
        exporter = zero_based_exporter(root, files)
        one_based = exporter is None
        if exporter:
            ctx.report.counts[f"VOC boxes read as 0-based edges ({exporter})"] += len(files)
    one_based = bool(one_based)
    splits = _read_splits(root, files, ctx)
    finder = ImageFinder(root, ctx.files, images=ctx.options.images)
    labels = Labels(ctx)
    base = _common_dir(files)
    root_s = os.path.abspath(root)
    cut, base_cut = len(root_s) + 1, len(base) + 1  # files are under both: string slicing, not relpath
    used: set[str] = set()
    on_invalid = ctx.options.on_invalid
    seen = labels.seen
    n_objects = difficult = 0
    ctx.default_fix = FIX
    stems: set[str] = set()  # every annotation file's stem, casefolded (its image is not an orphan)
    for path in ctx.progress(files, total=len(files), desc="import voc", unit="file"):
        where = path[cut:].replace(os.sep, "/")
        sid = os.path.splitext(path[base_cut:])[0]
        # the file name's stem (splitext looks at the last part alone: the id's last part is it)
        stem = os.path.basename(sid) if base_cut <= path.rfind(os.sep) + 1 else \
            os.path.splitext(os.path.basename(path))[0]
        stems.add(stem.casefold())
        try:
            data = read_capped(path, where, what="VOC XML file")
            parsed = parse_xml(data, where)
            if parsed is None:
                ctx.skip(NOT_VOC)
                continue
            ctx.inputs[where] = hashlib.sha256(data).hexdigest()
            image = finder.find(path, [parsed.filename, parsed.path], stem=stem)
            if image is None and parsed.filename:
                image = finder.find(path, [], stem=os.path.splitext(os.path.basename(parsed.filename))[0])
            if image is None:
                raise DataError(where, "image not found", field="filename",
                                expected="an image beside the XML or in an images/JPEGImages folder",
                                got=parsed.filename or parsed.path,
                                fix="put the image there (absolute <path> values are not followed)")
            used.add(image)
            rel_image = finder.rel(image)
            probe = probe_image(image, rel_image)
            frame = decide_frame((probe.width, probe.height), probe.orientation, parsed.size, "raw")
            sw, sh = frame.source_size
            objects: list[Obj] = []
            for i, (name, raw, attrs, rings) in enumerate(parsed.objects):
                label = seen.get(name) or labels(name, where, f"object[{i}].name")
                box = to_xyxy(*raw, one_based=one_based)
                if not (box[0] >= 0 and box[1] >= 0 and box[2] <= sw and box[3] <= sh):
                    box = fit_box(box, sw, sh, on_invalid, ctx, where, f"object[{i}].bndbox")
                if box is not None:
                    polygon = [polygon_from_voc(r, one_based) for r in rings] if rings else None
                    objects.append(Obj(label=label, bbox=box, polygon=polygon, attributes=attrs))
                    if attrs.get("difficult") in (1, "1"):
                        difficult += 1
            sid = sid.replace(os.sep, "/")
            split = splits.get(stem) if splits else split_from_path(posixpath.dirname(where))
            sample = Sample(id=sid, split=split, objects=objects,
                            source={"file": where, "image": rel_image})
            add_image_sample(ctx, image, sample, probe=probe, frame=frame, declared_size=parsed.size, where=where)
            n_objects += len(objects)
        except DataError as err:
            ctx.bad(err)
    ctx.report.counts["objects"] += n_objects
    if difficult:
        ctx.report.counts["difficult objects (kept, attribute difficult=1)"] += difficult
    orphans = [p for p in unused_images(finder, used)
               if os.path.splitext(os.path.basename(p))[0].casefold() not in stems]  # not the images of bad files
    if orphans:
        ctx.report.counts["images without an annotation file (left out)"] += len(orphans)
        for p in orphans[:5]:
            ctx.warn(f"{ctx.rel(p)}: image without an annotation file; left out")


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _num(v: float) -> str:
    """A coordinate as text: integers without a decimal point, others to 1/1000 px."""
    r = round(float(v), 3)
    return str(int(r)) if r == int(r) else repr(r)


def _depth(path: Path) -> int:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return len(img.getbands())
    except OSError:
        return 3


def to_xml(sample: Sample, filename: str, depth: int, report: ExportReport | None = None,
           one_based: bool = True) -> str:
    """The VOC document of one sample: boxes, polygons as supervision writes them (``<polygon><x1>...``);
    a mask alone becomes its box (see the export report)."""
    from pipeline.core.geometry import object_box_source

    lines = [
        "<annotation>",
        "\t<folder>JPEGImages</folder>",
        f"\t<filename>{escape(filename)}</filename>",
        f"\t<path>{escape(filename)}</path>",
        "\t<source>\n\t\t<database>Unknown</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{sample.width}</width>\n\t\t<height>{sample.height}</height>\n"
        f"\t\t<depth>{depth}</depth>\n\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for o in sample.objects or []:
        box, source = object_box_source(o, points=False)
        if report is not None and source == "mask":
            report.converted["mask -> its bounding box"] += 1
        elif report is not None and source == "bbox" and o.mask is not None:
            what = "polygon" if o.polygon else "box"
            report.dropped[f"masks (VOC holds boxes and polygons; the {what} is written)"] += 1
        if report is not None and (o.keypoints or o.polyline):
            report.dropped["keypoints/polylines (VOC has none)"] += 1
        if box is None:
            continue
        attrs = o.attributes or {}
        xmin, ymin, xmax, ymax = from_xyxy(box, one_based)
        lines.append("\t<object>")
        lines.append(f"\t\t<name>{escape(o.label)}</name>")
        lines.append(f"\t\t<pose>{escape(str(attrs.get('pose', 'Unspecified')))}</pose>")
        lines.append(f"\t\t<truncated>{escape(str(attrs.get('truncated', 0)))}</truncated>")
        lines.append(f"\t\t<difficult>{escape(str(attrs.get('difficult', 0)))}</difficult>")
        if "occluded" in attrs:
            lines.append(f"\t\t<occluded>{escape(str(attrs['occluded']))}</occluded>")
        others = {k: v for k, v in attrs.items() if k not in ATTRIBUTE_TAGS and isinstance(v, (str, int, float))
                  and not isinstance(v, bool)}
        count_attributes(report, o, "VOC", kept=(*ATTRIBUTE_TAGS, *others))  # (lists, objects and booleans)
        if others:
            lines.append("\t\t<attributes>")
            for k, v in sorted(others.items()):
                lines.append(f"\t\t\t<attribute><name>{escape(k)}</name><value>{escape(str(v))}</value></attribute>")
            lines.append("\t\t</attributes>")
        lines.append("\t\t<bndbox>")
        for tag, v in zip(BOX_TAGS, (xmin, ymin, xmax, ymax), strict=True):
            lines.append(f"\t\t\t<{tag}>{_num(v)}</{tag}>")
        lines.append("\t\t</bndbox>")
        for ring in o.polygon or []:
            if len(ring) >= 3:
                pts = polygon_to_voc(ring, one_based)
                cells = "".join(f"<x{k}>{_num(x)}</x{k}><y{k}>{_num(y)}</y{k}>" for k, (x, y) in enumerate(pts, 1))
                lines.append(f"\t\t<polygon>{cells}</polygon>")
        lines.append("\t</object>")
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """``Annotations/<name>.xml``, ``JPEGImages/<name>.<ext>``, ``ImageSets/Main/<split>.txt``."""
    out = Path(out)
    one_based = bool(options.get("one_based", True))
    names = ExportNames(dataset.samples, report, "VOC")
    splits: dict[str, list[str]] = defaultdict(list)
    (out / "Annotations").mkdir(parents=True, exist_ok=True)
    for s in dataset.samples:
        stem = names.stem(s)
        ext = Path(s.image).suffix.lower() or ".png"
        src = out / "JPEGImages" / f"{stem}{ext}"
        dataset.copy_image(s, src)
        if s.label is not None or s.soft_label:
            report.dropped["image-level labels (VOC holds objects)"] += 1
        xml = to_xml(s, f"{stem}{ext}", _depth(src), report, one_based)
        (out / "Annotations" / f"{stem}.xml").write_text(xml, encoding="utf-8")
        if s.split:
            splits[s.split].append(stem)
        report.written += 1
        report.files += 2
    if splits:
        main = out / "ImageSets" / "Main"
        main.mkdir(parents=True, exist_ok=True)
        for split, stems in sorted(splits.items()):
            (main / f"{split}.txt").write_text("".join(f"{n}\n" for n in stems), encoding="utf-8")
            report.files += 1
        if any(not s.split for s in dataset.samples):
            report.warnings.append("samples without a split are in no ImageSets/Main list")

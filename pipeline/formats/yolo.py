"""YOLO txt labels: labelImg's layout, Ultralytics' ``data.yaml`` layout and darknet's ``obj.names``/``obj.data``.

One text file per image, one object per line, coordinates normalised to the image size::

    <class> <cx> <cy> <w> <h>                  a box: centre, width, height in [0, 1]
    <class> <x1> <y1> <x2> <y2> ... <xn> <yn>  a polygon (Ultralytics segmentation), n >= 3
    <class> <x1> <y1> ... <x4> <y4>            an oriented box (Ultralytics OBB): a 4-point polygon
    <class> <cx> <cy> <w> <h> <px> <py> [<pv>] ...  a pose row, with ``kpt_shape: [K, D]`` in data.yaml

A 4-corner row that is a rectangle is kept as its polygon with the enclosing box and
``attributes["rotation"]`` (degrees clockwise, as CVAT and Label Studio rotated boxes are). Pose
keypoints become ``[x, y, v]`` (v as COCO; with D = 2 a ``0 0`` point is absent, others visible).

Layouts read:

- labelImg: images with a ``.txt`` of the same stem beside them and ``classes.txt`` (one name per
  line; a trailing blank line is ignored, a blank line inside keeps its id but names no class).
- Ultralytics: ``data.yaml`` (``names`` as a list or ``{id: name}``, ``train``/``val``/``test``
  folders or list files) with ``images/<split>/x.jpg`` and ``labels/<split>/x.txt``; the label of
  an image is found by swapping the last ``images`` folder for ``labels``. Roboflow's
  ``train/images`` + ``train/labels`` is the same rule.
- darknet: ``obj.names`` and ``obj.data`` (``train=``/``valid=`` list files give the splits).

Labels meet their images beside them, through the ``images`` -> ``labels`` swap, at the same
relative path (``images``/``labels`` folders left out), or, failing those, as the one label file
of the image's stem under SRC (darknet's ``obj_train_data/`` beside an ``images/`` folder). With
``--images DIR`` the images are walked under DIR alone and the labels under SRC.

Exit 0 only for a faithful import: label files with objects that meet no image while no object
was read, a class list with no object anywhere, or a class file in a folder that no label folder
reaches (its ids would become names) are errors naming the file and what was found, never an
import of background images.

Without any of these files the splits come from folder names (train, val/valid, test). Class ids
map to names through the nearest class file; names then go through the class registry, so a
``classes.txt`` in another order than ``--classes`` is handled by name. A class id beyond the
class list is an error naming ``file:line``. Values outside [0, 1] follow ``--on-invalid``:
``error`` rejects the file (saying how many lines are off), ``clip`` clips them, ``skip`` drops
those lines; each is counted. Label files without an image are reported; images without a label
file are imported as background images (no objects), as Ultralytics treats them, and counted.

Conversion, here and nowhere else: ``x1 = (cx - w/2) * W``, ``x2 = (cx + w/2) * W`` (same for y
with H), with W x H the image as the labelling tool saw it. labelImg shows raw pixels (EXIF not
applied); Ultralytics applies EXIF orientation: that frame is assumed (the file declares no size)
and rotated photos are counted as ambiguous (`pipeline.formats.common.decide_frame`).

Export writes the Ultralytics layout (``data.yaml``, ``images/<split>``, ``labels/<split>``);
polygons are written as polygon rows, everything else as boxes.
"""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.core.dataset import Dataset, Obj, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import IMAGE_EXTS, JUNK_NAMES
from pipeline.core.limits import (
    MAX_CLASSES,
    MAX_LINE_CHARS,
    MAX_OBJECTS,
    MAX_POINTS,
    MAX_YAML_BYTES,
    check_count,
    decode_text,
    load_yaml,
    read_capped,
)
from pipeline.core.paths import SafeFiles, natural_key
from pipeline.formats.base import Detection, ExportReport, ImportContext, relative_files
from pipeline.formats.common import (
    ExportNames,
    Labels,
    add_image_sample,
    count_attributes,
    decide_frame,
    layout_free_id,
    probe_image,
)
from pipeline.formats.splits import SPLIT_WORDS, split_from_path

NAME = "yolo"
LOOKS_FOR = "images with .txt label rows beside them or under labels/, data.yaml, or obj.data/obj.names (YOLO)"
TASK = "detection"

CLASS_FILES = ("classes.txt", "obj.names")
YAML_FILES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
NOT_LABELS = {"classes.txt", "train.txt", "val.txt", "valid.txt", "test.txt", "readme.txt", "license.txt",
              "labels.txt", "notes.txt", "obj.names"}
EPS = 1e-6  # normalised values this far outside [0, 1] are rounding, clipped silently

OUT_OF_RANGE = "label lines with values outside [0, 1]"
BACKGROUND = "images without a label file (imported as background, no objects)"
OBB = "oriented boxes (4-corner rows) kept as polygons with their rotation"
OUTSIDE_ENTRIES = "config entries outside the import folder (ignored)"
MISSING_ENTRIES = "config entries naming nothing in the import folder (ignored)"
UNMATCHED_LIST = "list-file entries with no image in the import folder (ignored)"
FIX = "fix or delete the line"


# --------------------------------------------------------------------------------------------
# Lines (pure: text in, normalised geometry out)
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One parsed label line, still normalised."""

    class_id: int
    box: list[float] | None = None  # cx, cy, w, h
    points: list[list[float]] | None = None  # polygon [x, y] pairs
    keypoints: list[list[float]] | None = None  # pose rows: [x, y, v] after the box, v as COCO
    out_of_range: bool = False


def _parse_line(text: str, where: str, line: int, kpt_shape: tuple[int, int] | None = None) -> Row | None:
    """One label line; None for a blank line. Errors name ``where:line`` and the field.
    `kpt_shape` (``data.yaml``'s ``[K, D]``): rows of ``5 + K*D`` fields are pose rows."""
    if len(text) > MAX_LINE_CHARS:
        raise DataError(where, "label line too long", line=line, expected=f"at most {MAX_LINE_CHARS:,} characters",
                        got=f"{len(text):,} characters", fix=FIX)
    fields = text.split()
    if not fields:
        return None
    n = len(fields)
    check_count((n - 1) // 2, MAX_POINTS, where, "polygon points", line=line)
    pose = kpt_shape is not None and n == 5 + kpt_shape[0] * kpt_shape[1]
    if not pose and n != 5 and (n < 7 or n % 2 == 0):
        expected = "5 fields (class cx cy w h) or 1 + 2n fields (class x1 y1 ... xn yn, n >= 3)"
        if kpt_shape is not None:
            expected += f", or {5 + kpt_shape[0] * kpt_shape[1]} (a pose row, kpt_shape {list(kpt_shape)})"
        raise DataError(where, f"unexpected field count {n}", line=line, expected=expected,
                        got=_shown(text), fix=FIX)
    try:
        cid = float(fields[0])
    except ValueError:
        raise DataError(where, "", line=line, field="class", expected="an integer class id", got=fields[0],
                        fix=FIX) from None
    if not math.isfinite(cid) or cid != int(cid) or cid < 0:
        raise DataError(where, "", line=line, field="class", expected="an integer class id >= 0", got=fields[0],
                        fix=FIX)
    values: list[float] = []
    for k, f in enumerate(fields[1:], start=1):
        try:
            v = float(f)
        except ValueError:
            raise DataError(where, "", line=line, field=f"field {k + 1}", expected="a number", got=f,
                            fix=FIX) from None
        if not math.isfinite(v):
            raise DataError(where, "", line=line, field=f"field {k + 1}", expected="a finite number", got=f,
                            fix="fix or delete the line")
        values.append(v)
    if pose:
        return _pose_row(int(cid), values, kpt_shape[1], where, line)  # type: ignore[index]
    out = any(v < -EPS or v > 1 + EPS for v in values)
    if n == 5:
        cx, cy, w, h = values
        if w < 0 or h < 0:
            raise DataError(where, "negative size", line=line, field="w h", expected="w >= 0 and h >= 0",
                            got=[w, h], fix=FIX)
        out = out or cx - w / 2 < -EPS or cx + w / 2 > 1 + EPS or cy - h / 2 < -EPS or cy + h / 2 > 1 + EPS
        return Row(int(cid), box=values, out_of_range=out)
    return Row(int(cid), points=[[values[i], values[i + 1]] for i in range(0, len(values), 2)], out_of_range=out)


def _shown(text: str, limit: int = 120) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."


def _pose_row(cid: int, values: list[float], dims: int, where: str, line: int) -> Row:
    """``cx cy w h`` then K keypoints of `dims` values (``px py`` or ``px py pv``), normalised.
    Ultralytics writes a missing keypoint as ``0 0`` (``0 0 0``): visibility 0; two values: visible (2)."""
    box, rest = values[:4], values[4:]
    if box[2] < 0 or box[3] < 0:
        raise DataError(where, "negative size", line=line, field="w h", expected="w >= 0 and h >= 0", got=box[2:],
                        fix=FIX)
    kps: list[list[float]] = []
    for i in range(0, len(rest), dims):
        x, y = rest[i], rest[i + 1]
        v = rest[i + 2] if dims == 3 else (0.0 if x == 0 and y == 0 else 2.0)
        if v not in (0.0, 1.0, 2.0):
            raise DataError(where, "", line=line, field=f"keypoint {i // dims} visibility",
                            expected="0, 1 or 2", got=v, fix=FIX)
        kps.append([x, y, v])
    cx, cy, w, h = box
    out = (any(v < -EPS or v > 1 + EPS for v in box) or cx - w / 2 < -EPS or cx + w / 2 > 1 + EPS
           or cy - h / 2 < -EPS or cy + h / 2 > 1 + EPS
           or any(k[2] > 0 and not (-EPS <= k[0] <= 1 + EPS and -EPS <= k[1] <= 1 + EPS) for k in kps))
    return Row(cid, box=box, keypoints=kps, out_of_range=out)


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def row_geometry(row: Row, width: float, height: float, clip: bool) -> tuple[list[float], list[list[float]] | None]:
    """Absolute ``(bbox, polygon ring or None)`` of a row in a `width` x `height` image."""
    from pipeline.core.geometry import polygon_bbox

    if row.box is not None:
        cx, cy, w, h = row.box
        # YOLO: centre and size normalised by the image size.
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        if clip or not row.out_of_range:
            x1, y1, x2, y2 = _clip01(x1), _clip01(y1), _clip01(x2), _clip01(y2)
        return [x1 * width, y1 * height, x2 * width, y2 * height], None
    pts = row.points or []
    if clip or not row.out_of_range:
        pts = [[_clip01(x), _clip01(y)] for x, y in pts]
    ring = [[x * width, y * height] for x, y in pts]
    return polygon_bbox([ring]) or [0.0, 0.0, 0.0, 0.0], ring


def row_keypoints(row: Row, width: float, height: float, clip: bool) -> list[list[float]] | None:
    """Absolute ``[x, y, v]`` keypoints of a pose row (None for other rows)."""
    if row.keypoints is None:
        return None
    out = []
    for x, y, v in row.keypoints:
        if clip or not row.out_of_range:
            x, y = _clip01(x), _clip01(y)
        out.append([x * width, y * height, v])
    return out


def obb_rotation(ring: list[list[float]]) -> float | None:
    """The rotation (degrees clockwise on screen, CVAT's and Label Studio's convention) of a
    4-corner row that is a rectangle (an Ultralytics OBB row ``class x1 y1 ... x4 y4``); None for
    another quadrilateral or a rectangle without rotation."""
    from pipeline.formats.cvat import ROTATION_TOLERANCE, rotated_box

    found = rotated_box(ring)
    if found is None:
        return None
    angle = round(found[1], 6) % 360.0
    if min(angle, 360.0 - angle) < ROTATION_TOLERANCE:
        return None
    return angle


def _format_line(class_id: int, values: list[float]) -> str:
    """One label line, normalised values to 6 decimals (as Ultralytics writes them)."""
    return " ".join([str(class_id), *(f"{v:.6f}" for v in values)])


def parse_names(text: str) -> list[str]:
    """A class list file: one name per line; leading/trailing blank lines ignored, inner ones keep their id."""
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").strip("\n").split("\n")]
    return [] if lines == [""] else lines


_NAMES_FIX = "write names as a list ([cat, dog]) or as {0: cat, 1: dog}"


def _names_from_yaml(data: object, where: str) -> list[str] | None:
    if not isinstance(data, dict):
        raise DataError(where, "", expected="a YAML mapping (path, train, val, names)", got=type(data).__name__,
                        fix="write data.yaml as Ultralytics does: path, train, val and names keys")
    names = data.get("names")
    if names is None:
        nc = data.get("nc")
        if isinstance(nc, int) and not isinstance(nc, bool):
            if not 0 <= nc <= MAX_CLASSES:
                raise DataError(where, "", field="nc", expected=f"0..{MAX_CLASSES:,} classes", got=nc, fix=_NAMES_FIX)
            return [str(i) for i in range(nc)]
        return None
    if isinstance(names, list):
        check_count(len(names), MAX_CLASSES, where, "classes", field="names")
        return [_name(n, where, f"names[{i}]") for i, n in enumerate(names)]
    if isinstance(names, dict):
        try:
            ids = {_class_id(k): _name(v, where, f"names.{k}") for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(where, "", field="names", expected="{id: name} with integer ids", got=names,
                            fix=_NAMES_FIX) from None
        for k in ids:
            if not 0 <= k < MAX_CLASSES:
                raise DataError(where, "", field="names", expected=f"ids 0..{MAX_CLASSES - 1:,}", got=k, fix=_NAMES_FIX)
        out = [""] * (max(ids) + 1 if ids else 0)
        for k, v in ids.items():
            out[k] = v
        return out
    raise DataError(where, "", field="names", expected="a list or {id: name}", got=names, fix=_NAMES_FIX)


def _class_id(key: object) -> int:
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise TypeError(key)
    return int(key)


def _name(value: object, where: str, field: str) -> str:
    """A class name from data.yaml: text or a number (YAML reads ``0: 1`` as an int), nothing nested."""
    if isinstance(value, (list, dict)) or value is None:
        raise DataError(where, "", field=field, expected="a class name", got=value, fix=_NAMES_FIX)
    return str(value)


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


@dataclass
class Layout:
    images: list[str]  # absolute paths, natural order
    labels: list[str]
    names: list[str] | None  # from data.yaml / obj.names (None: per-folder classes.txt or ids)
    config: str | None  # the data.yaml / obj.data file read
    splits: dict[str, str]  # absolute image path or folder (ends with os.sep) -> split
    by_name: dict[str, str]  # image file name -> split (darknet list files)
    upright: bool  # Ultralytics applies EXIF orientation; labelImg does not
    image_root: str = ""  # where the images were walked: --images DIR, else the import root
    kpt_shape: tuple[int, int] | None = None  # data.yaml's [K, D]: pose rows
    class_files: tuple[str, ...] = ()  # every class-name file seen (classes.txt, obj.names, data.yaml names)


def _walk(root: str, files: SafeFiles | None = None) -> tuple[list[str], list[str]]:
    images: list[tuple] = []
    labels: list[tuple] = []
    for dirpath, dirnames, filenames in (files if files is not None else SafeFiles([root])).walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d.casefold() != "__macosx"]
        for f in filenames:
            low = f.lower()
            if f.startswith("._") or low in JUNK_NAMES:
                continue
            full = os.path.join(dirpath, f)
            key = natural_key(os.path.relpath(full, root).replace(os.sep, "/"))
            ext = os.path.splitext(low)[1]
            if ext in IMAGE_EXTS:
                images.append((key, full))
            elif ext == ".txt":
                labels.append((key, full))
    return [p for _, p in sorted(images)], [p for _, p in sorted(labels)]


def _config(root: str, files: SafeFiles | None = None) -> tuple[str | None, str | None]:
    safe = files if files is not None else SafeFiles([root])
    for name in YAML_FILES:
        p = os.path.join(root, name)
        if safe.is_file(p):
            return "yaml", p
    p = os.path.join(root, "obj.data")
    if safe.is_file(p):
        return "darknet", p
    return None, None


def _resolve(base: str, value: str, root: str, images: str | None = None) -> str | None:
    """An existing path named in a config file, inside the root (or the images folder); else the
    same name at the root or in the images folder (config files often carry paths of the machine
    they were made on; darknet's ``data/obj_train_data/x.jpg`` names CVAT's export tree)."""
    return _resolve_entry(base, value, root, images)[0]


def _resolve_entry(base: str, value: str, root: str, images: str | None = None) -> tuple[str | None, str]:
    """(path, "") for an existing path a config entry names inside the root or the images folder
    (``--images DIR``), else (None, why): "outside" when it points out of them, "missing" when it
    names nothing there. Tried in order: the path as written (under the images folder, then from
    `base`), without its leading ``../`` (Roboflow's ``../train/images`` beside the export's own
    ``train/``), its last name at the root and in the images folder, and without darknet's own
    ``data/`` folder (``data/obj_train_data/x.jpg``)."""
    tops = [root, *([images] if images else [])]
    text = value.replace("\\", "/")
    stripped = text
    while stripped.startswith(("../", "./")):
        stripped = stripped.split("/", 1)[1]
    name = text.rstrip("/").rsplit("/", 1)[-1]
    tries = ([(images, text)] if images else []) + [(base, text)]
    tries += [(top, stripped) for top in tops] + [(top, name) for top in tops]
    if stripped.startswith("data/"):  # darknet: paths relative to darknet's own folder
        tries += [(top, stripped[5:]) for top in tops]
    outside = False
    for b, v in tries:
        if not v:
            continue
        p = os.path.normpath(os.path.join(b, v))
        inside = any(p == t or p.startswith(t.rstrip(os.sep) + os.sep) for t in tops)
        if not inside:
            outside = True
        elif os.path.exists(p):
            return p, ""
    return None, "outside" if outside or os.path.isabs(text) else "missing"


def _report_entry(ctx: ImportContext | None, cfg: str, key: str, value: object, why: str) -> None:
    """Count and warn about a config entry that is ignored: outside SRC, naming nothing, or not a path."""
    if ctx is None:
        return
    if why == "type":
        shown = repr(value)
        ctx.report.counts[MISSING_ENTRIES] += 1
        ctx.warn(f"{ctx.rel(cfg)}: {key}: {shown if len(shown) <= 60 else shown[:57] + '...'} is not a path; ignored")
    elif why == "outside":
        ctx.report.counts[OUTSIDE_ENTRIES] += 1
        ctx.warn(f"{ctx.rel(cfg)}: {key}: {value!r} points outside the import folder; ignored")
    else:
        ctx.report.counts[MISSING_ENTRIES] += 1
        ctx.warn(f"{ctx.rel(cfg)}: {key}: {value!r} names nothing in the import folder; ignored")


def _kpt_shape(data: dict, where: str) -> tuple[int, int] | None:
    """``kpt_shape: [K, D]`` of an Ultralytics pose dataset (K keypoints of D = 2 or 3 values)."""
    value = data.get("kpt_shape")
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                                                 for v in value)
            or not 0 < value[0] <= 1000 or value[1] not in (2, 3)):
        raise DataError(where, "", field="kpt_shape", expected="[K, D]: K keypoints (1..1000), D = 2 or 3", got=value,
                        fix="write kpt_shape as Ultralytics does, e.g. kpt_shape: [17, 3]")
    return value[0], value[1]


def layout(root: Path, ctx: ImportContext | None = None, images: Path | None = None) -> Layout:
    """What a YOLO import reads under `root`; the images under `images` (``--images DIR``, also
    taken from `ctx`) instead of `root` when given."""
    root_s = os.path.abspath(root)
    if ctx is not None and ctx.options.images is not None:
        images = ctx.options.images
    images_dir = os.path.abspath(images) if images is not None else None
    safe = ctx.files if ctx is not None else SafeFiles([root_s, *([images_dir] if images_dir else [])])
    images, labels = _walk(root_s, safe)
    if images_dir is not None:  # --images DIR: labels under SRC, images under DIR alone
        images = _walk(images_dir, safe)[0]
    kind, cfg = _config(root_s, safe)
    kpt_shape: tuple[int, int] | None = None
    names: list[str] | None = None
    splits: dict[str, str] = {}
    by_name: dict[str, str] = {}
    if kind == "yaml" and cfg:
        cfg_name = os.path.basename(cfg)
        raw = read_capped(cfg, cfg_name, MAX_YAML_BYTES, what="YAML file", fix="data.yaml is a short config file")
        if ctx is not None:
            ctx.input_file(cfg, raw)
        data = load_yaml(decode_text(raw, cfg_name), cfg_name,
                         fix="fix the YAML (aliases and anchors are not allowed in data.yaml)")
        data = {} if data is None else data
        names = _names_from_yaml(data, cfg_name)
        kpt_shape = _kpt_shape(data, cfg_name)
        base = root_s
        if isinstance(data.get("path"), str) and not os.path.isabs(data["path"]):
            base = _resolve(root_s, data["path"], root_s, images_dir) or root_s
        seen: dict[str, str] = {}
        for key in ("train", "val", "test"):
            values = data.get(key)
            for v in values if isinstance(values, list) else [values]:
                if not isinstance(v, str):
                    if v is not None:
                        _report_entry(ctx, cfg, key, v, "type")
                    continue
                p, why = _resolve_entry(base, v, root_s, images_dir)
                if p is None:
                    _report_entry(ctx, cfg, key, v, why)
                    continue
                if p in seen and seen[p] != key:  # the same folder for train and val: no split
                    splits.pop(p + os.sep, None)
                    continue
                seen[p] = key
                if os.path.isdir(p):
                    splits[p + os.sep] = key
                elif safe.is_file(p):
                    _list_file(p, key, by_name, ctx, root_s)
    elif kind == "darknet" and cfg:
        cfg_name = os.path.basename(cfg)
        raw = read_capped(cfg, cfg_name, MAX_YAML_BYTES, what="obj.data file", fix="obj.data is a short config file")
        if ctx is not None:
            ctx.input_file(cfg, raw)
        for line in raw.decode("utf-8", errors="replace").splitlines():
            if "=" not in line:
                continue
            key, value = (s.strip() for s in line.split("=", 1))
            if key not in ("names", "train", "valid", "test"):
                continue
            p, why = _resolve_entry(root_s, value, root_s, images_dir)
            if p is None:
                _report_entry(ctx, cfg, key, value, why)
            elif key == "names" and safe.is_file(p):
                names = _read_names(p, root_s)
            elif key in ("train", "valid", "test") and safe.is_file(p):
                _list_file(p, SPLIT_WORDS[key], by_name, ctx, root_s)
    if names is None and safe.is_file(os.path.join(root_s, "obj.names")):
        names = _read_names(os.path.join(root_s, "obj.names"), root_s)
    if ctx is not None and by_name:
        have = {os.path.basename(i) for i in images}
        unmatched = sorted(n for n in by_name if n not in have)
        if unmatched:
            ctx.report.counts[UNMATCHED_LIST] += len(unmatched)
            ctx.warn(f"{len(unmatched)} list-file entr{'y' if len(unmatched) == 1 else 'ies'} name no image in the "
                     f"import folder (first: {unmatched[0]!r}); ignored")
    class_files = tuple(p for p in labels if os.path.basename(p).lower() in CLASS_FILES)
    if names is not None:
        class_files += (cfg or os.path.join(root_s, "obj.names"),)
    return Layout(images, labels, names, cfg, splits, by_name, upright=kind == "yaml",
                  image_root=images_dir or root_s, kpt_shape=kpt_shape, class_files=class_files)


def _read_names(path: str, root: str) -> list[str]:
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    return parse_names(read_capped(path, rel, what="class file").decode("utf-8-sig", errors="replace"))


def _list_file(path: str, split: str, by_name: dict[str, str], ctx: ImportContext | None = None,
               root: str = "") -> None:
    """Image names of a darknet/Ultralytics list file (``train.txt``): each line's file name gives its split."""
    rel = os.path.relpath(path, root).replace(os.sep, "/") if root else os.path.basename(path)
    raw = read_capped(path, rel, what="list file")
    if ctx is not None:
        ctx.input_file(path, raw)
    for line in raw.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line:
            by_name.setdefault(line.replace("\\", "/").rsplit("/", 1)[-1], SPLIT_WORDS.get(split, split))


def _split_of(image: str, root: str, lay: Layout) -> str | None:
    for folder, split in lay.splits.items():
        if image.startswith(folder):
            return split
    name = os.path.basename(image)
    if name in lay.by_name:
        return lay.by_name[name]
    if lay.splits or lay.by_name:
        return None
    return split_from_path(os.path.relpath(os.path.dirname(image), root))


_IMAGES_PART = re.compile(r"(^|[\\/])images([\\/])", re.IGNORECASE)


def label_candidates(image: str) -> list[str]:
    """Where an image's label file may be: beside it, then with the last ``images`` folder -> ``labels``."""
    stem = os.path.splitext(image)[0]
    out = [stem + ".txt"]
    matches = list(_IMAGES_PART.finditer(stem))
    if matches:
        m = matches[-1]
        out.append(stem[: m.start()] + m.group(1) + "labels" + m.group(2) + stem[m.end():] + ".txt")
    return out


def detect(root: Path, images: Path | None = None) -> Detection | None:
    """YOLO under `root`: a data.yaml or obj.data, else .txt label rows paired with images. With
    `images` (``--images DIR``: a labels-only SRC) the images are those under DIR, and label files
    that parse with a class-name file beside them are enough."""
    root = Path(root)
    if not root.is_dir():
        return None
    kind, cfg = _config(str(root))
    if kind == "yaml":
        return Detection(score=70, description=f"YOLO (Ultralytics layout, {os.path.basename(cfg or '')})",
                         files=relative_files(root, [cfg] if cfg else []))
    if kind == "darknet":
        return Detection(score=70, description="YOLO (darknet obj.data / obj.names)",
                         files=relative_files(root, [cfg] if cfg else []))
    found, labels = _walk(str(root))
    image_root = str(root)
    if images is not None:  # labels under SRC, images under DIR alone
        image_root = os.path.abspath(images)
        found = _walk(image_root, SafeFiles([image_root]))[0] if os.path.isdir(image_root) else []
    if not labels:
        return None
    has_classes = any(os.path.basename(p).lower() in CLASS_FILES for p in labels) or os.path.isfile(
        os.path.join(root, "obj.names"))
    paired = list(_Pairing(labels, str(root), image_root).assign(found if images is not None else found[:200]))
    if not paired and not (images is not None and has_classes):
        return None
    sample = [ln for ln in labels[:20] if os.path.basename(ln).lower() not in NOT_LABELS]
    good = 0
    for ln in sample[:5]:  # one bad file must not hide the format: at least one that parses
        try:
            with open(ln, encoding="utf-8", errors="replace") as fh:
                for i in range(1, 7):  # at most one line over the cap is read, and refused
                    _parse_line(fh.readline(MAX_LINE_CHARS + 1), ln, i)
            good += 1
        except DataError:
            continue
    if (sample or images is not None) and not good:
        return None
    what = "labelImg layout with classes.txt" if has_classes else "txt labels beside images"
    if images is not None:
        what = "txt labels" + (" with a class-name file" if has_classes else "") + ", images under --images"
    return Detection(score=55 if has_classes else 40, description=f"YOLO ({what}, {len(paired)}+ labelled images)",
                     files=relative_files(root, [ln for ln in labels if os.path.basename(ln).lower() not in NOT_LABELS]))


def count(root: Path, paths: list[Path], images: Path | None = None) -> dict[str, int]:
    """A cheap count for `pipeline detect`: images, objects and classes in `paths` (the files `detect` recognised). For a data.yaml or obj.data layout, its label files; `images`: the images under ``--images DIR``."""
    lay = layout(Path(root), images=images)
    labels = [Path(p) for p in lay.labels if os.path.basename(p).lower() not in NOT_LABELS]
    objects = 0
    ids: set[str] = set()
    for path in labels:
        rows = [ln.split()[0] for ln in path.read_text(encoding="utf-8-sig", errors="replace").splitlines() if ln.split()]
        objects += len(rows)
        ids.update(rows)
    classes = len([n for n in lay.names if n]) if lay.names is not None else len(ids)
    return {"images": len(lay.images), "objects": objects, "classes": classes}


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


class _ClassFiles:
    """Class names per label folder: the nearest classes.txt / obj.names up to the root."""

    def __init__(self, root: str, fixed: list[str] | None, ctx: ImportContext,
                 default: list[str] | None = None) -> None:
        self.root = root
        self.fixed = fixed  # data.yaml / obj.names: one list for every folder
        self.default = default  # --classes: ids index it where no class file is found
        self.ctx = ctx
        self.cache: dict[str, tuple[list[str] | None, str | None]] = {}

    def names(self, folder: str) -> tuple[list[str] | None, str | None]:
        if self.fixed is not None:
            return self.fixed, None
        if folder in self.cache:
            return self.cache[folder]
        found: tuple[list[str] | None, str | None] = (None, None)
        for name in CLASS_FILES:
            p = os.path.join(folder, name)
            if self.ctx.files.is_file(p):
                raw = read_capped(p, self.ctx.rel(p), what="class file")
                self.ctx.input_file(p, raw)
                found = (parse_names(raw.decode("utf-8-sig", errors="replace")), self.ctx.rel(p))
                declare_names(self.ctx, found[0], found[1])
                break
        else:
            parent = os.path.dirname(folder)
            if folder != self.root and parent.startswith(self.root):
                found = self.names(parent)
            elif self.default is not None:
                found = (self.default, "--classes")
        self.cache[folder] = found
        return found


def _pair_key(rel: str) -> str:
    """An image's or label's path relative to its root, without extension and without ``images`` /
    ``labels`` folders, case-folded: ``images/train/a.jpg`` and ``labels/train/a.txt`` meet."""
    parts = rel.replace(os.sep, "/").casefold().split("/")
    parts[-1] = os.path.splitext(parts[-1])[0]
    return "/".join(p for p in parts if p not in ("images", "labels"))


class _Pairing:
    """The label file of each image: beside it or under the matching ``labels`` folder first
    (`label_candidates`), then the label file at the same relative path (the ``images``/``labels``
    folders left out; with ``--images``, the image's path under DIR), then the one label file of
    the same stem anywhere under SRC (darknet's ``obj_train_data/`` beside ``images/``). A key or
    stem that two label files (or two images) share pairs nothing (no guess)."""

    def __init__(self, labels: list[str], root: str, image_root: str) -> None:
        self.root, self.image_root = root, image_root
        self.label_set = set(labels)
        self.by_key: dict[str, list[str]] = defaultdict(list)
        self.by_stem: dict[str, list[str]] = defaultdict(list)
        for lf in labels:
            if os.path.basename(lf).lower() in NOT_LABELS:
                continue
            self.by_key[_pair_key(os.path.relpath(lf, root))].append(lf)
            self.by_stem[os.path.splitext(os.path.basename(lf))[0].casefold()].append(lf)

    def _direct(self, image: str) -> str | None:
        found = next((c for c in label_candidates(image) if c in self.label_set), None)
        if found is not None:
            return found
        keyed = self.by_key.get(_pair_key(os.path.relpath(image, self.image_root)), [])
        return keyed[0] if len(keyed) == 1 else None

    def assign(self, images: list[str]) -> dict[str, str]:
        """image -> its label file. The direct rules first, for every image; then the stem rule, only
        for labels no image took directly and only where the stem names one such label and one
        such image (so an unlabelled image never takes another image's labels)."""
        pairs: dict[str, str] = {}
        taken: set[str] = set()
        for image in images:
            found = self._direct(image)
            if found is not None and found not in taken:
                pairs[image] = found
                taken.add(found)
        waiting: dict[str, list[str]] = defaultdict(list)
        for image in images:
            if image not in pairs:
                waiting[os.path.splitext(os.path.basename(image))[0].casefold()].append(image)
        for stem, imgs in waiting.items():
            free = [lf for lf in self.by_stem.get(stem, []) if lf not in taken]
            if len(imgs) == 1 and len(free) == 1:
                pairs[imgs[0]] = free[0]
                taken.add(free[0])
        return pairs


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder", fix="point at the folder holding the images and YOLO .txt labels")
    root_s = os.path.abspath(root)
    lay = layout(root, ctx)
    if not lay.images:
        where = f"--images {ctx.options.images}" if ctx.options.images is not None else str(root)
        raise UsageError(f"{where}: no images found", fix="point at the folder with the images and their .txt labels")
    if lay.names is not None:
        declare_names(ctx, lay.names, ctx.rel(lay.config) if lay.config else "obj.names")
    classes = _ClassFiles(root_s, lay.names, ctx, default=ctx.options.classes)
    bare_ids: set[int] = set()  # class ids used as names (no class file)
    labels = Labels(ctx)
    pairs = _Pairing(lay.labels, root_s, lay.image_root).assign(lay.images)
    used_labels: set[str] = set()
    on_invalid = ctx.options.on_invalid
    ctx.default_fix = "fix or delete the line, or move the label file out of the import folder"
    warned_ids = False
    objects_read = 0
    for image in ctx.progress(lay.images, total=len(lay.images), desc="import yolo", unit="img"):
        rel_image = os.path.relpath(image, lay.image_root).replace(os.sep, "/")
        label_file = pairs.get(image)
        where = os.path.relpath(label_file, root_s).replace(os.sep, "/") if label_file else rel_image
        try:
            if label_file is not None:
                used_labels.add(label_file)
            probe = probe_image(image, rel_image)
            frame = decide_frame((probe.width, probe.height), probe.orientation, None,
                                 "upright" if lay.upright else "raw")
            objects: list[Obj] = []
            if label_file is None:
                ctx.report.counts[BACKGROUND] += 1
            else:
                names, names_file = classes.names(os.path.dirname(label_file))
                if names is None and not warned_ids:
                    _ids_as_names(lay, label_file, root_s)
                    ctx.warn("no classes.txt, obj.names or data.yaml: class ids are used as class names")
                    warned_ids = True
                raw = read_capped(label_file, where, what="label file")
                ctx.input_file(label_file, raw)
                objects = _objects(raw, where, names, names_file, frame.source_size, on_invalid, labels, ctx,
                                   lay.kpt_shape)
                if names is None:
                    bare_ids.update(int(o.label) for o in objects if o.label.isdigit())
            split = _split_of(image, lay.image_root, lay)
            sid = layout_free_id(rel_image, split, ctx.writer.has_sample)  # images/train/a.jpg: "a"
            sample = Sample(id=sid, split=split, objects=objects,
                            source={"file": where, "image": rel_image})
            add_image_sample(ctx, image, sample, probe=probe, frame=frame, where=where)
            ctx.report.counts["objects"] += len(objects)
            objects_read += len(objects)
        except DataError as err:
            ctx.bad(err)
    if bare_ids:  # no class file: each id is its own name, and keeps its number
        ordered = sorted(bare_ids)
        ctx.declare_classes([str(i) for i in ordered], ordered)
    unpaired = [lf for lf in lay.labels if lf not in used_labels and os.path.basename(lf).lower() not in NOT_LABELS]
    if objects_read == 0:
        _nothing_read(lay, unpaired, root_s, ctx)
    for lf in unpaired:
        rel = os.path.relpath(lf, root_s).replace(os.sep, "/")
        ctx.bad(DataError(rel, "label file without an image", expected="an image of the same name beside it "
                          "(or under images/ for labels/)", got=None, fix="add the image or delete the label file"))


def declare_names(ctx: ImportContext, names: list[str], where: str) -> None:
    """A class file's names as the source's classes: each name's id is its line (or key); a blank
    entry is an unused id."""
    kept = [(n, i) for i, n in enumerate(names) if n]
    ctx.declare_classes([n for n, _ in kept], [i for _, i in kept], where=where)


def _ids_as_names(lay: Layout, label_file: str, root: str) -> None:
    """Class ids would become class names: refused when a class-name file sits in the tree unused."""
    if lay.class_files:
        shown = os.path.relpath(lay.class_files[0], root).replace(os.sep, "/")
        where = os.path.relpath(label_file, root).replace(os.sep, "/")
        raise UsageError(f"{where}: class names not found for this label folder: {shown} is in another folder, "
                         "unused (class ids would become class names)",
                         fix="move the class file beside the labels or above them, or name the classes with "
                             "--classes FILE")


def _nothing_read(lay: Layout, unpaired: list[str], root: str, ctx: ImportContext) -> None:
    """No object was read: refuse when the tree holds label rows or a class list (a layout whose
    labels did not meet their images), instead of importing background images."""
    with_rows = [lf for lf in unpaired if _has_rows(lf)]
    if with_rows:
        first = os.path.relpath(with_rows[0], root).replace(os.sep, "/")
        raise DataError(first, f"{len(with_rows)} label file(s) with objects matched none of the "
                               f"{len(lay.images)} images, so no object was read",
                        expected="each label file beside its image, in a labels/ folder beside images/, or of "
                                 "the same name once under the images folder",
                        got=f"labels like {first}, images like "
                            f"{os.path.relpath(lay.images[0], lay.image_root).replace(os.sep, '/')}",
                        fix="point --images at the folder holding the images of these labels")
    if lay.class_files and not ctx.report.problems:
        shown = os.path.relpath(lay.class_files[0], root).replace(os.sep, "/")
        raise DataError(shown, f"a class list, but no object in the {len(lay.images)} images' label files",
                        expected="label files with objects", got="only empty or missing label files",
                        fix="check that the labels were exported with the images")


def _has_rows(path: str) -> bool:
    try:
        raw = read_capped(path, path, what="label file")
    except DataError:
        return False
    return any(line.strip() for line in raw.splitlines())


def _objects(raw: bytes, where: str, names: list[str] | None, names_file: str | None, size: tuple[int, int],
             on_invalid: str, labels: Labels, ctx: ImportContext,
             kpt_shape: tuple[int, int] | None = None) -> list[Obj]:
    text = decode_text(raw, where, fix="re-save the label file as UTF-8")
    rows: list[tuple[int, Row]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        row = _parse_line(line, where, lineno, kpt_shape)
        if row is not None:
            rows.append((lineno, row))
            check_count(len(rows), MAX_OBJECTS, where, "objects", line=lineno)
    bad = [ln for ln, r in rows if r.out_of_range]
    if bad:
        ctx.report.counts[OUT_OF_RANGE] += len(bad)
        if on_invalid == "error":
            raise DataError(where, f"{len(bad)} line(s) with values outside [0, 1] (first: line {bad[0]})",
                            line=bad[0], fix="fix the labels, or import with --on-invalid clip|skip")
    out: list[Obj] = []
    w, h = size
    for lineno, row in rows:
        if row.out_of_range and on_invalid == "skip":
            continue
        if names is not None:
            if row.class_id >= len(names) or not names[row.class_id]:
                raise DataError(where, "class id beyond the class list", line=lineno, field="class",
                                expected=f"0..{len(names) - 1} ({names_file or 'class list'})", got=row.class_id,
                                fix="add the class to the class file, or fix the line")
            name = names[row.class_id]
        else:
            name = str(row.class_id)
        label = labels(name, f"{where}:{lineno}", "class")
        clip = row.out_of_range and on_invalid == "clip"
        box, ring = row_geometry(row, w, h, clip=clip)
        obj = Obj(label=label, bbox=box, polygon=[ring] if ring is not None else None,
                  keypoints=row_keypoints(row, w, h, clip))
        rotation = obb_rotation(ring) if ring is not None and len(ring) == 4 else None
        if rotation is not None:
            obj.attributes["rotation"] = rotation
            ctx.report.counts[OBB] += 1
        out.append(obj)
    return out


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def sample_lines(sample: Sample, class_ids: dict[str, int], report: ExportReport | None = None) -> list[str]:
    """The label lines of one sample (polygon rows for objects with a polygon, box rows otherwise)."""
    from pipeline.core.geometry import object_box_source, polygon_area

    w, h = float(sample.width), float(sample.height)
    lines: list[str] = []
    for o in sample.objects or []:
        cid = class_ids[o.label]
        count_attributes(report, o, "YOLO")
        rings = [r for r in (o.polygon or []) if len(r) >= 3]
        if rings:
            ring = max(rings, key=lambda r: polygon_area([r]))
            if len(rings) > 1 and report is not None:
                report.dropped["polygon parts beyond the largest (YOLO: one ring per object)"] += len(rings) - 1
            lines.append(_format_line(cid, [v for x, y in ring for v in (x / w, y / h)]))
            if o.mask is not None and report is not None:
                report.dropped["masks of objects with a polygon (polygon written)"] += 1
        else:
            box, source = object_box_source(o, points=False)
            if report is not None and source == "mask":
                report.converted["mask -> its bounding box"] += 1
            elif report is not None and source == "bbox" and o.mask is not None:
                report.dropped["masks (YOLO boxes/polygons only; the box is written)"] += 1
            if box is None:
                if report is not None:
                    report.dropped["objects without a box or polygon (keypoints, polylines)"] += 1
                continue
            x1, y1, x2, y2 = box
            # YOLO: centre and size normalised by the image size.
            lines.append(_format_line(cid, [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]))
        if (o.keypoints or o.polyline) and report is not None:
            report.dropped["keypoints/polylines (not written to YOLO detect/segment labels)"] += 1
    return lines


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """Ultralytics layout: ``data.yaml``, ``images/<split>/``, ``labels/<split>/`` (no split folders
    when the dataset has no splits)."""
    out = Path(out)
    # the source's ids where recorded, else (or with options ids=positions) positions
    class_ids = dataset.class_ids if options.get("ids", "source") == "source" else {
        c: i for i, c in enumerate(dataset.classes)}
    use_splits = any(s.split for s in dataset.samples)
    names = ExportNames(dataset.samples, report, "YOLO")
    split_dirs: dict[str, str] = {}
    counts: dict[str, int] = defaultdict(int)
    for s in dataset.samples:
        split = (s.split or "train") if use_splits else ""
        if use_splits and not s.split:
            report.converted["samples without a split -> train"] += 1
        stem = names.stem(s)
        ext = Path(s.image).suffix.lower() or ".png"
        img_dir = out / "images" / split if split else out / "images"
        lab_dir = out / "labels" / split if split else out / "labels"
        dataset.copy_image(s, img_dir / f"{stem}{ext}")
        lab_dir.mkdir(parents=True, exist_ok=True)
        if s.label is not None or s.soft_label:
            report.dropped["image-level labels (YOLO holds objects)"] += 1
        lines = sample_lines(s, class_ids, report)
        (lab_dir / f"{stem}.txt").write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
        split_dirs[split] = f"images/{split}" if split else "images"
        counts[split] += 1
        report.written += 1
        report.files += 2
    cfg: dict = {"path": "."}
    if use_splits:
        cfg["train"] = split_dirs.get("train", split_dirs.get("val"))
        cfg["val"] = split_dirs.get("val", split_dirs.get("train"))
        if "test" in split_dirs:
            cfg["test"] = split_dirs["test"]
        if "train" not in split_dirs or "val" not in split_dirs:
            report.warnings.append("data.yaml: train and val point at the same folder (the dataset lacks one split)")
    else:
        cfg["train"] = cfg["val"] = "images"
    cfg["names"] = {cid: name for name, cid in sorted(class_ids.items(), key=lambda kv: kv[1])}
    if sorted(class_ids.values()) != list(range(len(class_ids))):
        report.warnings.append("data.yaml: the class ids kept from the source are not 0..N-1 "
                               f"({sorted(class_ids.values())[:8]}...); Ultralytics training expects 0..N-1: "
                               "export with --ids positions for those")
    text = yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)
    (out / "data.yaml").write_text(text, encoding="utf-8")
    report.files += 1

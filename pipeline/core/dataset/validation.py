"""The strict readers of a dataset's two metadata files: `read_info` for dataset.json and
`parse_sample_line` for one samples.jsonl line. Every error names the file, the line and the
field, what was expected and what was found (``samples.jsonl:3: objects[0].bbox: expected …``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pipeline.core.dataset.model import (
    DATASET_JSON,
    FORMAT_NAME,
    FORMAT_VERSION,
    SAMPLES_JSONL,
    SPLITS,
    TASKS,
    DatasetInfo,
    Sample,
)
from pipeline.core.errors import DataError, UsageError
from pipeline.core.numbers import is_number
from pipeline.core.packs import PACK_SUFFIX

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DRIVE = re.compile(r"^[A-Za-z]:")


def read_info(root: str | os.PathLike) -> DatasetInfo:
    """Read and validate dataset.json only."""
    root = Path(root)
    path = root / DATASET_JSON
    if not root.exists():
        raise UsageError(f"{root}: no such folder", fix="check the path, or create the dataset with `pipeline fetch` or `pipeline import`")
    if not path.is_file():
        raise UsageError(
            f"{root}: not a pipeline dataset (no {DATASET_JSON})",
            fix="point at a folder written by `pipeline fetch`/`import`, or import this one with `pipeline import auto`",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not valid JSON ({exc})", fix="restore it or re-run the stage that wrote it") from exc
    if not isinstance(data, dict):
        raise DataError(path, "", expected="a JSON object", got=type(data).__name__)
    if data.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise DataError(path, "", field="format", expected=repr(FORMAT_NAME), got=data.get("format"))
    version = data.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise DataError(
            path, "", field="version", expected=f"an integer 1..{FORMAT_VERSION}", got=version,
            fix="upgrade pipeline to read newer datasets",
        )
    task = data.get("task")
    if task not in TASKS:
        raise DataError(path, "", field="task", expected=" | ".join(TASKS), got=task)
    classes = data.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        raise DataError(path, "", field="classes", expected="a list of non-empty strings", got=classes)
    if len(set(classes)) != len(classes):
        dup = sorted({c for c in classes if classes.count(c) > 1})
        raise DataError(path, "duplicate class names", field="classes", expected="unique names", got=dup)
    lineage = data.get("lineage") or []
    if not isinstance(lineage, list):
        raise DataError(path, "", field="lineage", expected="a list", got=type(lineage).__name__)
    return DatasetInfo(
        task=task, classes=classes, lineage=lineage, samples_sha256=data.get("samples_sha256"), version=version,
        class_ids=_class_ids(data.get("class_ids"), classes, path),
    )


def _class_ids(value: object, classes: list[str], path: Path) -> dict[str, int] | None:
    """dataset.json's optional ``class_ids``: every class of `classes`, each a distinct integer >= 0."""
    if value is None:
        return None
    expected = "an object mapping each class to a distinct integer id >= 0"
    if not isinstance(value, dict):
        raise DataError(path, "", field="class_ids", expected=expected, got=type(value).__name__)
    if set(value) != set(classes):
        odd = sorted(set(value) ^ set(classes))[:12]
        raise DataError(path, "class_ids does not name the same classes as classes", field="class_ids",
                        expected="one id per class of classes", got=odd,
                        fix="restore dataset.json, or remove class_ids (ids are then positions)")
    for name, cid in value.items():
        if not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
            raise DataError(path, "", field=f"class_ids.{name}", expected=expected, got=cid)
    if len(set(value.values())) != len(value):
        dup = sorted({v for v in value.values() if list(value.values()).count(v) > 1})
        raise DataError(path, "two classes with one id", field="class_ids", expected="distinct ids", got=dup)
    return {c: value[c] for c in classes}


def _fail(where: str, line: int, fld: str, expected: str, got: object) -> DataError:
    return DataError(where, "", line=line, field=fld, expected=expected, got=got)


def _check_points(pts: object, where: str, line: int, fld: str, dims: tuple[int, ...] = (2,)) -> None:
    if not isinstance(pts, list):
        raise _fail(where, line, fld, "a list of points", pts)
    for i, p in enumerate(pts):
        if not (isinstance(p, list) and len(p) in dims and all(is_number(v) for v in p)):
            want = " or ".join(f"{d} finite numbers" for d in dims)
            raise _fail(where, line, f"{fld}[{i}]", f"a point of {want}", p)


def parse_sample_line(
    text: str, classes: set[str], *, where: str = SAMPLES_JSONL, line: int | None = None, root: Path | None = None
) -> Sample:
    """Parse and validate one samples.jsonl line; errors read `samples.jsonl:LINE: field: expected …, got …`."""
    ln = line
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(where, f"not valid JSON ({exc.msg} at column {exc.colno})", line=ln) from exc
    except (RecursionError, ValueError) as exc:  # nested too deeply; a number over Python's 4300-digit limit
        raise DataError(where, f"not valid JSON ({'nested too deeply' if isinstance(exc, RecursionError) else exc})",
                        line=ln, fix="restore the file or re-run the stage that wrote it") from None
    if not isinstance(data, dict):
        raise _fail(where, ln, "line", "a JSON object", type(data).__name__)
    sid = data.get("id")
    if not isinstance(sid, str) or not sid:
        raise _fail(where, ln, "id", "a non-empty string", sid)
    image = data.get("image")
    if not isinstance(image, str) or not image:
        raise _fail(where, ln, "image", "a path relative to the dataset folder", image)
    if not _inside(image):
        raise _fail(where, ln, "image", "a relative path inside the dataset folder", image)
    pack = data.get("pack")
    if pack is not None:
        _check_pack(pack, where, ln)
    for key in ("width", "height"):
        v = data.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise _fail(where, ln, key, "a positive integer", v)
    digest = data.get("sha256")
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise _fail(where, ln, "sha256", "64 lower-case hex digits", digest)
    split = data.get("split")
    if split is not None and split not in SPLITS:
        raise _fail(where, ln, "split", "train | val | test | null", split)
    label = data.get("label")
    if label is not None:
        if not isinstance(label, str):
            raise _fail(where, ln, "label", "a class name or null", label)
        if label not in classes:
            raise _fail(where, ln, "label", "a class listed in dataset.json", label)
    soft = data.get("soft_label")
    if soft is not None:
        if not isinstance(soft, dict) or not soft:
            raise _fail(where, ln, "soft_label", "an object {class: weight}", soft)
        for k, v in soft.items():
            if k not in classes:
                raise _fail(where, ln, f"soft_label.{k}", "a class listed in dataset.json", k)
            if not is_number(v) or v < 0:
                raise _fail(where, ln, f"soft_label.{k}", "a weight >= 0", v)
        total = sum(soft.values())
        if abs(total - 1.0) > 1e-3:
            raise _fail(where, ln, "soft_label", "weights summing to 1", round(total, 6))
    objs = data.get("objects")
    if objs is not None:
        if not isinstance(objs, list):
            raise _fail(where, ln, "objects", "a list", type(objs).__name__)
        for i, o in enumerate(objs):
            _check_obj(o, classes, where, ln, f"objects[{i}]")
    for key in ("source", "meta"):
        v = data.get(key)
        if v is not None and not isinstance(v, dict):
            raise _fail(where, ln, key, "an object", v)
    for key, fields in (("annotations", _ANNOTATION_KEYS), ("predictions", _PREDICTION_KEYS)):
        v = data.get(key)
        if v is not None:
            _check_reviews(v, fields, classes, where, ln, key)
    return Sample.from_json(data)


# The keys of one entry of `annotations` / `predictions` and the check of each value.
_ANNOTATION_KEYS = ("annotator", "label", "objects", "time", "source_id")
_PREDICTION_KEYS = ("model_version", "score", "label", "objects", "source_id")


def _check_reviews(entries: object, keys: tuple[str, ...], classes: set[str], where: str, ln: int | None,
                   fld: str) -> None:
    """`annotations` or `predictions`: a list of objects with only `keys`, each holding a label or objects."""
    if not isinstance(entries, list):
        raise _fail(where, ln, fld, "a list", type(entries).__name__)
    for i, e in enumerate(entries):
        at = f"{fld}[{i}]"
        if not isinstance(e, dict):
            raise _fail(where, ln, at, "an object", e)
        extra = sorted(set(e) - set(keys))
        if extra:
            raise _fail(where, ln, f"{at}.{extra[0]}", f"only {', '.join(keys)}", extra[0])
        for key in ("annotator", "time", "model_version"):
            if e.get(key) is not None and not isinstance(e[key], str):
                raise _fail(where, ln, f"{at}.{key}", "a string or null", e[key])
        sid = e.get("source_id")
        if sid is not None and (not isinstance(sid, (str, int)) or isinstance(sid, bool)):
            raise _fail(where, ln, f"{at}.source_id", "a string, an integer or null", sid)
        score = e.get("score")
        if score is not None and not is_number(score):
            raise _fail(where, ln, f"{at}.score", "a finite number or null", score)
        label = e.get("label")
        if label is not None and (not isinstance(label, str) or label not in classes):
            raise _fail(where, ln, f"{at}.label", "a class listed in dataset.json", label)
        objs = e.get("objects")
        if objs is not None:
            if not isinstance(objs, list):
                raise _fail(where, ln, f"{at}.objects", "a list", type(objs).__name__)
            for j, o in enumerate(objs):
                _check_obj(o, classes, where, ln, f"{at}.objects[{j}]")
        if label is None and objs is None:
            raise _fail(where, ln, at, "a label or objects (an empty list for an image with none)", e)


def _inside(rel: str) -> bool:
    """Whether a relative path stays inside the dataset folder (no root, drive or `..`)."""
    return not (rel.startswith(("/", "\\")) or ".." in rel.split("/") or _DRIVE.match(rel))


def _check_pack(pack: object, where: str, ln: int | None) -> None:
    if not isinstance(pack, dict):
        raise _fail(where, ln, "pack", 'an object {"file", "offset", "length"}', pack)
    file = pack.get("file")
    if not isinstance(file, str) or not file.endswith(PACK_SUFFIX) or not _inside(file):
        raise _fail(where, ln, "pack.file", f"a relative path of a {PACK_SUFFIX} pack inside the dataset folder", file)
    for key in ("offset", "length"):
        v = pack.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if key == "offset" else 1):
            raise _fail(where, ln, f"pack.{key}", "an integer >= 0" if key == "offset" else "an integer >= 1", v)
    extra = sorted(set(pack) - {"file", "offset", "length"})
    if extra:
        raise _fail(where, ln, f"pack.{extra[0]}", "only file, offset and length", extra[0])


def _check_obj(o: object, classes: set[str], where: str, ln: int, fld: str) -> None:
    if not isinstance(o, dict):
        raise _fail(where, ln, fld, "an object", o)
    label = o.get("label")
    if not isinstance(label, str) or label not in classes:
        raise _fail(where, ln, f"{fld}.label", "a class listed in dataset.json", label)
    bbox = o.get("bbox")
    if bbox is not None:
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
            raise _fail(where, ln, f"{fld}.bbox", "[x1, y1, x2, y2] of finite numbers", bbox)
        if bbox[0] > bbox[2] or bbox[1] > bbox[3]:
            raise _fail(where, ln, f"{fld}.bbox", "x1 <= x2 and y1 <= y2", bbox)
    poly = o.get("polygon")
    if poly is not None:
        if not isinstance(poly, list):
            raise _fail(where, ln, f"{fld}.polygon", "a list of rings of [x, y] points", poly)
        for r, ring in enumerate(poly):
            _check_points(ring, where, ln, f"{fld}.polygon[{r}]")
    if o.get("keypoints") is not None:
        _check_points(o["keypoints"], where, ln, f"{fld}.keypoints", dims=(2, 3))
    if o.get("polyline") is not None:
        _check_points(o["polyline"], where, ln, f"{fld}.polyline")
    mask = o.get("mask")
    if mask is not None:
        ok = isinstance(mask, dict) and isinstance(mask.get("size"), list) and len(mask["size"]) == 2
        ok = ok and isinstance(mask.get("counts"), (list, str))
        if not ok:
            raise _fail(where, ln, f"{fld}.mask", 'COCO RLE {"size": [h, w], "counts": [...]}', mask)
    if all(o.get(k) is None for k in ("bbox", "polygon", "keypoints", "polyline", "mask")):
        raise _fail(where, ln, fld, "at least one of bbox, polygon, keypoints, polyline, mask", o)
    w = o.get("weight")
    if w is not None and (not is_number(w) or w < 0):
        raise _fail(where, ln, f"{fld}.weight", "a number >= 0", w)
    score = o.get("score")
    if score is not None and not is_number(score):
        raise _fail(where, ln, f"{fld}.score", "a finite number", score)
    attrs = o.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        raise _fail(where, ln, f"{fld}.attributes", "an object", attrs)

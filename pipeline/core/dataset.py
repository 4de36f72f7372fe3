"""The canonical dataset: the one on-disk contract every stage reads and writes.

A dataset is a folder::

    dataset.json     format version, task, ordered classes, lineage, hash of samples.jsonl
    samples.jsonl    one sample per line, sorted by id
    images/          the image files the samples point at (small ones may live in image packs,
                     images/packs/*.zip: see `pipeline.core.packs`)

Coordinates inside the package are absolute-pixel floats, boxes as ``[x1, y1, x2, y2]``
(x to the right, y down, the image spanning ``[0, width] x [0, height]``). Format modules convert
to and from their own conventions and nowhere else. See ``datasets/README.md`` for the full
description with an example.

Writers never touch the destination until the dataset is complete: everything is written into a
temporary sibling folder, fsynced, and renamed into place (`DatasetWriter`). In-place updates of
the metadata (`rewrite_samples`) replace ``samples.jsonl`` then ``dataset.json`` atomically; the
``samples_sha256`` recorded in ``dataset.json`` lets a reader detect an update that was cut
between the two renames.
"""

from __future__ import annotations

import copy
import datetime as _dt
import functools
import hashlib
import json
import math
import os
import queue
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.core.errors import DataError, UsageError
from pipeline.core.packs import PACK_SUFFIX, PackWriter, pack_name, read_member
from pipeline.core.paths import fsync_dir, link_or_copy, natural_sorted, safe_stem, sha256_bytes

FORMAT_NAME = "pipeline-dataset"
FORMAT_VERSION = 1
TASKS = ("classification", "detection", "segmentation")
SPLITS = ("train", "val", "test")
DATASET_JSON = "dataset.json"
SAMPLES_JSONL = "samples.jsonl"
IMAGES_DIR = "images"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DRIVE = re.compile(r"^[A-Za-z]:")


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass
class Obj:
    """One labelled object. At least one geometry (bbox, polygon, keypoints, polyline, mask)."""

    label: str
    bbox: list[float] | None = None  # [x1, y1, x2, y2], absolute pixels
    polygon: list[list[list[float]]] | None = None  # rings, each a list of [x, y]; one instance
    keypoints: list[list[float]] | None = None  # [x, y, v], v as COCO: 0 absent, 1 hidden, 2 visible
    polyline: list[list[float]] | None = None  # open line (labelme line/linestrip), [x, y] points
    mask: dict | None = None  # full-image uncompressed COCO RLE: {"size": [h, w], "counts": [...]}
    weight: float | None = None  # e.g. Mixup's lambda for this box; absent means 1
    attributes: dict[str, Any] = field(default_factory=dict)  # difficult, truncated, iscrowd, ...

    def to_json(self) -> dict:
        out: dict[str, Any] = {"label": self.label}
        for key in ("bbox", "polygon", "keypoints", "polyline", "mask", "weight"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.attributes:
            out["attributes"] = self.attributes
        return out

    def copy(self) -> Obj:
        """A deep copy (coordinates, mask and attributes not shared), far cheaper than `copy.deepcopy`."""

        def pts(points: list | None) -> list | None:
            return None if points is None else [list(p) for p in points]

        return Obj(
            label=self.label,
            bbox=None if self.bbox is None else list(self.bbox),
            polygon=None if self.polygon is None else [[list(p) for p in ring] for ring in self.polygon],
            keypoints=pts(self.keypoints),
            polyline=pts(self.polyline),
            mask=None if self.mask is None else {k: list(v) if isinstance(v, list) else v for k, v in self.mask.items()},
            weight=self.weight,
            attributes=copy.deepcopy(self.attributes) if self.attributes else {},
        )

    @classmethod
    def from_json(cls, data: dict) -> Obj:
        return cls(
            label=data["label"],
            bbox=data.get("bbox"),
            polygon=data.get("polygon"),
            keypoints=data.get("keypoints"),
            polyline=data.get("polyline"),
            mask=data.get("mask"),
            weight=data.get("weight"),
            attributes=dict(data.get("attributes") or {}),
        )


@dataclass
class Sample:
    """One image and its labels. `image` is relative to the dataset folder."""

    id: str
    image: str = ""
    width: int = 0
    height: int = 0
    sha256: str = ""
    split: str | None = None
    label: str | None = None
    soft_label: dict[str, float] | None = None
    objects: list[Obj] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # stage records: augmentation params, EXIF flags, ...
    pack: dict[str, Any] | None = None  # {"file", "offset", "length"} when the image is a member of a pack

    def to_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id, "image": self.image}
        if self.pack is not None:
            out["pack"] = self.pack
        out.update({
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
            "split": self.split,
            "label": self.label,
        })
        if self.soft_label is not None:
            out["soft_label"] = self.soft_label
        if self.objects is not None:
            out["objects"] = [o.to_json() for o in self.objects]
        if self.source:
            out["source"] = self.source
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, data: dict) -> Sample:
        objs = data.get("objects")
        return cls(
            id=data["id"],
            image=data["image"],
            width=data["width"],
            height=data["height"],
            sha256=data["sha256"],
            split=data.get("split"),
            label=data.get("label"),
            soft_label=data.get("soft_label"),
            objects=[Obj.from_json(o) for o in objs] if objs is not None else None,
            source=dict(data.get("source") or {}),
            meta=dict(data.get("meta") or {}),
            pack=dict(data["pack"]) if data.get("pack") is not None else None,
        )

    def labels(self) -> set[str]:
        """Every class name this sample refers to."""
        names: set[str] = set()
        if self.label is not None:
            names.add(self.label)
        if self.soft_label:
            names.update(self.soft_label)
        for obj in self.objects or ():
            names.add(obj.label)
        return names


@dataclass
class DatasetInfo:
    """The contents of dataset.json."""

    task: str
    classes: list[str]
    lineage: list[dict] = field(default_factory=list)
    samples_sha256: str | None = None
    version: int = FORMAT_VERSION

    def to_json(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": self.version,
            "task": self.task,
            "classes": list(self.classes),
            "samples_sha256": self.samples_sha256,
            "lineage": self.lineage,
        }


@dataclass
class Dataset:
    """A loaded dataset: its folder, its info and its samples (sorted by id)."""

    root: Path
    info: DatasetInfo
    samples: list[Sample]

    @property
    def classes(self) -> list[str]:
        return self.info.classes

    @property
    def task(self) -> str:
        return self.info.task

    def image_path(self, sample: Sample) -> Path:
        """The image's own file; for a packed sample, where it would be if the pack were unzipped
        (read packed images with `read_image_bytes`, `open_image` or `copy_image`)."""
        return self.root / sample.image

    def image_where(self, sample: Sample) -> str:
        """The image's location for messages: a path, or ``PACK:offset`` for a packed image."""
        if sample.pack is not None:
            return f"{self.root / sample.pack['file']}:{sample.pack['offset']}"
        return str(self.root / sample.image)

    def read_image_bytes(self, sample: Sample) -> bytes:
        """The encoded image (file or pack member)."""
        if sample.pack is not None:
            return read_member(self.root / sample.pack["file"], sample.pack["offset"], sample.pack["length"])
        try:
            with open(os.path.join(self.root, sample.image), "rb", buffering=0) as fh:  # hot in augment: no pathlib
                return fh.readall()
        except FileNotFoundError as exc:
            raise DataError(self.root / sample.image, "image missing",
                            fix="re-run the stage that wrote this dataset") from exc

    def open_image(self, sample: Sample, *, exif_transpose: bool = False):
        """The decoded image (a PIL image); errors name the file or pack."""
        from pipeline.core.images import open_image, open_image_bytes

        if sample.pack is not None:
            return open_image_bytes(self.read_image_bytes(sample), self.image_where(sample),
                                    exif_transpose=exif_transpose)
        return open_image(self.root / sample.image, exif_transpose=exif_transpose)

    def copy_image(self, sample: Sample, dest: str | os.PathLike, *, make_parent: bool = True) -> None:
        """Put the image at `dest` as a file: hard-linked (or copied) from a file, written from a pack."""
        dest = Path(dest)
        if sample.pack is None:
            link_or_copy(self.root / sample.image, dest, make_parent=make_parent)
            return
        if make_parent:
            dest.parent.mkdir(parents=True, exist_ok=True)
        data = self.read_image_bytes(sample)
        dest.unlink(missing_ok=True)
        with open(dest, "wb") as fh:
            fh.write(data)

    def split(self, name: str | None) -> list[Sample]:
        """Samples of one split (`None` for all)."""
        if name is None:
            return list(self.samples)
        return [s for s in self.samples if s.split == name]

    def splits(self) -> dict[str | None, int]:
        counts: dict[str | None, int] = {}
        for s in self.samples:
            counts[s.split] = counts.get(s.split, 0) + 1
        return counts

    @property
    def content_hash(self) -> str:
        """Identifies the dataset's content: classes, task and every sample (image hashes included)."""
        return content_hash(self.root)

    def __len__(self) -> int:
        return len(self.samples)


# --------------------------------------------------------------------------------------------
# Reading and validating
# --------------------------------------------------------------------------------------------


def is_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / DATASET_JSON).is_file() and (Path(path) / SAMPLES_JSONL).is_file()


def content_hash(root: str | os.PathLike) -> str:
    """sha256 over dataset.json's task and classes and the bytes of samples.jsonl."""
    root = Path(root)
    info = _read_info(root)
    h = hashlib.sha256()
    h.update(json.dumps({"task": info.task, "classes": info.classes}, sort_keys=True).encode())
    with open(root / SAMPLES_JSONL, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _read_info(root: Path) -> DatasetInfo:
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
        task=task, classes=classes, lineage=lineage, samples_sha256=data.get("samples_sha256"), version=version
    )


def read_info(root: str | os.PathLike) -> DatasetInfo:
    """Read and validate dataset.json only."""
    return _read_info(Path(root))


def iter_samples(root: str | os.PathLike, info: DatasetInfo | None = None) -> Iterator[Sample]:
    """Stream validated samples from samples.jsonl (errors name the line and the field)."""
    root = Path(root)
    info = info or _read_info(root)
    classes = set(info.classes)
    path = root / SAMPLES_JSONL
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            yield parse_sample_line(line, classes, where=SAMPLES_JSONL, line=lineno, root=root)


def load_dataset(root: str | os.PathLike, *, check_hash: bool = True) -> Dataset:
    """Load and validate a dataset folder. Raises `DataError`/`UsageError` with file:line: field messages."""
    root = Path(root)
    info = _read_info(root)
    raw = (root / SAMPLES_JSONL).read_bytes() if (root / SAMPLES_JSONL).is_file() else None
    if raw is None:
        raise UsageError(f"{root}: not a pipeline dataset (no {SAMPLES_JSONL})", fix="re-run the stage that wrote it")
    if check_hash and info.samples_sha256 and sha256_bytes(raw) != info.samples_sha256:
        raise DataError(
            root / DATASET_JSON,
            "does not match samples.jsonl (an update was interrupted, or the file was edited by hand)",
            field="samples_sha256",
            fix="re-run the stage that wrote this dataset, or run `pipeline split --redo` / re-import",
        )
    classes = set(info.classes)
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    text = raw.decode("utf-8", errors="strict")
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        sample = parse_sample_line(line, classes, where=SAMPLES_JSONL, line=lineno, root=root)
        if sample.id in seen:
            raise DataError(
                SAMPLES_JSONL, "duplicate id", line=lineno, field="id",
                expected=f"an id not already used on line {seen[sample.id]}", got=sample.id,
            )
        seen[sample.id] = lineno
        samples.append(sample)
    samples.sort(key=lambda s: s.id)
    return Dataset(root=root, info=info, samples=samples)


def _fail(where: str, line: int, fld: str, expected: str, got: object) -> DataError:
    return DataError(where, "", line=line, field=fld, expected=expected, got=got)


def _is_num(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_points(pts: object, where: str, line: int, fld: str, dims: tuple[int, ...] = (2,)) -> None:
    if not isinstance(pts, list):
        raise _fail(where, line, fld, "a list of points", pts)
    for i, p in enumerate(pts):
        if not (isinstance(p, list) and len(p) in dims and all(_is_num(v) for v in p)):
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
            if not _is_num(v) or v < 0:
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
    return Sample.from_json(data)


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
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
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
    if w is not None and (not _is_num(w) or w < 0):
        raise _fail(where, ln, f"{fld}.weight", "a number >= 0", w)
    attrs = o.get("attributes")
    if attrs is not None and not isinstance(attrs, dict):
        raise _fail(where, ln, f"{fld}.attributes", "an object", attrs)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def lineage_entry(stage: str, params: dict | None = None, inputs: dict[str, str] | None = None) -> dict:
    """One lineage record: stage, tool version, parameters, content hashes of inputs, time."""
    return {
        "stage": stage,
        "tool": f"pipeline {__version__}",
        "params": _jsonable(params or {}),
        "inputs": dict(inputs or {}),
        "time": now_iso(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def dumps_sample(sample: Sample) -> str:
    """The exact bytes (as text) of one samples.jsonl line: stable key order, compact, UTF-8."""
    return json.dumps(sample.to_json(), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def with_pack(line: str, pack: dict) -> str:
    """`dumps_sample(sample)` of a sample whose line was rendered before `sample.pack = pack` was
    set: the pack goes right before the width (the key order of `Sample.to_json`), nothing else is
    rendered again. (`,"width":` cannot occur inside an encoded string: every quote there is escaped.)"""
    at = line.index(',"width":')
    if list(pack) == ["file", "offset", "length"] and type(pack["offset"]) is int and type(pack["length"]) is int:
        text = f'{{"file":{_json_str(pack["file"])},"offset":{pack["offset"]},"length":{pack["length"]}}}'
    else:
        text = json.dumps(pack, ensure_ascii=False, separators=(",", ":"))
    return f'{line[:at]},"pack":{text}{line[at:]}'


@functools.lru_cache(maxsize=64)
def _json_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _sorted_lines(samples: Iterable[Sample]) -> list[str]:
    """The samples.jsonl lines of `samples`, in id order."""
    return [dumps_sample(s) for s in sorted(samples, key=lambda s: s.id)]


_STOP = object()  # ends a DatasetWriter's sync thread


def _write_lines(path: Path, lines: list[str], chunk: int = 4096) -> str:
    """Write `lines` to `path`, each ended by a newline, and fsync it; returns the file's SHA-256.
    Encoded, hashed and written a few thousand lines at a time: no second copy of a large
    samples.jsonl in memory."""
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for i in range(0, len(lines), chunk):
            data = ("\n".join(lines[i:i + chunk]) + "\n").encode("utf-8")
            digest.update(data)
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return digest.hexdigest()


def _write_file(path: Path, data: bytes, *, sync: bool = True) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())


def _info_bytes(info: DatasetInfo) -> bytes:
    return (json.dumps(info.to_json(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _union_classes(samples: Iterable[Sample]) -> list[str]:
    names: set[str] = set()
    for s in samples:
        names |= s.labels()
    return natural_sorted(names)


def _prepare_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is a file", fix="choose another --out")
    if out.is_dir() and any(out.iterdir()) and not is_dataset(out):
        raise UsageError(
            f"{out}: exists, is not empty and is not a pipeline dataset; refusing to replace it",
            fix="choose another --out, or remove that folder",
        )


def _sweep_stale(out: Path) -> None:
    """Remove temporary folders left by killed writers of `out` (their pid no longer runs)."""
    parent = out.parent
    if not parent.is_dir():
        return
    prefix = f".{out.name}.tmp-"
    for p in parent.iterdir():
        if not p.name.startswith(prefix):
            continue
        try:
            pid = int(p.name[len(prefix):].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished folder `tmp` to `out`, replacing an existing dataset there."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
    os.rename(tmp, out)
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class DatasetWriter:
    """Writes a new dataset into a temporary folder and renames it into place on success.

    Usage::

        with DatasetWriter(out, task="classification", stage="import", params={...}) as w:
            w.add(Sample(id="cat/001", label="cat", split=None), src=Path("cat/001.jpg"))
        # `out` now holds the complete dataset; on an exception nothing at `out` changed.

    `classes=None` takes the natural-sorted union of every label seen; a fixed list makes
    any other label an error (see `resolve_label`). Images are added from bytes (`data=`), from a
    file (`src=`, hard-linked when possible) or already in place (`image=` relative path).
    `workdir` names a persistent temporary folder for resumable stages: files already there
    are kept.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        task: str,
        stage: str,
        classes: list[str] | None = None,
        class_map: dict[str, str] | None = None,
        params: dict | None = None,
        inputs: dict[str, str] | None = None,
        parent_lineage: list[dict] | None = None,
        workdir: str | os.PathLike | None = None,
        render_early: bool = False,
    ) -> None:
        if task not in TASKS:
            raise UsageError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.out = Path(out)
        self.task = task
        self.fixed_classes = list(classes) if classes is not None else None
        self.class_map = dict(class_map or {})
        self.lineage = list(parent_lineage or []) + [lineage_entry(stage, params, inputs)]
        self.samples: dict[str, Sample] = {}
        self._names: set[str] = set()
        self._dirs: set[str] = set()  # folders under tmp already created
        self._images: set[str] = set()  # image paths already taken, so `_unique` is O(1) per sample
        self._packs: dict[str, str] = {}  # source pack (resolved path) -> its relative path here
        self._pack_names: set[str] = set()
        self._unsynced = False  # image files written without fsync; one os.sync() before commit covers them
        self._syncer: threading.Thread | None = None  # flushes what `sync_in_background` queues, in order
        self._sync_queue: queue.SimpleQueue | None = None
        self._sync_errors: list[OSError] = []
        self._workdir = Path(workdir) if workdir else None
        # render_early: each samples.jsonl line is rendered when its sample is added (the caller
        # promises not to change samples after `add`), so a stage that waits on workers renders
        # while it waits instead of all at once in `commit`.
        self._lines: dict[str, str] | None = {} if render_early else None
        self._rendered = 0  # samples added by `add_rendered` (no Sample kept)
        self.tmp: Path | None = None
        self.committed = False

    # -- context management --------------------------------------------------------------
    def __enter__(self) -> DatasetWriter:
        _prepare_destination(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(self.out)
        if self._workdir is not None:
            self.tmp = self._workdir
        else:
            self.tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        (self.tmp / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.committed:
            self.finish()
            return
        self._stop_syncer()  # (a flush under way finishes on its own)
        if exc_type is not None and self._workdir is None and self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- labels ------------------------------------------------------------------------------
    def resolve_label(self, name: str, where: str | Path = "", field: str = "label") -> str:
        """Apply --map renames and check the fixed class list; an unknown class is an error naming `where`."""
        name = self.class_map.get(name, name)
        if self.fixed_classes is not None and name not in self.fixed_classes:
            raise DataError(
                where or "input", "class not in the class list", field=field,
                expected=f"one of {self.fixed_classes}", got=name,
                fix="add it to the --classes file, or rename it with --map OLD=NEW",
            )
        return name

    # -- images --------------------------------------------------------------------------------
    def image_relpath(self, sample_id: str, ext: str) -> str:
        ext = ext.lower().lstrip(".") or "png"
        return f"{IMAGES_DIR}/{safe_stem(sample_id)}.{ext}"

    def uses_image(self, rel: str) -> bool:
        """Whether a sample added so far has `rel` as its image path (or pack member name)."""
        return rel in self._images

    def has_image(self, rel: str) -> bool:
        assert self.tmp is not None
        return (self.tmp / rel).is_file()

    def add(
        self,
        sample: Sample,
        *,
        data: bytes | None = None,
        src: str | os.PathLike | None = None,
        ext: str | None = None,
        line: str | None = None,
    ) -> Sample:
        """Add a sample; write its image from `data` or `src`, or trust `sample.image` already in tmp.
        `line`: the sample's `dumps_sample` line when the caller rendered it already (in a worker)."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if sample.id in self.samples or (self._lines is not None and sample.id in self._lines):
            raise DataError(sample.source.get("file", "input"), "two samples with the same id", field="id",
                            expected="unique ids", got=sample.id)
        if data is not None or src is not None:
            if ext is None:
                ext = os.path.splitext(src)[1] if src is not None else "png"
            rel = self.image_relpath(sample.id, ext)
            rel = self._unique(rel, sample.id)
            dest = os.path.join(self.tmp, rel)  # strings, not pathlib: this runs once per image
            parent = os.path.dirname(dest)
            if parent not in self._dirs:  # one mkdir per folder, not one per image
                os.makedirs(parent, exist_ok=True)
                self._dirs.add(parent)
            if data is not None:
                _write_file(dest, data, sync=False)  # fsync per file costs ~2 ms; commit syncs once
                self._unsynced = True
                if not sample.sha256:
                    sample.sha256 = sha256_bytes(data)
            else:
                if link_or_copy(src, dest, make_parent=False):
                    self._unsynced = True  # copied across file systems: synced before the commit
                if not sample.sha256:
                    from pipeline.core.paths import sha256_file

                    sample.sha256 = sha256_file(dest)
            sample.image = rel
        elif not sample.image:
            raise ValueError("add() needs data=, src= or sample.image")
        self.samples[sample.id] = sample
        if self._lines is not None:
            self._lines[sample.id] = line if line is not None else dumps_sample(sample)
        self._images.add(sample.image)
        self._names |= sample.labels()
        return sample

    def add_rendered(self, sample_id: str, image: str, line: str, labels: Iterable[str] = ()) -> None:
        """Add a sample known only by its samples.jsonl `line` (a `dumps_sample` rendering, e.g.
        from a worker process), its image path (already in the temporary folder, or a pack member
        written here) and the class names it uses. Needs ``render_early``. No `Sample` object is
        built or kept: a stage that streams many thousands of samples pays neither for building
        them nor for freeing them, and `finish` (not `commit`) completes the dataset without
        loading them back."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if self._lines is None:
            raise ValueError("add_rendered() needs a DatasetWriter with render_early=True")
        if sample_id in self._lines:
            raise DataError("input", "two samples with the same id", field="id", expected="unique ids", got=sample_id)
        self._lines[sample_id] = line
        self._images.add(image)
        self._names.update(labels)
        self._rendered += 1

    def add_from(self, dataset: Dataset, source: Sample, sample: Sample | None = None) -> Sample:
        """Add `sample` (default: a copy of `source`) with `source`'s image from `dataset`: a file is
        hard-linked (copied across file systems), a pack is linked once and its members kept."""
        new = sample if sample is not None else Sample.from_json(source.to_json())
        if source.pack is None:
            new.image, new.pack = "", None
            return self.add(new, src=os.path.join(dataset.root, source.image), ext=os.path.splitext(source.image)[1])
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if source.image in self._images:  # the member's name is taken here: store this image as a file
            new.image, new.pack = "", None  # (a renamed sample would no longer match its member's name)
            return self.add(new, data=dataset.read_image_bytes(source), ext=Path(source.image).suffix)
        src = str((dataset.root / source.pack["file"]).resolve())
        rel = self._packs.get(src)
        if rel is None:
            rel = source.pack["file"]
            if rel in self._pack_names:  # two sources with packs of the same name
                stem = rel[: -len(PACK_SUFFIX)]
                rel = next(f"{stem}-{i}{PACK_SUFFIX}" for i in range(1, 1 << 30)
                           if f"{stem}-{i}{PACK_SUFFIX}" not in self._pack_names)
            if link_or_copy(src, self.tmp / rel):
                self._unsynced = True
            self._packs[src] = rel
            self._pack_names.add(rel)
        new.image = source.image
        new.pack = {"file": rel, "offset": source.pack["offset"], "length": source.pack["length"]}
        new.sha256 = new.sha256 or source.sha256
        return self.add(new)

    def new_pack(self, stage: str) -> tuple[str, PackWriter]:
        """A new, empty pack in this dataset (a name no linked pack uses) and its writer."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        i = 0
        while pack_name(stage, i) in self._pack_names:
            i += 1
        rel = pack_name(stage, i)
        self._pack_names.add(rel)
        return rel, PackWriter(self.tmp / rel)

    def sync_in_background(self, rel: str | None) -> None:
        """Flush `rel` (written and closed under the temporary folder) to the disk from this
        writer's sync thread, so the wait overlaps the caller's work; `finish` waits for every
        queued flush before the rename. `None`: every file (`os.sync`)."""
        assert self.tmp is not None, "use DatasetWriter as a context manager"
        if self._sync_queue is None:
            self._sync_queue = queue.SimpleQueue()
            self._syncer = threading.Thread(target=self._sync_loop, args=(self._sync_queue,), daemon=True,
                                            name="fsync")
            self._syncer.start()
        self._sync_queue.put(None if rel is None else self.tmp / rel)

    def _sync_loop(self, jobs: queue.SimpleQueue) -> None:
        while (path := jobs.get()) is not _STOP:
            self._fsync(path)

    def _stop_syncer(self) -> None:
        if self._sync_queue is not None:
            self._sync_queue.put(_STOP)
            self._sync_queue = None

    def _fsync(self, path: Path | None) -> None:
        try:
            if path is None:
                os.sync()
                return
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._sync_errors.append(exc)

    def _unique(self, rel: str, sample_id: str) -> str:
        if rel not in self._images:
            return rel
        stem, dot, ext = rel.rpartition(".")
        digest = hashlib.sha1(sample_id.encode()).hexdigest()[:8]
        return f"{stem}-{digest}.{ext}"

    # -- commit --------------------------------------------------------------------------------
    def classes(self) -> list[str]:
        if self.fixed_classes is not None:
            return list(self.fixed_classes)
        return natural_sorted(self._names)

    def finish(self) -> DatasetInfo:
        """Write samples.jsonl and dataset.json, sync, and rename the folder into place."""
        assert self.tmp is not None
        classes = self.classes()
        unknown = self._names - set(classes)
        if unknown:
            raise DataError("input", "labels outside the class list", expected=f"one of {classes}",
                            got=natural_sorted(unknown))
        if self._lines is not None:
            lines = [self._lines[i] for i in sorted(self._lines)]
        else:
            lines = _sorted_lines(self.samples.values())
        if self._unsynced:
            os.sync()
        info = DatasetInfo(task=self.task, classes=classes, lineage=self.lineage,
                           samples_sha256=_write_lines(self.tmp / SAMPLES_JSONL, lines))
        _write_file(self.tmp / DATASET_JSON, _info_bytes(info))
        if self._syncer is not None:
            self._stop_syncer()
            self._syncer.join()
        if self._sync_errors:
            raise self._sync_errors[0]
        fsync_dir(self.tmp)
        replace_dir(self.tmp, self.out)
        self.committed = True
        return info

    def commit(self) -> Dataset:
        """`finish`, then the new dataset (read back from disk when samples were added rendered)."""
        info = self.finish()
        if self._rendered:
            return load_dataset(self.out)
        return Dataset(root=self.out, info=info, samples=sorted(self.samples.values(), key=lambda s: s.id))


def rewrite_samples(
    dataset: Dataset,
    samples: list[Sample],
    *,
    stage: str,
    params: dict | None = None,
    classes: list[str] | None = None,
) -> Dataset:
    """Replace a dataset's samples.jsonl (and lineage) in place, atomically per file.

    For stages that change metadata only (e.g. `split`); images stay where they are.
    """
    root = dataset.root
    lineage = list(dataset.info.lineage) + [lineage_entry(stage, params, {str(root): content_hash(root)})]
    tmp = root / f".{SAMPLES_JSONL}.tmp-{os.getpid()}"
    digest = _write_lines(tmp, _sorted_lines(samples))
    os.replace(tmp, root / SAMPLES_JSONL)
    info = DatasetInfo(task=dataset.info.task, classes=list(classes if classes is not None else dataset.info.classes),
                       lineage=lineage, samples_sha256=digest)
    tmp = root / f".{DATASET_JSON}.tmp-{os.getpid()}"
    _write_file(tmp, _info_bytes(info))
    os.replace(tmp, root / DATASET_JSON)
    fsync_dir(root)
    return Dataset(root=root, info=info, samples=sorted(samples, key=lambda s: s.id))


def derive(
    dataset: Dataset,
    out: str | os.PathLike,
    samples: Iterable[Sample],
    *,
    stage: str,
    params: dict | None = None,
    classes: list[str] | None = None,
    task: str | None = None,
) -> Dataset:
    """Write `samples` (whose images live in `dataset`) as a new dataset at `out`, images hard-linked."""
    with DatasetWriter(
        out,
        task=task or dataset.task,
        stage=stage,
        classes=classes if classes is not None else dataset.classes,
        params=params,
        inputs={str(dataset.root): dataset.content_hash},
        parent_lineage=dataset.info.lineage,
    ) as w:
        for s in samples:
            w.add_from(dataset, s)
        result = w.commit()
    return result

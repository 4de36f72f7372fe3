"""CreateML JSON, as labelImg writes it (and Apple's Create ML object-detection format reads it).

A JSON list, one entry per image, in any number of files::

    [{"image": "a.jpg",
      "annotations": [{"label": "cat", "coordinates": {"x": 120, "y": 80, "width": 60, "height": 40}}]}]

``x``/``y`` are the box centre and ``width``/``height`` its size, in absolute pixels of the image
as the tool showed it. Converted here and nowhere else: ``x1 = x - width/2``, ``x2 = x + width/2``
(same for y). labelImg shows raw pixels (EXIF not applied), so rotated photos are taken to be
labelled in the raw frame and counted as ambiguous (no size is declared). The image is found by
name beside the JSON file or in an ``images`` folder (`pipeline.formats.common.ImageFinder`).
A bad entry is reported with its file and field (``[3].annotations[0].coordinates.x``) and the
other entries still import. Splits come from folder names (``train/``, ``val/``, ``test/``).

Export writes ``annotations.json`` with the images beside it, one folder per split when the
dataset has splits (as Create ML keeps training and testing data apart).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from pipeline.core.dataset import Dataset, Obj, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.limits import MAX_DOCUMENT_BYTES, MAX_OBJECTS, check_count, load_json, read_capped
from pipeline.core.numbers import is_number
from pipeline.formats.base import Detection, ExportReport, ImportContext, relative_files
from pipeline.formats.common import (
    ExportNames,
    ImageFinder,
    Labels,
    add_image_sample,
    count_attributes,
    decide_frame,
    fit_box,
    layout_free_id,
    probe_image,
    walk_files,
)
from pipeline.formats.splits import split_from_path

NAME = "createml"
LOOKS_FOR = "JSON list of {image, annotations} entries (CreateML)"
TASK = "detection"

NOT_CREATEML = "JSON files that are not CreateML annotations"
FIX = "fix the entry in the JSON (labelImg writes a list of {image, annotations}), or delete it"


def to_xyxy(coords: dict, where: str, fld: str) -> list[float]:
    """CreateML ``{"x", "y", "width", "height"}`` (centre and size, pixels) -> ``[x1, y1, x2, y2]``."""
    if not isinstance(coords, dict):
        raise DataError(where, "", field=fld, expected='{"x", "y", "width", "height"}', got=coords, fix=FIX)
    vals = []
    for key in ("x", "y", "width", "height"):
        v = coords.get(key)
        if not is_number(v):
            raise DataError(where, "", field=f"{fld}.{key}", expected="a finite number", got=v, fix=FIX)
        vals.append(float(v))
    x, y, w, h = vals
    if w < 0 or h < 0:
        raise DataError(where, "negative size", field=fld, expected="width >= 0 and height >= 0", got=[w, h],
                        fix=FIX)
    return [x - w / 2, y - h / 2, x + w / 2, y + h / 2]


def from_xyxy(box: list[float]) -> dict:
    """``[x1, y1, x2, y2]`` -> CreateML centre and size."""
    x1, y1, x2, y2 = box
    return {"x": _r((x1 + x2) / 2), "y": _r((y1 + y2) / 2), "width": _r(x2 - x1), "height": _r(y2 - y1)}


def _r(v: float) -> float | int:
    r = round(float(v), 4)
    return int(r) if r == int(r) else r


def parse_entry(entry: object, where: str, i: int) -> tuple[str, list[tuple[str, list[float]]]]:
    """One image entry -> (image name, [(label, box)]). Errors name the file and ``[i]....`` field."""
    fld = f"[{i}]"
    if not isinstance(entry, dict):
        raise DataError(where, "", field=fld, expected="an object with image and annotations", got=entry, fix=FIX)
    image = entry.get("image")
    if not isinstance(image, str) or not image.strip():
        raise DataError(where, "", field=f"{fld}.image", expected="an image file name", got=image, fix=FIX)
    anns = entry.get("annotations")
    anns = [] if anns is None else anns
    if not isinstance(anns, list):
        raise DataError(where, "", field=f"{fld}.annotations", expected="a list", got=type(anns).__name__, fix=FIX)
    check_count(len(anns), MAX_OBJECTS, where, "objects", field=f"{fld}.annotations")
    objs: list[tuple[str, list[float]]] = []
    for j, a in enumerate(anns):
        af = f"{fld}.annotations[{j}]"
        if not isinstance(a, dict):
            raise DataError(where, "", field=af, expected="an object with label and coordinates", got=a, fix=FIX)
        label = a.get("label")
        if not isinstance(label, str) or not label.strip():
            raise DataError(where, "", field=f"{af}.label", expected="a class name", got=label, fix=FIX)
        objs.append((label.strip(), to_xyxy(a.get("coordinates"), where, f"{af}.coordinates")))
    return image.strip(), objs


def _load(path: str, where: str) -> tuple[bytes, object]:
    raw = read_capped(path, where, MAX_DOCUMENT_BYTES, what="CreateML JSON file", fix="split the file")
    return raw, load_json(raw, where, fix="re-save the file from the labelling tool")


def _looks_like(doc: object) -> bool:
    return (isinstance(doc, list) and bool(doc) and isinstance(doc[0], dict)
            and "image" in doc[0] and "annotations" in doc[0])


def _peek(path: str, lists_only: bool = True) -> bool:
    """A cheap look at the head: a JSON list of ``image``/``annotations`` entries (or, with
    `lists_only` False, also a single such entry not wrapped in a list)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip()
    except OSError:
        return False
    start = (b"[",) if lists_only else (b"[", b"{")
    return head.startswith(start) and b'"image"' in head and b'"annotations"' in head


def detect(root: Path) -> Detection | None:
    root = Path(root)
    if not root.is_dir():
        return None
    files = [f for f in walk_files(root, (".json",))[:200] if _peek(f)]
    if not files:
        return None
    return Detection(score=60, description=f"CreateML JSON ({len(files)} file(s) of image entries)",
                     files=relative_files(root, files))


def count(root: Path, paths: list[Path]) -> dict[str, int]:
    """A cheap count for `pipeline detect`: images, objects and classes in `paths` (the files `detect` recognised)."""
    images = objects = 0
    classes: set[str] = set()
    for path in paths:
        entries = [e for e in json.loads(path.read_bytes()) if isinstance(e, dict)]
        images += len(entries)
        anns = [a for e in entries for a in e.get("annotations") or [] if isinstance(a, dict)]
        objects += len(anns)
        classes |= {str(a.get("label")) for a in anns}
    return {"images": images, "objects": objects, "classes": len(classes)}


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder", fix="point at the folder holding the CreateML .json files")
    root_s = os.path.abspath(root)
    files = walk_files(root, (".json",), ctx.files)
    finder = ImageFinder(root, ctx.files, images=ctx.options.images)
    labels = Labels(ctx)
    on_invalid = ctx.options.on_invalid
    seen: dict[str, str] = {}
    ctx.default_fix = FIX
    for path in ctx.progress(files, total=len(files), desc="import createml", unit="file"):
        where = os.path.relpath(path, root_s).replace(os.sep, "/")
        try:
            if not _peek(path, lists_only=False):
                ctx.skip(NOT_CREATEML)
                continue
            raw, doc = _load(path, where)
            if isinstance(doc, dict) and "image" in doc and "annotations" in doc:
                raise DataError(where, "not a CreateML file", field="(top level)", expected="a JSON list of image "
                                "entries", got="one entry (an object)", fix="wrap the entry in [ ] to make a list")
            if not _looks_like(doc):
                ctx.skip(NOT_CREATEML)
                continue
            ctx.input_file(path, raw)
        except DataError as err:
            ctx.bad(err)
            continue
        assert isinstance(doc, list)
        for i, entry in enumerate(doc):
            try:
                name, objs = parse_entry(entry, where, i)
                image = finder.find(path, [name])
                if image is None:
                    raise DataError(where, "image not found", field=f"[{i}].image",
                                    expected="an image beside the JSON or in an images folder", got=name,
                                    fix="put the image there")
                if image in seen:
                    raise DataError(where, "image listed twice", field=f"[{i}].image",
                                    expected="one entry per image", got=f"{name} (also in {seen[image]})", fix=FIX)
                seen[image] = where
                rel_image = finder.rel(image)
                probe = probe_image(image, rel_image)
                frame = decide_frame((probe.width, probe.height), probe.orientation, None, "raw")
                sw, sh = frame.source_size
                objects: list[Obj] = []
                for j, (label, box) in enumerate(objs):
                    fld = f"[{i}].annotations[{j}]"
                    fitted = fit_box(box, sw, sh, on_invalid, ctx, where, f"{fld}.coordinates")
                    if fitted is not None:
                        objects.append(Obj(label=labels(label, where, f"{fld}.label"), bbox=fitted))
                split = split_from_path(os.path.relpath(os.path.dirname(image), root_s))
                sample = Sample(id=layout_free_id(rel_image, split, ctx.writer.has_sample), split=split, objects=objects,
                                source={"file": where, "image": rel_image})
                add_image_sample(ctx, image, sample, probe=probe, frame=frame, where=where)
                ctx.report.counts["objects"] += len(objects)
            except DataError as err:
                ctx.bad(err)


def sample_entry(sample: Sample, image_name: str, report: ExportReport | None = None) -> dict:
    """The CreateML entry of one sample (boxes; polygons and masks as their boxes)."""
    from pipeline.core.geometry import object_box_source

    anns = []
    for o in sample.objects or []:
        box, source = object_box_source(o, points=False)
        if report is not None:
            if source == "polygon":
                report.converted["polygon -> its bounding box"] += 1
            elif source == "mask":
                report.converted["mask -> its bounding box"] += 1
            elif source == "bbox" and (o.polygon or o.mask is not None):
                report.dropped["polygons/masks (CreateML boxes only; the box is written)"] += 1
        if report is not None and (o.keypoints or o.polyline):
            report.dropped["keypoints/polylines (CreateML has none)"] += 1
        count_attributes(report, o, "CreateML")
        if box is None:
            continue
        anns.append({"label": o.label, "coordinates": from_xyxy(box)})
    return {"image": image_name, "annotations": anns}


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """``annotations.json`` beside the images; one folder per split when the dataset has splits."""
    out = Path(out)
    use_splits = any(s.split for s in dataset.samples)
    names = ExportNames(dataset.samples, report, "CreateML")
    entries: dict[str, list[dict]] = defaultdict(list)
    for s in dataset.samples:
        folder = (s.split or "train") if use_splits else ""
        if use_splits and not s.split:
            report.converted["samples without a split -> train"] += 1
        stem = names.stem(s)
        name = f"{stem}{Path(s.image).suffix.lower() or '.png'}"
        dataset.copy_image(s, out / folder / name)
        if s.label is not None or s.soft_label:
            report.dropped["image-level labels (CreateML holds objects)"] += 1
        entries[folder].append(sample_entry(s, name, report))
        report.written += 1
        report.files += 1
    for folder, items in sorted(entries.items()):
        (out / folder).mkdir(parents=True, exist_ok=True)
        text = json.dumps(items, ensure_ascii=False, indent=1, allow_nan=False)
        (out / folder / "annotations.json").write_text(text + "\n", encoding="utf-8")
        report.files += 1

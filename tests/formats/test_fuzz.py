"""Property-based fuzzing of every parser: VOC XML, YOLO (label lines, data.yaml, obj.data, list
files), labelme JSON, COCO JSON, CreateML JSON, CVAT for images XML, Label Studio JSON and our own
samples.jsonl.

Whatever the input -- valid documents with fields mutated, valid bytes with bytes mutated, or raw
bytes -- a parser ends in a clean result or in one of our own errors (`PipelineError`), within the
hypothesis deadline and a bounded amount of memory (`_bounded`). The default profile keeps the
module to a few seconds of `make test`; ``HYPOTHESIS_PROFILE=long`` (``make fuzz``) runs thousands
of examples per parser.
"""

from __future__ import annotations

import json
import os
import tempfile
import tracemalloc
from datetime import timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.core.dataset.validation import parse_sample_line
from pipeline.core.errors import PipelineError
from pipeline.core.limits import load_json, load_yaml
from pipeline.formats import coco, createml, cvat, labelme, labelstudio, voc, yolo
from pipeline.formats.ingest import import_dataset
from tests.helpers import png

settings.register_profile(
    "fuzz", max_examples=25, deadline=timedelta(seconds=10), derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz-long", max_examples=2000, deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("fuzz-long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "fuzz")
# Imports write a dataset per example: a fifth of the parser examples.
IMPORTS = settings(FUZZ, max_examples=max(8, FUZZ.max_examples // 5))

MEMORY_CAP = 256 * 2**20  # bytes a parser may allocate on any generated input (inputs are at most a few KB)


def _bounded(fn, *args, **kwargs):
    """Run `fn`; our own errors are a clean end, anything else fails the test; memory is capped."""
    tracemalloc.start()
    try:
        return fn(*args, **kwargs)
    except PipelineError as err:
        text = str(err)
        assert "\n" not in text and "Traceback" not in text, text
        return err
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MEMORY_CAP, f"{fn.__name__} allocated {peak / 2**20:.0f} MiB"


def _import(fmt: str, files: dict[str, bytes], image: str | None = "a.png"):
    """Import a folder of `files` (plus a small image) as `fmt`; returns the report or our error."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "src"
        src.mkdir()
        if image:
            (src / image).parent.mkdir(parents=True, exist_ok=True)
            (src / image).write_bytes(png(16, 12))
        for rel, data in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        try:
            _ds, report = import_dataset(fmt, src, Path(d) / "out")
        except PipelineError as err:
            assert "\n" not in str(err), str(err)
            return err
        for problem in report.problems:
            assert problem.fix, f"no fix: {problem}"
        return report


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

HOSTILE_NUMBERS = st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e309", "9" * 5000, "-0", "0x1F", "", " ",
                                   "1_000", "١٢", "1e-400"])
NUMBER_TEXT = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        HOSTILE_NUMBERS)
NAMES = st.one_of(st.text(max_size=40), st.sampled_from(["cat", "", " ", "x" * 300, "a\nb", "\x00", "__ignore__"]))
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), NAMES,
                         st.just(float("nan")), st.just(float("inf")))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)), max_leaves=20)


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` with a few bytes replaced, inserted or deleted, or cut short."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "repeat"]))
        pos = draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "replace" and buf:
            buf[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and buf:
            del buf[pos:pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del buf[pos:]
        elif op == "repeat" and buf:
            end = min(len(buf), pos + draw(st.integers(1, 16)))
            buf[pos:pos] = buf[pos:end] * draw(st.integers(1, 50))
    return bytes(buf)


def documents(valid: bytes) -> st.SearchStrategy[bytes]:
    """Valid bytes, mutated bytes and raw bytes."""
    return st.one_of(st.just(valid), mutated(valid), st.binary(max_size=300))


# --------------------------------------------------------------------------------------------
# VOC XML
# --------------------------------------------------------------------------------------------

VOC_VALID = (b"<annotation><filename>a.png</filename><size><width>16</width><height>12</height></size>"
             b"<object><name>cat</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax>"
             b"<ymax>10</ymax></bndbox><polygon><x1>1</x1><y1>2</y1><x2>9</x2><y2>2</y2><x3>5</x3><y3>9</y3>"
             b"</polygon></object></annotation>")


XML_ENCODINGS = st.one_of(st.sampled_from(["latin-1", "utf-16", "utf-32", "euc-jp", "shift_jis", "tf-8", "ebcdic",
                                           "cp037", "utf-7", ""]), st.text(max_size=8))


@st.composite
def voc_documents(draw) -> bytes:
    objects = []
    for _ in range(draw(st.integers(0, 3))):
        box = "".join(f"<{t}>{escape(draw(NUMBER_TEXT))}</{t}>" for t in voc.BOX_TAGS)
        extra = draw(st.sampled_from(["", "<difficult>1</difficult>", f"<pose>{escape(draw(NAMES))}</pose>",
                                      "<attributes><attribute><name>k</name><value>v</value></attribute></attributes>",
                                      "<polygon><x1>1</x1><y1>1</y1></polygon>"]))
        objects.append(f"<object><name>{escape(draw(NAMES))}</name>{extra}<bndbox>{box}</bndbox></object>")
    size = f"<size><width>{escape(draw(NUMBER_TEXT))}</width><height>{escape(draw(NUMBER_TEXT))}</height></size>"
    head = draw(st.one_of(st.sampled_from(["", '<?xml version="1.0"?>', '<!DOCTYPE a [<!ENTITY x "y">]>']),
                          XML_ENCODINGS.map(lambda e: f'<?xml version="1.0" encoding="{e}"?>')))
    text = f"{head}<annotation><filename>{escape(draw(NAMES))}</filename>{size}{''.join(objects)}</annotation>"
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(st.one_of(voc_documents(), documents(VOC_VALID)))
def test_voc_parser(data: bytes) -> None:
    _bounded(voc.parse_xml, data, "a.xml")


@IMPORTS
@given(st.one_of(voc_documents(), mutated(VOC_VALID)))
def test_voc_import(data: bytes) -> None:
    _import("voc", {"a.xml": data, "good.xml": VOC_VALID.replace(b"a.png", b"good.png")}, image="a.png")


# --------------------------------------------------------------------------------------------
# YOLO: label lines, data.yaml, obj.data, list files
# --------------------------------------------------------------------------------------------


@st.composite
def yolo_lines(draw) -> str:
    n = draw(st.sampled_from([0, 1, 4, 5, 6, 7, 9, 13]))
    return " ".join(draw(NUMBER_TEXT) or "0" for _ in range(n))


@FUZZ
@given(st.one_of(yolo_lines(), st.text(max_size=200)))
def test_yolo_label_line(text: str) -> None:
    _bounded(yolo._parse_line, text, "a.txt", 1)


@IMPORTS
@given(st.lists(st.one_of(yolo_lines(), st.text(max_size=60)), max_size=6), st.binary(max_size=60))
def test_yolo_label_file_import(lines: list[str], raw: bytes) -> None:
    label = "\n".join(lines).encode("utf-8", "surrogatepass")
    _import("yolo", {"classes.txt": b"cat\ndog\n", "a.txt": label, "b.txt": raw}, image="a.png")


def _yaml_text(value: object) -> str:
    try:
        return yaml.safe_dump(value, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        return "names: [a]\n"


DATA_YAML = st.fixed_dictionaries({}, optional={
    "path": st.one_of(NAMES, st.sampled_from([".", "..", "/abs", "../elsewhere"])),
    "train": st.one_of(NAMES, st.sampled_from(["images", "../train/images", "/etc", "train.txt", "a.png"]),
                       st.lists(NAMES, max_size=3)),
    "val": st.one_of(NAMES, st.none(), st.integers()),
    "nc": st.one_of(st.integers(-5, 10**12), NAMES, st.floats()),
    "names": st.one_of(st.lists(JSON_SCALARS, max_size=5), st.dictionaries(JSON_SCALARS, JSON_SCALARS, max_size=5),
                       JSON_VALUES),
})
YAML_HOSTILE = st.sampled_from([
    "a: &a [x, x]\nb: &b [*a, *a]\nnames: *b\n", "names: [a, b\n", "names: !!python/name:os.system\n",
    "nc: " + "9" * 5000 + "\n", "[" * 3000, "names: {999999999999: x}\n", "--- a\n--- b\n", "\t\x00",
    "names:\n  - " + "x" * 400 + "\n", "train: ../../../etc\nnames: [a]\n",
])


@FUZZ
@given(st.one_of(DATA_YAML.map(_yaml_text), YAML_HOSTILE, st.text(max_size=200),
                 DATA_YAML.map(_yaml_text).flatmap(lambda t: mutated(t.encode()).map(
                     lambda b: b.decode("utf-8", "replace")))))
def test_yaml_loader_and_names(text: str) -> None:
    data = _bounded(load_yaml, text, "data.yaml")
    if not isinstance(data, PipelineError):
        _bounded(yolo._names_from_yaml, data if data is not None else {}, "data.yaml")


@IMPORTS
@given(st.one_of(DATA_YAML.map(_yaml_text), YAML_HOSTILE))
@example("nc: 74041\n")  # tens of thousands of numbered classes: declared in linear time (was 28 s)
def test_yolo_data_yaml_import(text: str) -> None:
    _import("yolo", {"data.yaml": text.encode("utf-8", "surrogatepass"), "images/train/b.png": png(8, 8),
                     "labels/train/b.txt": b"0 0.5 0.5 0.2 0.2\n"}, image="images/train/a.png")


OBJ_DATA_VALUES = st.one_of(NAMES, st.sampled_from(["train.txt", "../train.txt", "/etc/passwd", "data/obj.names",
                                                    "obj.names", "", "=", "a.png"]))


@IMPORTS
@given(st.lists(st.tuples(st.sampled_from(["classes", "train", "valid", "test", "names", "backup", "x"]),
                          OBJ_DATA_VALUES), max_size=6),
       st.lists(st.one_of(NAMES, st.sampled_from(["data/obj/a.png", "../../x.png", "/abs/b.png", "a.png"])),
                max_size=6),
       st.binary(max_size=80))
def test_yolo_obj_data_and_list_files(entries: list[tuple[str, str]], listed: list[str], names: bytes) -> None:
    obj_data = "\n".join(f"{k} = {v}" for k, v in entries).encode("utf-8", "surrogatepass")
    _import("yolo", {"obj.data": obj_data, "train.txt": "\n".join(listed).encode("utf-8", "surrogatepass"),
                     "obj.names": names, "a.txt": b"0 0.5 0.5 0.2 0.2\n"}, image="a.png")


# --------------------------------------------------------------------------------------------
# labelme JSON
# --------------------------------------------------------------------------------------------

LABELME_VALID = {"version": "5.4.1", "flags": {}, "imagePath": "a.png", "imageData": None, "imageHeight": 12,
                 "imageWidth": 16, "shapes": [
                     {"label": "cat", "points": [[1, 1], [9, 9]], "shape_type": "rectangle", "group_id": None},
                     {"label": "dog", "points": [[1, 1], [9, 1], [5, 8]], "shape_type": "polygon"}]}
POINTS = st.one_of(st.lists(st.lists(st.one_of(st.floats(), st.integers(-10**30, 10**30)), max_size=3), max_size=6),
                   JSON_VALUES)
SHAPES = st.fixed_dictionaries(
    {"label": st.one_of(NAMES, JSON_SCALARS), "points": POINTS},
    optional={"shape_type": st.one_of(st.sampled_from(labelme.SHAPE_TYPES), NAMES, JSON_SCALARS),
              "group_id": JSON_SCALARS, "flags": JSON_VALUES, "description": JSON_SCALARS,
              "mask": st.one_of(st.none(), st.text(max_size=20))})


@st.composite
def labelme_documents(draw) -> dict:
    doc = json.loads(json.dumps(LABELME_VALID))
    for key, value in draw(st.dictionaries(st.sampled_from(sorted(doc) + ["extra"]), JSON_VALUES, max_size=3)).items():
        doc[key] = value
    if draw(st.booleans()):
        doc["shapes"] = draw(st.lists(SHAPES, max_size=4))
    return doc


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


@FUZZ
@given(st.one_of(labelme_documents().map(_dumps), documents(_dumps(LABELME_VALID))))
def test_labelme_parser(raw: bytes) -> None:
    doc = _bounded(load_json, raw, "a.json")
    if isinstance(doc, PipelineError) or not isinstance(doc, dict):
        return
    parsed = _bounded(labelme.parse_document, doc, "a.json")
    if not isinstance(parsed, PipelineError):
        _bounded(labelme.shapes_to_objects, parsed.shapes, 16, 12, where="a.json", on_invalid="clip")


@IMPORTS
@given(st.one_of(labelme_documents().map(_dumps), mutated(_dumps(LABELME_VALID))))
def test_labelme_import(raw: bytes) -> None:
    _import("labelme", {"a.json": raw, "good.json": _dumps({**LABELME_VALID, "imagePath": "good.png"}),
                        "good.png": png(16, 12)})


# --------------------------------------------------------------------------------------------
# COCO JSON
# --------------------------------------------------------------------------------------------

COCO_VALID = {"images": [{"id": 1, "file_name": "a.png", "width": 16, "height": 12}],
              "categories": [{"id": 1, "name": "cat"}],
              "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0,
                               "segmentation": [[1, 1, 6, 1, 6, 6]]}]}
ANNOTATIONS = st.fixed_dictionaries({}, optional={
    "id": JSON_SCALARS, "image_id": st.one_of(st.just(1), JSON_VALUES), "category_id": st.one_of(st.just(1), JSON_VALUES),
    "bbox": st.one_of(st.lists(st.one_of(st.floats(), st.integers(-10**30, 10**30)), max_size=5), JSON_VALUES),
    "segmentation": st.one_of(JSON_VALUES, st.fixed_dictionaries(
        {"size": st.lists(st.integers(-2, 10**6), max_size=3),
         "counts": st.one_of(st.text(max_size=20), st.lists(st.integers(-2, 400), max_size=6))})),
    "keypoints": st.lists(st.one_of(st.floats(), st.integers()), max_size=9), "iscrowd": JSON_SCALARS,
    "attributes": JSON_VALUES})


@st.composite
def coco_documents(draw) -> dict:
    doc = json.loads(json.dumps(COCO_VALID))
    choice = draw(st.sampled_from(["annotations", "images", "categories", "top"]))
    if choice == "annotations":
        doc["annotations"] = draw(st.lists(ANNOTATIONS, max_size=4))
    elif choice == "images":
        doc["images"] = draw(st.lists(st.fixed_dictionaries({}, optional={
            "id": JSON_SCALARS, "file_name": st.one_of(st.just("a.png"), NAMES, JSON_SCALARS),
            "width": JSON_SCALARS, "height": JSON_SCALARS}), max_size=3))
    elif choice == "categories":
        doc["categories"] = draw(st.one_of(JSON_VALUES, st.lists(st.fixed_dictionaries(
            {"id": st.one_of(st.just(1), JSON_SCALARS), "name": st.one_of(NAMES, JSON_SCALARS)}), max_size=3)))
    else:
        doc[draw(st.sampled_from(["images", "annotations", "categories"]))] = draw(JSON_VALUES)
    return doc


@IMPORTS
@given(st.one_of(coco_documents().map(_dumps), mutated(_dumps(COCO_VALID))))
def test_coco_import(raw: bytes) -> None:
    _import("coco", {"instances.json": raw})


@FUZZ
@given(coco_documents())
def test_coco_parsers(doc: dict) -> None:
    cats = _bounded(coco.categories, doc, "a.json")
    anns = doc.get("annotations")
    for k, a in enumerate(anns if isinstance(anns, list) else []):
        if isinstance(a, dict):
            _bounded(coco.parse_segmentation, a.get("segmentation"), 12, 16, "a.json", f"annotations[{k}]")
            _bounded(coco.parse_keypoints, a.get("keypoints"), "a.json", f"annotations[{k}]")
            if a.get("bbox") is not None:
                _bounded(coco.bbox_to_xyxy, a["bbox"], "a.json", f"annotations[{k}].bbox")
    assert cats is not None


# --------------------------------------------------------------------------------------------
# CreateML JSON
# --------------------------------------------------------------------------------------------

CREATEML_VALID = [{"image": "a.png", "annotations": [
    {"label": "cat", "coordinates": {"x": 8, "y": 6, "width": 4, "height": 4}}]}]
CREATEML_ENTRIES = st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={
    "image": st.one_of(st.just("a.png"), NAMES, JSON_SCALARS),
    "annotations": st.one_of(JSON_VALUES, st.lists(st.fixed_dictionaries({}, optional={
        "label": st.one_of(NAMES, JSON_SCALARS),
        "coordinates": st.one_of(JSON_VALUES, st.dictionaries(st.sampled_from(["x", "y", "width", "height"]),
                                                              JSON_SCALARS))}), max_size=3))}))


@FUZZ
@given(CREATEML_ENTRIES)
def test_createml_entry_parser(entry: object) -> None:
    _bounded(createml.parse_entry, entry, "a.json", 0)


@IMPORTS
@given(st.one_of(st.lists(CREATEML_ENTRIES, max_size=3).map(_dumps), mutated(_dumps(CREATEML_VALID)),
                 CREATEML_ENTRIES.map(_dumps)))
def test_createml_import(raw: bytes) -> None:
    _import("createml", {"a.json": raw, "good/b.json": _dumps([{**CREATEML_VALID[0], "image": "b.png"}]),
                         "good/b.png": png(16, 12)})


# --------------------------------------------------------------------------------------------
# CVAT for images XML
# --------------------------------------------------------------------------------------------

CVAT_VALID = (b'<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta><task><labels>'
              b"<label><name>cat</name></label></labels></task></meta>"
              b'<image id="0" name="a.png" width="16" height="12">'
              b'<box label="cat" xtl="1" ytl="2" xbr="10" ybr="9" occluded="0" z_order="0"/>'
              b'<polygon label="cat" points="1,1;9,1;5,8" occluded="0" z_order="0"/></image></annotations>')
CVAT_ATTRS = st.dictionaries(st.sampled_from(["label", "xtl", "ytl", "xbr", "ybr", "points", "rotation", "occluded",
                                              "z_order", "rle", "left", "top", "width", "height", "source"]),
                             st.one_of(NUMBER_TEXT, NAMES, st.sampled_from(["1,1;2,2", "1,1", ";;", "a,b;c,d"])),
                             max_size=8)


@st.composite
def cvat_documents(draw) -> bytes:
    shapes = []
    for _ in range(draw(st.integers(0, 4))):
        tag = draw(st.sampled_from(["box", "polygon", "polyline", "points", "mask", "tag", "cuboid", "track"]))
        attrs = " ".join(f'{k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in draw(CVAT_ATTRS).items())
        shapes.append(f"<{tag} {attrs}/>")
    image = draw(st.fixed_dictionaries({"id": NUMBER_TEXT, "name": st.one_of(st.just("a.png"), NAMES),
                                        "width": NUMBER_TEXT, "height": NUMBER_TEXT}))
    head = " ".join(f'{k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in image.items())
    encoding = escape(draw(st.one_of(st.just("utf-8"), XML_ENCODINGS)), {chr(34): "&quot;"})
    text = (f'<?xml version="1.0" encoding="{encoding}"?><annotations><version>1.1</version><meta><task><labels>'
            f"<label><name>{escape(draw(NAMES))}</name></label></labels></task></meta>"
            f"<image {head}>{''.join(shapes)}</image></annotations>")
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(st.one_of(cvat_documents(), documents(CVAT_VALID)))
def test_cvat_parser(data: bytes) -> None:
    _bounded(cvat.parse_document, data, "annotations.xml")


@IMPORTS
@given(st.one_of(cvat_documents(), mutated(CVAT_VALID)))
def test_cvat_import(data: bytes) -> None:
    _import("cvat", {"bad/annotations.xml": data, "bad/a.png": png(16, 12),
                     "good/annotations.xml": CVAT_VALID.replace(b"a.png", b"good.png"), "good/good.png": png(16, 12)},
            image=None)


# --------------------------------------------------------------------------------------------
# Label Studio JSON
# --------------------------------------------------------------------------------------------

LS_VALID = [{"id": 1, "data": {"image": "/data/upload/1/a.png"}, "annotations": [{"id": 11, "completed_by": 1, "result": [
    {"id": "r1", "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 16,
     "original_height": 12, "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0,
                                      "rectanglelabels": ["cat"]}},
    {"id": "r2", "type": "polygonlabels", "from_name": "polygon", "to_name": "image", "original_width": 16,
     "original_height": 12, "value": {"points": [[0, 0], [50, 0], [50, 50]], "polygonlabels": ["cat"]}}]}]}]
LS_RESULTS = st.fixed_dictionaries({}, optional={
    "id": JSON_SCALARS, "from_name": st.one_of(st.just("label"), NAMES, JSON_SCALARS), "to_name": JSON_SCALARS,
    "type": st.one_of(st.sampled_from(["rectanglelabels", "polygonlabels", "keypointlabels", "choices", "labels",
                                       "rectangle", "brushlabels", "textarea"]), JSON_SCALARS),
    "original_width": JSON_SCALARS, "original_height": JSON_SCALARS, "score": JSON_SCALARS,
    "value": st.one_of(JSON_VALUES, st.fixed_dictionaries({}, optional={
        "x": JSON_SCALARS, "y": JSON_SCALARS, "width": JSON_SCALARS, "height": JSON_SCALARS, "rotation": JSON_SCALARS,
        "points": POINTS, "rectanglelabels": st.lists(NAMES, max_size=2), "choices": JSON_VALUES}))})


@st.composite
def labelstudio_documents(draw) -> list:
    doc = json.loads(json.dumps(LS_VALID))
    task = doc[0]
    where = draw(st.sampled_from(["result", "annotation", "task", "data"]))
    if where == "result":
        task["annotations"][0]["result"] = draw(st.lists(LS_RESULTS, max_size=4))
    elif where == "annotation":
        task["annotations"] = draw(st.lists(st.fixed_dictionaries({}, optional={
            "id": JSON_SCALARS, "completed_by": JSON_VALUES, "was_cancelled": JSON_SCALARS, "updated_at": JSON_SCALARS,
            "result": st.one_of(JSON_VALUES, st.lists(LS_RESULTS, max_size=2))}), max_size=3))
    elif where == "task":
        for key, value in draw(st.dictionaries(st.sampled_from(["id", "data", "annotations", "predictions"]),
                                               JSON_VALUES, max_size=2)).items():
            task[key] = value
    else:
        task["data"] = draw(st.one_of(JSON_VALUES, st.fixed_dictionaries({"image": st.one_of(NAMES, JSON_SCALARS)})))
    return doc


@FUZZ
@given(st.one_of(labelstudio_documents().map(_dumps), documents(_dumps(LS_VALID))))
def test_labelstudio_parser(raw: bytes) -> None:
    doc = _bounded(labelstudio.parse_document, raw, "export.json")
    if isinstance(doc, PipelineError):
        return
    kind = labelstudio.kind_of(doc)
    if kind is not None:
        _bounded(labelstudio.tasks_of, doc, kind, "export.json")


@IMPORTS
@given(st.one_of(labelstudio_documents().map(_dumps), mutated(_dumps(LS_VALID))))
def test_labelstudio_import(raw: bytes) -> None:
    good = json.loads(json.dumps(LS_VALID))
    good[0]["data"]["image"] = "/data/upload/1/good.png"
    _import("labelstudio", {"bad/export.json": raw, "bad/a.png": png(16, 12), "good/export.json": _dumps(good),
                            "good/good.png": png(16, 12)}, image=None)


# --------------------------------------------------------------------------------------------
# samples.jsonl (our own dataset format)
# --------------------------------------------------------------------------------------------

SAMPLE_VALID = {"id": "a", "image": "images/a.png", "width": 16, "height": 12, "split": "train", "label": "cat",
                "sha256": "0" * 64, "objects": [{"label": "cat", "bbox": [1, 1, 5, 5]}]}
SAMPLES = st.fixed_dictionaries({}, optional={k: st.one_of(st.just(v), JSON_VALUES) for k, v in SAMPLE_VALID.items()})


@FUZZ
@given(st.one_of(SAMPLES.map(lambda d: json.dumps(d, ensure_ascii=False)), st.text(max_size=200),
                 mutated(json.dumps(SAMPLE_VALID).encode()).map(lambda b: b.decode("utf-8", "replace")),
                 st.just('{"id": "a", "width": ' + "9" * 5000 + "}"), st.just("[" * 100_000)))
def test_samples_jsonl_line(text: str) -> None:
    _bounded(parse_sample_line, text, {"cat", "dog"}, line=1)


@pytest.mark.parametrize("parser", ["voc", "yolo", "labelme", "coco", "createml", "cvat", "labelstudio"])
def test_every_format_module_is_fuzzed(parser: str) -> None:
    from pipeline import formats

    assert parser in formats.FORMATS
    assert f"test_{parser}_" in Path(__file__).read_text()

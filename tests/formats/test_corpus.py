"""The hostile corpus (`tests/corpus/`) through the real CLI: every case ends with the exit code and
message `tests/corpus/expected.yaml` gives, without a traceback or an "internal error", and the
good files laid out beside the bad one are imported."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.core.dataset import load_dataset
from pipeline.core.limits import MAX_POINTS
from tests.helpers import png, run_cli

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))

VOC_GOOD = ("<annotation><filename>{name}</filename><size><width>16</width><height>12</height><depth>3</depth></size>"
            "<object><name>cat</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>10</xmax><ymax>10</ymax></bndbox>"
            "</object></annotation>")
LABELME_GOOD = {"version": "5.4.1", "flags": {}, "imagePath": "good.png", "imageData": None, "imageHeight": 12,
                "imageWidth": 16, "shapes": [{"label": "cat", "points": [[1, 1], [9, 9]], "shape_type": "rectangle",
                                              "group_id": None, "flags": {}}]}
COCO_GOOD = {"images": [{"id": 1, "file_name": "good.png", "width": 16, "height": 12}],
             "categories": [{"id": 1, "name": "cat"}],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0}]}
CREATEML_GOOD = [{"image": "good.png", "annotations": [
    {"label": "cat", "coordinates": {"x": 8, "y": 6, "width": 4, "height": 4}}]}]


def _put(root: Path, rel: str, data: bytes | str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def _voc(src: Path, bad: bytes) -> str:
    _put(src, "a.xml", bad)
    _put(src, "a.png", png(16, 12))
    _put(src, "good.xml", VOC_GOOD.format(name="good.png"))
    _put(src, "good.png", png(16, 12))
    return "voc"


def _voc_image(src: Path, bad: bytes, ext: str = "jpg") -> str:
    _put(src, f"a.{ext}", bad)
    _put(src, "a.xml", VOC_GOOD.format(name=f"a.{ext}"))
    _put(src, "good.xml", VOC_GOOD.format(name="good.png"))
    _put(src, "good.png", png(16, 12))
    return "voc"


def _yolo_label(src: Path, bad: bytes) -> str:
    _put(src, "classes.txt", "cat\ndog\n")
    _put(src, "a.txt", bad)
    _put(src, "a.png", png(16, 12))
    _put(src, "good.txt", "1 0.5 0.5 0.2 0.2\n")
    _put(src, "good.png", png(16, 12))
    return "yolo"


def _yolo_data_yaml(src: Path, bad: bytes) -> str:
    _put(src, "data.yaml", bad)
    for stem, line in (("a", "0 0.5 0.5 0.2 0.2\n"), ("good", "1 0.5 0.5 0.2 0.2\n")):
        _put(src, f"images/train/{stem}.png", png(16, 12))
        _put(src, f"labels/train/{stem}.txt", line)
    return "yolo"


def _darknet(src: Path, obj_data: bytes, train_txt: bytes) -> str:
    _put(src, "obj.data", obj_data)
    _put(src, "train.txt", train_txt)
    _put(src, "obj.names", "x\ncat\n")
    for stem in ("a", "good"):
        _put(src, f"obj/{stem}.png", png(16, 12))
        _put(src, f"obj/{stem}.txt", "1 0.5 0.5 0.2 0.2\n")
    return "yolo"


def _labelme(src: Path, bad: bytes) -> str:
    _put(src, "a.json", bad)
    _put(src, "a.png", png(16, 12))
    _put(src, "good.json", json.dumps(LABELME_GOOD))
    _put(src, "good.png", png(16, 12))
    return "labelme"


def _coco(src: Path, bad: bytes) -> str:
    _put(src, "bad/instances.json", bad)
    _put(src, "bad/a.png", png(16, 12))
    _put(src, "good/instances.json", json.dumps(COCO_GOOD))
    _put(src, "good/good.png", png(16, 12))
    return "coco"


def _createml(src: Path, bad: bytes) -> str:
    _put(src, "bad/a.json", bad)
    _put(src, "bad/a.png", png(16, 12))
    _put(src, "good/annotations.json", json.dumps(CREATEML_GOOD))
    _put(src, "good/good.png", png(16, 12))
    return "createml"


CVAT_GOOD = ('<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version><meta><task><labels>'
             "<label><name>cat</name></label></labels></task></meta>"
             '<image id="0" name="good.png" width="16" height="12">'
             '<box label="cat" xtl="1" ytl="2" xbr="10" ybr="9" occluded="0" z_order="0"/></image></annotations>')
LABELSTUDIO_GOOD = [{"id": 1, "data": {"image": "/data/upload/1/good.png"}, "annotations": [
    {"id": 11, "completed_by": 1, "result": [
        {"id": "r1", "type": "rectanglelabels", "from_name": "label", "to_name": "image", "original_width": 16,
         "original_height": 12, "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0,
                                          "rectanglelabels": ["cat"]}}]}]}]


def _cvat(src: Path, bad: bytes) -> str:
    _put(src, "bad/annotations.xml", bad)
    _put(src, "bad/a.png", png(16, 12))
    _put(src, "good/annotations.xml", CVAT_GOOD)
    _put(src, "good/good.png", png(16, 12))
    return "cvat"


def _labelstudio(src: Path, bad: bytes) -> str:
    _put(src, "bad/export.json", bad)
    _put(src, "bad/a.png", png(16, 12))
    _put(src, "good/export.json", json.dumps(LABELSTUDIO_GOOD))
    _put(src, "good/good.png", png(16, 12))
    return "labelstudio"


def _imagefolder(src: Path, bad: bytes) -> str:
    _put(src, "cat/good.png", png(16, 12))
    _put(src, "dog/a.png", bad)
    return "imagefolder"


LAYOUTS = {
    "imagefolder": _imagefolder,
    "cvat": _cvat,
    "labelstudio": _labelstudio,
    "voc": _voc,
    "voc-image": _voc_image,
    "voc-image-png": lambda src, bad: _voc_image(src, bad, "png"),
    "yolo-label": _yolo_label,
    "yolo-data-yaml": _yolo_data_yaml,
    "yolo-obj-data": lambda src, bad: _darknet(src, bad, b"data/obj/a.png\ndata/obj/good.png\n"),
    "yolo-list": lambda src, bad: _darknet(src, b"classes = 2\ntrain = train.txt\nnames = obj.names\n", bad),
    "labelme": _labelme,
    "coco": _coco,
    "createml": _createml,
}


# Cases too large to keep in git, made here.
def yolo_long_line(src: Path) -> bytes:
    return ("0 " + "0.5 " * 300_000 + "\n").encode()  # 1.2 MB on one line


def yolo_many_points(src: Path) -> bytes:
    return ("0" + " 0.5 0.5" * (MAX_POINTS + 1) + "\n").encode()


def yolo_many_objects(src: Path) -> bytes:
    return b"0 0.5 0.5 0.1 0.1\n" * 100_001


def voc_megabyte_name(src: Path) -> bytes:
    return VOC_GOOD.format(name="a.png").replace("<name>cat</name>", f"<name>{'c' * 2**20}</name>").encode()


def labelme_many_points(src: Path) -> bytes:
    shape = {"label": "cat", "points": [[1, 1]] * (MAX_POINTS + 1), "shape_type": "polygon"}
    return json.dumps({**LABELME_GOOD, "imagePath": "a.png", "shapes": [shape]}).encode()


def non_utf8_name(src: Path) -> bytes:
    """A good label file, and an image and label whose names are not UTF-8 (`b\\xff`)."""
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(os.fsencode(src), b"b\xff.png"), "wb") as fh:
        fh.write(png(16, 12))
    with open(os.path.join(os.fsencode(src), b"b\xff.txt"), "wb") as fh:
        fh.write(b"0 0.5 0.5 0.2 0.2\n")
    return b"0 0.5 0.5 0.2 0.2\n"


def voc_non_utf8_name(src: Path) -> bytes:
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(os.fsencode(src), b"b\xff.xml"), "wb") as fh:
        fh.write(VOC_GOOD.format(name="b.png").encode())
    with open(os.path.join(os.fsencode(src), b"b.png"), "wb") as fh:
        fh.write(png(16, 12))
    return VOC_GOOD.format(name="a.png").encode()


def imagefolder_non_utf8_names(src: Path) -> bytes:
    """A class folder and an image whose names are not UTF-8, beside good ones."""
    base = os.fsencode(src)
    os.makedirs(os.path.join(base, b"b\xffird"))
    os.makedirs(os.path.join(base, b"cat"), exist_ok=True)
    for rel in (b"b\xffird/x.png", b"cat/b\xff.png"):
        with open(os.path.join(base, rel), "wb") as fh:
            fh.write(png(16, 12))
    return png(16, 12)


GENERATORS = {f.__name__: f for f in (yolo_long_line, yolo_many_points, yolo_many_objects, voc_megabyte_name,
                                      labelme_many_points, non_utf8_name, voc_non_utf8_name,
                                      imagefolder_non_utf8_names)}


def _can_name_non_utf8(tmp: Path) -> bool:
    try:
        p = os.path.join(os.fsencode(tmp), b"\xff")
        open(p, "wb").close()
        os.remove(p)
    except OSError:
        return False
    return True


def test_corpus_is_large_and_every_file_has_an_expected_result() -> None:
    files = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file())
    files.remove("expected.yaml")
    assert len(files) >= 60
    assert sorted(k for k, v in EXPECTED.items() if "generate" not in v) == files
    for case, entry in EXPECTED.items():
        assert entry["layout"] in LAYOUTS, case
        assert ("problem" in entry or "error" in entry or entry["exit"] == 0), case
        assert "generate" not in entry or entry["generate"] in GENERATORS, case


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_corpus_case_through_the_cli(case: str, tmp_path: Path, capsys) -> None:
    entry = EXPECTED[case]
    src = tmp_path / "src"
    if "generate" in entry:
        if "non_utf8" in entry["generate"] and not _can_name_non_utf8(tmp_path):
            pytest.skip("this file system does not take file names that are not UTF-8")
        bad = GENERATORS[entry["generate"]](src)
    else:
        bad = (CORPUS / case).read_bytes()
    fmt = LAYOUTS[entry["layout"]](src, bad)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    code = run_cli(["import", fmt, str(src), "--out", str(out)])
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "internal error" not in err, err
    assert "site-packages" not in err, err  # library warnings are ours, without a library path
    assert code == entry["exit"], err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: ")]
    if code == 0:
        ds = load_dataset(out)
        ids = {s.id.rsplit("/", 1)[-1] for s in ds.samples}
        assert "good" in ids, f"the good file was not imported: {sorted(ids)}"
        assert len(ds.samples) == entry["imported"], err
        if "classes" in entry:
            assert ds.classes == entry["classes"]
        if "objects" in entry:
            assert sum(len(s.objects or []) for s in ds.samples) == entry["objects"]
        left_out = re.search(r"left out \(bad files\)\s+(\d+)", captured.out)
        fixed = [ln for ln in warnings if ". Fix: " in ln or ln.endswith(" Fix:")]
        assert len(fixed) >= (int(left_out.group(1)) if left_out else 0), err  # every bad file's line has a fix
        assert not errors, err
    else:
        assert not out.exists()
        assert len(errors) == 1 and ". Fix: " in errors[0], err
        assert re.search(entry["error"], errors[0]), errors[0]
    if "problem" in entry:
        hits = [ln for ln in warnings if re.search(entry["problem"], ln)]
        assert hits, err
        assert all("Fix: " in ln for ln in hits), hits
        assert "left out (bad files)" in captured.out
    if "warning" in entry:
        assert any(re.search(entry["warning"], ln) for ln in warnings), err
    if "summary" in entry:
        assert re.search(entry["summary"], captured.out), captured.out
    assert all(len(ln) < 2000 for ln in err.splitlines()), "a message printed a huge value"
    after = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert after == before  # the import folder is left as it was
    shutil.rmtree(tmp_path, ignore_errors=True)


READERS = ["pipeline/formats/voc.py", "pipeline/formats/yolo.py", "pipeline/formats/labelme.py",
           "pipeline/formats/coco.py", "pipeline/formats/createml.py", "pipeline/formats/cvat.py",
           "pipeline/formats/labelstudio.py", "pipeline/formats/common.py",
           "pipeline/formats/base.py", "pipeline/formats/unsupported.py", "pipeline/core/limits.py"]


@pytest.mark.parametrize("module", READERS)
def test_every_error_a_reader_raises_carries_a_fix(module: str) -> None:
    """Each `DataError(...)`/`UsageError(...)` written in a reader names its fix (the corpus checks the
    rendered lines; this catches the messages no corpus file reaches)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    tree = ast.parse((root / module).read_text(encoding="utf-8"))
    missing = [n.lineno for n in ast.walk(tree)
               if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("DataError", "UsageError")
               and not any(k.arg == "fix" for k in n.keywords)]
    assert not missing, f"{module}: errors without fix= at lines {missing}"

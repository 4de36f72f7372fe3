"""CVAT for images 1.1 XML: the shared contract, the real job export and its COCO twin, golden task
and project exports with every shape kind, round trips read back as CVAT parses them, detection
against VOC and MIT LabelMe XML, hostile input and a bounded fuzz of the parser."""

from __future__ import annotations

import math
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.core.geometry import rle_decode, rle_encode
from pipeline.formats import cvat, voc
from pipeline.formats.ingest import detect_format, export_dataset, import_dataset
from tests import helpers
from tests.formats.contract import BOXES, EMPTY, MASKS, POLYGONS, SPLITS, FormatContract, box_close
from tests.helpers import shared_data

GOLDEN = Path(__file__).parent / "golden" / "cvat"
TASK_IMAGES = {"street (1).png": (64, 48), "sub dir/ünï (2).png": (40, 30), "empty.png": (32, 32)}
PROJECT_IMAGES = {"Train/a.png": (40, 30), "b.png": (40, 30), "c.png": (40, 30)}

# The golden task's mask: a 4 x 3 box at (40, 30), rows 0110 / 1111 / 0000 (rle "1, 2, 1, 4, 4").
GOLDEN_MASK = np.zeros((48, 64), bool)
GOLDEN_MASK[30, 41:43] = True
GOLDEN_MASK[31, 40:44] = True


def golden_export(folder: Path, kind: str = "task") -> Path:
    """A golden CVAT export: the stored XML with generated images of the declared sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(GOLDEN / kind / "annotations.xml", folder / "annotations.xml")
    sizes = TASK_IMAGES if kind == "task" else PROJECT_IMAGES
    for i, (name, (w, h)) in enumerate(sizes.items()):
        path = folder / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(helpers.png(w, h, (i * 40, 90, 200)))
    return folder


class TestCvatContract(FormatContract):
    FORMAT = "cvat"
    CAN = {BOXES, POLYGONS, MASKS, SPLITS, EMPTY}
    OTHERS = ("coco",)  # every pair runs in test_round_trips.py

    def golden(self, folder: Path) -> dict:
        golden_export(folder)
        return {
            "street (1)": [("car", [1.5, 2.0, 20.0, 30.0]),
                           ("car", [15.0, 5.0, 25.0, 25.0]),  # 20 x 10 box about (20, 15) turned 90 degrees
                           ("person", [30.0, 5.0, 40.0, 15.0]),
                           ("lane", None), ("nose", None),  # lines and point sets have no box of their own
                           ("car", [40.0, 30.0, 44.0, 32.0])],
            "ünï (2)": [("person", [0.0, 0.0, 40.0, 30.0])],
            "empty": [],
        }


# ----------------------------------------------------------------------------------------------
# Golden task and project exports
# ----------------------------------------------------------------------------------------------


def test_golden_task_every_shape_kind(tmp_path: Path) -> None:
    ds, report = import_dataset("auto", golden_export(tmp_path / "src"), tmp_path / "ds")
    assert report.detected.startswith("cvat") and not report.problems
    assert ds.classes == ["car", "person", "lane", "nose", "daytime"]  # CVAT's label order, not sorted
    assert ds.task == "detection"
    by_id = {s.id: s for s in ds.samples}
    assert sorted(by_id) == ["empty", "street (1)", "sub dir/ünï (2)"]
    assert {s.split for s in ds.samples} == {"train"}  # the task's <subset>Train</subset>
    s = by_id["street (1)"]
    assert s.label == "daytime" and s.meta["tags"] == [{"label": "daytime", "attributes": {"source": "manual"}}]
    plain, rotated, person, lane, nose, mask = s.objects
    assert plain.bbox == [1.5, 2.0, 20.0, 30.0] and plain.polygon is None
    assert plain.attributes == {"occluded": 1, "z_order": 2, "group_id": 3, "source": "manual", "color": "red"}
    assert rotated.attributes["rotation"] == 90.0 and rotated.attributes["color"] == "blue"
    want = [[25.0, 5.0], [25.0, 25.0], [15.0, 25.0], [15.0, 5.0]]  # tl, tr, br, bl turned clockwise
    assert all(math.dist(p, q) < 1e-9 for p, q in zip(rotated.polygon[0], want, strict=True))
    assert person.polygon == [[[30.0, 5.0], [40.0, 5.0], [35.0, 15.0]]] and person.attributes["z_order"] == 1
    assert lane.polyline == [[0.0, 47.0], [63.0, 40.5]] and lane.bbox is None
    assert nose.keypoints == [[12.25, 8.5, 2], [14.0, 9.0, 2]] and nose.attributes["source"] == "auto"
    assert np.array_equal(rle_decode(mask.mask), GOLDEN_MASK) and mask.bbox == [40.0, 30.0, 44.0, 32.0]
    assert report.counts["rotated boxes (4-point polygons, attribute rotation)"] == 1
    assert report.counts["objects"] == 7 and report.counts["CVAT task exports"] == 1


def test_golden_project_labels_of_tasks_and_subsets(tmp_path: Path) -> None:
    ds, report = import_dataset("cvat", golden_export(tmp_path / "src", "project"), tmp_path / "ds")
    assert not report.problems, [str(p) for p in report.problems]
    assert ds.classes == ["dog", "cat", "bird"]  # project labels, then the task's own
    by_id = {s.id: s for s in ds.samples}
    assert by_id["a"].split == "train" and by_id["a"].image.endswith(".png")
    assert by_id["a"].source["image"] == "images/Train/a.png"  # images/<subset>/<name>
    assert by_id["b"].split == "val"  # subset="Validation"
    assert by_id["c"].split == "test" and by_id["c"].source["task_id"] == "12"  # from task 12's <subset>
    bird, line, paw, dog_mask = by_id["c"].objects
    assert bird.attributes["species"] == "robin" and line.polyline[-1] == [9.0, 2.0]
    assert paw.keypoints == [[3.0, 3.0, 2]] and paw.attributes["occluded"] == 1
    assert rle_decode(dog_mask.mask)[20:22, 30:32].all() and dog_mask.bbox == [30.0, 20.0, 32.0, 22.0]
    assert by_id["c"].label == "cat" and by_id["c"].meta["tags"][0]["attributes"]["mood"] == "calm"
    dog = by_id["b"].objects[0]
    assert dog.attributes["rotation"] == 45.0
    r = 5 * math.sqrt(2)
    assert box_close(dog.bbox, [15 - r, 10 - r, 15 + r, 10 + r], 1e-9)


def test_the_xml_file_itself_can_be_named(tmp_path: Path) -> None:
    src = golden_export(tmp_path / "src")
    ds, report = import_dataset("cvat", src / "annotations.xml", tmp_path / "ds")
    assert len(ds.samples) == 3 and not report.problems
    assert {s.source["file"] for s in ds.samples} == {"annotations.xml"}


def test_tags_only_is_a_classification_dataset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    images = ""
    for i, tags in enumerate((["cat"], ["dog"], ["cat", "dog"])):
        (src / "images" / f"{i}.png").write_bytes(helpers.png(20, 10))
        images += (f'<image id="{i}" name="{i}.png" width="20" height="10">'
                   + "".join(f'<tag label="{t}" source="manual"/>' for t in tags) + "</image>")
    (src / "annotations.xml").write_text(_doc(images, labels=("dog", "cat")))
    ds, _ = import_dataset("cvat", src, tmp_path / "ds")
    assert ds.task == "classification" and ds.classes == ["dog", "cat"]
    by_id = {s.id: s for s in ds.samples}
    assert by_id["0"].label == "cat" and by_id["0"].objects is None
    assert by_id["2"].label is None and by_id["2"].soft_label == {"cat": 0.5, "dog": 0.5}


def test_classes_file_and_map_override_the_label_order(tmp_path: Path) -> None:
    src = golden_export(tmp_path / "src", "project")
    classes = tmp_path / "classes.txt"
    classes.write_text("bird\ncat\ndog\n")
    ds, _ = import_dataset("cvat", src, tmp_path / "ds", classes_file=classes)
    assert ds.classes == ["bird", "cat", "dog"]
    ds, _ = import_dataset("cvat", src, tmp_path / "ds2", class_map={"dog": "pet", "cat": "pet"})
    assert ds.classes == ["pet", "bird"]


# ----------------------------------------------------------------------------------------------
# Real data: a CVAT job export and the COCO export of the same images
# ----------------------------------------------------------------------------------------------


def test_real_cvat_job_export(tmp_path: Path) -> None:
    src = shared_data("cvat-street")
    # the folder holds the job's CVAT XML and its COCO export: `auto` names both and imports neither
    with pytest.raises(UsageError, match=r"2 formats each cover a part of this folder \(cvat: .*\[annotations.xml\]; "
                                         r"coco: .*\[instances.json\]\)"):
        import_dataset("auto", src, tmp_path / "ds")
    ds, report = import_dataset("cvat", src, tmp_path / "ds")
    assert not report.problems
    assert report.counts["CVAT job exports"] == 1
    assert len(ds.samples) == 12
    assert ds.classes == ["Car", "Person", "Road", "Roof", "Building"]
    counts = Counter(o.label for s in ds.samples for o in s.objects)
    assert counts == {"Car": 71, "Person": 29, "Road": 14, "Roof": 7, "Building": 4}
    assert all(o.attributes["source"] == "manual" for s in ds.samples for o in s.objects)
    assert any(s.id == "OIG (1)" for s in ds.samples)  # spaces and parentheses in names

    twin, twin_report = import_dataset("coco", src / "instances.json", tmp_path / "coco")
    assert not twin_report.problems
    theirs = {s.sha256: sorted((o.label, o.bbox) for o in s.objects) for s in twin.samples}
    assert sum(len(v) for v in theirs.values()) == 100
    for s in ds.samples:
        ours = sorted((o.label, o.bbox) for o in s.objects if o.label in ("Car", "Person"))
        assert [lab for lab, _ in ours] == [lab for lab, _ in theirs[s.sha256]], s.id
        for (_, a), (_, b) in zip(ours, theirs[s.sha256], strict=True):
            assert box_close(a, b, 0.01), (s.id, a, b)  # CVAT writes two decimals


# ----------------------------------------------------------------------------------------------
# Round trips and the written XML
# ----------------------------------------------------------------------------------------------


def _walk(xml_path: Path) -> tuple[list[str], list[dict]]:
    """The written file as CVAT's loader walks it: label names from <meta>, then each image."""
    root = ET.parse(xml_path).getroot()
    assert root.tag == "annotations" and root.findtext("version") == "1.1"
    labels = [lab.findtext("name") for lab in root.iterfind("meta/task/labels/label")]
    images = []
    for im in root.iter("image"):
        shapes = [(el.tag, dict(el.attrib), {a.get("name"): a.text for a in el.iter("attribute")}) for el in im]
        images.append({**im.attrib, "shapes": shapes})
    return labels, images


def test_round_trip_keeps_labels_shapes_attributes_and_subsets(tmp_path: Path) -> None:
    first, _ = import_dataset("cvat", golden_export(tmp_path / "src"), tmp_path / "ds")
    _, report = export_dataset(first.root, "cvat", tmp_path / "out")
    assert not report.dropped, report.dropped
    labels, images = _walk(tmp_path / "out" / "annotations.xml")
    assert labels == first.classes
    street = next(im for im in images if im["name"].startswith("street"))
    assert (street["subset"], street["width"], street["height"]) == ("Train", "64", "48")
    assert (tmp_path / "out" / "images" / street["name"]).is_file()
    kinds = [tag for tag, _, _ in street["shapes"]]
    assert kinds == ["box", "box", "polygon", "polyline", "points", "mask", "tag"]
    _, box, attrs = street["shapes"][0]
    assert (box["xtl"], box["ytl"], box["xbr"], box["ybr"]) == ("1.50", "2.00", "20.00", "30.00")
    assert (box["occluded"], box["z_order"], box["group_id"], attrs) == ("1", "2", "3", {"color": "red"})
    _, rotated, _ = street["shapes"][1]
    assert float(rotated["rotation"]) == 90.0 and rotated["xtl"] == "10.00" and rotated["ybr"] == "20.00"
    _, mask, _ = street["shapes"][5]
    # Written over the mask's tight box: the golden file's empty last row is not repeated.
    assert (mask["rle"], mask["left"], mask["top"], mask["width"], mask["height"]) == ("1, 2, 1, 4", "40", "30",
                                                                                      "4", "2")

    back, report = import_dataset("cvat", tmp_path / "out", tmp_path / "back")
    assert not report.problems and back.classes == first.classes
    a, b = {s.sha256: s for s in first.samples}, {s.sha256: s for s in back.samples}
    assert sorted(a) == sorted(b)
    for digest, s in a.items():
        t = b[digest]
        assert (s.split, s.label, s.meta.get("tags")) == (t.split, t.label, t.meta.get("tags"))
        for x, y in zip(s.objects, t.objects, strict=True):
            assert (x.label, x.attributes) == (y.label, y.attributes)
            assert box_close(x.bbox, y.bbox, 0.01)
            for f in ("polygon", "polyline", "keypoints"):
                xs, ys = getattr(x, f), getattr(y, f)
                assert (xs is None) == (ys is None), f
                if xs is not None:
                    assert np.allclose(np.array(xs, dtype=float), np.array(ys, dtype=float), atol=0.01), f
            assert (x.mask is None) == (y.mask is None)
            if x.mask is not None:
                assert np.array_equal(rle_decode(x.mask), rle_decode(y.mask))


def test_project_round_trip(tmp_path: Path) -> None:
    first, _ = import_dataset("cvat", golden_export(tmp_path / "src", "project"), tmp_path / "ds")
    export_dataset(first.root, "cvat", tmp_path / "out")
    labels, images = _walk(tmp_path / "out" / "annotations.xml")
    assert labels == ["dog", "cat", "bird"]
    assert sorted(im["subset"] for im in images) == ["Test", "Train", "Validation"]
    back, _ = import_dataset("cvat", tmp_path / "out", tmp_path / "back")
    assert back.classes == first.classes
    assert sorted((s.split, len(s.objects)) for s in back.samples) == [("test", 4), ("train", 2), ("val", 1)]
    for s, t in zip(first.samples, back.samples, strict=True):
        assert [(o.label, o.attributes) for o in s.objects] == [(o.label, o.attributes) for o in t.objects]
        assert (s.label, s.meta.get("tags")) == (t.label, t.meta.get("tags"))


def _dataset(root: Path, objects: list[Obj], *, label: str | None = None, classes: list[str] | None = None):
    with DatasetWriter(root, task="detection", stage="test-fixture", classes=classes or ["a", "b"]) as w:
        w.add(Sample(id="x", width=40, height=30, objects=objects, label=label), data=helpers.png(40, 30), ext="png")
    return load_dataset(root)


def test_export_counts_what_cvat_cannot_hold(tmp_path: Path) -> None:
    m = np.zeros((30, 40), bool)
    m[2:5, 3:9] = True
    ring = [[1.0, 1.0], [9.0, 1.0], [9.0, 9.0]]
    src = _dataset(tmp_path / "ds", [
        Obj("a", bbox=[1, 1, 9, 9], polygon=[ring], mask=rle_encode(m)),  # polygon written, mask not
        Obj("a", keypoints=[[3, 3, 2], [5, 5, 0]]),  # the absent point has no place
        Obj("b", bbox=[0, 0, 5, 5], attributes={"flags": {"x": True}}),  # not text
        Obj("b", bbox=[2, 2, 8, 8], keypoints=[[3, 3, 2]]),  # two shapes, one group
        Obj("a", polygon=[ring, [[20, 20], [30, 20], [25, 28]]]),  # two rings
        Obj("a", polygon=[[[1, 1], [9, 1], [9, 9], [1, 8]]], attributes={"rotation": 10.0}),  # not a rectangle
    ], label="b")
    _, report = export_dataset(src.root, "cvat", tmp_path / "out")
    assert report.dropped == {"masks of objects with a polygon (polygon written)": 1,
                              "keypoints marked absent (v=0; CVAT points have no visibility)": 1,
                              "attributes that are not text or numbers (flags)": 1}
    assert report.converted["objects with several geometries -> shapes sharing a group_id"] == 2
    assert report.converted["polygons of several rings -> one <polygon> per ring (same group_id)"] == 1
    assert report.converted["rotated boxes that are no longer rectangles -> polygons (rotation not written)"] == 1
    _, images = _walk(tmp_path / "out" / "annotations.xml")
    kinds = [(tag, a.get("group_id")) for tag, a, _ in images[0]["shapes"]]
    assert kinds == [("polygon", None), ("points", None), ("box", None), ("box", "1"), ("points", "1"),
                     ("polygon", "2"), ("polygon", "2"), ("polygon", None), ("tag", None)]


# ----------------------------------------------------------------------------------------------
# Conversions
# ----------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(x=st.floats(0, 500), y=st.floats(0, 500), w=st.floats(0.5, 300), h=st.floats(0.5, 300),
       angle=st.floats(0, 359.99))
def test_rotated_box_inverts_box_corners(x: float, y: float, w: float, h: float, angle: float) -> None:
    ring = cvat.box_corners(x, y, x + w, y + h, angle)
    found = cvat.rotated_box(ring)
    assert found is not None
    box, got = found
    assert box_close(box, [x, y, x + w, y + h], 1e-6)
    assert abs((got - angle + 180) % 360 - 180) < 1e-6


def test_rotated_box_refuses_what_is_not_a_rectangle() -> None:
    assert cvat.rotated_box([[0, 0], [10, 0], [10, 10], [0, 9]]) is None
    assert cvat.rotated_box([[0, 0], [10, 0], [10, 10]]) is None
    assert cvat.rotated_box([[0, 0], [0, 0], [0, 0], [0, 0]]) is None
    mirrored = cvat.box_corners(0, 0, 10, 4, 30)[::-1]  # corners the other way round: the same rectangle
    box, angle = cvat.rotated_box(mirrored)
    assert np.allclose(sorted(map(tuple, cvat.box_corners(*box, angle))), sorted(map(tuple, mirrored)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_mask_conversion_round_trips(h: int, w: int, data) -> None:
    bits = data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    m = np.array(bits, bool).reshape(h, w)
    got = cvat.mask_to_cvat(rle_encode(m))
    if not m.any():
        assert got is None
        return
    counts, left, top, mw, mh = got
    assert sum(counts) == mw * mh and m[top, :].any() and m[:, left].any()
    assert np.array_equal(rle_decode(cvat.mask_from_cvat(counts, left, top, mw, mh, w, h)), m)


# ----------------------------------------------------------------------------------------------
# Detection: CVAT over VOC, and MIT LabelMe XML refused by name
# ----------------------------------------------------------------------------------------------


def test_cvat_is_not_taken_for_voc(tmp_path: Path) -> None:
    src = golden_export(tmp_path / "src")
    assert voc.detect(src) is None
    found = cvat.detect(src)
    assert found is not None and found.score > 60
    assert detect_format(src)[0] == "cvat"


LABELME_XML = ("<annotation><filename>a.jpg</filename><folder>f</folder><object><name>car</name><deleted>0"
               "</deleted><polygon><username>x</username><pt><x>1</x><y>2</y></pt><pt><x>5</x><y>2</y></pt>"
               "<pt><x>5</x><y>9</y></pt></polygon></object></annotation>")


def test_mit_labelme_xml_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(LABELME_XML)
    (tmp_path / "a.jpg").write_bytes(helpers.jpeg(10, 10))
    with pytest.raises(UsageError, match="MIT LabelMe XML .*not Pascal VOC"):
        voc.detect(tmp_path)
    with pytest.raises(UsageError, match="MIT LabelMe XML"):
        detect_format(tmp_path)
    assert cvat.detect(tmp_path) is None


@pytest.mark.parametrize(
    ("head", "is_cvat"),
    [
        (b'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>', True),
        (b"\xef\xbb\xbf<!-- exported --><annotations><meta>", True),  # a BOM and a comment first
        (b"<annotation><folder>x</folder>", False),  # VOC
        (b"<annotations><image>", False),  # no <version> or <meta>: not CVAT's
        (b"<root><annotations><version>1.1</version>", False),  # not the root
        (b"\x00\x01 junk", False),
    ],
)
def test_is_cvat(head: bytes, is_cvat: bool) -> None:
    assert cvat.is_cvat(head) is is_cvat


# ----------------------------------------------------------------------------------------------
# Bad and hostile input
# ----------------------------------------------------------------------------------------------


def _doc(images: str, labels: tuple[str, ...] = ("a", "b"), meta: str | None = None) -> str:
    names = "".join(f"<label><name>{n}</name></label>" for n in labels)
    meta = meta if meta is not None else f"<meta><task><labels>{names}</labels></task></meta>"
    return f'<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>{meta}{images}</annotations>'


def _image(shapes: str, name: str = "0.png", index: int = 0) -> str:
    return f'<image id="{index}" name="{name}" width="40" height="30">{shapes}</image>'


BOX = '<box label="a" xtl="1" ytl="2" xbr="10" ybr="20" occluded="0" z_order="0"/>'


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ('<box label="a" xtl="nan" ytl="2" xbr="10" ybr="20"/>', r"image\[0\]\.box\[0\]\.xtl: expected a finite number"),
        ('<box label="a" xtl="1_0" ytl="2" xbr="10" ybr="20"/>', r"box\[0\]\.xtl: expected a number, got '1_0'"),
        ('<box label="a" xtl="1e999" ytl="2" xbr="10" ybr="20"/>', "expected a finite number"),
        ('<box label="a" ytl="2" xbr="10" ybr="20"/>', r"box\[0\]\.xtl: missing value"),
        ('<box label="a" xtl="11" ytl="2" xbr="10" ybr="20"/>', "inverted box"),
        ('<box xtl="1" ytl="2" xbr="10" ybr="20"/>', r"box\[0\]\.label: expected a label name"),
        (f'<box label="{"x" * 257}" xtl="1" ytl="2" xbr="10" ybr="20"/>', "label name too long.*at most 256"),
        ('<box label="a" xtl="1" ytl="2" xbr="10" ybr="20" occluded="maybe"/>', r"box\[0\]\.occluded"),
        ('<box label="a" xtl="1" ytl="2" xbr="10" ybr="20"><attribute>x</attribute></box>', "an attribute name"),
        ('<box label="a" xtl="1" ytl="2" xbr="10" ybr="20"><attribute name="z_order">1</attribute></box>',
         "attribute name taken by CVAT"),
        ('<polygon label="a" points="1,2;3,4"/>', r"polygon\[0\]\.points: expected at least 3 points"),
        ('<polygon label="a" points="1,2;3;5,6"/>', r"points\[1\]: expected x,y"),
        ('<points label="a" points=""/>', "expected x,y;x,y"),
        ('<mask label="a" rle="1, 2" left="0" top="0" width="2" height="2"/>', "runs do not cover the mask"),
        ('<mask label="a" rle="1, -2, 5" left="0" top="0" width="2" height="2"/>', r"rle\[1\]: expected a run"),
        ('<mask label="a" rle="4" left="39" top="0" width="2" height="2"/>', "mask outside the image"),
        ('<mask label="a" rle="4" left="0" top="0" width="0" height="2"/>', r"mask\[0\]\.width: expected an integer >= 1"),
        ('<box label="a" xtl="1" ytl="2" xbr="50" ybr="20"/>', "box outside the image"),
        ('<polyline label="a" points="1,2;3,99"/>', "point outside the image"),
        ('<cuboid label="a" xtl1="1"/>', r"<cuboid> shapes are not read"),
        ('<skeleton label="a"><points label="b" points="1,1"/></skeleton>', "<skeleton> shapes are not read"),
        ("<circle/>", "unexpected element"),
        ('<box label="a" xtl="1" ytl="2" xbr="10" ybr="20"><note/></box>', "unexpected element"),
    ],
)
def test_bad_shapes_leave_out_their_image_only(tmp_path: Path, shape: str, match: str) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    for i in range(2):
        (src / "images" / f"{i}.png").write_bytes(helpers.png(40, 30))
    (src / "annotations.xml").write_text(_doc(_image(shape) + _image(BOX, "1.png", 1)))
    ds, report = import_dataset("cvat", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["1"]
    assert len(report.problems) == 1
    msg = str(report.problems[0])
    assert msg.startswith("annotations.xml: ") and "image[0]" in msg
    assert re.search(match, msg), msg
    with pytest.raises(DataError, match=match):
        import_dataset("cvat", src, tmp_path / "strict", on_error="error")


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
                  "<annotations><version>1.1</version><meta/>&lol2;</annotations>")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('<annotations><version>1.1</version><meta/><image id="0" name="0.png"', r"annotations\.xml:1: not well-formed"),
        (BILLION_LAUGHS, "refused: DTDForbidden"),
        ('<?xml version="1.0"?><!DOCTYPE a SYSTEM "file:///etc/passwd"><annotations><version>1.1</version></annotations>',
         "refused"),
        ("<annotations><version>1.1</version><meta/>" + "<a>" * 40 + "</a>" * 40 + "</annotations>",
         "nested too deep.*at most 32"),
        ('<annotations><version>1.1</version><meta/><track id="0" label="a"/></annotations>',
         "CVAT for video tracks are not read"),
        (_doc("", labels=("",)), r"meta\.labels\[0\]\.name: expected a label name"),
    ],
)
def test_bad_documents_are_reported_whole(tmp_path: Path, text: str, match: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "annotations.xml").write_text(text)
    (src / "good").mkdir()
    (src / "good" / "0.png").write_bytes(helpers.png(40, 30))
    (src / "good" / "annotations.xml").write_text(_doc(_image(BOX)))
    ds, report = import_dataset("cvat", src, tmp_path / "ds")
    assert [s.source["file"] for s in ds.samples] == ["good/annotations.xml"]
    assert len(report.problems) == 1 and re.search(match, str(report.problems[0]))


def test_caps_on_size_and_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _doc(_image(BOX * 5)).encode()
    monkeypatch.setattr(cvat, "MAX_IMAGE_SHAPES", 4)
    with pytest.raises(DataError, match=r"image\[0\]: too many shapes: expected at most 4 in one image"):
        cvat.parse_document(data, "a.xml")
    monkeypatch.setattr(cvat, "MAX_IMAGE_SHAPES", 100)
    monkeypatch.setattr(cvat, "MAX_SHAPES", 7)
    two = _doc(_image(BOX * 5) + _image(BOX * 5, "1.png", 1)).encode()
    with pytest.raises(DataError, match="at most 7 in one document"):
        cvat.parse_document(two, "a.xml")
    monkeypatch.setattr(cvat, "MAX_DOCUMENT_BYTES", 100)
    with pytest.raises(DataError, match="document too large"):
        cvat.parse_document(data, "a.xml")
    monkeypatch.setattr(cvat, "MAX_POINTS", 3)
    with pytest.raises(DataError, match="too many points"):
        cvat.parse_points("1,1;2,2;3,3;4,4", "a.xml", "p")


def test_missing_image_is_a_problem_naming_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "1.png").write_bytes(helpers.png(40, 30))
    (src / "annotations.xml").write_text(_doc(_image(BOX, "gone (3).png") + _image(BOX, "1.png", 1)))
    ds, report = import_dataset("cvat", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["1"]
    assert str(report.problems[0]).startswith("annotations.xml: image[0].name: image not found")
    assert "'gone (3).png'" in str(report.problems[0])


def test_names_never_leave_the_import_folder(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(helpers.png(40, 30))
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "linked.png").symlink_to(outside)
    images = (_image(BOX, "../../secret.png", 0) + _image(BOX, str(outside), 1)
              + _image(BOX, "linked.png", 2))
    (src / "annotations.xml").write_text(_doc(images))
    with pytest.raises(UsageError, match="nothing imported"):
        import_dataset("cvat", src, tmp_path / "ds")
    # By file name only, inside the folder: an absolute name finds images/secret.png when it is there.
    (src / "images" / "secret.png").write_bytes(helpers.png(40, 30))
    ds, report = import_dataset("cvat", src, tmp_path / "ds")
    assert sorted(s.source["image"] for s in ds.samples) == ["images/secret.png", "images/secret.png"]
    assert [p.field for p in report.problems] == ["image[2].name"]  # the link out is never followed


def test_out_of_image_shapes_follow_on_invalid(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "0.png").write_bytes(helpers.png(40, 30))
    shapes = '<polygon label="a" points="1,1;60,1;30,20"/>' + BOX
    (src / "annotations.xml").write_text(_doc(_image(shapes)))
    ds, report = import_dataset("cvat", src, tmp_path / "clip", on_invalid="clip")
    assert ds.samples[0].objects[0].polygon == [[[1.0, 1.0], [40.0, 1.0], [30.0, 20.0]]]
    ds, report = import_dataset("cvat", src, tmp_path / "skip", on_invalid="skip")
    assert len(ds.samples[0].objects) == 1 and report.counts[
        "objects outside the image, left out (--on-invalid skip)"] == 1


# ----------------------------------------------------------------------------------------------
# Fuzz: the parser answers any bytes with a document, None or a DataError
# ----------------------------------------------------------------------------------------------

VALID = (GOLDEN / "task" / "annotations.xml").read_bytes()


def _parse_or_error(data: bytes) -> None:
    try:
        doc = cvat.parse_document(data, "fuzz.xml")
    except DataError as err:
        assert str(err).startswith("fuzz.xml")
        return
    if doc is not None:
        for rec in doc.images:
            assert rec.error is None or str(rec.error).startswith("fuzz.xml")


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    _parse_or_error(data)
    _parse_or_error(b"<annotations><version>1.1</version>" + data)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_export(data) -> None:
    pos = data.draw(st.integers(0, len(VALID) - 1))
    cut = data.draw(st.integers(0, 40))
    junk = data.draw(st.sampled_from([b"", b"<", b'"', b"&amp;", b"nan", b"-1", b";", b",", b"<box/>", b"\x00",
                                      b"</image>", b"1e999", b"\xff"]))
    _parse_or_error(VALID[:pos] + junk + VALID[pos + cut:])


def test_golden_files_are_small() -> None:
    assert all(os.path.getsize(p) < 16_384 for p in GOLDEN.rglob("*.xml"))


def test_images_no_image_entry_names_are_counted(tmp_path: Path) -> None:
    src = golden_export(tmp_path / "src")
    (src / "images" / "extra.png").write_bytes(helpers.png(10, 10))
    (src / "images" / "notes.txt").write_text("not an image")
    ds, report = import_dataset("cvat", src, tmp_path / "ds")
    assert len(ds.samples) == 3
    assert report.counts["images without an <image> entry (left out)"] == 1
    assert report.warnings == ["images/extra.png: image not named by any <image> of the XML; left out"]


def test_command_line_import_and_export(tmp_path: Path) -> None:
    from tests.helpers import invoke

    src = golden_export(tmp_path / "src")
    result = invoke("import", "auto", src, "--out", tmp_path / "ds")
    assert result.exit_code == 0, result.output
    assert "detected cvat" in result.output and "rotated boxes (4-point polygons, attribute rotation)" in result.output
    result = invoke("export", tmp_path / "ds", "--format", "cvat", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "exported 3 samples as cvat" in result.output and (tmp_path / "out" / "annotations.xml").is_file()
    labelme = tmp_path / "labelme-xml"
    labelme.mkdir()
    (labelme / "a.xml").write_text(LABELME_XML)
    result = invoke("import", "auto", labelme, "--out", tmp_path / "x")
    assert result.exit_code == 2 and "MIT LabelMe XML" in result.output


def test_real_street_export_with_images_option(tmp_path: Path) -> None:
    from tests.helpers import shared_data

    folder = shared_data("cvat-street")
    plain, _ = import_dataset("cvat", folder / "annotations.xml", tmp_path / "plain")
    ds, report = import_dataset("cvat", folder / "annotations.xml", tmp_path / "ds", images=folder / "images")
    assert len(ds.samples) == 12 and sum(len(s.objects) for s in ds.samples) == 125
    assert [s.sha256 for s in ds.samples] == [s.sha256 for s in plain.samples]


def test_images_option_outside_the_export_folder(tmp_path: Path) -> None:
    import shutil

    from tests.helpers import shared_data

    folder = shared_data("cvat-street")
    src, media = tmp_path / "xml", tmp_path / "media"
    src.mkdir()
    shutil.copy(folder / "annotations.xml", src / "annotations.xml")
    shutil.copytree(folder / "images", media / "photos")
    ds, report = import_dataset("cvat", src, tmp_path / "ds", images=media)
    assert len(ds.samples) == 12 and sum(len(s.objects) for s in ds.samples) == 125 and not report.problems
    assert all(s.source.get("image", "").startswith("photos/") for s in ds.samples)


# --------------------------------------------------------------------------------------------
# Several annotators: the same image in several tasks or jobs (--annotations all)
# --------------------------------------------------------------------------------------------


def _project_with_replicas(src: Path) -> Path:
    """A project export whose two tasks (assigned to alice and bob) hold the same three images, and a
    job export of a third annotator's replica job beside it."""
    (src / "images").mkdir(parents=True)
    for i in range(3):
        (src / "images" / f"{i}.png").write_bytes(helpers.png(20, 10))
    labels = "<labels>" + "".join(f"<label><name>{c}</name></label>" for c in ("cat", "dog")) + "</labels>"
    tasks = "".join(f"<task><id>{t}</id><name>t{t}</name><owner><username>lead</username></owner>"
                    f"<assignee><username>{who}</username></assignee></task>"
                    for t, who in ((1, "alice"), (2, "bob")))
    meta = f"<meta><project><id>5</id>{labels}<tasks>{tasks}</tasks></project></meta>"
    alice, bob = ("cat", "dog", "cat"), ("cat", "cat", "dog")
    images = "".join(f'<image id="{k}" name="{i}.png" width="20" height="10" task_id="{t}">'
                     f'<tag label="{tags[i]}" source="manual"/></image>'
                     for k, (t, i, tags) in enumerate([(t, i, tags) for t, tags in ((1, alice), (2, bob))
                                                       for i in range(3)]))
    (src / "annotations.xml").write_text(f'<?xml version="1.0"?><annotations><version>1.1</version>{meta}'
                                         f"{images}</annotations>")
    (src / "replica").mkdir()
    job_meta = (f"<meta><job><id>9</id>{labels}<owner><username>lead</username></owner>"
                "<assignee><username>carol</username></assignee></job></meta>")
    (src / "replica" / "annotations.xml").write_text(
        f'<?xml version="1.0"?><annotations><version>1.1</version>{job_meta}'
        '<image id="0" name="../images/1.png" width="20" height="10"><tag label="dog"/></image></annotations>')
    return src


def test_several_annotators_of_one_image_are_kept_with_annotations_all(tmp_path: Path) -> None:
    src = _project_with_replicas(tmp_path / "src")
    ds, report = import_dataset("cvat", src, tmp_path / "ds", extra={"annotations": "all"})
    assert [s.id for s in ds.samples] == ["0", "1", "2"] and ds.task == "classification"
    votes = {s.id: [(a.annotator, a.label, a.source_id) for a in s.annotations or []] for s in ds.samples}
    assert votes["0"] == [("alice", "cat", "task 1"), ("bob", "cat", "task 2")]
    assert sorted(votes["1"]) == [("alice", "dog", "task 1"), ("bob", "cat", "task 2"), ("carol", "dog", "job 9")]
    assert votes["2"] == [("alice", "cat", "task 1"), ("bob", "dog", "task 2")]
    assert {s.id: s.label for s in ds.samples} == {"0": "cat", "1": "dog", "2": "cat"}  # the first task's
    assert report.counts["annotations of images labelled in several jobs or tasks"] == 4

    from pipeline.labeling.consensus import annotation_matrix

    samples, annotators, matrix = annotation_matrix(load_dataset(tmp_path / "ds"))
    assert annotators == ["alice", "bob", "carol"] and matrix.shape == (3, 3)


def test_without_annotations_all_each_task_stays_its_own_sample(tmp_path: Path) -> None:
    src = _project_with_replicas(tmp_path / "src")
    (src / "replica" / "annotations.xml").unlink()
    ds, _ = import_dataset("cvat", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["0", "1", "2", "task2/0", "task2/1", "task2/2"]
    assert all(s.annotations is None for s in ds.samples)

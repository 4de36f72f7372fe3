"""labelme JSON: labelme's own examples with exact counts, every shape type, old versions, bad input, round trips."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset
from pipeline.core.errors import DataError
from pipeline.core.geometry import CIRCLE_TOLERANCE, circle_to_polygon, rle_decode, rle_encode
from pipeline.formats import labelme
from pipeline.formats.base import ExportReport
from pipeline.formats.ingest import export_dataset, import_dataset
from tests.formats.contract import BOXES, EMPTY, MASKS, POLYGONS, SPLITS, FormatContract
from tests.helpers import png as png_bytes
from tests.helpers import shared_data

# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


def shape(label: str, kind: str | None, points: list, **extra) -> dict:
    out = {"label": label, "points": points, "group_id": None, "flags": {}}
    if kind is not None:
        out["shape_type"] = kind
    out.update(extra)
    return out


def write_lm(folder: Path, stem: str, shapes: list[dict], *, size: tuple[int, int] = (64, 48), image: bool = True,
             image_path: str | None = None, image_data: str | None = None, flags: dict | None = None,
             declared: tuple[int, int] | None = None, raw: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if image:
        (folder / f"{stem}.png").write_bytes(png_bytes(*size))
    doc = {"version": "5.7.0", "flags": flags or {}, "shapes": shapes,
           "imagePath": image_path if image_path is not None else f"{stem}.png", "imageData": image_data,
           "imageHeight": (declared or size)[1], "imageWidth": (declared or size)[0]}
    path = folder / f"{stem}.json"
    path.write_text(raw if raw is not None else json.dumps(doc), encoding="utf-8")
    return path


GOOD = [shape("ok", "rectangle", [[1, 1], [9, 9]])]


def run_import(src: Path, out: Path, **kw):
    return import_dataset("labelme", src, out, **kw)


def objects_of(ds, sid: str) -> list[Obj]:
    return next(s for s in ds.samples if s.id == sid).objects


# --------------------------------------------------------------------------------------------
# labelme's own examples (real files)
# --------------------------------------------------------------------------------------------


def test_primitives_every_shape_type(tmp_path: Path) -> None:
    src = shared_data("labelme-examples", "primitives")
    ds, report = run_import(src, tmp_path / "ds")
    (s,) = ds.samples
    assert (s.width, s.height) == (560, 450)
    by = {o.label: o for o in s.objects}
    assert len(s.objects) == 8
    assert [o.bbox for o in s.objects if o.label == "rectangle"] == [[32.0, 35.0, 132.0, 135.0],
                                                                     [391.0, 33.0, 542.0, 135.0]]
    circle = by["circle"]
    r = math.hypot(225 - 195, 125 - 84)
    assert circle.bbox == pytest.approx([195 - r, 84 - r, 195 + r, 84 + r])
    ring = circle.polygon[0]
    assert len(ring) >= 16 and len(ring) % 4 == 0
    assert max(abs(math.hypot(x - 195, y - 84) - r) for x, y in ring) < 1e-9
    # the polygon's chords stay within a quarter pixel of the circle
    assert r * (1 - math.cos(math.pi / len(ring))) <= CIRCLE_TOLERANCE
    assert by["polygon"].polygon == [[[69.0, 318.0], [45.0, 403.0], [173.0, 406.0], [198.0, 321.0]]]
    assert by["polygon"].bbox == [45.0, 318.0, 198.0, 406.0]
    assert by["line"].polyline == [[188.0, 178.0], [160.0, 224.0]] and by["line"].bbox is None
    assert by["line_strip"].polyline is not None and len(by["line_strip"].polyline) == 3
    assert by["point"].keypoints == [[345.0, 174.0, 2]]
    assert by["point"].polygon is None and by["point"].bbox is None
    octagon = by["octagon"]
    assert octagon.mask["size"] == [450, 560]
    m = rle_decode(octagon.mask)
    assert m.sum() == 7275  # pixels set in the 100x100 PNG inside the shape's box
    assert octagon.bbox == [417.0, 305.0, 517.0, 405.0]
    assert report.counts["shapes: mask"] == 1 and report.counts["circles -> polygons"] == 1


def test_bbox_detection_matches_labelmes_own_voc_export(tmp_path: Path) -> None:
    import defusedxml.ElementTree as ET

    src = shared_data("labelme-examples", "bbox_detection")
    ds, _ = run_import(src / "data_annotated", tmp_path / "ds")
    assert len(ds.samples) == 3
    assert sum(len(s.objects) for s in ds.samples) == 9
    for s in ds.samples:
        root = ET.parse(src / "data_dataset_voc" / "Annotations" / f"{s.id}.xml").getroot()
        voc = [(o.findtext("name"), [float(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")])
               for o in root.iter("object")]
        ours = [(o.label, o.bbox) for o in s.objects]
        assert ours == voc  # labelme writes its points unchanged into VOC


def test_instance_segmentation_groups_match_labelmes_own_coco_export(tmp_path: Path) -> None:
    src = shared_data("labelme-examples", "instance_segmentation")
    ds, report = run_import(src, tmp_path / "ds")
    assert len(ds.samples) == 3
    assert report.counts["shapes: polygon"] == 18
    assert sum(len(s.objects) for s in ds.samples) == 14  # 18 shapes, group 0 merges 2 persons and 4 sofa parts
    assert report.skipped["JSON files that are not labelme annotations (no 'shapes')"] == 1
    sofa = [o for o in objects_of(ds, "data_annotated/2011_000006") if o.label == "sofa"]
    assert len(sofa) == 1 and len(sofa[0].polygon) == 4 and sofa[0].attributes["group_id"] == 0

    coco = json.loads((src / "data_dataset_coco" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    files = {i["id"]: Path(i["file_name"]).stem for i in coco["images"]}
    assert len(coco["annotations"]) == 12  # labelme's exporter leaves out its 2 __ignore__ regions
    assert sum(o.label != "__ignore__" for s in ds.samples for o in s.objects) == 12
    for ann in coco["annotations"]:
        objs = objects_of(ds, f"data_annotated/{files[ann['image_id']]}")
        x, y, w, h = ann["bbox"]
        # labelme's COCO boxes come from rasterised masks (whole pixels): within 2 px of the polygons' bounds
        assert any(o.label == names[ann["category_id"]] and
                   np.allclose(o.bbox, [x, y, x + w, y + h], atol=2.0) for o in objs), ann


def test_tutorial_image_path_points_at_the_json_itself(tmp_path: Path) -> None:
    src = shared_data("labelme-examples", "tutorial")
    ds, report = run_import(src, tmp_path / "ds")
    (s,) = ds.samples
    assert (s.width, s.height) == (1210, 907)
    assert len(s.objects) == 4 and all(o.polygon for o in s.objects)
    assert report.counts["images from embedded imageData"] == 1
    assert Image.open(ds.image_path(s)).size == (1210, 907)


def test_classification_flags(tmp_path: Path) -> None:
    src = shared_data("labelme-examples", "classification")
    ds, _ = run_import(src, tmp_path / "ds")
    assert ds.task == "classification"
    assert ds.classes == ["cat", "dog"]  # __ignore__ is labelme's reserved flag, never a class
    assert [(s.label, s.objects) for s in ds.samples] == [("cat", None), ("dog", None)]
    assert ds.samples[0].meta["flags"] == {"__ignore__": False, "cat": True, "dog": False}


def test_whole_examples_folder(tmp_path: Path) -> None:
    src = shared_data("labelme-examples")
    ds, report = run_import(src, tmp_path / "ds")
    assert len(ds.samples) == 18
    assert sum(len(s.objects or []) for s in ds.samples) == 8 + 9 + 14 + 18 + 4 + 15
    assert not report.problems


# --------------------------------------------------------------------------------------------
# Versions and layouts
# --------------------------------------------------------------------------------------------


def test_legacy_2017_file_without_shape_type(tmp_path: Path) -> None:
    data = base64.b64encode(png_bytes(30, 20)).decode()
    raw = json.dumps({
        "imagePath": "gone.jpg", "imageData": data, "lineColor": [0, 255, 0, 128], "fillColor": [255, 0, 0, 128],
        "flags": {}, "shapes": [{"label": "leaf", "line_color": None, "fill_color": [1, 2, 3, 4],
                                 "points": [[1, 1], [10, 1], [10, 8]]}],
    })
    write_lm(tmp_path / "src", "old", [], image=False, raw=raw)
    ds, report = run_import(tmp_path / "src", tmp_path / "ds")
    (s,) = ds.samples
    assert (s.width, s.height) == (30, 20)
    assert s.objects[0].polygon == [[[1.0, 1.0], [10.0, 1.0], [10.0, 8.0]]]
    assert report.counts["images from embedded imageData"] == 1


@pytest.mark.parametrize("image_data", [None, ""], ids=["null", "empty-string"])
def test_image_data_null_or_empty(tmp_path: Path, image_data) -> None:
    write_lm(tmp_path / "src", "a", [shape("box", "rectangle", [[5, 6], [20, 30]])], image_data=image_data)
    ds, _ = run_import(tmp_path / "src", tmp_path / "ds")
    assert ds.samples[0].objects[0].bbox == [5.0, 6.0, 20.0, 30.0]


def test_rectangle_corners_in_any_order(tmp_path: Path) -> None:
    write_lm(tmp_path / "src", "a", [shape("box", "rectangle", [[20, 30], [5, 6]])])
    ds, _ = run_import(tmp_path / "src", tmp_path / "ds")
    assert ds.samples[0].objects[0].bbox == [5.0, 6.0, 20.0, 30.0]


def test_image_path_in_sibling_folder_with_backslashes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "a.png").write_bytes(png_bytes())
    write_lm(src / "labels", "a", [shape("x", "rectangle", [[1, 1], [9, 9]])], image=False,
             image_path="..\\images\\a.png")
    ds, _ = run_import(src, tmp_path / "ds")
    assert ds.samples[0].id == "labels/a"
    assert ds.samples[0].source["file"] == "labels/a.json"


def test_absolute_image_path_from_another_machine(tmp_path: Path) -> None:
    write_lm(tmp_path / "src", "a", [shape("x", "rectangle", [[1, 1], [9, 9]])],
             image_path="C:\\Users\\someone\\Pictures\\a.png")
    ds, _ = run_import(tmp_path / "src", tmp_path / "ds")
    assert len(ds.samples) == 1


def test_group_id_merges_per_label_and_group(tmp_path: Path) -> None:
    shapes = [
        shape("car", "polygon", [[1, 1], [10, 1], [10, 10]], group_id=3),
        shape("car", "polygon", [[20, 20], [30, 20], [30, 30]], group_id=3),
        shape("car", "point", [[5, 5]], group_id=3),
        shape("wheel", "polygon", [[2, 2], [4, 2], [4, 4]], group_id=3),  # same group, other label: own object
        shape("car", "rectangle", [[40, 1], [50, 9]]),  # no group: its own object
    ]
    write_lm(tmp_path / "src", "a", shapes)
    ds, _ = run_import(tmp_path / "src", tmp_path / "ds")
    objs = ds.samples[0].objects
    assert [o.label for o in objs] == ["car", "wheel", "car"]
    car = objs[0]
    assert len(car.polygon) == 2 and car.bbox == [1.0, 1.0, 30.0, 30.0] and car.keypoints == [[5.0, 5.0, 2]]
    assert car.attributes["group_id"] == 3


def test_flags_descriptions_and_several_true_image_flags(tmp_path: Path) -> None:
    shapes = [shape("x", "rectangle", [[1, 1], [9, 9]], flags={"occluded": True}, description="behind the tree")]
    write_lm(tmp_path / "src", "a", shapes, flags={"day": True, "sunny": True, "night": False, "__ignore__": True})
    ds, report = run_import(tmp_path / "src", tmp_path / "ds")
    s = ds.samples[0]
    assert s.objects[0].attributes == {"flags": {"occluded": True}, "description": "behind the tree"}
    assert s.label is None and s.soft_label == {"day": 0.5, "sunny": 0.5}
    assert report.counts["images with several true flags (soft label, equal weights)"] == 1
    assert "__ignore__" not in ds.classes and s.meta["flags"]["__ignore__"] is True


@pytest.mark.parametrize("kind", ["oriented_rectangle", "rotation"])  # labelme 5.5+, X-AnyLabeling
def test_oriented_rectangle(tmp_path: Path, kind: str) -> None:
    pts = [[10, 5], [20, 10], [15, 20], [5, 15]]
    write_lm(tmp_path / "src", "a", [shape("tag", kind, pts, direction=0.46)])
    ds, _ = run_import(tmp_path / "src", tmp_path / "ds")
    o = ds.samples[0].objects[0]
    assert o.polygon == [[[float(x), float(y)] for x, y in pts]] and o.bbox == [5.0, 5.0, 20.0, 20.0]
    assert o.attributes == {"direction": 0.46, "shape_type": kind}


def test_exif_rotated_photo_labelled_upright(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    raw = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display: labelme shows (and labels) a 20x40 image
    raw.save(src / "p.jpg", exif=exif.tobytes())
    write_lm(src, "p", [shape("x", "rectangle", [[2, 3], [10, 30]])], image=False, image_path="p.jpg",
             declared=(20, 40))
    ds, _ = run_import(src, tmp_path / "ds")
    s = ds.samples[0]
    assert (s.width, s.height) == (20, 40) and s.meta["exif_orientation"] == 6
    assert Image.open(ds.image_path(s)).size == (20, 40)
    assert s.objects[0].bbox == [2.0, 3.0, 10.0, 30.0]


def test_exif_rotated_photo_labelled_in_the_raw_frame(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20), (200, 10, 10)).save(src / "p.jpg", exif=exif.tobytes())
    # declared 40x20: an old labelme that showed the raw pixels; the box turns with the image
    write_lm(src, "p", [shape("x", "rectangle", [[2, 3], [10, 15]]), shape("k", "point", [[2, 3]])],
             image=False, image_path="p.jpg", declared=(40, 20))
    ds, _ = run_import(src, tmp_path / "ds")
    s = ds.samples[0]
    assert (s.width, s.height) == (20, 40)
    assert s.objects[0].bbox == [5.0, 2.0, 17.0, 10.0]
    assert s.objects[1].keypoints == [[17.0, 2.0, 2]]


def test_square_exif_photo_assumes_labelmes_upright_frame(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (30, 30), (9, 9, 9)).save(src / "q.jpg", exif=exif.tobytes())
    write_lm(src, "q", [shape("x", "rectangle", [[2, 3], [10, 15]])], image=False, image_path="q.jpg",
             declared=(30, 30))
    ds, report = run_import(src, tmp_path / "ds")
    s = ds.samples[0]
    assert s.objects[0].bbox == [2.0, 3.0, 10.0, 15.0]  # kept: labelme labels what it shows
    assert s.meta["exif_frame"] == "assumed upright" and s.meta["exif_orientation"] == 8


def test_image_found_by_name_when_image_path_is_wrong(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "images" / "a.png").write_bytes(png_bytes())
    write_lm(src / "ann", "a", GOOD, image=False, image_path="old_folder/a.png")
    ds, report = run_import(src, tmp_path / "ds")
    assert len(ds.samples) == 1 and not report.problems


# --------------------------------------------------------------------------------------------
# Bad input: each reported with file and field, the rest imports
# --------------------------------------------------------------------------------------------



@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("malformed", "bad.json:1: not valid JSON"),
        ("nan", "bad.json: shapes[0].points[1]: expected finite numbers, got [nan, 2]"),
        ("escape", "bad.json: imagePath: points outside the import folder"),
        ("oversized", "bad.json: imageData: embedded image too large"),
        ("truncated", "bad.json: imagePath: image bad.png: not an image Pillow can read"),  # cut in its header
        ("unknown-shape", "bad.json: shapes[0].shape_type: unknown shape type"),
        ("size-mismatch", "bad.json: imageWidth/imageHeight: declared 100x100 but the image is 64x48"),
        ("no-image", "bad.json: imagePath: image not found and no embedded imageData"),
        ("outside", "bad.json: shapes[0].points[1]: point outside the image"),
        ("few-points", "bad.json: shapes[0].points: a rectangle needs at least 2 points"),
    ],
)
def test_bad_file_reported_with_file_and_field_rest_imports(tmp_path: Path, case: str, expected: str) -> None:
    src = tmp_path / "src"
    write_lm(src, "good", GOOD)
    if case == "malformed":
        write_lm(src, "bad", [], raw='{"shapes": [ {"label": "x", ')
    elif case == "nan":
        write_lm(src, "bad", [], raw='{"shapes": [{"label": "x", "shape_type": "rectangle", '
                                     '"points": [[1, 1], [NaN, 2]]}], "imagePath": "bad.png", "imageData": null}')
    elif case == "escape":
        (tmp_path / "secret.png").write_bytes(png_bytes())
        write_lm(src, "bad", GOOD, image_path="../secret.png")
    elif case == "oversized":
        write_lm(src, "bad", GOOD, image=False, image_path="missing.png",
                 image_data=base64.b64encode(b"\x89PNG" + bytes(2000)).decode())
    elif case == "truncated":
        write_lm(src, "bad", GOOD)
        data = (src / "bad.png").read_bytes()
        (src / "bad.png").write_bytes(data[:36])  # before any pixel data (a file cut later is kept, restored)
    elif case == "unknown-shape":
        write_lm(src, "bad", [shape("x", "hexagon", [[1, 1], [2, 2]])])
    elif case == "size-mismatch":
        write_lm(src, "bad", GOOD, declared=(100, 100))
    elif case == "no-image":
        write_lm(src, "bad", GOOD, image=False)
    elif case == "outside":
        write_lm(src, "bad", [shape("x", "rectangle", [[1, 1], [90, 9]])])
    elif case == "few-points":
        write_lm(src, "bad", [shape("x", "rectangle", [[1, 1]])])
    extra = {"max_image_data": 1000} if case == "oversized" else {}
    ds, report = run_import(src, tmp_path / "ds", extra=extra)
    assert [s.id for s in ds.samples] == ["good"]
    assert len(report.problems) == 1
    assert str(report.problems[0]).startswith(expected), str(report.problems[0])
    with pytest.raises(DataError, match="bad.json"):
        run_import(src, tmp_path / "ds2", on_error="error", extra=extra)


@pytest.mark.parametrize(("mode", "expected"), [("clip", [1.0, 1.0, 64.0, 9.0]), ("skip", None)])
def test_on_invalid_clip_or_skip(tmp_path: Path, mode: str, expected) -> None:
    write_lm(tmp_path / "src", "a", [shape("x", "rectangle", [[1, 1], [90, 9]]), shape("y", "point", [[3, 3]])])
    ds, _ = run_import(tmp_path / "src", tmp_path / "ds", on_invalid=mode)
    objs = ds.samples[0].objects
    if expected is None:
        assert [o.label for o in objs] == ["y"]
    else:
        assert objs[0].bbox == expected


def test_points_within_a_pixel_of_the_edge_are_clamped(tmp_path: Path) -> None:
    write_lm(tmp_path / "src", "a", [shape("x", "rectangle", [[-0.6, 0], [64.4, 48.9]])])
    ds, _ = run_import(tmp_path / "src", tmp_path / "ds")
    assert ds.samples[0].objects[0].bbox == [0.0, 0.0, 64.0, 48.0]


def test_detect() -> None:
    found = labelme.detect(shared_data("labelme-examples", "bbox_detection", "data_annotated"))
    assert found is not None and "labelme" in found.description
    assert labelme.detect(shared_data("raccoon-voc")) is None


# --------------------------------------------------------------------------------------------
# Export and round trip
# --------------------------------------------------------------------------------------------


def _rich_dataset(root: Path) -> Path:
    h, w = 48, 64
    mask = np.zeros((h, w), dtype=bool)
    mask[10:20, 30:45] = True
    mask[12, 50] = True
    with DatasetWriter(root, task="detection", stage="test") as wr:
        objs = [
            Obj("box", bbox=[1.25, 2.5, 20.75, 30.0], attributes={"flags": {"truncated": True}}),
            Obj("poly", bbox=[5.0, 5.0, 40.0, 30.0], polygon=[[[5.0, 5.0], [40.0, 5.0], [20.0, 30.0]]]),
            Obj("poly", bbox=[1.0, 1.0, 30.0, 30.0], polygon=[[[1.0, 1.0], [10.0, 1.0], [10.0, 10.0]],
                                                           [[20.0, 20.0], [30.0, 20.0], [30.0, 30.0]]]),
            Obj("kp", keypoints=[[3.0, 4.0, 2], [10.0, 11.0, 2]]),
            Obj("line", polyline=[[1.0, 1.0], [30.0, 40.0], [60.0, 2.0]]),
            Obj("blob", bbox=[30.0, 10.0, 51.0, 20.0], mask=rle_encode(mask)),
            Obj("poly", bbox=[2.0, 2.0, 40.0, 40.0], polygon=[[[10.0, 10.0], [20.0, 10.0], [15.0, 20.0]]]),
        ]
        wr.add(Sample(id="scene/ümlaut 1", width=w, height=h, objects=objs, split="train"),
               data=png_bytes(w, h), ext="png")
        wr.add(Sample(id="empty", width=w, height=h, objects=[], split="val"), data=png_bytes(w, h, (1, 2, 3)),
               ext="png")
    return root


def test_write_then_read_returns_the_same_objects(tmp_path: Path) -> None:
    src = load_dataset(_rich_dataset(tmp_path / "ds"))
    export_dataset(tmp_path / "ds", "labelme", tmp_path / "lm")
    # each sample under a folder named after its split, which the import reads back
    # (the file names keep the id's own: a space is no reason to rename a file)
    doc = json.loads((tmp_path / "lm" / "train" / "scene" / "ümlaut 1.json").read_text(encoding="utf-8"))
    assert doc["imagePath"] == "ümlaut 1.png" and doc["imageData"] is None
    assert (tmp_path / "lm" / "train" / "scene" / "ümlaut 1.png").is_file()
    back, report = run_import(tmp_path / "lm", tmp_path / "back")
    assert not report.problems
    assert {s.id: s.split for s in back.samples} == {"scene/ümlaut 1": "train", "empty": "val"}  # the source's ids
    a = next(s for s in src.samples if s.id.startswith("scene"))
    b = next(s for s in back.samples if s.id.startswith("scene"))
    assert len(a.objects) == len(b.objects)
    for oa, ob in zip(a.objects, b.objects, strict=True):
        assert oa.label == ob.label
        if oa.bbox is not None:
            assert np.allclose(oa.bbox, ob.bbox, atol=0.5)
        assert oa.polygon == ob.polygon
        assert oa.keypoints == ob.keypoints
        assert oa.polyline == ob.polyline
        if oa.mask is not None:
            assert np.array_equal(rle_decode(oa.mask), rle_decode(ob.mask))
    assert b.objects[0].attributes["flags"] == {"truncated": True}
    assert next(s for s in back.samples if s.id == "empty").objects == []


def test_round_trip_of_labelmes_own_primitives(tmp_path: Path) -> None:
    ds, _ = run_import(shared_data("labelme-examples", "primitives"), tmp_path / "ds")
    export_dataset(tmp_path / "ds", "labelme", tmp_path / "lm")
    doc = json.loads(next((tmp_path / "lm").glob("*.json")).read_text())
    assert [s["shape_type"] for s in doc["shapes"]] == ["rectangle", "circle", "rectangle", "polygon", "line",
                                                        "point", "linestrip", "mask"]
    back, _ = run_import(tmp_path / "lm", tmp_path / "back")
    for oa, ob in zip(ds.samples[0].objects, back.samples[0].objects, strict=True):
        assert oa.to_json() == ob.to_json() or (oa.label == "circle" and np.allclose(oa.bbox, ob.bbox))


def test_flags_written_back(tmp_path: Path) -> None:
    ds, _ = run_import(shared_data("labelme-examples", "classification"), tmp_path / "ds")
    report = ExportReport()
    out = tmp_path / "lm"
    out.mkdir()
    labelme.write(ds, out, report, {})
    doc = json.loads((out / "data_annotated" / "0001.json").read_text())
    assert doc["flags"] == {"__ignore__": False, "cat": True, "dog": False} and doc["shapes"] == []


def test_mask_decode_placement_matches_labelme() -> None:
    part = np.zeros((3, 4), dtype=np.uint8)
    part[1, 2] = 1
    buf = io.BytesIO()
    Image.fromarray(part).save(buf, format="PNG")
    s = labelme.Shape(index=0, label="m", kind="mask", points=[[5.7, 2.2], [8.9, 4.1]],
                      mask_b64=base64.b64encode(buf.getvalue()).decode())
    full = labelme.decode_mask(s, 12, 8, "x.json")
    assert full.shape == (8, 12) and list(zip(*np.nonzero(full), strict=True)) == [(3, 7)]


def test_stale_circle_record_writes_the_polygon() -> None:
    ring = circle_to_polygon(20, 20, 5)
    obj = Obj("c", bbox=[15.0, 15.0, 25.0, 25.0], polygon=[ring], attributes={"circle": [20, 20, 5]})
    assert [s["shape_type"] for s in labelme.object_to_shapes(obj, lambda: 0, width=64, height=48)] == ["circle"]
    moved = Obj("c", bbox=[35.0, 15.0, 45.0, 25.0], polygon=[[[x + 20, y] for x, y in ring]],
                attributes={"circle": [20, 20, 5]})  # flipped by an augmentation; the record is stale
    assert [s["shape_type"] for s in labelme.object_to_shapes(moved, lambda: 0, width=64, height=48)] == ["polygon"]


def test_other_attributes_travel_as_extra_shape_keys(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "ds", task="detection", stage="test") as wr:
        wr.add(Sample(id="a", width=64, height=48, objects=[
            Obj("x", bbox=[1.0, 2.0, 30.0, 40.0], attributes={"difficult": True, "pose": "Left", "truncated": False}),
        ]), data=png_bytes(), ext="png")
    _, report = export_dataset(tmp_path / "ds", "labelme", tmp_path / "lm")
    doc = json.loads((tmp_path / "lm" / "a.json").read_text())
    assert doc["shapes"][0]["difficult"] is True and doc["shapes"][0]["pose"] == "Left"
    back, _ = run_import(tmp_path / "lm", tmp_path / "back")
    assert back.samples[0].objects[0].attributes == {"difficult": True, "pose": "Left", "truncated": False}


class TestLabelmeContract(FormatContract):
    FORMAT = "labelme"
    CAN = {BOXES, POLYGONS, MASKS, SPLITS, EMPTY}
    OTHERS = ("coco", "voc", "yolo", "createml")  # boxes survive every one of them

    def golden(self, folder: Path) -> dict[str, list[tuple[str, list[float]]]]:
        write_lm(folder, "scene", [shape("cat", "rectangle", [[30.5, 40], [4, 6]]),
                                   shape("dog", "polygon", [[10, 5], [30, 12], [20, 20]])])
        write_lm(folder / "sub", "empty", [])
        return {"scene": [("cat", [4.0, 6.0, 30.5, 40.0]), ("dog", [10.0, 5.0, 30.0, 20.0])], "empty": []}


def test_images_option_finds_images_in_another_folder(tmp_path: Path) -> None:
    src, media = tmp_path / "json", tmp_path / "media"
    write_lm(src, "a", GOOD, image=False, image_path="../photos/a.png")
    write_lm(media / "photos", "a", [])  # the image (its own JSON there is not read: not under SRC)
    (media / "photos" / "a.json").unlink()
    with pytest.raises(DataError, match="a.json"):
        run_import(src, tmp_path / "no", on_error="error")  # without --images: not under SRC
    ds, report = run_import(src, tmp_path / "ds", images=media)
    assert not report.problems and len(ds.samples) == 1 and len(ds.samples[0].objects) == 1
    import hashlib

    assert ds.samples[0].sha256 == hashlib.sha256((media / "photos" / "a.png").read_bytes()).hexdigest()


def test_real_examples_with_images_option(tmp_path: Path) -> None:
    folder = shared_data("labelme-examples", "bbox_detection", "data_annotated")
    plain, _ = run_import(folder, tmp_path / "plain")
    ds, report = run_import(folder, tmp_path / "ds", images=folder)
    assert [s.sha256 for s in ds.samples] == [s.sha256 for s in plain.samples]
    assert sum(len(s.objects) for s in ds.samples) == sum(len(s.objects) for s in plain.samples) > 0

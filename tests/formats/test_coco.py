"""COCO: the shared contract, labelme's COCO export, RLE (both forms), category ids, bad input, and
pycocotools (with COCOeval) and supervision reading our export."""

from __future__ import annotations

import json
import math
from collections import Counter
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import DataError, UsageError
from pipeline.core.geometry import rle_decode, rle_encode, rle_string_encode
from pipeline.formats import coco
from pipeline.formats.ingest import export_dataset, import_dataset
from tests import helpers
from tests.formats.contract import (
    BOXES,
    EMPTY,
    MASKS,
    POLYGONS,
    SPLITS,
    FormatContract,
    make_source,
    supervision_boxes,
)
from tests.helpers import shared_data

png = partial(helpers.png, 40, 30)  # this module's images are 40x30


class TestCocoContract(FormatContract):
    FORMAT = "coco"
    CAN = {BOXES, POLYGONS, MASKS, SPLITS, EMPTY}
    OTHERS = ("labelme",)  # every pair runs in test_round_trips.py


    def golden(self, folder: Path) -> dict:
        (folder / "images").mkdir()
        (folder / "images" / "ünï.png").write_bytes(png())
        (folder / "images" / "b.png").write_bytes(png())
        m = np.zeros((30, 40), bool)
        m[5:10, 20:30] = True
        doc = {
            "images": [{"id": 7, "file_name": "C:\\export\\ünï.png", "width": 40, "height": 30},
                       {"id": 9, "file_name": "images/b.png", "width": 40, "height": 30}],
            "categories": [{"id": 18, "name": "dog"}, {"id": 3, "name": "cat"}],  # ids are not 0..N-1
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 3, "bbox": [1.5, 2, 10, 5], "iscrowd": 0,
                 "segmentation": [[1.5, 2, 11.5, 2, 11.5, 7]]},
                {"id": 2, "image_id": 7, "category_id": 18, "iscrowd": 1,  # no bbox: from the RLE
                 "segmentation": {"size": [30, 40], "counts": rle_string_encode(rle_encode(m)["counts"])}},
            ],
        }
        (folder / "instances_train.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        return {"ünï": [("cat", [1.5, 2.0, 11.5, 7.0]), ("dog", [20.0, 5.0, 30.0, 10.0])], "b": []}


def test_golden_details(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    TestCocoContract().golden(tmp_path / "src")
    ds, report = import_dataset("coco", tmp_path / "src", tmp_path / "ds")
    s = next(s for s in ds.samples if s.id.endswith("ünï"))
    assert s.split == "train" and s.source["image_id"] == 7
    dog = next(o for o in s.objects if o.label == "dog")
    assert dog.attributes == {"iscrowd": 1} and rle_decode(dog.mask)[5:10, 20:30].all()
    assert int(rle_decode(dog.mask).sum()) == 50
    cat = next(o for o in s.objects if o.label == "cat")
    assert cat.polygon == [[[1.5, 2.0], [11.5, 2.0], [11.5, 7.0]]]
    assert report.counts["RLE masks"] == 1 and report.counts["polygons"] == 1


def test_labelme_coco_export(tmp_path: Path) -> None:
    src = shared_data("labelme-examples", "instance_segmentation", "data_dataset_coco")
    ds, report = import_dataset("auto", src, tmp_path / "ds")
    assert report.detected.startswith("coco") and not report.problems
    assert len(ds.samples) == 3 and sum(len(s.objects) for s in ds.samples) == 12
    assert all(o.polygon for s in ds.samples for o in s.objects)
    # Every category is kept, in the file's order and with its id, used or not (labelme2coco's
    # `_background_` is id 0), so that an export writes the same category list.
    assert ds.classes[0] == "_background_" and ds.info.class_ids["_background_"] == 0
    assert ds.info.class_ids == {c: i for i, c in enumerate(ds.classes)}


@pytest.mark.parametrize(
    ("bbox", "match"),
    [
        ([1, 2, 3], r"bbox: expected \[x, y, width, height\]"),
        ([1, float("nan"), 3, 4], r"bbox\[1\]: expected a finite number"),
        ([1, 2, -3, 4], "negative size"),
    ],
)
def test_bbox_errors(bbox: list, match: str) -> None:
    with pytest.raises(DataError, match=match):
        coco.bbox_to_xyxy(bbox, "a.json", "annotations[0].bbox")


def test_segmentation_forms() -> None:
    m = np.zeros((4, 5), bool)
    m[1:3, 2:4] = True
    rle = rle_encode(m)
    for counts in (rle["counts"], rle_string_encode(rle["counts"])):
        rings, mask = coco.parse_segmentation({"size": [4, 5], "counts": counts}, 4, 5, "a", "s")
        assert rings is None and np.array_equal(rle_decode(mask), m)
    with pytest.raises(DataError, match="does not cover"):
        coco.parse_segmentation({"size": [4, 5], "counts": [3, 2]}, 4, 5, "a", "s")
    with pytest.raises(DataError, match=r"s\[0\]: expected a flat list"):
        coco.parse_segmentation([[1, 2, 3]], 4, 5, "a", "s")


def _doc(tmp_path: Path, anns: list[dict], name: str = "a.json", images: int = 2) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for i in range(images):
        (src / f"{i}.png").write_bytes(png())
    doc = {"images": [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 30} for i in range(images)],
           "categories": [{"id": 1, "name": "a"}], "annotations": anns}
    (src / name).write_text(json.dumps(doc))
    return src


def test_bad_annotations_reject_their_image_only(tmp_path: Path) -> None:
    src = _doc(tmp_path, [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5]},
                          {"id": 2, "image_id": 1, "category_id": 4, "bbox": [1, 1, 5, 5]},
                          {"id": 3, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]}])
    (src / "broken.json").write_text('{"images": [], "annotations": [')
    ds, report = import_dataset("coco", src, tmp_path / "ds")
    assert [s.id for s in ds.samples] == ["0"]
    msgs = sorted(str(e) for e in report.problems)
    assert msgs[0].startswith("a.json: annotations[1].category_id: unknown category")
    assert msgs[1].startswith("broken.json:1: not valid JSON")
    assert report.counts["annotations whose image_id is not in images (left out)"] == 1
    with pytest.raises(DataError, match="annotations\\[1\\].category_id"):
        import_dataset("coco", src, tmp_path / "strict", on_error="error")


def test_pycocotools_reads_export_and_cocoeval_runs(tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    src = make_source(tmp_path / "src", {BOXES, POLYGONS, MASKS, EMPTY})
    export_dataset(src.root, "coco", tmp_path / "out")
    gt = COCO(str(tmp_path / "out" / coco.EXPORT_FILE))
    names = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
    assert names == {1: "cat", 2: "dog"}
    by_file = {im["file_name"]: im for im in gt.loadImgs(gt.getImgIds())}
    for s in src.samples:
        im = next(v for k, v in by_file.items() if Path(k).stem == s.id.rsplit("/", 1)[-1])  # the source stem
        anns = gt.loadAnns(gt.getAnnIds(imgIds=[im["id"]]))
        got = sorted((names[a["category_id"]], [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                                a["bbox"][1] + a["bbox"][3]]) for a in anns)
        want = sorted((o.label, o.bbox) for o in s.objects)
        assert [g[0] for g in got] == [w[0] for w in want]
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert np.allclose(a, b, atol=0.5)
        for a, o in zip(sorted(anns, key=lambda a: a["id"]), s.objects, strict=True):
            if o.mask is not None:  # pycocotools decodes our RLE to the same pixels
                assert np.array_equal(gt.annToMask(a).astype(bool), rle_decode(o.mask))
    # Our boxes scored as detections against themselves: COCOeval runs and finds them all.
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt.loadAnns(gt.getAnnIds()) if not a["iscrowd"]]
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_supervision_reads_export(tmp_path: Path) -> None:
    sv = pytest.importorskip("supervision")
    src = make_source(tmp_path / "src", {BOXES, POLYGONS, SPLITS, EMPTY})
    export_dataset(src.root, "coco", tmp_path / "out")
    total = 0
    for split in ("train", "val", "test"):
        folder = tmp_path / "out" / split
        theirs = sv.DetectionDataset.from_coco(str(folder), str(folder / coco.EXPORT_FILE))
        assert theirs.classes == ["cat", "dog"]
        total += supervision_boxes(theirs, src)
    assert total == sum(len(s.objects) for s in src.samples)


# --------------------------------------------------------------------------------------------
# Layouts: where the images are
# --------------------------------------------------------------------------------------------


def _coco_doc(names: list[str], cats: tuple[tuple[int, str], ...] = ((1, "cat"), (2, "dog"))) -> dict:
    """One box per image, alternating categories; file names as given."""
    return {"images": [{"id": i + 1, "file_name": n, "width": 40, "height": 30} for i, n in enumerate(names)],
            "categories": [{"id": c, "name": n} for c, n in cats],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": cats[i % len(cats)][0],
                             "bbox": [1, 2, 10, 5], "iscrowd": 0} for i in range(len(names))]}


def _write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, n in enumerate(names):
        (folder / n).write_bytes(png(color=(k * 40 % 256, 20, 200)))


def _summary(ds) -> tuple:
    splits: dict = {}
    for s in ds.samples:
        splits[s.split] = splits.get(s.split, 0) + 1
    return len(ds.samples), sum(len(s.objects) for s in ds.samples), ds.classes, splits


@pytest.mark.parametrize("layout", [
    "split2017",  # annotations/instances_val2017.json beside val2017/ (COCO's own download)
    "split-words",  # annotations/train.json, annotations/valid.json beside train/ and valid/
    "images",  # annotations/instances_train.json beside images/
    "images-split",  # annotations/instances_train2017.json beside images/train2017/
])
def test_standard_layouts_find_their_images(tmp_path: Path, layout: str) -> None:
    src = tmp_path / "src"
    ann = src / "annotations"
    ann.mkdir(parents=True)
    train, val = ["a.jpg", "b.jpg", "c.jpg"], ["d.jpg", "e.jpg"]
    if layout == "split2017":
        _write_images(src / "train2017", train)
        _write_images(src / "val2017", val)
        files = {"instances_train2017.json": train, "instances_val2017.json": val}
    elif layout == "split-words":
        _write_images(src / "train", train)
        _write_images(src / "valid", val)
        files = {"train.json": train, "valid.json": val}
    elif layout == "images":
        _write_images(src / "images", train + val)
        files = {"instances_train.json": train, "instances_val.json": val}
    else:
        _write_images(src / "images" / "train2017", train)
        _write_images(src / "images" / "val2017", val)
        files = {"instances_train2017.json": train, "instances_val2017.json": val}
    for name, names in files.items():
        (ann / name).write_text(json.dumps(_coco_doc(names)))
    ds, report = import_dataset("coco", src, tmp_path / "ds")
    assert not report.problems, [str(p) for p in report.problems]
    assert _summary(ds) == (5, 5, ["cat", "dog"], {"train": 3, "val": 2})


def test_same_name_in_two_split_folders_is_taken_from_the_files_split(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "annotations").mkdir(parents=True)
    _write_images(src / "train2017", ["a.jpg"])
    _write_images(src / "val2017", ["a.jpg"])
    for split in ("train", "val"):
        (src / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(_coco_doc(["a.jpg"])))
    ds, report = import_dataset("coco", src, tmp_path / "ds")
    assert sorted(s.source["image"] for s in ds.samples) == ["train2017/a.jpg", "val2017/a.jpg"]


def test_a_name_found_twice_elsewhere_is_ambiguous_not_guessed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _write_images(src / "photos" / "x", ["a.jpg"])
    _write_images(src / "photos" / "y", ["a.jpg", "b.jpg"])
    (src / "labels.json").write_text(json.dumps(_coco_doc(["a.jpg", "b.jpg"])))
    ds, report = import_dataset("coco", src, tmp_path / "ds")
    assert [s.source["image"] for s in ds.samples] == ["photos/y/b.jpg"]  # unique: found anywhere under SRC
    (problem,) = report.problems
    assert "ambiguous image name" in str(problem) and "photos/x/a.jpg" in str(problem)


def test_images_option_reads_images_only_there(tmp_path: Path) -> None:
    src, media = tmp_path / "labels", tmp_path / "media"
    src.mkdir()
    _write_images(media / "val2017", ["a.jpg", "b.jpg"])
    _write_images(src, ["c.jpg"])  # an image under SRC is not looked at with --images
    (src / "instances_val2017.json").write_text(json.dumps(_coco_doc(["a.jpg", "b.jpg", "c.jpg"])))
    with pytest.raises(Exception, match="image not found"):
        import_dataset("coco", src, tmp_path / "strict", on_error="error", images=media)
    ds, report = import_dataset("coco", src, tmp_path / "ds", images=media)
    assert sorted(s.source["image"] for s in ds.samples) == ["val2017/a.jpg", "val2017/b.jpg"]
    assert {s.split for s in ds.samples} == {"val"}
    assert [p.field for p in report.problems] == ["images[2].file_name"]


def test_real_cvat_street_coco_twin_with_images_folder(tmp_path: Path) -> None:
    folder = shared_data("cvat-street")
    ds, report = import_dataset("coco", folder / "instances.json", tmp_path / "ds")
    assert len(ds.samples) == 12 and sum(len(s.objects) for s in ds.samples) == 100
    assert ds.classes == ["Car", "Person"]
    ds2, _ = import_dataset("coco", folder / "instances.json", tmp_path / "ds2", images=folder / "images")
    assert [s.sha256 for s in ds2.samples] == [s.sha256 for s in ds.samples]


def test_annotations_that_meet_no_image_refuse_the_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _write_images(src / "images", ["a.jpg", "b.jpg"])
    doc = _coco_doc(["a.jpg", "b.jpg"])
    for a in doc["annotations"]:
        a["image_id"] += 100  # ids of another export
    (src / "instances_train.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"instances_train.json: annotations\[\].image_id: none of the 2 annotations"):
        import_dataset("coco", src, tmp_path / "ds", on_error="error")
    from pipeline.core.errors import UsageError

    with pytest.raises(UsageError, match="nothing imported"):  # not two background images, exit 0
        import_dataset("coco", src, tmp_path / "ds")


def test_detected_when_the_images_list_fills_the_first_64_kib(tmp_path: Path) -> None:
    """COCO's own files list thousands of images before "annotations" and end with "categories"."""
    from pipeline.formats import coco

    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(2000)]
    doc = {"info": {}, "images": images, "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(doc))
    assert path.read_bytes()[: 1 << 16].find(b'"annotations"') < 0
    assert coco.detect(tmp_path) is not None
    (tmp_path / "other.json").write_text(json.dumps({"images": images}))  # no annotations or categories
    assert coco._peek(str(tmp_path / "other.json")) is False


# -- class ids kept: COCO -> pipeline -> COCO writes the same categories -----------------------------


def _coco_file(folder: Path, categories: list[dict], used: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i, cid in enumerate(used, start=1):
        (folder / f"im{i}.png").write_bytes(png())
        images.append({"id": i, "file_name": f"im{i}.png", "width": 40, "height": 30})
        anns.append({"id": i, "image_id": i, "category_id": cid, "bbox": [1, 2, 10, 10], "iscrowd": 0})
    doc = {"images": images, "annotations": anns, "categories": categories}
    (folder / "instances.json").write_text(json.dumps(doc), encoding="utf-8")


def _categories(folder: Path) -> list[tuple[int, str]]:
    (doc,) = [json.loads(p.read_text(encoding="utf-8")) for p in folder.rglob("*.json")]
    return [(c["id"], c["name"]) for c in doc["categories"]]


@pytest.mark.parametrize(
    "categories",
    [
        # ids from 1 with gaps (COCO 2017's own numbering: 12, 26, ... are unused)
        [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 13, "name": "stop sign"}],
        # any order, and an unused category (id 0, labelme2coco's _background_)
        [{"id": 5, "name": "zebra"}, {"id": 0, "name": "_background_"}, {"id": 2, "name": "ant"}],
        # ids from 0 in order
        [{"id": 0, "name": "b"}, {"id": 1, "name": "a"}],
    ],
)
def test_category_ids_survive_a_round_trip(tmp_path: Path, categories: list[dict]) -> None:
    used = [c["id"] for c in categories if c["name"] != "_background_"]
    _coco_file(tmp_path / "src", [{**c, "supercategory": "none"} for c in categories], used)
    ds, _ = import_dataset("coco", tmp_path / "src", tmp_path / "ds")
    assert ds.classes == [c["name"] for c in categories]  # the file's order
    assert ds.info.class_ids == {c["name"]: c["id"] for c in categories}
    export_dataset(ds.root, "coco", tmp_path / "out")
    assert _categories(tmp_path / "out") == [(c["id"], c["name"]) for c in categories]
    again, _ = import_dataset("coco", tmp_path / "out", tmp_path / "ds2")
    export_dataset(again.root, "coco", tmp_path / "out2")
    one = json.loads((tmp_path / "out" / coco.EXPORT_FILE).read_text())
    two = json.loads((tmp_path / "out2" / coco.EXPORT_FILE).read_text())
    assert one["categories"] == two["categories"]
    by_name = {c["name"]: c["id"] for c in categories}
    assert sorted(a["category_id"] for a in one["annotations"]) == sorted(used)
    assert {o.label for s in again.samples for o in s.objects} <= set(by_name)


def test_a_dataset_without_ids_exports_positions_from_one(tmp_path: Path) -> None:
    src = make_source(tmp_path / "src", {BOXES})
    assert src.info.class_ids is None
    export_dataset(src.root, "coco", tmp_path / "out")
    assert _categories(tmp_path / "out") == [(i + 1, c) for i, c in enumerate(src.classes)]


def test_category_ids_that_disagree_between_files_are_warned_about(tmp_path: Path) -> None:
    _coco_file(tmp_path / "src" / "train", [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}], [1, 2])
    _coco_file(tmp_path / "src" / "val", [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}], [1])
    ds, report = import_dataset("coco", tmp_path / "src", tmp_path / "ds")
    assert ds.info.class_ids == {"cat": 1, "dog": 2}  # the first file's ids
    assert any("val/instances.json: class 'dog' has id 2 and 1: id 2 kept" in w for w in report.warnings)
    # the annotations still go by name: val's image shows a dog
    val = next(s for s in ds.samples if s.split == "val")
    assert [o.label for o in val.objects] == ["dog"]


def test_ids_positions_writes_1_to_n(tmp_path: Path) -> None:
    _coco_file(tmp_path / "src", [{"id": 9, "name": "b"}, {"id": 4, "name": "a"}], [9, 4])
    ds, _ = import_dataset("coco", tmp_path / "src", tmp_path / "ds")
    export_dataset(ds.root, "coco", tmp_path / "out", options={"ids": "positions"})
    assert _categories(tmp_path / "out") == [(1, "b"), (2, "a")]


# -- a large file is read as a stream: the same dataset and the same report as reading it whole ---------


def _mixed_doc() -> dict:
    """Every kind of annotation the stream renders at once, and every kind it leaves to `_object`."""
    images = [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
              {"id": "two", "file_name": "b.png", "width": 40, "height": 30},
              {"id": 3, "file_name": "c.png", "width": 60, "height": 40},  # declared size is not the image's
              {"id": 4, "file_name": "d.png"},  # no size declared
              {"id": 5, "file_name": "e.png", "width": 40, "height": 30},
              {"id": 6, "file_name": "f.png", "width": 40, "height": 30},  # plain: rendered as read
              {"id": 7, "file_name": "g.png", "width": 40, "height": 30}]  # no annotation
    rle = rle_encode(np.pad(np.ones((4, 4), bool), ((2, 24), (3, 33))))  # (the images are 40 x 30)
    anns = [
        {"id": 1, "image_id": 6, "category_id": 7, "bbox": [1, 2, 10, 5.5], "area": 5, "iscrowd": 0,
         "segmentation": [[1, 2, 11, 2, 11, 7.5], [3, 3, 4, 4]]},  # a ring of 2 points is left out
        {"id": 2, "image_id": 6, "category_id": 3, "bbox": [-0.5, 0, 40.4, 30], "iscrowd": 1},  # clipped
        {"id": 21, "image_id": 6, "category_id": 3, "bbox": [0.25, 1e-3, 2, 2.5], "segmentation": [
            [0.25, 0.001, 2.25, 0.001, 2.25, 2.501, 0.25, 2.501]]},
        {"id": 3, "image_id": "two", "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1,
         "segmentation": {"size": [30, 40], "counts": rle["counts"]}},  # an RLE mask
        {"id": 4, "image_id": "two", "category_id": 7, "bbox": [1, 1, 3, 3], "keypoints": [2, 2, 2]},
        {"id": 5, "image_id": "two", "category_id": 7, "bbox": [1, 1, 3, 3], "attributes": {"categories": "x"}},
        {"id": 6, "image_id": 3, "category_id": 7, "bbox": [1, 1, 3, 3]},
        {"id": 7, "image_id": 4, "category_id": 3, "bbox": [1, 1, 3, 3], "segmentation": []},
        {"id": 8, "image_id": 5, "category_id": 3, "bbox": [30, 1, 30, 3]},  # far outside: --on-invalid
        "not an object",
        {"id": 10, "image_id": [1], "category_id": 3, "bbox": [1, 1, 3, 3]},  # a bad image id
        {"id": 11, "image_id": 99, "category_id": 3, "bbox": [1, 1, 3, 3]},  # an image not listed
        {"id": 12, "image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 3], "segmentation": [[1, 2, True, 4, 5, 6]]},
        {"id": 13, "image_id": 1, "category_id": True, "bbox": [1, 1, 3, 3]},  # not a category id
    ]
    return {"info": {"description": '"categories": [] in a string'}, "images": images, "annotations": anns,
            "categories": [{"id": 7, "name": "dög"}, {"id": 3, "name": "cat"}]}


def _ordered(doc: dict, keys: list[str]) -> str:
    return json.dumps({k: doc[k] for k in keys if k in doc}, indent=1)


def _import_both(tmp_path: Path, text: str, monkeypatch, **kw) -> tuple:
    src = tmp_path / "src"
    _write_images(src, ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png", "g.png"])
    (src / "instances.json").write_text(text)
    out = []
    rendered: list[int] = []
    as_read = coco._Group.objects
    for name, whole in (("stream", False), ("whole", True)):
        if whole:
            monkeypatch.setattr(coco._Stream, "scan", lambda self: None)
        else:
            monkeypatch.setattr(coco._Group, "objects", lambda g: rendered.append(g.count) or as_read(g))
        ds, report = import_dataset("coco", src, tmp_path / name, **kw)
        out.append(((tmp_path / name / "samples.jsonl").read_bytes(), ds.classes, [str(p) for p in report.problems],
                    dict(report.counts), list(report.warnings), rendered[:]))
        monkeypatch.undo()
    return out[0][:-1], out[1][:-1], out[0][-1]


@pytest.mark.parametrize("keys", [
    ["info", "images", "annotations", "categories"],  # COCO's own order: the categories found ahead
    ["categories", "images", "annotations", "info"],  # Roboflow's: the categories read first
    ["info", "annotations", "images", "categories"],  # the images after the annotations: every one read again
])
@pytest.mark.parametrize("on_invalid", ["error", "clip"])
@pytest.mark.parametrize("chunk", [1 << 16, 1, 300])  # one element at a time; chunks of one; of a few
def test_a_streamed_file_imports_as_the_file_read_whole(tmp_path: Path, monkeypatch, keys: list[str],
                                                        on_invalid: str, chunk: int) -> None:
    as_set, coco._CHUNK = coco._CHUNK, chunk  # (set here: `_import_both` undoes its monkeypatches)
    try:
        stream, whole, rendered = _import_both(tmp_path, _ordered(_mixed_doc(), keys), monkeypatch,
                                               on_invalid=on_invalid)
    finally:
        coco._CHUNK = as_set
    assert stream == whole
    assert rendered == ([] if keys.index("images") > keys.index("annotations") else [3])  # f.png's, as read
    problems = stream[2]
    assert any("annotations[9]:" in p for p in problems) and any("annotations[10].image_id" in p for p in problems)
    assert len(problems) == len(set(problems))  # each reported once


def test_a_streamed_file_of_boxes_alone_counts_no_polygons(tmp_path: Path, monkeypatch) -> None:
    doc = _mixed_doc()
    doc["annotations"] = [a for a in doc["annotations"] if isinstance(a, dict) and a["image_id"] == 6
                          and not a.get("segmentation")]
    stream, whole, rendered = _import_both(tmp_path, _ordered(doc, ["images", "annotations", "categories"]),
                                           monkeypatch)
    assert stream == whole and rendered == [1] and "polygons" not in stream[3]


@pytest.mark.parametrize("keypoints", [0, "", {}, []])
def test_keypoints_that_are_not_a_list_are_the_same_error_streamed(tmp_path: Path, monkeypatch, keypoints) -> None:
    doc = _mixed_doc()
    doc["annotations"] = [{"id": 1, "image_id": 6, "category_id": 3, "bbox": [1, 1, 3, 3], "keypoints": keypoints}]
    stream, whole, rendered = _import_both(tmp_path, _ordered(doc, ["images", "annotations", "categories"]),
                                           monkeypatch)
    assert stream == whole
    assert rendered == ([1] if keypoints == [] else [])  # ([]: no keypoints; the others: read by `_object`)
    assert bool(stream[2]) == (keypoints != [])  # (an error naming the field)


def test_categories_named_after_the_files_own_are_not_taken_for_them(tmp_path: Path, monkeypatch) -> None:
    doc = _mixed_doc()
    doc["info"] = {"categories": [{"id": 3, "name": "other"}, {"id": 7, "name": "dög"}]}  # found ahead: not the file's
    stream, whole, rendered = _import_both(tmp_path, _ordered(doc, ["images", "annotations", "categories", "info"]),
                                           monkeypatch)
    assert stream == whole and stream[1] == ["dög", "cat"] and rendered == []


@pytest.mark.parametrize("text", [
    '{"images": [], "images": []}',  # a key twice: read whole (the last wins, as json does)
    '{"images": [], "annotations": [}',  # broken: the whole read names line and column
    '[{"images": []}]',  # not an object
    '{"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "category_id": 1, '
    '"bbox": [1, 1, 2, 2]}], "categories": [{"id": 1, "name": "x"}]} trailing',
])
def test_files_the_stream_does_not_take_are_read_whole(tmp_path: Path, text: str) -> None:
    stream = coco._Stream(text, "x.json", None, None)  # (labels and context unused before annotations)
    if text.startswith('{"images": [], "annotations": [}'):
        with pytest.raises(ValueError):
            stream._scan()
    assert stream.scan() is None and not stream.groups


# -- fuzzed documents: the stream reads what json reads, and renders what `_object` makes --------------

_fuzzed_num = st.one_of(st.integers(-5, 50), st.floats(-5, 50), st.sampled_from([math.nan, math.inf, 1e300]),
                 st.booleans(), st.just("3"), st.none())
_fuzzed_ann = st.fixed_dictionaries(
    {"image_id": st.one_of(st.sampled_from([1, 2, "x", 99]), st.just([1]), st.just(""), st.none()),
     "category_id": st.one_of(st.sampled_from([1, 2, 5]), st.just(True), st.just([1]))},
    optional={"bbox": st.one_of(st.lists(_fuzzed_num, min_size=3, max_size=5), st.none(), st.just("box")),
              "segmentation": st.one_of(st.lists(st.lists(_fuzzed_num, max_size=8), max_size=2), st.just({"size": [1]}),
                                        st.just([])),
              "iscrowd": st.sampled_from([0, 1, True, 2]),
              "keypoints": st.sampled_from([[1, 1, 2], [], 0, "", None]),  # (falsy but not a list: an error)
              "attributes": st.just({"a": 1})})
_coord = st.one_of(st.integers(0, 20), st.floats(0, 20))
_plain_ann = st.fixed_dictionaries(  # what the stream renders at once (when all of an image's are so)
    {"image_id": st.sampled_from([1, "x"]), "category_id": st.sampled_from([1, 2]),
     "bbox": st.tuples(_coord, _coord, _coord, _coord).map(list)},
    optional={"segmentation": st.lists(st.lists(_coord, min_size=2, max_size=10).map(lambda v: v[: len(v) // 2 * 2]),
                                       max_size=2),
              "iscrowd": st.sampled_from([0, 1]), "area": _coord})
_fuzzed_doc = st.fixed_dictionaries(
    {"images": st.just([{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                        {"id": "x", "file_name": "b.png", "width": 40, "height": 30}, {"id": 2, "file_name": "c"}]),
     "annotations": st.lists(st.one_of(_plain_ann, _plain_ann, _plain_ann, _fuzzed_ann, st.just("junk"),
                                       st.just(None)), max_size=8),
     "categories": st.just([{"id": 1, "name": "cat"}, {"id": 2, "name": "dög"}])})


class _Seen:
    """Class names as they come (what `Labels` does without --classes or --map)."""

    def __call__(self, name: str, where: str, field: str) -> str:
        return name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_fuzzed_doc, order=st.permutations(["images", "annotations", "categories"]), indent=st.sampled_from([None, 1]),
       chunk=st.sampled_from([1 << 16, 1, 120]), workers=st.sampled_from([1, 2]))
def test_fuzzed_documents_stream_as_json_reads_them(doc: dict, order: list[str], indent: int | None,
                                                    chunk: int, workers: int) -> None:
    from pipeline.core.dataset import dumps_object

    text = json.dumps({k: doc[k] for k in order}, indent=indent)
    ctx = SimpleNamespace(report=SimpleNamespace(counts=Counter()), bad=lambda err: None)
    stream = coco._Stream(text, "x.json", _Seen(), ctx, workers)
    as_set, coco._CHUNK = coco._CHUNK, chunk  # (decoded in chunks of about this many characters)
    split_min, coco._SPLIT_MIN = coco._SPLIT_MIN, 0  # (workers=2: a forked process reads the second part)
    try:
        got = stream.scan()
    finally:
        coco._CHUNK, coco._SPLIT_MIN = as_set, split_min
    whole = json.loads(text)
    assert got is not None and {k: v for k, v in got.items() if k != "annotations"} == {
        k: v for k, v in whole.items() if k != "annotations"}
    cats = coco.categories(whole, "x.json")
    groups = stream.finish(cats)
    expected: dict = {}
    for k, a in enumerate(whole["annotations"]):
        if coco._unusable(a, k, "x.json") is None:
            expected.setdefault(a["image_id"], []).append((k, a))
    assert {iid: g.decoded(stream) for iid, g in groups.items()} == expected
    sizes = {1: (40, 30), "x": (40, 30)}
    for iid, group in groups.items():
        if group.fast and iid in sizes:  # rendered at once: what `_object` makes of each annotation
            objects = [coco._object(a, k, cats, _Seen(), "x.json", 40, 30, "error", ctx) for k, a in expected[iid]]
            assert group.objects().text == "[" + ",".join(dumps_object(o) for o in objects) + "]"  # byte for byte


@pytest.mark.parametrize(("keypoints", "chunked"), [(False, True), (True, False)])
def test_annotations_decoded_again_are_read_one_at_a_time(keypoints: bool, chunked: bool) -> None:
    """Plain boxes go a chunk at a time; after a chunk whose annotations are decoded again with
    their image (keypoints), ever longer stretches go one at a time, noting where each starts."""
    anns = [{"id": k, "image_id": 1 + k % 3, "category_id": 1, "bbox": [1, 2, 3, 4]} for k in range(400)]
    for a in anns:
        if keypoints:
            a["keypoints"] = [1, 2, 2]
    doc = {"images": [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 30} for i in (1, 2, 3)],
           "annotations": anns, "categories": [{"id": 1, "name": "cat"}]}
    text = json.dumps(doc)
    ctx = SimpleNamespace(report=SimpleNamespace(counts=Counter()), bad=lambda err: None)
    stream = coco._Stream(text, "x.json", _Seen(), ctx)
    as_set, coco._CHUNK = coco._CHUNK, 500
    try:
        assert stream.scan() is not None
    finally:
        coco._CHUNK = as_set
    groups = stream.finish({1: "cat"})
    noted = sum(at >= 0 for at in stream.known)
    if chunked:
        assert noted < 40 and all(g.fast for g in groups.values())
    else:
        assert len(stream.chunks) <= 6 and noted > 250  # (stretches of 1, 2, 4, 8, 16 chunks one at a time)
    assert {iid: g.decoded(stream) for iid, g in groups.items()} == {
        i: [(k, a) for k, a in enumerate(anns) if a["image_id"] == i] for i in (1, 2, 3)}


# -- two processes: a forked one reads the second part of the annotations; the same bytes as one -------


def _import_with_workers(tmp_path: Path, text: str, monkeypatch, names: list[str], **kw) -> list[tuple]:
    """The dataset's lines, classes, problems, counts and warnings with one process and with two
    (every array cut, however short), and how many times the forked process's groups were taken."""
    src = tmp_path / "src"
    _write_images(src, names)
    (src / "instances.json").write_text(text)
    monkeypatch.setattr(coco, "_SPLIT_MIN", 0)
    taken: list[int] = []
    merge = coco._Stream._merge
    monkeypatch.setattr(coco._Stream, "_merge", lambda self, got, k0: taken.append(k0) or merge(self, got, k0))
    out = []
    for workers in (1, 2):
        dest = tmp_path / f"w{workers}"
        try:
            ds, report = import_dataset("coco", src, dest, workers=workers, **kw)
        except (DataError, UsageError) as err:
            out.append(("error", str(err)))
            continue
        out.append(((dest / "samples.jsonl").read_bytes(), ds.classes, ds.info.class_ids,
                    [str(p) for p in report.problems], dict(report.counts), list(report.warnings)))
    return [*out, len(taken)]


@pytest.mark.parametrize("keys", [
    ["info", "images", "annotations", "categories"],
    ["info", "categories", "images", "annotations"],
    ["info", "annotations", "images", "categories"],
])
@pytest.mark.parametrize("on_invalid", ["error", "clip"])
def test_two_processes_import_the_bytes_of_one(tmp_path: Path, monkeypatch, keys: list[str], on_invalid: str) -> None:
    one, two, taken = _import_with_workers(tmp_path, _ordered(_mixed_doc(), keys), monkeypatch,
                                           ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png", "g.png"],
                                           on_invalid=on_invalid)
    assert one == two and one[0] != "error"
    assert taken == 1  # (the second part's groups came from the forked process)


def _many(n: int, images: int, seed: int = 0) -> dict:
    """`n` annotations over `images` images in no order: boxes, polygons, iscrowd, and on every third
    image keypoints and boxes past the edge (decoded again with their image)."""
    rng = np.random.default_rng(seed)
    anns = []
    for k in range(n):
        x, y, w, h = (round(float(v), 2) for v in rng.uniform([0, 0, 1, 1], [20, 15, 19, 14]))
        a = {"id": k + 1, "image_id": int(rng.integers(1, images + 1)), "category_id": [1, 3, 7][k % 3],
             "bbox": [x, y, w, h], "iscrowd": int(k % 11 == 0),
             "segmentation": [[x, y, x + w, y, x + w, y + h]] if k % 4 else []}
        if k % 13 == 5 and a["image_id"] % 3 == 0:  # (the other images' are all rendered at once)
            a["keypoints"] = [x, y, 2]
        if k % 17 == 7 and a["image_id"] % 3 == 0:
            a["bbox"] = [30, 20, 30, 30]  # past the edge: --on-invalid
        anns.append(a)
    return {"images": [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 30} for i in range(1, images + 1)],
            "annotations": anns, "categories": [{"id": 7, "name": "dög"}, {"id": 3, "name": "cat"}, {"id": 1, "name": "x"}]}


@pytest.mark.parametrize("chunk", [1 << 16, 700])  # the parts in one chunk each; in many, with stretches one at a time
def test_two_processes_import_many_annotations_as_one(tmp_path: Path, monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(coco, "_CHUNK", chunk)
    one, two, taken = _import_with_workers(tmp_path, json.dumps(_many(1500, 12)), monkeypatch,
                                           [f"{i}.png" for i in range(1, 13)], on_invalid="clip")
    assert one == two and one[0] != "error" and taken == 1
    assert one[4]["objects"] == 1500 and one[4]["objects with keypoints"] > 10


@pytest.mark.parametrize("how", ["raises", "killed"])
def test_a_forked_process_that_fails_leaves_its_part_to_this_one(tmp_path: Path, monkeypatch, how: str) -> None:
    import os
    import signal

    def fail(self, at):
        if how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        raise MemoryError("the forked process ran out")

    monkeypatch.setattr(coco._Stream, "second_half", fail)
    one, two, taken = _import_with_workers(tmp_path, json.dumps(_many(600, 5)), monkeypatch,
                                           [f"{i}.png" for i in range(1, 6)], on_invalid="clip")
    assert one == two and one[0] != "error" and taken == 0


def test_broken_json_in_the_second_part_is_the_error_of_one_process(tmp_path: Path, monkeypatch) -> None:
    text = json.dumps(_many(600, 5))
    cut = text.rindex('"bbox"', 0, text.index('"categories"'))  # (in the last annotations: the forked part)
    one, two, taken = _import_with_workers(tmp_path, text[:cut] + '"bbox": [1, 2,, 3]' + text[cut + 6:], monkeypatch,
                                           [f"{i}.png" for i in range(1, 6)])
    assert one == two and one[0] == "error" and "instances.json" in one[1] and taken == 0


def test_workers_option_on_the_command_line(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "src"
    _write_images(src, [f"{i}.png" for i in range(1, 6)])
    (src / "instances.json").write_text(json.dumps(_many(300, 5)))
    monkeypatch.setattr(coco, "_SPLIT_MIN", 0)
    assert "--workers N" in helpers.invoke("import", "--help").output
    for workers in ("1", "2"):
        result = helpers.invoke("import", "coco", src, "--out", tmp_path / workers, "--workers", workers, "--on-invalid",
                                "clip")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "1" / "samples.jsonl").read_bytes() == (tmp_path / "2" / "samples.jsonl").read_bytes()
    assert helpers.invoke("import", "coco", src, "--out", tmp_path / "0", "--workers", "0").exit_code == 2


def test_default_workers_are_the_cpus_we_may_use_at_most_two(monkeypatch) -> None:
    import os

    for cpus, expected in ((1, 1), (2, 2), (16, 2)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert coco.default_workers() == expected


def test_no_process_to_fork_reads_it_all_here(tmp_path: Path, monkeypatch) -> None:
    import os

    def no_fork():
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    one, two, taken = _import_with_workers(tmp_path, json.dumps(_many(300, 5)), monkeypatch,
                                           [f"{i}.png" for i in range(1, 6)], on_invalid="clip")
    assert one == two and one[0] != "error" and taken == 0

"""COCO: the shared contract, labelme's COCO export, RLE (both forms), category ids, bad input, and
pycocotools (with COCOeval) and supervision reading our export."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.errors import DataError
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
    assert "_background_" not in ds.classes  # a category with no annotations names no object


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
        im = next(v for k, v in by_file.items() if Path(k).stem == s.id.replace("/", "__"))
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

"""YOLO txt: the shared contract, the real labelImg sample, line parsing, --on-invalid, class files,
Ultralytics and darknet layouts, unpaired files, and supervision reading our export."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import load_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.formats import yolo
from pipeline.formats.ingest import export_dataset, import_dataset
from tests import helpers
from tests.formats.contract import (
    BOXES,
    EMPTY,
    POLYGONS,
    SPLITS,
    FormatContract,
    make_source,
    supervision_boxes,
)
from tests.helpers import jpeg as _rotated_jpeg
from tests.helpers import shared_data

png = partial(helpers.png, 100, 50)  # this module's images are 100x50


class TestYoloContract(FormatContract):
    FORMAT = "yolo"
    CAN = {BOXES, POLYGONS, SPLITS, EMPTY}
    OTHERS = ("coco",)  # every pair runs in test_round_trips.py


    def golden(self, folder: Path) -> dict:
        (folder / "classes.txt").write_text("dog\ncat\n\n")  # not alphabetical; trailing blank line
        (folder / "ünï.png").write_bytes(png())
        (folder / "ünï.txt").write_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.2 0.2\n")
        (folder / "poly.png").write_bytes(png())
        (folder / "poly.txt").write_text("0 0.1 0.2 0.5 0.2 0.5 0.8\n")
        (folder / "empty.png").write_bytes(png())
        (folder / "empty.txt").write_text("")
        return {"ünï": [("cat", [40.0, 15.0, 60.0, 35.0]), ("dog", [0.0, 0.0, 20.0, 10.0])],
                "poly": [("dog", [10.0, 10.0, 50.0, 40.0])], "empty": []}


def test_labelimg_real_sample(tmp_path: Path) -> None:
    src = shared_data("labelimg-yolo-sample")
    ds, report = import_dataset("auto", src, tmp_path / "ds")
    assert report.detected.startswith("yolo") and not report.problems
    (s,) = ds.samples
    assert ds.classes == ["round_object"] and len(s.objects) == 2 and (s.width, s.height) == (720, 720)
    # 0 0.758333 0.616667 0.216667 0.341667 in a 720 x 720 image
    assert s.objects[0].bbox == pytest.approx([468.0, 321.0, 624.0, 567.0], abs=0.01)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("0 0.5 0.5 0.2", "unexpected field count 4"),  # a field short
        ("0 0.5 0.5 0.2 0.2 0.9", "unexpected field count 6"),  # a confidence column (predictions)
        ("0 0.1 0.1 0.2 0.2 0.3 0.3 0.4", "unexpected field count 8"),  # odd polygon
        ("x 0.5 0.5 0.2 0.2", "class: expected an integer class id"),
        ("-1 0.5 0.5 0.2 0.2", "class: expected an integer class id >= 0"),
        ("0 nan 0.5 0.2 0.2", "field 2: expected a finite number"),
        ("0 0.5 0.5 -0.2 0.2", "negative size"),
        ("0 0.5 zero 0.2 0.2", "field 3: expected a number"),
    ],
)
def test_parse_line_errors(line: str, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        yolo._parse_line(line, "a.txt", 7)
    assert str(info.value).startswith("a.txt:7")


@pytest.mark.parametrize(
    ("line", "box", "out"),
    [
        ("0 0.5 0.5 0.2 0.4", [0.5, 0.5, 0.2, 0.4], False),
        ("3.0 0.5 0.5 0.2 0.4", [0.5, 0.5, 0.2, 0.4], False),  # float class ids from some exporters
        ("0 0.95 0.5 0.2 0.4", [0.95, 0.5, 0.2, 0.4], True),  # right edge at 1.05
        ("0 1.2 0.5 0.2 0.4", [1.2, 0.5, 0.2, 0.4], True),
        ("  0   0.5 0.5 0.2 0.4  ", [0.5, 0.5, 0.2, 0.4], False),  # extra whitespace
    ],
)
def test_parse_line_boxes(line: str, box: list[float], out: bool) -> None:
    row = yolo._parse_line(line, "a.txt", 1)
    assert row.box == box and row.out_of_range is out
    assert yolo._parse_line("   ", "a.txt", 1) is None


def test_format_line_round_trip() -> None:
    text = yolo._format_line(2, [0.5, 0.25, 0.125, 1.0])
    assert text == "2 0.500000 0.250000 0.125000 1.000000"
    assert yolo._parse_line(text, "a", 1).box == [0.5, 0.25, 0.125, 1.0]


def test_parse_names_blank_lines() -> None:
    assert yolo.parse_names("a\nb\n\n") == ["a", "b"]
    assert yolo.parse_names("a\n\nc\n") == ["a", "", "c"]  # an inner blank line keeps its id


def _folder(tmp_path: Path, labels: dict[str, str], classes: str = "a\nb\n") -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "classes.txt").write_text(classes)
    for stem, text in labels.items():
        (src / f"{stem}.png").write_bytes(png())
        (src / f"{stem}.txt").write_text(text)
    return src


def test_values_outside_unit_range_on_invalid(tmp_path: Path) -> None:
    src = _folder(tmp_path, {"ok": "0 0.5 0.5 0.2 0.2\n",
                             "off": "0 0.5 0.5 0.2 0.2\n1 1.2 0.5 0.2 0.2\n0 0.05 0.5 0.2 0.2\n"})
    ds, report = import_dataset("yolo", src, tmp_path / "e")
    (err,) = report.problems
    assert str(err).startswith("off.txt:2") and "2 line(s) with values outside [0, 1]" in str(err)
    assert report.counts[yolo.OUT_OF_RANGE] == 2 and len(ds.samples) == 1
    ds, report = import_dataset("yolo", src, tmp_path / "c", on_invalid="clip")
    off = next(s for s in ds.samples if s.id == "off")
    assert [o.bbox for o in off.objects][1:] == [[100.0, 20.0, 100.0, 30.0], pytest.approx([0.0, 20.0, 15.0, 30.0])]
    ds, report = import_dataset("yolo", src, tmp_path / "s", on_invalid="skip")
    assert len(next(s for s in ds.samples if s.id == "off").objects) == 1


def test_class_id_beyond_list_and_wrong_field_count(tmp_path: Path) -> None:
    src = _folder(tmp_path, {"ok": "1 0.5 0.5 0.2 0.2\n", "bad": "0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.2 0.2\n",
                             "short": "0 0.5 0.5\n"})
    ds, report = import_dataset("yolo", src, tmp_path / "ds")
    msgs = sorted(str(e) for e in report.problems)
    assert msgs[0].startswith("bad.txt:2: class: class id beyond the class list: expected 0..1 (classes.txt), got 5")
    assert msgs[1].startswith("short.txt:1: unexpected field count 3")
    assert [s.id for s in ds.samples] == ["ok"]
    with pytest.raises(DataError, match="bad.txt:2"):
        import_dataset("yolo", src, tmp_path / "strict", on_error="error")


def test_unpaired_files_both_reported(tmp_path: Path) -> None:
    src = _folder(tmp_path, {"ok": "0 0.5 0.5 0.2 0.2\n"})
    (src / "lonely.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (src / "background.png").write_bytes(png())
    ds, report = import_dataset("yolo", src, tmp_path / "ds")
    assert [e.where for e in report.problems] == ["lonely.txt"] and "without an image" in str(report.problems[0])
    assert report.counts[yolo.BACKGROUND] == 1
    assert next(s for s in ds.samples if s.id == "background").objects == []


def test_classes_file_order_is_resolved_by_name(tmp_path: Path) -> None:
    src = _folder(tmp_path, {"x": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.4 0.4\n"}, classes="zebra\napple\n")
    fixed = tmp_path / "classes.txt"
    fixed.write_text("apple\nzebra\n")
    ds, _ = import_dataset("yolo", src, tmp_path / "ds", classes_file=fixed)
    assert ds.classes == ["apple", "zebra"]
    assert [o.label for o in ds.samples[0].objects] == ["zebra", "apple"]


def test_ultralytics_layout_with_data_yaml(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for split in ("train", "val"):
        (src / "images" / split).mkdir(parents=True)
        (src / "labels" / split).mkdir(parents=True)
        (src / "images" / split / f"{split}1.JPG").write_bytes(png())
        (src / "labels" / split / f"{split}1.txt").write_text("1 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.3 0.1 0.3 0.3\n")
    (src / "data.yaml").write_text("path: /datasets/elsewhere\ntrain: images/train\nval: images/val\n"
                                   "names:\n  0: person\n  1: car\n")
    ds, report = import_dataset("auto", src, tmp_path / "ds")
    assert report.detected.startswith("yolo") and not report.problems
    # ids without the layout's folders (images/, then the split's): what an export imports back as
    assert {s.id: s.split for s in ds.samples} == {"train1": "train", "val1": "val"}
    objs = ds.samples[0].objects
    assert [o.label for o in objs] == ["car", "person"] and objs[1].polygon is not None


def test_darknet_obj_names_and_data(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "obj").mkdir(parents=True)
    for stem in ("a", "b"):
        (src / "obj" / f"{stem}.jpg").write_bytes(png())
        (src / "obj" / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (src / "obj.names").write_text("thing\n")
    (src / "train.txt").write_text("data/obj/a.jpg\n")
    (src / "valid.txt").write_text("data/obj/b.jpg\n")
    (src / "obj.data").write_text("classes = 1\ntrain = data/train.txt\nvalid = data/valid.txt\nnames = data/obj.names\n")
    ds, report = import_dataset("auto", src, tmp_path / "ds")
    assert report.detected.startswith("yolo") and not report.problems
    assert {s.id: s.split for s in ds.samples} == {"obj/a": "train", "obj/b": "val"} and ds.classes == ["thing"]


def test_export_read_by_supervision(tmp_path: Path) -> None:
    sv = pytest.importorskip("supervision")
    src = make_source(tmp_path / "src", {BOXES, SPLITS, EMPTY})
    export_dataset(src.root, "yolo", tmp_path / "out")
    total = 0
    for split in ("train", "val", "test"):
        theirs = sv.DetectionDataset.from_yolo(str(tmp_path / "out" / "images" / split),
                                               str(tmp_path / "out" / "labels" / split),
                                               str(tmp_path / "out" / "data.yaml"))
        assert theirs.classes == ["cat", "dog"]
        total += supervision_boxes(theirs, src)
    assert total == sum(len(s.objects) for s in src.samples)


def test_exif_frames_labelimg_raw_ultralytics_upright(tmp_path: Path) -> None:
    from pipeline.formats.common import AMBIGUOUS

    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "classes.txt").write_text("a\n")
    (flat / "r.jpg").write_bytes(_rotated_jpeg(60, 40, 6))
    (flat / "r.txt").write_text("0 0.25 0.25 0.1 0.1\n")  # raw frame: box 12..18 x 8..12
    ds, report = import_dataset("yolo", flat, tmp_path / "a")
    s = ds.samples[0]
    assert (s.width, s.height) == (40, 60) and s.meta["exif_frame"] == "assumed raw"
    assert s.objects[0].bbox == pytest.approx([28.0, 12.0, 32.0, 18.0])  # (x, y) -> (H - y, x)
    assert report.counts[AMBIGUOUS] == 1
    ul = tmp_path / "ul"
    (ul / "images" / "train").mkdir(parents=True)
    (ul / "labels" / "train").mkdir(parents=True)
    (ul / "images" / "train" / "r.jpg").write_bytes(_rotated_jpeg(60, 40, 6))
    (ul / "labels" / "train" / "r.txt").write_text("0 0.25 0.25 0.1 0.1\n")  # upright frame (40 x 60)
    (ul / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [a]\n")
    ds, _ = import_dataset("yolo", ul, tmp_path / "b")
    assert ds.samples[0].objects[0].bbox == pytest.approx([8.0, 12.0, 12.0, 18.0])


# --------------------------------------------------------------------------------------------
# Layouts: where the labels and images are, and no exit 0 with lost labels
# --------------------------------------------------------------------------------------------

VOC_NAMES = ["person", "bicycle", "car", "dog", "cat", "bird", "boat", "bottle", "bus", "chair", "cow",
             "diningtable", "horse", "motorbike", "pottedplant", "sheep", "sofa", "train", "tvmonitor", "aeroplane"]


def _images(folder: Path, stems: list[str], ext: str = ".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(stems):
        (folder / f"{stem}{ext}").write_bytes(png(color=(k * 30 % 256, 40, 90)))


def _labels(folder: Path, stems: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(stems):
        (folder / f"{stem}.txt").write_text(f"{k % 3} 0.5 0.5 0.2 0.2\n0 0.3 0.3 0.1 0.1\n")


def _counts(ds) -> tuple:
    splits: dict = {}
    for s in ds.samples:
        splits[s.split] = splits.get(s.split, 0) + 1
    return len(ds.samples), sum(len(s.objects) for s in ds.samples), ds.classes, splits


def _darknet(src: Path, stems: list[str]) -> None:
    """CVAT's darknet export with the images moved to a sibling images/ folder."""
    _labels(src / "obj_train_data", stems)
    _images(src / "images", stems)
    (src / "obj.names").write_text("\n".join(VOC_NAMES) + "\n")
    (src / "train.txt").write_text("".join(f"data/obj_train_data/{s}.jpg\n" for s in stems))
    (src / "obj.data").write_text("classes = 20\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")


def test_darknet_labels_with_images_in_a_sibling_folder(tmp_path: Path) -> None:
    stems = ["2007_000027", "2007_000032", "2007_000033"]
    _darknet(tmp_path / "src", stems)
    ds, report = import_dataset("auto", tmp_path / "src", tmp_path / "ds")
    assert report.detected.startswith("yolo") and not report.problems
    assert _counts(ds) == (3, 6, VOC_NAMES, {"train": 3})  # obj.names kept whole, in its order
    assert report.counts[yolo.BACKGROUND] == 0


def test_ultralytics_data_yaml_with_folders_list_files_and_lists(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for split, stems in (("train", ["t1", "t2"]), ("val", ["v1"]), ("test", ["x1"])):
        _images(src / "images" / split, stems)
        _labels(src / "labels" / split, stems)
    (src / "val.txt").write_text("./images/val/v1.jpg\n")  # a list file
    (src / "data.yaml").write_text("path: .\ntrain: images/train\nval: val.txt\ntest: [images/test]\n"
                                   "names: [person, bicycle, car]\n")
    ds, report = import_dataset("yolo", src, tmp_path / "ds")
    assert not report.problems
    assert _counts(ds) == (4, 8, ["person", "bicycle", "car"], {"train": 2, "val": 1, "test": 1})


def test_labels_folder_beside_images_folder(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _images(src / "images", ["a", "b"])
    _labels(src / "labels", ["a", "b"])
    (src / "labels" / "classes.txt").write_text("person\nbicycle\ncar\n")
    ds, report = import_dataset("yolo", src, tmp_path / "ds")
    assert not report.problems and _counts(ds) == (2, 4, ["person", "bicycle", "car"], {None: 2})


def test_images_option_pairs_by_relative_path_and_looks_nowhere_else(tmp_path: Path) -> None:
    src, media = tmp_path / "labels", tmp_path / "media"
    for split in ("train", "val"):
        _labels(src / split, ["a", "b"])
        _images(media / split, ["a", "b"])  # the same stems in both splits: paired by path
    _images(src, ["stray"])  # an image under SRC is not read with --images
    (src / "data.yaml").write_text("train: train\nval: val\nnames: [person, bicycle, car]\n")
    ds, report = import_dataset("yolo", src, tmp_path / "ds", images=media)
    assert not report.problems
    assert _counts(ds) == (4, 8, ["person", "bicycle", "car"], {"train": 2, "val": 2})
    assert sorted(s.source["image"] for s in ds.samples) == ["train/a.jpg", "train/b.jpg", "val/a.jpg", "val/b.jpg"]
    assert {s.source["file"] for s in ds.samples if s.source["image"] == "val/b.jpg"} == {"val/b.txt"}


def test_real_labelimg_sample_with_images_option(tmp_path: Path) -> None:
    folder = shared_data("labelimg-yolo-sample", "tests")
    ds, report = import_dataset("yolo", folder, tmp_path / "ds", images=folder)
    plain, _ = import_dataset("yolo", folder, tmp_path / "plain")
    assert _counts(ds) == _counts(plain) and sum(len(s.objects) for s in ds.samples) > 0


def test_labels_that_meet_no_image_are_an_error_not_background(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _labels(src / "obj_train_data", ["a", "b"])
    _images(src / "images", ["x", "y"])  # other names: nothing pairs
    (src / "obj.names").write_text("person\nbicycle\ncar\n")
    with pytest.raises(DataError, match=r"obj_train_data/a.txt: 2 label file\(s\) with objects matched none of the "
                                        r"2 images"):
        import_dataset("yolo", src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    from tests.helpers import invoke

    result = invoke("import", "yolo", src, "--out", tmp_path / "cli")
    assert result.exit_code == 2 and "matched none" in result.output


def test_class_list_with_only_empty_label_files_is_an_error(tmp_path: Path) -> None:
    src = _folder(tmp_path, {"a": "", "b": "\n"}, classes="person\ncar\n")
    with pytest.raises(DataError, match="classes.txt: a class list, but no object"):
        import_dataset("yolo", src, tmp_path / "ds")


def test_class_file_in_another_folder_is_not_ignored(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _images(src / "data", ["a"])
    _labels(src / "data", ["a"])
    (src / "meta").mkdir()
    (src / "meta" / "classes.txt").write_text("person\nbicycle\ncar\n")
    with pytest.raises(UsageError, match="data/a.txt: class names not found for this label folder.*meta/classes.txt"):
        import_dataset("yolo", src, tmp_path / "ds")


# --------------------------------------------------------------------------------------------
# Row shapes: segments, oriented boxes, pose
# --------------------------------------------------------------------------------------------


def test_obb_rows_are_rotated_boxes_kept_as_polygons(tmp_path: Path) -> None:
    # a 0.4 x 0.2 box turned 90 degrees about (0.5, 0.5) in a square image, then an axis-aligned one
    src = _folder(tmp_path, {"a": "0 0.6 0.3 0.6 0.7 0.4 0.7 0.4 0.3\n1 0.1 0.1 0.3 0.1 0.3 0.2 0.1 0.2\n"
                                  "1 0.1 0.1 0.5 0.2 0.3 0.6\n"})
    (src / "a.png").write_bytes(helpers.png(100, 100))
    ds, report = import_dataset("yolo", src, tmp_path / "ds")
    turned, straight, triangle = ds.samples[0].objects
    assert turned.polygon == [[[60.0, 30.0], [60.0, 70.0], [40.0, 70.0], [40.0, 30.0]]]
    assert turned.bbox == [40.0, 30.0, 60.0, 70.0]  # the enclosing box
    assert turned.attributes["rotation"] == pytest.approx(90.0)
    assert "rotation" not in straight.attributes and straight.polygon is not None
    assert "rotation" not in triangle.attributes
    assert report.counts[yolo.OBB] == 1


def test_pose_rows_with_kpt_shape_are_keypoints(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _images(src / "images" / "train", ["p"])
    (src / "labels" / "train").mkdir(parents=True)
    (src / "labels" / "train" / "p.txt").write_text("0 0.5 0.5 0.5 0.5 0.25 0.5 2 0.75 0.5 1 0 0 0\n")
    (src / "data.yaml").write_text("train: images/train\nval: images/train\nkpt_shape: [3, 3]\nnames: [person]\n")
    ds, report = import_dataset("yolo", src, tmp_path / "ds")
    (obj,) = ds.samples[0].objects
    assert obj.bbox == [25.0, 12.5, 75.0, 37.5]  # a 100x50 image
    assert obj.keypoints == [[25.0, 25.0, 2.0], [75.0, 25.0, 1.0], [0.0, 0.0, 0.0]]
    (src / "data.yaml").write_text("train: images/train\nval: images/train\nkpt_shape: [2, 2]\nnames: [person]\n")
    (src / "labels" / "train" / "p.txt").write_text("0 0.5 0.5 0.5 0.5 0.25 0.5 0 0\n")
    ds, _ = import_dataset("yolo", src, tmp_path / "ds2")
    assert ds.samples[0].objects[0].keypoints == [[25.0, 25.0, 2.0], [0.0, 0.0, 0.0]]  # 2 values: visible unless 0 0


@pytest.mark.parametrize(("line", "shape", "match"), [
    ("0 0.5 0.5 0.2 0.2 0.1", (3, 3), r"unexpected field count 6.*or 14 \(a pose row, kpt_shape \[3, 3\]\)"),
    ("0 0.5 0.5 0.2 0.2 0.1 0.1 7", (1, 3), "keypoint 0 visibility: expected 0, 1 or 2, got 7"),
])
def test_pose_row_errors(line: str, shape: tuple, match: str) -> None:
    with pytest.raises(DataError, match=match):
        yolo._parse_line(line, "p.txt", 1, shape)


def test_bad_kpt_shape_names_the_field(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _images(src / "images", ["p"])
    _labels(src / "labels", ["p"])
    (src / "data.yaml").write_text("train: images\nkpt_shape: [17]\nnames: [a, b, c]\n")
    with pytest.raises(DataError, match="data.yaml: kpt_shape: expected"):
        import_dataset("yolo", src, tmp_path / "ds")


_FIELD = st.one_of(st.sampled_from(["0", "1", "0.5", "1.5", "-0.1", "nan", "inf", "1e309", "2", "x", "", "0x1"]),
                   st.floats(allow_nan=True).map(repr), st.integers(-3, 30).map(str))


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(_FIELD, max_size=20), shape=st.one_of(st.none(), st.tuples(st.integers(1, 4),
                                                                                 st.sampled_from([2, 3]))))
def test_parse_line_fuzz_returns_a_row_or_a_data_error(fields: list[str], shape) -> None:
    try:
        row = yolo._parse_line(" ".join(fields), "f.txt", 1, shape)
    except DataError as err:
        assert str(err).startswith("f.txt:1")
        return
    if row is None:
        assert not " ".join(fields).split()
        return
    assert row.class_id >= 0 and (row.box is not None or row.points is not None)
    if row.keypoints is not None:
        assert shape is not None and len(row.keypoints) == shape[0]
        assert all(k[2] in (0.0, 1.0, 2.0) for k in row.keypoints)
        box, ring = yolo.row_geometry(row, 100, 50, clip=True)
        assert ring is None and all(0 <= v <= 100 for v in box)


def test_an_unlabelled_image_never_takes_another_images_labels(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _images(src / "a_background", ["x"])  # sorts first, no label file of its own
    _images(src / "b", ["x"])
    _labels(src / "b", ["x"])
    (src / "classes.txt").write_text("person\nbicycle\ncar\n")
    ds, report = import_dataset("yolo", src, tmp_path / "ds")
    objects = {s.id: len(s.objects) for s in ds.samples}
    assert objects == {"a_background/x": 0, "b/x": 2} and not report.problems


# -- class ids kept: YOLO -> pipeline -> YOLO writes the same names at the same ids -------------------

VOC_BY_FREQUENCY = ["person", "car", "chair", "bottle", "pottedplant", "bird", "dog", "sofa", "bicycle", "horse",
                    "boat", "motorbike", "cat", "tvmonitor", "cow", "sheep", "aeroplane", "train", "diningtable",
                    "bus"]  # a darknet obj.names not in alphabetical order: person is id 0 (alphabetical: 14)


def _names_after_round_trip(src: Path, tmp_path: Path) -> tuple[dict, dict]:
    """The data.yaml names of an export of `src`'s import, and of an export of that export's import."""
    import yaml

    ds, _ = import_dataset("yolo", src, tmp_path / "ds1")
    export_dataset(ds.root, "yolo", tmp_path / "out1")
    again, _ = import_dataset("yolo", tmp_path / "out1", tmp_path / "ds2")
    assert again.classes == ds.classes and again.info.class_ids == ds.info.class_ids
    export_dataset(again.root, "yolo", tmp_path / "out2")
    first = (tmp_path / "out1" / "data.yaml").read_text(encoding="utf-8")
    assert (tmp_path / "out2" / "data.yaml").read_text(encoding="utf-8") == first  # byte for byte
    return yaml.safe_load(first)["names"], ds.info.class_ids


@pytest.mark.parametrize(
    ("files", "names"),
    [
        # darknet obj.names in its own order: person stays 0, every name at its line
        ({"obj.names": "\n".join(VOC_BY_FREQUENCY) + "\n"}, dict(enumerate(VOC_BY_FREQUENCY))),
        # labelImg classes.txt, reverse alphabetical, unused classes kept
        ({"classes.txt": "zebra\nperson\napple\n"}, {0: "zebra", 1: "person", 2: "apple"}),
        # a blank line inside classes.txt keeps its id unused
        ({"classes.txt": "person\n\ncar\n"}, {0: "person", 2: "car"}),
        # Ultralytics names as {id: name} with gaps and in no order
        ({"data.yaml": "train: .\nval: .\nnames:\n  7: car\n  0: person\n  3: dog\n"},
         {0: "person", 3: "dog", 7: "car"}),
        # Ultralytics names as a list
        ({"data.yaml": "train: .\nval: .\nnames: [truck, person, car]\n"}, {0: "truck", 1: "person", 2: "car"}),
    ],
)
def test_class_names_and_ids_survive_a_round_trip(tmp_path: Path, files: dict, names: dict) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text, encoding="utf-8")
    person = next(i for i, n in names.items() if n == "person")
    (src / "a.png").write_bytes(png())
    (src / "a.txt").write_text(f"{person} 0.5 0.5 0.2 0.2\n")
    (src / "b.png").write_bytes(png())
    (src / "b.txt").write_text(f"{max(names)} 0.4 0.4 0.2 0.2\n")
    written, ids = _names_after_round_trip(src, tmp_path)
    assert written == names
    assert ids == {n: i for i, n in names.items()}
    ds = load_dataset(tmp_path / "ds1")
    assert ds.classes == [names[i] for i in sorted(names)]  # the source's order, not alphabetical
    lines = sorted((tmp_path / "out1" / "labels").rglob("*.txt"))
    assert {ln.read_text().split()[0] for ln in lines} == {str(person), str(max(names))}


def test_ids_without_a_class_file_keep_their_numbers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png())
    (src / "a.txt").write_text("10 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n")
    ds, report = import_dataset("yolo", src, tmp_path / "ds")
    assert ds.classes == ["2", "10"] and ds.info.class_ids == {"2": 2, "10": 10}
    _, out = export_dataset(ds.root, "yolo", tmp_path / "out")
    assert any("not 0..N-1" in w for w in out.warnings)  # Ultralytics training wants 0..N-1


def test_classes_file_overrides_the_source_ids(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "classes.txt").write_text("person\ncar\n")
    (src / "a.png").write_bytes(png())
    (src / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (tmp_path / "mine.txt").write_text("car\nperson\n")
    ds, _ = import_dataset("yolo", src, tmp_path / "ds", classes_file=tmp_path / "mine.txt")
    assert ds.classes == ["car", "person"] and ds.info.class_ids is None  # ids are the file's positions
    assert ds.samples[0].objects[0].label == "car"


def test_ids_positions_writes_0_to_n(tmp_path: Path) -> None:
    import yaml

    src = tmp_path / "src"
    src.mkdir()
    (src / "data.yaml").write_text("train: .\nval: .\nnames:\n  3: dog\n  7: car\n")
    (src / "a.png").write_bytes(png())
    (src / "a.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    ds, _ = import_dataset("yolo", src, tmp_path / "ds")
    _, report = export_dataset(ds.root, "yolo", tmp_path / "out", options={"ids": "positions"})
    assert yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())["names"] == {0: "dog", 1: "car"}
    assert next((tmp_path / "out" / "labels").rglob("*.txt")).read_text().split()[0] == "1"
    assert not report.warnings
    _, report = export_dataset(ds.root, "yolo", tmp_path / "kept")
    assert any("--ids positions" in w for w in report.warnings)

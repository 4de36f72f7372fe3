"""YOLO txt: the shared contract, the real labelImg sample, line parsing, --on-invalid, class files,
Ultralytics and darknet layouts, unpaired files, and supervision reading our export."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.core.errors import DataError
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
    assert {s.id: s.split for s in ds.samples} == {"images/train/train1": "train", "images/val/val1": "val"}
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

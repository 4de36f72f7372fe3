"""Pascal VOC: the shared contract, the real raccoon labelImg set, labelme's VOC export, bad input,
EXIF frames and supervision reading our export."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.errors import DataError
from pipeline.formats import voc
from pipeline.formats.ingest import export_dataset, import_dataset
from tests.formats.contract import (
    BOXES,
    EMPTY,
    POLYGONS,
    SPLITS,
    FormatContract,
    make_source,
    supervision_boxes,
)
from tests.helpers import png, shared_data


def xml(filename: str, objects: str, size: str = "<size><width>64</width><height>48</height><depth>3</depth></size>",
        path: str | None = None) -> str:
    return (f"<annotation><folder>images</folder><filename>{filename}</filename>"
            f"<path>{path or '/home/someone/' + filename}</path>{size}{objects}</annotation>")


def obj(name: str, box: tuple, extra: str = "") -> str:
    b = "".join(f"<{t}>{v}</{t}>" for t, v in zip(voc.BOX_TAGS, box, strict=True))
    return f"<object><name>{name}</name>{extra}<bndbox>{b}</bndbox></object>"


class TestVocContract(FormatContract):
    FORMAT = "voc"
    CAN = {BOXES, POLYGONS, SPLITS, EMPTY}
    OTHERS = ("yolo",)  # every pair runs in test_round_trips.py


    def golden(self, folder: Path) -> dict:
        (folder / "JPEGImages").mkdir()
        (folder / "Annotations").mkdir()
        (folder / "JPEGImages" / "ünï.PNG").write_bytes(png())
        (folder / "Annotations" / "ünï.xml").write_text(xml("ünï.png", obj("cat", (2.5, 3, 30.25, 40))
                                                           + obj("dog", (1, 1, 64, 48), "<difficult>1</difficult>")),
                                                       encoding="utf-8")
        (folder / "JPEGImages" / "b.jpg").write_bytes(png(30, 20))
        (folder / "Annotations" / "b.xml").write_text(xml("b.jpg", "", size="<size></size>"))
        return {"ünï": [("cat", [1.5, 2.0, 30.25, 40.0]), ("dog", [0.0, 0.0, 64.0, 48.0])], "b": []}


def test_raccoon_real_labelimg_files(tmp_path: Path) -> None:
    src = shared_data("raccoon-voc")
    ds, report = import_dataset("auto", src, tmp_path / "ds")
    assert report.detected.startswith("voc")
    assert len(ds.samples) == 200 and not report.problems
    assert sum(len(s.objects) for s in ds.samples) == 217 and ds.classes == ["raccoon"]
    s = next(s for s in ds.samples if s.id == "raccoon-1")  # <path> is /Users/datitran/Desktop/...
    assert s.objects[0].bbox == [80.0, 87.0, 522.0, 408.0]  # <xmin>81 <ymin>88: 1-based first pixel
    assert (s.width, s.height) == (650, 417)
    assert s.objects[0].attributes == {"difficult": 0, "truncated": 0, "pose": "Unspecified"}
    # grayscale JPEGs with <depth>1</depth> are kept byte for byte
    gray = [s for s in ds.samples if Image.open(ds.image_path(s)).mode == "L"]
    assert gray


def test_labelme_voc_export_matches_labelme_json(tmp_path: Path) -> None:
    """labelme's own VOC export writes 0-based edges; recognised by its class_names.txt, it gives the JSON's boxes."""
    base = shared_data("labelme-examples", "bbox_detection")
    a, report = import_dataset("voc", base / "data_dataset_voc", tmp_path / "a")
    assert report.counts["VOC boxes read as 0-based edges (class_names.txt: a labelme2voc export)"] == 3
    forced, _ = import_dataset("voc", base / "data_dataset_voc", tmp_path / "f", extra={"voc_one_based": True})
    assert forced.samples[0].objects[0].bbox[0] == a.samples[0].objects[0].bbox[0] - 1
    b, _ = import_dataset("labelme", base / "data_annotated", tmp_path / "b")
    boxes_a = {Path(s.id).name: sorted(o.bbox for o in s.objects) for s in a.samples}
    boxes_b = {Path(s.id).name: sorted(o.bbox for o in s.objects if o.bbox) for s in b.samples}
    assert boxes_a == boxes_b and sum(len(v) for v in boxes_a.values()) == 9


def test_one_based_option_converts_in_one_place() -> None:
    assert voc.to_xyxy(1, 1, 10, 20, one_based=True) == [0, 0, 10, 20]
    assert voc.from_xyxy(voc.to_xyxy(5, 6, 7, 8, True), True) == [5, 6, 7, 8]
    assert voc.to_xyxy(5, 6, 7, 8, one_based=False) == [5, 6, 7, 8]
    assert voc.to_xyxy(1, 1, 10, 20) == [0, 0, 10, 20]  # the devkit convention is the default


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<annotation><object>", "not well-formed XML"),  # truncated file
        ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x">]><annotation>&e;</annotation>', "refused"),  # entity
        ('<!DOCTYPE annotation SYSTEM "voc.dtd"><annotation/>', "refused"),  # DTD
        (xml("a.png", obj("cat", ("NaN", 1, 2, 3))), r"object\[0\].bndbox.xmin: expected a finite number"),
        (xml("a.png", obj("cat", (30, 1, 2, 3))), r"object\[0\].bndbox: inverted box"),
        (xml("a.png", obj("cat", ("", 1, 2, 3))), r"bndbox.xmin: missing value"),
        (xml("a.png", obj("cat", ("1,5", 1, 2, 3))), r"bndbox.xmin: expected a number, got '1,5'"),
        (xml("a.png", "<object><name>cat</name></object>"), r"object\[0\].bndbox: object without a box"),
        (xml("a.png", "<object><bndbox/></object>"), r"object\[0\].name"),
    ],
)
def test_parse_errors_name_file_and_field(text: str, match: str) -> None:
    with pytest.raises(DataError, match=match) as info:
        voc.parse_xml(text.encode(), "ann/a.xml")
    assert str(info.value).startswith("ann/a.xml")


def test_bad_files_reported_rest_imported_or_stop_at_first(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"ok{i}.png").write_bytes(png())
        (src / f"ok{i}.xml").write_text(xml(f"ok{i}.png", obj("cat", (1, 2, 3, 4))))
    (src / "bad.png").write_bytes(png())
    (src / "bad.xml").write_text(xml("bad.png", obj("cat", (9, 2, 3, 4))))
    (src / "noimage.xml").write_text(xml("missing.png", obj("cat", (1, 2, 3, 4))))
    (src / "orphan.png").write_bytes(png())
    (src / "other.xml").write_text("<config><a>1</a></config>")
    ds, report = import_dataset("voc", src, tmp_path / "ds")
    assert len(ds.samples) == 3
    assert sorted(e.where for e in report.problems) == ["bad.xml", "noimage.xml"]
    assert "image not found" in str(next(e for e in report.problems if e.where == "noimage.xml"))
    assert report.counts["images without an annotation file (left out)"] == 1  # orphan.png (bad.png has its XML)
    assert report.skipped[voc.NOT_VOC] == 1
    with pytest.raises(DataError, match="bad.xml"):
        import_dataset("voc", src, tmp_path / "strict", on_error="error")
    assert not (tmp_path / "strict").exists()


def test_outside_boxes_on_invalid(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png())
    (src / "a.xml").write_text(xml("a.png", obj("cat", (11, 11, 90, 40)) + obj("cat", (0.5, 1, 64.5, 48))))
    (src / "b.png").write_bytes(png())
    (src / "b.xml").write_text(xml("b.png", ""))
    _, report = import_dataset("voc", src, tmp_path / "e")
    assert "a.xml: object[0].bndbox: box outside the image" in str(report.problems[0])
    ds, report = import_dataset("voc", src, tmp_path / "c", on_invalid="clip")
    assert [o.bbox for o in ds.samples[0].objects] == [[10, 10, 64, 40], [0, 0, 64, 48]]
    ds, report = import_dataset("voc", src, tmp_path / "s", on_invalid="skip")
    assert len(ds.samples[0].objects) == 1 and report.counts[
        "objects outside the image, left out (--on-invalid skip)"] == 1


def test_class_list_and_map(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png())
    (src / "a.xml").write_text(xml("a.png", obj("raccon", (1, 2, 3, 4)) + obj("zebra", (1, 2, 3, 4))))
    (src / "b.png").write_bytes(png())
    (src / "b.xml").write_text(xml("b.png", obj("raccon", (1, 2, 3, 4))))
    classes = tmp_path / "classes.txt"
    classes.write_text("raccoon\n")
    _, report = import_dataset("voc", src, tmp_path / "x", classes_file=classes, class_map={"raccon": "raccoon"})
    assert "zebra" in str(report.problems[0]) and "a.xml" in str(report.problems[0])
    with pytest.raises(Exception, match="zebra"):
        import_dataset("voc", src, tmp_path / "y", classes_file=classes, class_map={"raccon": "raccoon"},
                       on_error="error")
    ds, _ = import_dataset("voc", src, tmp_path / "z", class_map={"raccon": "raccoon"})
    assert ds.classes == ["raccoon", "zebra"]


def _rotated_jpeg(w: int, h: int, orientation: int) -> bytes:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[2:6, 30:40] = 255  # a bright block at x 30..40, y 2..6 of the raw pixels
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def test_exif_rotated_raw_frame_labelimg(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "r.jpg").write_bytes(_rotated_jpeg(60, 40, 6))
    (src / "r.xml").write_text(xml("r.jpg", obj("cat", (31, 3, 40, 6)),
                                   size="<size><width>60</width><height>40</height></size>"))
    ds, report = import_dataset("voc", src, tmp_path / "ds")
    s = ds.samples[0]
    assert (s.width, s.height) == (40, 60) and s.meta["exif_orientation"] == 6 and s.image.endswith(".png")
    arr = np.asarray(Image.open(ds.image_path(s)).convert("L"))
    x1, y1, x2, y2 = (int(v) for v in s.objects[0].bbox)
    assert arr[y1:y2, x1:x2].mean() > 200  # the box still covers the bright block in the stored image
    assert report.counts["EXIF-rotated images stored upright"] == 1


def test_export_read_by_supervision(tmp_path: Path) -> None:
    sv = pytest.importorskip("supervision")
    src = make_source(tmp_path / "src", {BOXES, POLYGONS, SPLITS, EMPTY})
    export_dataset(src.root, "voc", tmp_path / "out")
    theirs = sv.DetectionDataset.from_pascal_voc(str(tmp_path / "out" / "JPEGImages"),
                                                 str(tmp_path / "out" / "Annotations"))
    assert sorted(theirs.classes) == ["cat", "dog"]
    assert supervision_boxes(theirs, src) == sum(len(s.objects) for s in src.samples)


def test_exif_upright_declared_and_square_ambiguous(tmp_path: Path) -> None:
    from pipeline.formats.common import AMBIGUOUS

    src = tmp_path / "src"
    src.mkdir()
    (src / "up.jpg").write_bytes(_rotated_jpeg(60, 40, 6))  # declared 40 x 60: labelled upright (CVAT)
    (src / "up.xml").write_text(xml("up.jpg", obj("cat", (3, 31, 6, 40)),
                                    size="<size><width>40</width><height>60</height></size>"))
    (src / "sq.jpg").write_bytes(_rotated_jpeg(50, 50, 8))  # square: the size cannot tell
    (src / "sq.xml").write_text(xml("sq.jpg", obj("cat", (1, 1, 10, 10)),
                                    size="<size><width>50</width><height>50</height></size>"))
    ds, report = import_dataset("voc", src, tmp_path / "ds")
    up = next(s for s in ds.samples if s.id == "up")
    assert up.objects[0].bbox == [2.0, 30.0, 6.0, 40.0] and "exif_frame" not in up.meta
    sq = next(s for s in ds.samples if s.id == "sq")
    assert sq.meta["exif_frame"] == "assumed raw" and report.counts[AMBIGUOUS] == 1


def test_cli_voc_zero_based_and_auto(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import cli
    from pipeline.core.dataset import load_dataset

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(png())
    (src / "a.xml").write_text(xml("a.png", obj("cat", (0, 0, 10, 12))))
    result = CliRunner().invoke(cli, ["import", "auto", str(src), "--out", str(tmp_path / "ds"), "--voc-zero-based"])
    assert result.exit_code == 0, result.output
    assert "voc" in result.output and load_dataset(tmp_path / "ds").samples[0].objects[0].bbox == [0, 0, 10, 12]
    (src / "labelmap.txt").write_text("# label:color_rgb:parts:actions\ncat:1,2,3::\n")  # a CVAT export
    result = CliRunner().invoke(cli, ["import", "voc", str(src), "--out", str(tmp_path / "one"), "--voc-one-based"])
    assert result.exit_code == 0 and load_dataset(tmp_path / "one").samples[0].objects[0].bbox == [0, 0, 10, 12]
    (src / "a.xml").write_text(xml("a.png", obj("cat", (1, 1, 10, 12))))
    _, report = import_dataset("voc", src, tmp_path / "auto")
    assert load_dataset(tmp_path / "auto").samples[0].objects[0].bbox == [1, 1, 10, 12]
    assert any("datumaro/CVAT" in k for k in report.counts)
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "ds"), "--format", "coco", "--out", str(tmp_path / "c")])
    assert result.exit_code == 0 and (tmp_path / "c" / "_annotations.coco.json").is_file()


def test_splits_from_folders_without_imagesets(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for folder in ("train", "valid"):
        (src / folder).mkdir(parents=True)
        (src / folder / f"{folder}.jpg").write_bytes(png())
        (src / folder / f"{folder}.xml").write_text(xml(f"{folder}.jpg", obj("cat", (1, 2, 3, 4))))
    ds, _ = import_dataset("voc", src, tmp_path / "ds")
    assert {s.id: s.split for s in ds.samples} == {"train/train": "train", "valid/valid": "val"}


def test_polygons_as_supervision_writes_them() -> None:
    text = xml("a.png", "<object><name>cat</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>10</xmax><ymax>8</ymax>"
                        "</bndbox><polygon><x1>2</x1><y1>2</y1><x2>10</x2><y2>2</y2><x3>10</x3><y3>8.5</y3></polygon>"
                        "</object>")
    parsed = voc.parse_xml(text.encode(), "a.xml")
    (name, box, _attrs, rings), = parsed.objects
    assert voc.polygon_from_voc(rings[0]) == [[1, 1], [9, 1], [9, 7.5]]  # vertices are points: all shift by one
    with pytest.raises(DataError, match=r"object\[0\].polygon\[0\]: expected x, y pairs"):
        voc.parse_xml(text.replace("<y3>8.5</y3>", "").encode(), "a.xml")


@pytest.mark.parametrize(
    ("data", "plain"),
    [
        (b"<annotation><!-- <!DOCTYPE x> in a comment --></annotation>", True),
        (b"<annotation><![CDATA[<!ENTITY e 'x'>]]></annotation>", True),
        (b'<?xml version="1.0"?><!DOCTYPE annotation><annotation/>', False),
        ('<?xml version="1.0" encoding="utf-16"?><annotation/>'.encode("utf-16"), False),  # BOM: defusedxml
        (b"<annotation><!-- never closed </annotation>", False),
    ],
)
def test_declaration_free_documents_take_the_c_parser(data: bytes, plain: bool) -> None:
    assert voc._plain_xml(data) is plain


def test_utf16_document_with_entities_is_refused() -> None:
    text = '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE a [<!ENTITY e "x">]><annotation>&e;</annotation>'
    with pytest.raises(DataError, match="refused"):
        voc.parse_xml(text.encode("utf-16"), "a.xml")


# --------------------------------------------------------------------------------------------
# Layouts: where the images are
# --------------------------------------------------------------------------------------------


def test_devkit_layout_with_imagesets(tmp_path: Path) -> None:
    voc_root = tmp_path / "VOCdevkit" / "VOC2012"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc_root / d).mkdir(parents=True)
    stems = ["2007_000027", "2007_000032", "2007_000033", "2007_000039"]
    for k, stem in enumerate(stems):
        (voc_root / "JPEGImages" / f"{stem}.jpg").write_bytes(png(color=(k * 50, 10, 10)))
        (voc_root / "Annotations" / f"{stem}.xml").write_text(
            xml(f"{stem}.jpg", obj("person", (2, 3, 20, 30)) + (obj("dog", (5, 5, 9, 9)) if k % 2 else "")))
    (voc_root / "ImageSets" / "Main" / "train.txt").write_text("2007_000027\n2007_000032\n2007_000033\n")
    (voc_root / "ImageSets" / "Main" / "val.txt").write_text("2007_000039\n")
    (voc_root / "ImageSets" / "Main" / "dog_train.txt").write_text("2007_000027 -1\n")  # per-class lists
    ds, report = import_dataset("voc", tmp_path / "VOCdevkit", tmp_path / "ds")
    assert not report.problems
    assert len(ds.samples) == 4 and sum(len(s.objects) for s in ds.samples) == 6
    assert ds.classes == ["dog", "person"]
    assert {s.id.rsplit("/", 1)[-1]: s.split for s in ds.samples} == {
        "2007_000027": "train", "2007_000032": "train", "2007_000033": "train", "2007_000039": "val"}


def test_labels_and_images_in_sibling_folders(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "labels").mkdir(parents=True)
    (src / "images").mkdir()
    for stem in ("a", "b"):
        (src / "images" / f"{stem}.jpg").write_bytes(png())
        (src / "labels" / f"{stem}.xml").write_text(xml(f"{stem}.jpg", obj("cat", (1, 2, 30, 40))))
    ds, report = import_dataset("voc", src, tmp_path / "ds")
    assert not report.problems and len(ds.samples) == 2
    assert sum(len(s.objects) for s in ds.samples) == 2


def test_images_option_and_real_raccoon_folders(tmp_path: Path) -> None:
    folder = shared_data("raccoon-voc")
    ds, report = import_dataset("voc", folder / "annotations", tmp_path / "ds", images=folder / "images")
    assert len(ds.samples) == 200 and sum(len(s.objects) for s in ds.samples) == 217
    assert ds.classes == ["raccoon"] and not report.problems
    assert ds.samples[0].source["image"].startswith("raccoon-")  # relative to --images


def test_images_option_looks_nowhere_else(tmp_path: Path) -> None:
    src, media = tmp_path / "xml", tmp_path / "media"
    src.mkdir()
    media.mkdir()
    (src / "a.jpg").write_bytes(png())  # beside the XML, but --images names another folder
    (src / "a.xml").write_text(xml("a.jpg", obj("cat", (1, 2, 30, 40))))
    (src / "b.xml").write_text(xml("b.jpg", obj("cat", (1, 2, 30, 40))))
    (media / "deep").mkdir()
    (media / "deep" / "b.jpg").write_bytes(png())
    ds, report = import_dataset("voc", src, tmp_path / "ds", images=media)
    assert [s.source["image"] for s in ds.samples] == ["deep/b.jpg"]
    assert [p.where for p in report.problems] == ["a.xml"]

"""What the formats share: image lookup, header probing, EXIF frame decisions."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from pipeline.core.dataset import Obj
from pipeline.core.errors import DataError
from pipeline.formats.common import ImageFinder, decide_frame, hint_name, probe_bytes
from tests.helpers import jpeg as jpeg_bytes
from tests.helpers import shared_data


@pytest.mark.parametrize(
    ("hint", "name"),
    [
        ("/Users/datitran/Desktop/raccoon/images/raccoon-1.jpg", "raccoon-1.jpg"),  # another machine, POSIX
        ("C:\\Users\\me\\Pictures\\IMG_0001.JPG", "IMG_0001.JPG"),  # another machine, Windows
        ("photo.png", "photo.png"),
        ("images/ünïcödé.jpg", "ünïcödé.jpg"),
    ],
)
def test_hint_name(hint: str, name: str) -> None:
    assert hint_name(hint) == name


def test_finder_beside_under_images_case_insensitive_and_never_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "JPEGImages" / "A.JPG").write_bytes(b"x")
    (root / "Annotations" / "b.png").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    ann = root / "Annotations" / "a.xml"
    f = ImageFinder(root)
    assert f.find(ann, ["/elsewhere/a.jpg"]) == str(root / "JPEGImages" / "A.JPG")
    assert f.find(ann, ["b.png"]) == str(root / "Annotations" / "b.png")
    assert f.find(ann, [None, "nothing.jpg"], stem="a") == str(root / "JPEGImages" / "A.JPG")
    assert f.find(ann, ["../../secret.jpg"]) is None  # relative escape refused, name not found inside
    assert f.find(ann, [str(tmp_path / "secret.jpg")]) is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_probe_reads_jpeg_header_like_pillow(orientation: int) -> None:
    data = jpeg_bytes(7, 5, orientation)
    p = probe_bytes(data, "x.jpg")
    assert (p.fmt, p.width, p.height, p.orientation) == ("jpeg", 7, 5, orientation)


def test_probe_refuses_truncated_images() -> None:
    with pytest.raises(DataError, match="x.jpg"):
        probe_bytes(jpeg_bytes(64, 64)[:300], "x.jpg")


def test_probe_real_grayscale_jpegs_agree_with_pillow() -> None:
    folder = shared_data("raccoon-voc", "images")
    for name in sorted(os.listdir(folder))[:25]:
        data = (folder / name).read_bytes()
        p = probe_bytes(data, name)
        img = Image.open(io.BytesIO(data))
        assert (p.width, p.height) == img.size


@pytest.mark.parametrize("orientation", range(2, 9))
def test_frame_points_follow_pillow_exif_transpose(orientation: int) -> None:
    w, h = 7, 4
    arr = np.zeros((h, w), np.uint8)
    arr[1, 5] = 255  # the pixel [5, 6) x [1, 2) in the raw frame
    img = Image.fromarray(arr)
    img.getexif()[0x0112] = orientation
    exif = img.getexif()
    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif.tobytes())
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))))
    ys, xs = np.nonzero(upright)
    frame = decide_frame((w, h), orientation, (w, h) if orientation < 5 else None, default="raw")
    assert frame.rotate and frame.size == (upright.shape[1], upright.shape[0])
    box = frame.bbox([5, 1, 6, 2])
    assert box == [xs[0], ys[0], xs[0] + 1, ys[0] + 1]
    o = Obj("a", bbox=[5, 1, 6, 2], polygon=[[[5, 1], [6, 2], [5, 2]]], keypoints=[[5.5, 1.5, 2]])
    moved = frame.obj(o)
    assert o.bbox == [5, 1, 6, 2] and moved.keypoints[0][2] == 2  # input kept, visibility kept


@pytest.mark.parametrize(
    ("raw", "orientation", "declared", "rotate", "ambiguous", "mismatch"),
    [
        ((60, 40), 1, (60, 40), False, False, False),  # upright photo
        ((60, 40), 1, (40, 60), False, False, True),  # declared size that is not the image
        ((60, 40), 6, (60, 40), True, False, False),  # labelImg: raw frame declared
        ((60, 40), 6, (40, 60), False, False, False),  # labelme/CVAT: upright frame declared
        ((50, 50), 6, (50, 50), True, True, False),  # square: cannot tell, default raw
        ((60, 40), 3, (60, 40), True, True, False),  # 180 degrees keeps the size: cannot tell
        ((60, 40), 8, None, True, True, False),  # nothing declared (YOLO): default
        ((60, 40), 8, (10, 10), True, False, True),  # matches neither
    ],
)
def test_decide_frame(raw, orientation, declared, rotate, ambiguous, mismatch) -> None:
    f = decide_frame(raw, orientation, declared, default="raw")
    assert (f.rotate, f.ambiguous, f.mismatch) == (rotate, ambiguous, mismatch)
    again = decide_frame(tuple(raw), orientation, declared, default="raw")  # (decided once per size)
    assert again == f
    by_list = decide_frame(list(raw), orientation, declared, default="raw")  # (not remembered: a list)
    assert (by_list.rotate, by_list.ambiguous, by_list.mismatch) == (rotate, ambiguous, mismatch)


def test_decide_frame_keeps_the_size_as_given() -> None:
    # A decision remembered for (60, 40) is not handed out for (60.0, 40.0), which compares equal.
    assert type(decide_frame((60, 40), 1, None).size[0]) is int
    assert type(decide_frame((60.0, 40.0), 1, None).size[0]) is float
    assert decide_frame((60, 40), 6, (40, 60), default="upright").rotate is False
    assert decide_frame((60, 40), 6, (40, 60), default="raw").rotate is False
    assert decide_frame((60, 40), 6, None, default="upright").rotate is False
    assert decide_frame((60, 40), 6, None, default="raw").rotate is True


def _photo_jpeg() -> bytes:
    yy, xx = np.mgrid[0:48, 0:64]
    buf = io.BytesIO()
    Image.fromarray(np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype("uint8")).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _voc_pair(src: Path, stem: str, data: bytes) -> None:
    (src / f"{stem}.jpg").write_bytes(data)
    box = "<bndbox><xmin>2</xmin><ymin>3</ymin><xmax>30</xmax><ymax>40</ymax></bndbox>"
    (src / f"{stem}.xml").write_text(f"<annotation><filename>{stem}.jpg</filename><size><width>64</width>"
                                     f"<height>48</height><depth>3</depth></size><object><name>cat</name>{box}"
                                     "</object></annotation>")


def test_truncated_but_decodable_image_is_kept_with_a_warning(tmp_path: Path) -> None:
    from pipeline.check import check_dataset
    from pipeline.formats.common import TRUNCATED
    from pipeline.formats.ingest import import_dataset

    src = tmp_path / "src"
    src.mkdir()
    data = _photo_jpeg()
    _voc_pair(src, "whole", data)
    _voc_pair(src, "noeoi", data[:-2])  # cut before its end marker: every row decodes
    _voc_pair(src, "header", data[:200])  # cut in its header: nothing decodes
    ds, report = import_dataset("voc", src, tmp_path / "ds")
    assert sorted(s.id for s in ds.samples) == ["noeoi", "whole"]
    kept = next(s for s in ds.samples if s.id == "noeoi")
    assert kept.meta["truncated"] is True and kept.image.endswith(".png") and len(kept.objects) == 1
    assert report.counts[TRUNCATED] == 1
    assert any("noeoi.jpg" in w and "truncated" in w for w in report.warnings)
    assert [e.where for e in report.problems] == ["header.jpg"]
    with Image.open(ds.image_path(kept)) as stored:
        stored.load()  # restored: decodes without Pillow's truncated-image switch
        assert stored.size == (64, 48)
    found = check_dataset(ds).by_code()
    assert [f.sample for f in found["truncated-image"]] == ["noeoi"]
    with pytest.raises(DataError, match="header"):
        import_dataset("voc", src, tmp_path / "strict", on_error="error")


def test_export_names_keep_the_source_stem_where_it_is_unique() -> None:
    from pipeline.core.dataset import Sample
    from pipeline.formats.common import ExportNames

    samples = [Sample(id=i) for i in ("obj_train_data/2007_000027", "train/a", "val/a", "val/A", "x/b", "b")]
    names = ExportNames(samples)
    stems = [names.stem(s) for s in samples]
    # alone: the file's own stem; shared (case-insensitively): the whole id, then a hash of it
    assert stems[0] == "2007_000027"
    assert stems[1:3] == ["train__a", "val__a"] and stems[3].startswith("val__A-") and len(stems[3]) == 15
    assert stems[4:] == ["x__b", "b"]
    assert ExportNames().stem(samples[0]) == "obj_train_data__2007_000027"  # without the samples: whole ids
    assert ExportNames(samples).stem(samples[0], flat=False) == "obj_train_data/2007_000027"


def test_export_names_count_the_folders_a_flat_name_drops() -> None:
    from pipeline.core.dataset import Sample
    from pipeline.formats.base import ExportReport
    from pipeline.formats.common import ExportNames

    samples = [Sample(id=i) for i in ("sub/a", "x/y/b", "c", "d/c")]
    report = ExportReport()
    names = ExportNames(samples, report, "VOC")
    assert [names.stem(s) for s in samples] == ["a", "b", "c", "d__c"]
    assert names.stem(samples[0], flat=False) == "sub/a"  # a nested name keeps them: nothing to count
    assert dict(report.dropped) == {"folders of sample ids (VOC file names are flat: a/b/img -> img)": 3}


def test_attributes_a_format_cannot_hold_are_counted_by_name() -> None:
    from pipeline.formats.base import ExportReport
    from pipeline.formats.common import count_attributes

    report = ExportReport()
    obj = Obj("cat", bbox=[0, 0, 1, 1], attributes={"difficult": 1, "truncated": 0, "colour": "red"})
    count_attributes(report, obj, "VOC", kept=("difficult", "truncated"))
    count_attributes(None, obj, "VOC")  # no report: nothing to count
    assert dict(report.dropped) == {"object attribute 'colour' (VOC holds no such attribute)": 1}


@pytest.mark.parametrize(("rel", "split", "taken", "sid"), [
    ("images/train/a.jpg", "train", (), "a"),  # Ultralytics: images/, then the split's folder
    ("images/b.png", None, (), "b"),  # COCO's images folder
    ("val2017/0001.jpg", "val", (), "0001"),  # COCO's own split folder
    ("valid/x.jpg", "val", (), "x"),  # Roboflow's
    ("obj_train_data/2007_000027.jpg", "train", (), "2007_000027"),  # darknet (CVAT's export)
    ("train/sub/a.jpg", "train", (), "sub/a"),  # folders below the split's are the source's own
    ("train/a.jpg", "val", (), "train/a"),  # a folder naming another split is kept
    ("cats/a.jpg", None, (), "cats/a"),  # any other folder is kept
    ("a.jpg", "train", (), "a"),
    ("val/a.jpg", "val", ("a",), "val/a"),  # taken by train/a.jpg: the whole path
])
def test_layout_free_ids(rel: str, split: str | None, taken: tuple[str, ...], sid: str) -> None:
    from pipeline.formats.common import layout_free_id

    assert layout_free_id(rel, split, taken.__contains__) == sid

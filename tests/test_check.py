"""Label checks: each check fires on a dataset built to trigger it, and stays silent on clean data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pipeline.check import CHECKS, ERROR, check_dataset, check_objects, render_table
from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset, rewrite_samples
from pipeline.core.images import encode_png
from tests.helpers import make_classification_dataset, make_detection_dataset


def codes(report) -> dict[str, int]:
    return {code: len(hits) for code, hits in report.by_code().items()}


def test_clean_detection_dataset_has_no_errors(tmp_path: Path) -> None:
    ds = load_dataset(make_detection_dataset(tmp_path / "det", n=6))
    report = check_dataset(ds)
    assert not report.has_errors, render_table(report)
    assert report.class_counts == {"red": {"train": 4, "val": 2}, "green": {"train": 4, "val": 2}}


def _sample(objs: list[Obj], w: int = 100, h: int = 80) -> Sample:
    return Sample(id="s", width=w, height=h, objects=objs)


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        (Obj("a", bbox=[10, 10, 10, 30]), "degenerate-box"),  # zero width
        (Obj("a", bbox=[10, 10, 40, 10]), "degenerate-box"),  # zero height
        (Obj("a", bbox=[90, 10, 120, 30]), "box-outside-image"),  # right edge past 100
        (Obj("a", bbox=[-3, 10, 20, 30]), "box-outside-image"),  # left of 0
        (Obj("a", bbox=[10, 10, 11, 30]), "tiny-box"),  # 1 px wide
        (Obj("a", polygon=[[[1, 1], [5, 5]]]), "degenerate-polygon"),  # two points
        (Obj("a", polygon=[[[1, 1], [5, 5], [9, 9]]]), "degenerate-polygon"),  # collinear: no area
        (Obj("a", polygon=[[[1, 1], [150, 5], [9, 50]]]), "polygon-outside-image"),
        (Obj("a", polyline=[[1, 1]]), "degenerate-polyline"),
        (Obj("a", keypoints=[[101, 5, 2]]), "keypoint-outside-image"),
        (Obj("a", mask={"size": [10, 10], "counts": [100]}), "bad-mask"),  # not the image's size
        (Obj("a", mask={"size": [80, 100], "counts": [10, 5]}), "bad-mask"),  # runs do not cover the image
        (Obj("a", mask={"size": [80, 100], "counts": [8000]}), "empty-mask"),
    ],
)
def test_geometry_checks(obj: Obj, code: str) -> None:
    found = check_objects(_sample([obj]))
    assert [f.code for f in found] == [code]
    assert found[0].sample == "s" and "objects[0] (a)" in found[0].message


def test_edge_tolerance_and_hidden_keypoints_are_not_findings() -> None:
    objs = [Obj("a", bbox=[-0.4, 0, 100.4, 80]), Obj("a", keypoints=[[500, 500, 0]])]
    assert check_objects(_sample(objs)) == []


def test_duplicate_boxes_of_one_class() -> None:
    objs = [Obj("a", bbox=[10, 10, 50, 50]), Obj("a", bbox=[10, 10, 50, 50.5]), Obj("b", bbox=[10, 10, 50, 50])]
    assert [f.code for f in check_objects(_sample(objs))] == ["duplicate-box"]


def _broken_dataset(root: Path) -> Path:
    """Every image-level problem at once."""
    with DatasetWriter(root, task="detection", stage="test", classes=["cat", "dog", "emu"]) as w:
        same = encode_png(Image.new("RGB", (20, 10), (9, 9, 9)))
        for i, split in enumerate(["train", "val", "train"]):
            w.add(Sample(id=f"dup{i}", width=20, height=10, split=split,
                         objects=[Obj("cat", bbox=[1, 1, 5, 5])]), data=same)
        w.add(Sample(id="gone", width=20, height=10, split="train", objects=[Obj("cat", bbox=[1, 1, 5, 5])]),
              data=encode_png(Image.new("RGB", (20, 10), (1, 1, 1))))
        w.add(Sample(id="trunc", width=20, height=10, split="train", objects=[Obj("dog", bbox=[1, 1, 5, 5])]),
              data=encode_png(Image.new("RGB", (20, 10), (2, 1, 1))))
        w.add(Sample(id="wrong-size", width=30, height=10, split="train", objects=[Obj("cat", bbox=[1, 1, 5, 5])]),
              data=encode_png(Image.new("RGB", (20, 10), (3, 1, 1))))
        w.add(Sample(id="nothing", width=20, height=10, split="train", objects=[]),
              data=encode_png(Image.new("RGB", (20, 10), (4, 1, 1))))
        w.add(Sample(id="rotated", width=20, height=10, split="train", objects=[Obj("cat", bbox=[1, 1, 5, 5])],
                     meta={"exif_orientation": 6}), data=encode_png(Image.new("RGB", (20, 10), (5, 1, 1))))
    (root / "images" / "gone.png").unlink()
    data = (root / "images" / "trunc.png").read_bytes()
    (root / "images" / "trunc.png").write_bytes(data[: len(data) // 2])
    return root


def test_image_level_checks(tmp_path: Path) -> None:
    ds = load_dataset(_broken_dataset(tmp_path / "bad"))
    report = check_dataset(ds)
    found = codes(report)
    assert found["missing-image"] == 1
    assert found["unreadable-image"] == 1 and found["hash-mismatch"] == 1  # the truncated file changed
    assert found["size-mismatch"] == 1
    assert found["split-leakage"] == 1  # dup0/dup2 in train, dup1 in val: one group
    leak = report.by_code()["split-leakage"][0]
    assert leak.detail["samples"] == ["dup0", "dup1", "dup2"] and leak.detail["splits"] == ["train", "val"]
    assert found["no-annotations"] == 1
    assert found["exif-rotated"] == 1
    assert found["unused-class"] == 1  # emu
    assert found["rare-class"] == 1  # dog: 1 example
    assert "duplicate-image" not in found
    assert report.has_errors
    text = render_table(report)
    assert "split-leakage" in text and "missing-image" in text
    levels = [CHECKS[c][0] for c in report.by_code()]
    assert levels == sorted(levels, key=["error", "warning", "info"].index)  # errors first


def test_duplicates_within_one_split_are_warnings_and_conflicting_labels(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "c", task="classification", stage="test", classes=["a", "b"]) as w:
        same = encode_png(Image.new("L", (8, 8), 7))
        w.add(Sample(id="x1", label="a", width=8, height=8, split="train"), data=same)
        w.add(Sample(id="x2", label="b", width=8, height=8, split="train"), data=same)
    report = check_dataset(load_dataset(tmp_path / "c"))
    found = codes(report)
    assert found.get("duplicate-image") == 1 and found.get("conflicting-labels") == 1
    assert "split-leakage" not in found and not report.has_errors


def test_class_missing_from_a_split(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "c", classes=3, per_class=8)
    ds = load_dataset(root)
    samples = [s for s in ds.samples if not (s.label == "2" and s.split == "val")]
    ds = rewrite_samples(ds, samples, stage="test")
    found = check_dataset(ds)
    hits = found.by_code()["class-missing-from-split"]
    assert [h.detail for h in hits] == [{"class": "2", "splits": ["val"]}]


def test_labels_only_skips_image_reads(tmp_path: Path) -> None:
    ds = load_dataset(_broken_dataset(tmp_path / "bad"))
    report = check_dataset(ds, images=False)
    assert "missing-image" not in codes(report) and codes(report)["split-leakage"] == 1


def test_json_report_is_complete(tmp_path: Path) -> None:
    ds = load_dataset(_broken_dataset(tmp_path / "bad"))
    data = json.loads(json.dumps(check_dataset(ds).to_json()))
    assert data["summary"]["error"] == sum(1 for f in data["findings"] if f["level"] == ERROR)
    assert data["checks"]["missing-image"] == {"level": "error", "count": 1,
                                               "description": CHECKS["missing-image"][1]}
    assert data["classes"]["cat"] == {"train": 5, "val": 1}


def test_exif_rotated_and_ambiguous_frames_are_reported(tmp_path: Path) -> None:
    png = encode_png(Image.new("RGB", (10, 10)))
    with DatasetWriter(tmp_path / "e", task="detection", stage="test", classes=["a"]) as w:
        w.add(Sample(id="sq", width=10, height=10, objects=[Obj("a", bbox=[1, 1, 5, 5])],
                     meta={"exif_orientation": 6, "exif_frame": "assumed upright"}), data=png)
    found = codes(check_dataset(load_dataset(tmp_path / "e")))
    assert found["exif-rotated"] == 1 and found["exif-ambiguous"] == 1


def test_stored_truncated_image_is_flagged_not_unreadable(tmp_path: Path) -> None:
    import io

    import numpy as np

    yy, xx = np.mgrid[0:30, 0:40]
    buf = io.BytesIO()
    Image.fromarray(np.stack([xx * 5, yy * 6, xx + yy], -1).astype("uint8")).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    with DatasetWriter(tmp_path / "d", task="classification", stage="test", classes=["a"]) as w:
        w.add(Sample(id="cut", width=40, height=30, label="a"), data=data[:-2], ext="jpg")  # no end marker
        w.add(Sample(id="header", width=40, height=30, label="a"), data=data[:200], ext="jpg")  # cut in the header
    found = check_dataset(load_dataset(tmp_path / "d")).by_code()
    assert [f.sample for f in found["truncated-image"]] == ["cut"]
    assert [f.sample for f in found["unreadable-image"]] == ["header"]
    assert CHECKS["truncated-image"][0] == "warning"


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "in-memory"])
def test_each_image_file_is_read_once_however_many_samples_share_it(tmp_path: Path, monkeypatch,
                                                                     streamed: bool) -> None:
    import pipeline.check as check_module
    from benchmarks.bench_scale import make_dataset
    from pipeline.core.dataset import open_dataset

    root = make_dataset(tmp_path / "pool", 300, pool=7)
    real, reads = check_module.read_image, []

    def counted(dataset, sample):
        reads.append(sample.image)
        return real(dataset, sample)

    monkeypatch.setattr(check_module, "read_image", counted)
    report = check_dataset(open_dataset(root) if streamed else load_dataset(root))
    assert sorted(reads) == [f"images/pool-{k:05d}.png" for k in range(7)]
    assert report.samples == 300 and {f.code for f in report.findings} == {"duplicate-image", "unused-class"}

"""Crop objects into classification samples: geometry of the crop box, provenance, splits, filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset
from pipeline.core.errors import UsageError
from pipeline.core.geometry import object_box
from pipeline.core.images import encode_png
from pipeline.crop import crop_box, crop_dataset, crop_image
from tests.helpers import make_classification_dataset, make_detection_dataset


@pytest.mark.parametrize(
    ("box", "kw", "expected"),
    [
        ([10, 10, 20, 30], {}, (10, 10, 20, 30)),
        ([10.2, 10.7, 19.5, 29.1], {}, (10, 10, 20, 30)),  # whole pixels, rounded outwards
        ([10, 10, 20, 30], {"pad": 0.5}, (5, 0, 25, 40)),  # 50% of 10 and of 20 per side
        ([0, 0, 20, 30], {"pad": 0.5}, (0, 0, 30, 45)),  # clipped at the image border
        ([10, 10, 20, 30], {"square": True}, (5, 10, 25, 30)),  # grows the short side around the centre
        ([0, 10, 10, 30], {"square": True}, (0, 10, 20, 30)),  # moved inside instead of leaving the image
        ([0, 0, 100, 10], {"square": True}, (0, -45, 100, 55)),  # larger than the image: stays centred
    ],
)
def test_crop_box(box, kw, expected) -> None:
    assert crop_box(box, 100, 50, **kw) == expected


def test_crop_image_repeats_edges_past_the_image() -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = np.asarray(crop_image(Image.fromarray(arr), (0, -1, 4, 3)))
    assert out.shape == (4, 4)
    assert out[0].tolist() == arr[0].tolist() and out[1:].tolist() == arr.tolist()


def test_object_area_box() -> None:  # crop boxes an object's area: object_box without points
    assert object_box(Obj("a", polygon=[[[1, 2], [5, 2], [3, 9]]]), points=False) == [1, 2, 5, 9]
    assert object_box(Obj("a", keypoints=[[1, 1, 2]]), points=False) is None


def test_crop_detection_dataset(tmp_path: Path) -> None:
    det = load_dataset(make_detection_dataset(tmp_path / "det", n=6))
    out, report = crop_dataset(det, tmp_path / "crops", pad=0.0)
    ds = load_dataset(tmp_path / "crops")
    assert ds.task == "classification" and ds.classes == det.classes
    assert len(ds.samples) == report.written == 12
    parent = det.samples[0]
    first = next(s for s in ds.samples if s.id == f"{parent.id}/0")
    assert first.label == parent.objects[0].label and first.split == parent.split
    assert first.source["parent"] == parent.id and first.source["object"] == 0
    assert first.source["box"] == parent.objects[0].bbox
    x1, y1, x2, y2 = (int(v) for v in parent.objects[0].bbox)
    assert (first.width, first.height) == (x2 - x1, y2 - y1)
    with Image.open(det.image_path(parent)) as full, Image.open(ds.image_path(first)) as piece:
        assert np.array_equal(np.asarray(full.convert("RGB").crop((x1, y1, x2, y2))), np.asarray(piece))
    assert {s.split for s in ds.samples} == {s.split for s in det.samples}
    assert ds.info.lineage[-1]["stage"] == "crop"
    assert ds.info.lineage[-1]["params"] == {"pad": 0.0, "square": False, "min_size": 0.0}


def test_min_size_points_and_degenerate_boxes_are_skipped_and_counted(tmp_path: Path) -> None:
    png = encode_png(Image.new("L", (40, 40), 100))
    with DatasetWriter(tmp_path / "d", task="detection", stage="test", classes=["7"]) as w:
        w.add(Sample(id="a", width=40, height=40, split="train", objects=[
            Obj("7", bbox=[1, 1, 20, 30]), Obj("7", bbox=[1, 1, 4, 30]), Obj("7", keypoints=[[3, 3, 2]]),
            Obj("7", bbox=[5, 5, 5, 9]), Obj("7", polygon=[[[10, 10], [30, 10], [20, 35]]]),
        ]), data=png)
    _, report = crop_dataset(load_dataset(tmp_path / "d"), tmp_path / "c", min_size=5, square=True)
    ds = load_dataset(tmp_path / "c")
    assert [s.id for s in ds.samples] == ["a/0", "a/4"]
    assert all(s.width == s.height for s in ds.samples)
    assert report.skipped == {"smaller than --min-size": 1, "objects without an area (points, lines)": 1,
                              "boxes without area": 1}


def test_classification_dataset_has_nothing_to_crop(tmp_path: Path) -> None:
    ds = load_dataset(make_classification_dataset(tmp_path / "c", classes=2, per_class=2))
    with pytest.raises(UsageError, match="no labelled objects"):
        crop_dataset(ds, tmp_path / "out")


def test_mask_only_objects_are_cropped_by_their_mask_bounds(tmp_path: Path) -> None:
    from pipeline.core.geometry import rle_encode

    mask = np.zeros((40, 40), dtype=bool)
    mask[5:15, 20:32] = True
    with DatasetWriter(tmp_path / "d", task="segmentation", stage="test", classes=["blob"]) as w:
        w.add(Sample(id="a", width=40, height=40, objects=[Obj("blob", mask=rle_encode(mask))]),
              data=encode_png(Image.new("RGB", (40, 40))))
    crop_dataset(load_dataset(tmp_path / "d"), tmp_path / "c")
    (s,) = load_dataset(tmp_path / "c").samples
    assert s.source["crop"] == [20, 5, 32, 15] and (s.width, s.height) == (12, 10)


def _jpeg_dataset(root: Path, *, subsampling: int, mode: str = "RGB") -> Path:
    """Two JPEG photos (smooth gradients) with two boxes each, stored as the JPEG bytes given."""
    import io

    yy, xx = np.mgrid[0:60, 0:80]
    base = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=-1).astype(np.uint8)
    with DatasetWriter(root, task="detection", stage="test", classes=["a", "b"]) as w:
        for i in range(2):
            img = Image.fromarray(base if mode == "RGB" else base[..., 0]).convert(mode)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90, **({"subsampling": subsampling} if mode == "RGB" else {}))
            w.add(Sample(id=f"p{i}", width=80, height=60, split="train", objects=[
                Obj("a", bbox=[4, 4, 30, 40]), Obj("b", bbox=[40, 10, 75, 55])]), data=buf.getvalue(), ext="jpg")
    return root


@pytest.mark.parametrize("subsampling", [0, 2])  # 4:4:4 and 4:2:0 sources keep their sampling
def test_jpeg_sources_give_jpeg_crops(tmp_path: Path, subsampling: int) -> None:
    from PIL import JpegImagePlugin

    det = load_dataset(_jpeg_dataset(tmp_path / "d", subsampling=subsampling))
    crop_dataset(det, tmp_path / "c")
    ds = load_dataset(tmp_path / "c")
    assert len(ds.samples) == 4 and all(s.image.endswith(".jpg") for s in ds.samples)
    for s in ds.samples:
        with Image.open(ds.image_path(s)) as piece, Image.open(det.image_path(det.samples[0])) as full:
            assert piece.format == "JPEG" and JpegImagePlugin.get_sampling(piece) == subsampling
            x1, y1, x2, y2 = s.source["crop"]
            ref = np.asarray(full.convert("RGB").crop((x1, y1, x2, y2)), dtype=np.int16)
            assert np.abs(np.asarray(piece.convert("RGB"), dtype=np.int16) - ref).mean() < 3  # quality 95


def test_grey_jpeg_gives_grey_jpeg_crops(tmp_path: Path) -> None:
    crop_dataset(load_dataset(_jpeg_dataset(tmp_path / "d", subsampling=0, mode="L")), tmp_path / "c")
    ds = load_dataset(tmp_path / "c")
    with Image.open(ds.image_path(ds.samples[0])) as piece:
        assert piece.format == "JPEG" and piece.mode == "L"


def test_encode_png_keeps_every_crop_lossless(tmp_path: Path) -> None:
    det = load_dataset(_jpeg_dataset(tmp_path / "d", subsampling=2))
    crop_dataset(det, tmp_path / "c", encode="png")
    ds = load_dataset(tmp_path / "c")
    assert all(s.image.endswith(".png") for s in ds.samples)
    s = ds.samples[0]
    with Image.open(ds.image_path(s)) as piece, Image.open(det.image_path(det.samples[0])) as full:
        assert np.array_equal(np.asarray(piece), np.asarray(full.crop(tuple(s.source["crop"]))))
    with pytest.raises(UsageError, match="encode 'webp'"):
        crop_dataset(det, tmp_path / "c2", encode="webp")


def test_each_source_is_decoded_once(tmp_path: Path, monkeypatch) -> None:
    from pipeline.core.dataset import Dataset

    det = load_dataset(_jpeg_dataset(tmp_path / "d", subsampling=2))
    calls: list[str] = []
    original = Dataset.open_image

    def counting(self, sample, **kw):
        calls.append(sample.id)
        return original(self, sample, **kw)

    monkeypatch.setattr(Dataset, "open_image", counting)
    _, report = crop_dataset(det, tmp_path / "c")
    assert report.written == 4 and calls == ["p0", "p1"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_crops_are_created_under_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    import os

    det = load_dataset(_jpeg_dataset(tmp_path / "d", subsampling=2))
    old = os.umask(umask)
    try:
        crop_dataset(det, tmp_path / "c")
    finally:
        os.umask(old)
    ds = load_dataset(tmp_path / "c")
    assert {os.stat(ds.image_path(s)).st_mode & 0o777 for s in ds.samples} == {mode}


def test_crop_command_encode_png(tmp_path: Path) -> None:
    from tests.helpers import invoke

    _jpeg_dataset(tmp_path / "d", subsampling=2)
    result = invoke("crop", tmp_path / "d", "--out", tmp_path / "c", "--encode", "png")
    assert result.exit_code == 0, result.output
    assert all(s.image.endswith(".png") for s in load_dataset(tmp_path / "c").samples)


def test_crops_keep_the_source_class_ids(tmp_path: Path) -> None:
    import json

    det = make_detection_dataset(tmp_path / "det", n=2)
    info = json.loads((det / "dataset.json").read_text())
    (det / "dataset.json").write_text(json.dumps({**info, "class_ids": {"red": 7, "green": 3}}))
    out, _ = crop_dataset(load_dataset(det), tmp_path / "crops")
    assert out.classes == ["red", "green"] and load_dataset(tmp_path / "crops").info.class_ids == {"red": 7, "green": 3}

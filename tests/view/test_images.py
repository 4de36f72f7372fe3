"""Originals and thumbnails: packed images read from their packs, thumbnails made once and cached
by the image's hash, small browser-ready images served as they are."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from pipeline.core.dataset import load_dataset
from pipeline.view.images import THUMB, original, thumbnail
from tests.helpers import jpeg, make_classification_dataset
from tests.view.conftest import packed_dataset, write_dataset


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def test_a_large_photo_gets_a_cached_thumbnail(tmp_path: Path) -> None:
    import hashlib

    data = jpeg(900, 600)
    line = {"id": "photo", "image": "images/photo.jpg", "width": 900, "height": 600,
            "sha256": hashlib.sha256(data).hexdigest(), "split": None, "label": None}
    ds = load_dataset(write_dataset(tmp_path / "ds", "detection", ["x"], [line], {"images/photo.jpg": data}))
    thumb, media = thumbnail(ds, ds.samples[0], tmp_path / "cache")
    assert media == "image/jpeg" and decoded(thumb).size == (THUMB, 171)
    cached = sorted((tmp_path / "cache" / "thumbs").rglob("*.jpg"))
    assert [p.name for p in cached] == [f"{line['sha256']}.jpg"]
    cached[0].write_bytes(b"cached bytes")  # the next request reads the cache, not the photo
    assert thumbnail(ds, ds.samples[0], tmp_path / "cache") == (b"cached bytes", "image/jpeg")
    assert original(ds, ds.samples[0]) == (data, "image/jpeg")


def test_small_images_are_their_own_thumbnails(tmp_path: Path) -> None:
    ds = load_dataset(make_classification_dataset(tmp_path / "ds", classes=1, per_class=1))
    s = ds.samples[0]
    assert thumbnail(ds, s, tmp_path / "cache") == ((ds.root / s.image).read_bytes(), "image/png")
    assert not (tmp_path / "cache").exists()  # nothing decoded, nothing written


def test_packed_images_come_from_their_pack(tmp_path: Path) -> None:
    ds = load_dataset(packed_dataset(tmp_path / "packed"))
    for s in ds.samples:
        data, media = original(ds, s)
        assert media == "image/png" and data == ds.read_image_bytes(s) and decoded(data).size == (28, 28)
        assert not (ds.root / s.image).exists()  # (never unpacked)
        assert thumbnail(ds, s, tmp_path / "cache")[0] == data


def test_formats_browsers_cannot_show_are_sent_as_png(tmp_path: Path) -> None:
    import hashlib

    buf = io.BytesIO()
    Image.new("RGB", (30, 20), (5, 6, 7)).save(buf, format="TIFF")
    data = buf.getvalue()
    line = {"id": "t", "image": "images/t.tif", "width": 30, "height": 20,
            "sha256": hashlib.sha256(data).hexdigest(), "split": None, "label": None}
    ds = load_dataset(write_dataset(tmp_path / "ds", "detection", ["x"], [line], {"images/t.tif": data}))
    body, media = original(ds, ds.samples[0])
    assert media == "image/png" and decoded(body).getpixel((0, 0)) == (5, 6, 7)
    body, media = thumbnail(ds, ds.samples[0], tmp_path / "cache")
    assert media == "image/png" and decoded(body).size == (30, 20)

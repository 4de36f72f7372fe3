"""Image helpers: sniffing, safe decoding, EXIF orientation."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from pipeline.core.errors import DataError
from pipeline.core.images import encode_png, exif_orientation, open_image, open_image_bytes, sniff, sniff_file


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tiff"), ("WEBP", "webp")],
)
def test_sniff_known_formats(fmt: str, name: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format=fmt)
    assert sniff(buf.getvalue()[:16]) == name


@pytest.mark.parametrize("head", [b"<!DOCTYPE html>", b"<html><body>", b"PK\x03\x04", b"", b"{\"a\": 1}"])
def test_sniff_rejects_non_images(head: bytes) -> None:
    assert sniff(head) is None


def test_truncated_image_is_a_data_error(tmp_path: Path) -> None:
    data = encode_png(Image.new("L", (64, 64), 7))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.png: unreadable or truncated image"):
        open_image(path)


def test_decompression_bomb_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    data = encode_png(Image.new("L", (20, 20)))
    with pytest.raises(DataError, match="decompression bomb"):
        open_image_bytes(data, "bomb.png")


def test_exif_orientation_read_and_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (30, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    raw = open_image(path)
    assert exif_orientation(raw) == 6
    assert raw.size == (30, 10)
    assert open_image(path, exif_transpose=True).size == (10, 30)
    assert sniff_file(path) == "jpeg"

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


@pytest.mark.parametrize("shape", [(1, 1), (28, 28), (7, 31), (32, 32, 3), (5, 9, 3), (4, 4, 4), (300, 300)])
def test_stored_png_decodes_to_the_same_pixels(shape: tuple) -> None:
    import cv2
    import numpy as np

    from pipeline.core.images import stored_png

    array = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = stored_png(array)
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert np.array_equal(np.asarray(img), array)
    flags = cv2.IMREAD_UNCHANGED
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    expected = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR if shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    assert np.array_equal(decoded, expected)
    assert stored_png(array) == data  # deterministic

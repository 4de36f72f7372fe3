"""Image helpers: sniffing, safe decoding, EXIF orientation."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_ENV,
    check_pixels,
    decode_array,
    encode_png,
    exif_orientation,
    max_pixels,
    open_image,
    open_image_bytes,
    parse_max_pixels,
    set_max_pixels,
    sniff,
    sniff_file,
    to_8bit,
)


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


@pytest.fixture
def limit():
    """Set the pixel limit for one test; the process's limit and environment come back after."""
    before, env = max_pixels(), os.environ.get(MAX_PIXELS_ENV)
    yield set_max_pixels
    set_max_pixels(before)
    if env is None:
        os.environ.pop(MAX_PIXELS_ENV, None)
    else:
        os.environ[MAX_PIXELS_ENV] = env


def test_decompression_bomb_refused(limit) -> None:
    limit(100)
    data = encode_png(Image.new("L", (20, 20)))
    with pytest.raises(DataError, match=r"bomb.png: image of 20x20 = 400 pixels, over the limit of 100 pixels "
                                        r"\(a decompression bomb\?\)\. Fix: .*--max-pixels"):
        open_image_bytes(data, "bomb.png")
    limit(400)  # the limit itself is allowed
    assert open_image_bytes(data, "ok.png").size == (20, 20)


def test_the_default_limit_is_pillows_and_pillows_own_check_is_off() -> None:
    assert DEFAULT_MAX_PIXELS == 89_478_485 == int(1024 * 1024 * 1024 // 4 // 3)
    assert Image.MAX_IMAGE_PIXELS is None  # ours fires first, in our words


def test_a_generated_30000_square_bomb_is_refused_from_its_header(limit) -> None:
    from tests.bombs import bomb_png

    limit(DEFAULT_MAX_PIXELS)
    data = bomb_png()
    assert len(data) < 1 << 20  # a few hundred KB at most, 900 million pixels
    for decode in (lambda: open_image_bytes(data, "bomb.png"), lambda: decode_array(data, "bomb.png")):
        with pytest.raises(DataError, match="bomb.png: image of 30000x30000 = 900,000,000 pixels, over the limit "
                                            "of 89,478,485 pixels"):
            decode()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_decode_array_checks_the_header_before_opencv(limit, fmt: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (30, 20), (1, 2, 3)).save(buf, format=fmt)
    limit(599)
    with pytest.raises(DataError, match="30x20 = 600 pixels"):
        decode_array(buf.getvalue(), "a")
    limit(600)
    assert decode_array(buf.getvalue(), "a").shape == (20, 30, 3)


def test_no_limit_lets_big_images_through_and_reaches_workers(limit) -> None:
    data = encode_png(Image.new("1", (300, 300)))
    limit(1000)
    assert os.environ[MAX_PIXELS_ENV] == "1000"
    with pytest.raises(DataError):
        open_image_bytes(data, "a.png")
    limit(None)
    assert max_pixels() is None and os.environ[MAX_PIXELS_ENV] == "0"
    assert open_image_bytes(data, "a.png").size == (300, 300)
    check_pixels(10**6, 10**6, "huge")  # no limit: nothing refused


@pytest.mark.parametrize("text, value", [
    ("89478485", 89_478_485), ("200_000_000", 200_000_000), ("1,000", 1000),
    ("0", None), ("none", None), ("None", None), (None, None), (5, 5),
])
def test_parse_max_pixels(text, value) -> None:
    assert parse_max_pixels(text) == value


@pytest.mark.parametrize("text", ["-5", "lots", "1e9", ""])
def test_parse_max_pixels_refuses_other_text(text: str) -> None:
    with pytest.raises(UsageError, match="--max-pixels"):
        parse_max_pixels(text)


@pytest.mark.parametrize("mode, values", [
    ("I;16", [300, 1000, 65535]),  # all above 255: clipping would make them all white
    ("I", [-50, 700, 70000]),
    ("F", [0.5, 2.5, 4.5]),
])
def test_to_8bit_scales_wide_grey_by_its_range(mode: str, values: list) -> None:
    import numpy as np

    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    arr = np.array([values * 2], dtype=dtype)
    img = Image.fromarray(arr, mode=mode) if mode != "I;16" else Image.fromarray(arr)
    assert img.mode == mode
    out = to_8bit(img)
    assert out.mode == "L"
    got = np.asarray(out)[0].tolist()
    assert got[0] == 0 and got[2] == 255 and 0 < got[1] < 255  # darkest black, brightest white


def test_to_8bit_keeps_8_bit_images_and_flat_wide_ones() -> None:
    rgb = Image.new("RGB", (2, 2), (1, 2, 3))
    assert to_8bit(rgb) is rgb
    import numpy as np

    flat = Image.fromarray(np.full((2, 2), 100, dtype=np.uint16))
    assert np.asarray(to_8bit(flat)).tolist() == [[100, 100], [100, 100]]


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


def _photo_jpeg() -> bytes:
    import numpy as np

    yy, xx = np.mgrid[0:64, 0:80]
    buf = io.BytesIO()
    Image.fromarray(np.stack([xx * 3, yy * 4, (xx + yy) * 2], -1).astype("uint8")).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def test_restoring_keeps_a_jpeg_without_its_end_marker() -> None:
    import numpy as np
    from PIL import ImageFile

    from pipeline.core.images import open_image_restoring

    data = _photo_jpeg()
    whole, truncated = open_image_restoring(data, "x.jpg")
    assert not truncated
    with pytest.raises(DataError, match="x.jpg: unreadable or truncated image"):
        open_image_bytes(data[:-2], "x.jpg")  # the plain decode still refuses it
    img, truncated = open_image_restoring(data[:-2], "x.jpg")
    assert truncated and img.size == (80, 64)
    assert np.abs(np.asarray(img, dtype=int) - np.asarray(whole, dtype=int)).max() <= 2  # every row decoded
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # set around that one decode only


def test_restoring_refuses_a_file_cut_in_its_header() -> None:
    from pipeline.core.images import TruncatedImageError, open_image_restoring

    with pytest.raises(DataError, match="x.jpg") as info:
        open_image_restoring(_photo_jpeg()[:200], "x.jpg")
    assert not isinstance(info.value, TruncatedImageError)

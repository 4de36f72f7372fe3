"""The IDX reader: round trips for every element type, gzip or raw, and one clear error per kind of damage."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from pipeline.core.errors import DataError
from pipeline.sources.idx import encode_idx, gzip_deterministic, parse_idx, read_idx


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),  # MNIST images: ubyte, 3 dims
        np.array([0, 9, 3], dtype=np.uint8),  # MNIST labels: ubyte, 1 dim
        np.array([-128, 0, 127], dtype=np.int8),
        np.array([[-300, 2], [7, 32767]], dtype=np.int16),  # multi-byte types are big-endian on disk
        np.array([-(2**31), 5], dtype=np.int32),
        np.array([1.5, -2.25], dtype=np.float32),
        np.array([[np.pi]], dtype=np.float64),
    ],
)
def test_round_trip_every_type(arr: np.ndarray) -> None:
    raw = encode_idx(arr)
    for data in (raw, gzip_deterministic(raw)):
        back = parse_idx(data, "x.idx")
        assert back.dtype == arr.dtype.newbyteorder("=")
        assert back.shape == arr.shape
        np.testing.assert_array_equal(back, arr)


def test_header_layout_is_mnist() -> None:
    # LeCun's note: magic 0x00000803 for images (ubyte, 3 dims), then the sizes as big-endian uint32.
    raw = encode_idx(np.zeros((2, 28, 28), dtype=np.uint8))
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">3I", raw[4:16]) == (2, 28, 28)
    assert len(raw) == 16 + 2 * 784


def test_gzip_is_deterministic_and_recognised_by_magic(tmp_path) -> None:
    raw = encode_idx(np.arange(10, dtype=np.uint8))
    a, b = gzip_deterministic(raw), gzip_deterministic(raw)
    assert a == b and a[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    path = tmp_path / "labels-without-gz-suffix"
    path.write_bytes(a)
    np.testing.assert_array_equal(read_idx(path, dims=1), np.arange(10))


def _damaged() -> list[tuple[str, bytes, str]]:
    good = encode_idx(np.arange(12, dtype=np.uint8).reshape(1, 3, 4))
    return [
        # (case, bytes, words the error must contain)
        ("empty file", b"", "not an IDX file"),
        ("text instead of IDX", b"hello world\n", "magic"),
        ("unknown type code", b"\x00\x00\x07\x01" + good[4:], "magic"),
        ("zero dimensions", b"\x00\x00\x08\x00", "at least one dimension"),
        ("header cut short", good[:9], "truncated header"),
        ("data cut short", good[:-1], "truncated data"),
        ("bytes after the data", good + b"\x00", "trailing bytes"),
        ("gzip cut short", gzip_deterministic(good)[:-6], "broken gzip"),
        ("huge claimed size", b"\x00\x00\x08\x03" + struct.pack(">3I", 2**20, 2**20, 2**20), "too many elements"),
    ]


@pytest.mark.parametrize("case,data,words", _damaged(), ids=[c for c, _, _ in _damaged()])
def test_damage_is_a_data_error_naming_the_file(case: str, data: bytes, words: str, tmp_path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        read_idx(path)
    text = str(info.value)
    assert str(path) in text and words in text, text
    assert "\n" not in text


def test_wrong_dimensions_say_which_file_is_which(tmp_path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros((2, 2), dtype=np.uint8))))
    with pytest.raises(DataError, match=r"wrong number of dimensions: expected 1, got 2.*label files 1"):
        read_idx(path, dims=1)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "nope.gz")


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="no element type"):
        encode_idx(np.zeros(3, dtype=np.uint16))

"""IDX files, the format MNIST ships in (Y. LeCun's "file formats" note on the MNIST page).

An IDX file is a 4-byte magic number ``00 00 TT NN`` (TT the element type, NN the number of
dimensions), NN big-endian uint32 sizes, then the elements in C order, big-endian. MNIST's
images are ``ubyte`` with 3 dimensions (count, rows, columns), its labels ``ubyte`` with one.
Files may be gzip-compressed (recognised by the gzip magic, not by the name).

One reader serves both the embedded subset and the real MNIST download.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from pipeline.core.errors import DataError

# type code -> big-endian numpy dtype
DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder(">"): k for k, v in DTYPES.items()}  # byte order set to big for lookups

GZIP_MAGIC = b"\x1f\x8b"
_MAX_ELEMENTS = 1 << 31  # refuse headers that claim more than 2**31 elements (a corrupt or hostile file)


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def decompress(data: bytes, where: str | os.PathLike) -> bytes:
    """The bytes of an IDX file, gunzipped when `data` is gzip; errors name `where`."""
    if not is_gzip(data):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(where, f"broken gzip stream ({exc})",
                        fix="delete the file and download it again") from exc


def parse_idx(data: bytes, where: str | os.PathLike, *, dims: int | None = None) -> np.ndarray:
    """Decode IDX bytes (raw or gzip) to a numpy array in native byte order.

    `dims` checks the number of dimensions (3 for images, 1 for labels).
    """
    raw = decompress(data, where)
    if len(raw) < 4:
        raise DataError(where, "not an IDX file", expected="a 4-byte magic number 00 00 TYPE DIMS",
                        got=f"{len(raw)} bytes", fix="check that this is an MNIST-style IDX file")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in DTYPES:
        raise DataError(where, "not an IDX file", field="magic",
                        expected="00 00 then a type code among " + ", ".join(f"{c:#04x}" for c in DTYPES),
                        got=raw[:4].hex(" "), fix="check that this is an MNIST-style IDX file")
    if ndim == 0:
        raise DataError(where, "", field="magic", expected="at least one dimension", got=0)
    if dims is not None and ndim != dims:
        raise DataError(where, "wrong number of dimensions", field="magic", expected=str(dims), got=ndim,
                        fix="images files have 3 dimensions, label files 1; check which file is which")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(where, "truncated header", expected=f"{header} bytes", got=f"{len(raw)} bytes",
                        fix="delete the file and download it again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(DTYPES[code])
    count = int(np.prod(shape, dtype=np.int64))
    if count > _MAX_ELEMENTS:
        raise DataError(where, "header claims too many elements", expected=f"at most {_MAX_ELEMENTS}",
                        got=f"{count} (shape {shape})")
    need = header + count * dtype.itemsize
    if len(raw) != need:
        what = "truncated data" if len(raw) < need else "trailing bytes after the data"
        raise DataError(where, what, expected=f"{need} bytes for shape {tuple(shape)}", got=f"{len(raw)} bytes",
                        fix="delete the file and download it again")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike, *, dims: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip) as a numpy array; errors are `DataError`s naming the file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DataError(p, f"cannot read ({exc.strerror or exc})", fix="check the path") from exc
    return parse_idx(data, p, dims=dims)


def encode_idx(arr: np.ndarray) -> bytes:
    """IDX bytes (uncompressed) of a numpy array of one of the IDX element types."""
    dtype = arr.dtype
    key = dtype.newbyteorder(">")
    if key not in _CODES:
        raise ValueError(f"IDX has no element type for {dtype}; use one of {sorted(DTYPES.values())}")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError("IDX needs 1 to 255 dimensions")
    header = struct.pack(">HBB", 0, _CODES[key], arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=key).tobytes()


def gzip_deterministic(data: bytes) -> bytes:
    """gzip `data` with no file name and mtime 0, so equal input gives equal bytes."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()

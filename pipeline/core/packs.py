"""Image packs: many small images in one uncompressed ZIP file.

Creating a file costs far more than encoding a 28x28 PNG (on some file systems a few hundred
microseconds of kernel time per inode), so stages that write many small images can store them
as members of a pack instead (the idea of WebDataset shards and TFRecord files). A packed sample
keeps its ordinary ``image`` path (the name the image would have, with its extension) and adds::

    "pack": {"file": "images/packs/augment-00000.zip", "offset": 1234, "length": 312}

``offset``/``length`` locate the image's bytes inside the pack, so a reader needs one ``pread``
and no directory parsing. A pack is a plain ZIP archive (members stored, not deflated, named by
each sample's ``image`` path, dated 1980-01-01 so the bytes depend only on the content):
``unzip images/packs/augment-00000.zip`` in the dataset folder puts every image where its
``image`` path says, and any ZIP tool or Python's ``zipfile`` can list and read it.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from pipeline.core.errors import DataError

PACKS_DIR = "images/packs"
PACK_SUFFIX = ".zip"
MAX_MEMBERS = 10_000  # per pack: well below ZIP's 65,535 entries without the Zip64 extension
MAX_BYTES = 1 << 30  # per pack: well below 4 GiB without Zip64

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header, 30 bytes before the name
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory entry, 46 bytes before the name
_END = struct.Struct("<IHHHHIIH")  # end of central directory, 22 bytes
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, the earliest DOS date: no clock in the bytes
_UTF8 = 0x800  # general purpose flag bit 11: the name is UTF-8


class PackWriter:
    """Writes one pack file; `add` returns where the member's bytes start.

    The caller writes into a temporary folder that is renamed into place as a whole (the
    `DatasetWriter` contract), so a pack is never read before `close` has written its directory.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # never write through a hard link to another dataset's pack
        self._fh = open(self.path, "xb", buffering=1 << 20)  # a write call per MiB, not per 8 KiB (one image each)
        self._pos = 0
        self._central: list[bytes] = []

    def __len__(self) -> int:
        return len(self._central)

    @property
    def size(self) -> int:
        return self._pos

    def add(self, name: str, data: bytes) -> int:
        """Store `data` as member `name`; returns the offset of the data in the file."""
        raw = name.encode("utf-8")
        crc = zlib.crc32(data) & 0xFFFFFFFF
        n = len(data)
        header = _LOCAL.pack(0x04034B50, 10, _UTF8, 0, 0, _DOS_DATE, crc, n, n, len(raw), 0)
        self._central.append(
            _CENTRAL.pack(0x02014B50, 0x031E, 10, _UTF8, 0, 0, _DOS_DATE, crc, n, n, len(raw), 0, 0, 0, 0,
                          0o100644 << 16, self._pos) + raw)
        self._fh.write(header + raw + data)  # one call: this runs once per image
        offset = self._pos + len(header) + len(raw)
        self._pos = offset + n
        return offset

    def flush(self) -> None:
        """Hand what is buffered to the file (members written so far can be read back)."""
        self._fh.flush()

    def close(self) -> None:
        """Write the central directory (a caller that renames the folder into place next flushes
        the file to the disk first: `DatasetWriter.sync_in_background`)."""
        if self._fh.closed:
            return
        directory = b"".join(self._central)
        self._fh.write(directory)
        count = len(self._central)
        self._fh.write(_END.pack(0x06054B50, 0, 0, count, count, len(directory), self._pos, 0))
        self._fh.close()

    def __enter__(self) -> PackWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_member(path: str | os.PathLike, offset: int, length: int) -> bytes:
    """The `length` bytes at `offset` of a pack; a short read is a `DataError` naming the pack."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise DataError(path, "image pack missing", fix="re-run the stage that wrote this dataset") from exc
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(data) != length:
        raise DataError(path, "image pack is truncated", expected=f"{length} bytes at offset {offset}",
                        got=f"{len(data)} bytes", fix="re-run the stage that wrote this dataset")
    return data


def pack_name(stage: str, index: int) -> str:
    """The relative path of pack number `index` written by `stage`."""
    return f"{PACKS_DIR}/{stage}-{index:05d}{PACK_SUFFIX}"

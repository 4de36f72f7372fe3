"""Decompression bombs for the pixel-limit tests, generated (never stored in git).

`bomb_png()` is a real, valid 30000 x 30000 1-bit PNG (900 million pixels) of about a hundred KB:
every row is one filter byte and 3750 zero bytes, deflated as one stream. Decoding it would take
900 MB in Pillow; every reader must refuse it from its header.
"""

from __future__ import annotations

import struct
import zlib
from functools import cache

SIDE = 30000


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@cache
def bomb_png(side: int = SIDE) -> bytes:
    """A valid `side` x `side` 1-bit grey PNG, all black."""
    row = b"\x00" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    block = row * 256
    parts = [z.compress(block) for _ in range(side // 256)]
    parts.append(z.compress(row * (side % 256)))
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")

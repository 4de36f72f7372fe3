"""Image helpers: sniffing, safe decoding (decompression bombs, truncation), EXIF orientation.

Every importer opens images through `open_image` so the same rules hold everywhere:
Pillow's decompression-bomb limit is an error (never a warning), a truncated file is an error,
and EXIF orientation is applied exactly once, on import.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.core.errors import DataError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}

# Files that sit in image trees but are never images; skipped and counted, not reported as bad.
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini", ".directory"}

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"P5", "pgm"),
    (b"P6", "ppm"),
)

EXT_FOR_FORMAT = {"png": "png", "jpeg": "jpg", "gif": "gif", "bmp": "bmp", "tiff": "tif", "webp": "webp",
                  "pgm": "pgm", "ppm": "ppm"}


def sniff(head: bytes) -> str | None:
    """Image format from the first bytes ('png', 'jpeg', ...), or None when not a known image."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def sniff_file(path: str | os.PathLike) -> str | None:
    try:
        with open(path, "rb") as fh:
            return sniff(fh.read(16))
    except OSError:
        return None


def is_image_name(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def _decode(opener, where: str | os.PathLike) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = opener()
            img.load()
            return img
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise DataError(where, f"refused as a decompression bomb ({exc})",
                            fix="check the file; raise the limit only for images you trust") from exc
        except UnidentifiedImageError as exc:
            raise DataError(where, "not an image Pillow can read", fix="remove or replace the file") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(where, f"unreadable or truncated image ({exc})", fix="re-export or remove the file") from exc


def open_image(path: str | os.PathLike, *, exif_transpose: bool = False) -> Image.Image:
    """Decode an image fully (errors as `DataError`), optionally applying EXIF orientation."""
    img = _decode(lambda: Image.open(path), path)
    return ImageOps.exif_transpose(img) if exif_transpose else img


def open_image_bytes(data: bytes, where: str, *, exif_transpose: bool = False) -> Image.Image:
    img = _decode(lambda: Image.open(io.BytesIO(data)), where)
    return ImageOps.exif_transpose(img) if exif_transpose else img


def exif_orientation(img: Image.Image) -> int:
    """EXIF orientation tag (1..8); 1 when absent or invalid."""
    try:
        value = int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - broken EXIF blocks are common; treat as upright
        return 1
    return value if 1 <= value <= 8 else 1


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()

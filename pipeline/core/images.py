"""Image helpers: sniffing, safe decoding (decompression bombs, truncation), EXIF orientation.

Every reader and stage decodes images through `open_image`, `open_image_bytes` or `decode_array`
(or checks a header's size with `check_pixels` before it decodes), so the same rules hold
everywhere: an image of more pixels than the one limit (`max_pixels`, default Pillow's
89,478,485; `--max-pixels N|none` on the commands that read images) is refused before any pixel
is decoded, with one line naming the file, its size, the limit and the fix; a truncated file is
an error, unless the caller asks to restore it (`open_image_restoring`: a file whose decoder ran
out of data is decoded again with Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` set only around
that one decode, as Ultralytics restores a JPEG without its end marker); EXIF orientation is
applied exactly once, on import.

The limit is ours, not Pillow's: Pillow's own check (`Image.MAX_IMAGE_PIXELS`, a warning above
the limit and an error above twice it, worded as Pillow's) is turned off when this module is
imported, so its text never reaches the user. The limit travels to worker processes through the
``PIPELINE_MAX_PIXELS`` environment variable (0 lifts it).
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pipeline.core.errors import DataError, UsageError

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's MAX_IMAGE_PIXELS: a 24-bit image of 256 MiB
MAX_PIXELS_ENV = "PIPELINE_MAX_PIXELS"  # how the limit reaches worker processes (0: no limit)

Image.MAX_IMAGE_PIXELS = None  # the limit is `check_pixels`, with our message (see the module docstring)


def parse_max_pixels(value: str | int | None) -> int | None:
    """A `--max-pixels` value as a limit: a positive integer, or None for 0 / ``none`` (no limit)."""
    if value is None:
        return None
    text = str(value).strip().replace("_", "").replace(",", "")
    if text.lower() in ("none", "0"):
        return None
    if not text.isdigit():
        raise UsageError(f"--max-pixels {value!r}: expected a number of pixels, 0 or none",
                         fix=f"e.g. --max-pixels 200000000 (the default is {DEFAULT_MAX_PIXELS:,})")
    return int(text)


def _limit_from_env() -> int | None:
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_PIXELS
    try:
        return parse_max_pixels(raw)
    except UsageError:
        return DEFAULT_MAX_PIXELS


_LIMIT: list[int | None] = [_limit_from_env()]


def max_pixels() -> int | None:
    """The largest image (width x height) any reader decodes; None: no limit."""
    return _LIMIT[0]


def set_max_pixels(limit: int | None) -> None:
    """Set the pixel limit for this process and the worker processes it starts (None: no limit)."""
    if limit is not None and limit <= 0:
        limit = None
    _LIMIT[0] = limit
    os.environ[MAX_PIXELS_ENV] = str(limit or 0)


def check_pixels(width: int, height: int, where: str | os.PathLike) -> None:
    """Refuse an image of `width` x `height` over the pixel limit, before it is decoded."""
    limit = _LIMIT[0]
    pixels = int(width) * int(height)
    if limit is not None and pixels > limit:
        raise DataError(where, f"image of {width}x{height} = {pixels:,} pixels, over the limit of {limit:,} "
                               "pixels (a decompression bomb?)",
                        fix="check the file; if you trust it, raise the limit with --max-pixels N "
                            "(or --max-pixels none)")

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


class TruncatedImageError(DataError):
    """An image whose decoder ran out of data before the last row (`open_image_restoring` may restore it)."""


_TRUNCATED_LOCK = threading.Lock()  # LOAD_TRUNCATED_IMAGES is Pillow's global: set by one decode at a time


def _load(img: Image.Image, truncated: bool) -> None:
    if not truncated:
        img.load()
        return
    with _TRUNCATED_LOCK:
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            img.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


def _decode(opener, where: str | os.PathLike, *, truncated: bool = False) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # (off; the limit is check_pixels)
        try:
            img = opener()  # the header only
            check_pixels(img.width, img.height, where)
            _load(img, truncated)
            return img
        except Image.DecompressionBombError as exc:  # Pillow's limit set again by someone else
            raise DataError(where, "over Pillow's decompression-bomb limit (a decompression bomb?)",
                            fix="check the file; if you trust it, raise the limit with --max-pixels N") from exc
        except UnidentifiedImageError as exc:
            raise DataError(where, "not an image Pillow can read", fix="remove or replace the file") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            error = TruncatedImageError if str(exc).startswith("image file is truncated") else DataError
            raise error(where, f"unreadable or truncated image ({exc})", fix="re-export or remove the file") from exc


def open_image(path: str | os.PathLike, *, exif_transpose: bool = False) -> Image.Image:
    """Decode an image fully (errors as `DataError`), optionally applying EXIF orientation."""
    img = _decode(lambda: Image.open(path), path)
    return ImageOps.exif_transpose(img) if exif_transpose else img


def open_image_bytes(data: bytes, where: str, *, exif_transpose: bool = False) -> Image.Image:
    img = _decode(lambda: Image.open(io.BytesIO(data)), where)
    return ImageOps.exif_transpose(img) if exif_transpose else img


def _pixels_begun(data: bytes) -> bool:
    """Whether a cut-short file reached its pixel data: a JPEG's start of scan, a PNG's first IDAT.
    Other formats, and files cut before that point, are not restored (nothing of the image is in them)."""
    kind = sniff(data[:16])
    if kind == "jpeg":
        return b"\xff\xda" in data
    if kind == "png":
        return b"IDAT" in data
    return False


def open_image_restoring(data: bytes, where: str | os.PathLike, *,
                         exif_transpose: bool = False) -> tuple[Image.Image, bool]:
    """Decode `data` like `open_image_bytes`; a file cut short whose rows still decode (a JPEG
    without its end marker, a PNG missing its last chunks) is decoded again with Pillow's
    ``LOAD_TRUNCATED_IMAGES`` around that decode only. Returns the image and whether it was
    truncated. A file cut before its pixel data (in its header), a format other than JPEG and PNG,
    or one that cannot be decoded even so raises `DataError`."""
    try:
        return open_image_bytes(data, str(where), exif_transpose=exif_transpose), False
    except TruncatedImageError:
        if not _pixels_begun(data):
            raise
    img = _decode(lambda: Image.open(io.BytesIO(data)), where, truncated=True)
    return (ImageOps.exif_transpose(img) if exif_transpose else img), True


_WIDE_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # 16- and 32-bit grey modes


def to_8bit(img: Image.Image) -> Image.Image:
    """`img` with 8-bit channels for showing to a person: 16- and 32-bit grey (modes ``I;16``,
    ``I``, ``F``) scaled from the image's actual range (its darkest pixel black, its brightest
    white) instead of clipped at 255; other modes are returned as they are. A grey image of one
    value keeps that value, clipped to 0..255."""
    if img.mode not in _WIDE_GREY:
        return img
    import numpy as np

    a = np.asarray(img).astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if hi > lo:
        a = (a - lo) * (255.0 / (hi - lo))
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def exif_orientation(img: Image.Image) -> int:
    """EXIF orientation tag (1..8); 1 when absent or invalid."""
    try:
        value = int(img.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - broken EXIF blocks are common; treat as upright
        return 1
    return value if 1 <= value <= 8 else 1


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_PNG_COLOR = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)


def stored_png(array) -> bytes:
    """A PNG of an 8-bit grey (H, W), RGB or RGBA (H, W, C) array, its pixels stored without
    deflate compression (filter type 0 per row, stored deflate blocks).

    For tiny images this is 3-4x faster than any compressing encoder (zlib's set-up alone costs
    more than the pixels) at about twice the size; every PNG reader decodes it.
    """
    import struct
    import zlib

    import numpy as np

    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    if array.dtype != np.uint8 or channels not in _PNG_COLOR or h == 0 or w == 0:
        raise ValueError(f"stored_png: an 8-bit image of 1, 3 or 4 channels, got {array.dtype} {array.shape}")
    raw = np.empty((h, 1 + w * channels), dtype=np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = array.reshape(h, w * channels)
    data = raw.tobytes()
    blocks = [b"\x78\x01"]  # zlib header: deflate, 32 KiB window, no dictionary, fastest
    for start in range(0, len(data), 65535):
        block = data[start:start + 65535]
        last = start + 65535 >= len(data)
        blocks.append(struct.pack("<BHH", 1 if last else 0, len(block), len(block) ^ 0xFFFF) + block)
    blocks.append(struct.pack(">I", zlib.adler32(data)))
    idat = b"".join(blocks)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, _PNG_COLOR[channels], 0, 0, 0)
    return b"".join((_PNG_SIGNATURE, struct.pack(">I", 13), b"IHDR", ihdr, struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)),
                     struct.pack(">I", len(idat)), b"IDAT", idat, struct.pack(">I", zlib.crc32(idat, zlib.crc32(b"IDAT"))),
                     _PNG_IEND))


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Pixels as arrays (augmentation): OpenCV's decoder where it gives Pillow's exact pixels, faster
# --------------------------------------------------------------------------------------------

_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png_kind(data: bytes) -> tuple[str, int, int] | None:
    """('L' or 'RGB', width, height) for an 8-bit grey or RGB PNG (tRNS or not), else None."""
    if len(data) < 26 or not data.startswith(_PNG_SIG) or data[12:16] != b"IHDR" or data[24] != 8:
        return None
    if data[-8:-4] != b"IEND":  # truncated: Pillow says so, OpenCV might not
        return None
    kind = {0: "L", 2: "RGB"}.get(data[25])
    return (kind, int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) if kind else None


def _jpeg_kind(data: bytes) -> tuple[str, int, int] | None:
    """('L' or 'RGB', width, height) for an 8-bit baseline/progressive JPEG of 1 or 3 components,
    else None (CMYK, 12-bit)."""
    if not data.startswith(b"\xff\xd8") or not data.rstrip(b"\0").endswith(b"\xff\xd9"):
        return None  # not a JPEG, or truncated (Pillow says so, OpenCV fills in grey)
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame
            if i + 10 > n or data[i + 4] != 8:
                return None
            kind = {1: "L", 3: "RGB"}.get(data[i + 9])
            height, width = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
            return (kind, width, height) if kind else None
        if marker == 0xDA:  # start of scan before any frame header: not a JPEG we know
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def decode_array(data: bytes, where: str | os.PathLike):
    """An encoded image as a uint8 array, (H, W) grey or (H, W, 3) RGB, EXIF orientation not applied.

    8-bit grey/RGB PNGs and JPEGs go through OpenCV (several times faster than Pillow on small
    images); anything else (palettes, 16 bits, alpha, CMYK, GIF, ...) through Pillow, converted.
    Either way the pixel limit (`check_pixels`) is applied to the header's size first.
    """
    import numpy as np

    found = _png_kind(data) or _jpeg_kind(data)
    if found is not None:
        import cv2

        kind, width, height = found
        check_pixels(width, height, where)
        flags = (cv2.IMREAD_GRAYSCALE if kind == "L" else cv2.IMREAD_COLOR_RGB) | cv2.IMREAD_IGNORE_ORIENTATION
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if arr is not None:
            return arr
    img = open_image_bytes(data, str(where))
    if img.mode not in ("L", "RGB"):
        grey = img.mode in ("1", "I", "I;16", "I;16B", "F", "LA")
        img = img.convert("L" if grey else "RGB")
    return np.array(img, dtype=np.uint8)

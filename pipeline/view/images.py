"""Images for the browser: originals (files or pack members) and thumbnails cached on disk.

The page draws labels over the images itself (SVG from the samples' JSON), so an image is encoded
once whatever its labels become. A thumbnail is at most `THUMB` pixels on its longer side; it is
keyed by the image's sha256, so equal images share one and a changed image gets a new one, and
it is written to a temporary file and renamed into place. Small images the browser can show as
they are (MNIST's 28x28 PNGs) are their own thumbnails: nothing is decoded or written for them.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

from pipeline.core.dataset import Dataset, Sample
from pipeline.core.images import sniff, to_8bit

THUMB = 256  # pixels on the longer side: sharp in a 128-160 px grid cell on a 2x display
BROWSER_FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
                   "bmp": "image/bmp"}


def original(dataset: Dataset, sample: Sample) -> tuple[bytes, str]:
    """The stored image as the browser gets it: its own bytes, or a PNG for formats browsers cannot show."""
    data = dataset.read_image_bytes(sample)
    kind = sniff(data[:16])
    if kind in BROWSER_FORMATS:
        return data, BROWSER_FORMATS[kind]
    return _encode(_decoded(dataset, sample), "png"), "image/png"


def thumbnail(dataset: Dataset, sample: Sample, cache: Path, size: int = THUMB) -> tuple[bytes, str]:
    """The sample's thumbnail: from the cache, or made now and cached."""
    if max(sample.width, sample.height) <= size and sample.pack is None:
        data = dataset.read_image_bytes(sample)
        kind = sniff(data[:16])
        if kind in BROWSER_FORMATS:
            return data, BROWSER_FORMATS[kind]
    folder = cache / "thumbs" / str(size) / sample.sha256[:2]
    for ext, media in (("png", "image/png"), ("jpg", "image/jpeg")):
        path = folder / f"{sample.sha256}.{ext}"
        try:
            return path.read_bytes(), media
        except FileNotFoundError:
            continue
    if max(sample.width, sample.height) <= size:
        data, media = original(dataset, sample)  # a small packed image: its bytes, cached as they are
        ext = "jpg" if media == "image/jpeg" else "png"
        if media not in ("image/png", "image/jpeg"):
            data, media, ext = _encode(_decoded(dataset, sample), "png"), "image/png", "png"
    else:
        img = _decoded(dataset, sample)
        img.thumbnail((size, size))
        ext = "png" if img.mode in ("L", "LA", "RGBA", "P", "1") and max(img.size) <= 64 else "jpg"
        data = _encode(img, ext)
        media = "image/png" if ext == "png" else "image/jpeg"
    _store(folder / f"{sample.sha256}.{ext}", data)
    return data, media


def _decoded(dataset: Dataset, sample: Sample):
    img = to_8bit(dataset.open_image(sample))
    if img.mode not in ("L", "RGB", "RGBA", "LA"):
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return img


def _encode(img, ext: str) -> bytes:
    buf = io.BytesIO()
    if ext == "jpg":
        if img.mode != "RGB" and img.mode != "L":
            img = img.convert("RGB")
        img.save(buf, format="JPEG", quality=85)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def _store(path: Path, data: bytes) -> None:
    """Write a cache file atomically (a reader never sees half a thumbnail); no fsync: it is a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

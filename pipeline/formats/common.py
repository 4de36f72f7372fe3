"""What every annotation format shares: finding the image of an annotation file, reading its size
and EXIF orientation cheaply, deciding which frame the annotation's coordinates are in, and adding
the sample the same way in every format.

Finding images. Annotation files name their image in several ways (VOC ``<filename>`` and
``<path>``, COCO ``file_name``, a YOLO label's own stem). Absolute paths come from another machine
and are never opened as they are: only their file name is used. The image is looked for beside the
annotation file, in an ``images``/``JPEGImages`` folder beside it or one level up, and at the
import root, by file name with the extension matched case-insensitively (``IMG_1.JPG`` for
``img_1.jpg``), then anywhere under the root when exactly one image has that name (the common
layouts: COCO's ``annotations/`` beside ``val2017/``, labels beside an ``images/`` folder). With
``--images DIR`` images are looked up under DIR alone. Relative paths are tried first when they
stay inside the roots; nothing outside them is ever opened: listings and lookups go through `SafeFiles` (`pipeline.core.paths`),
so a link is followed only when its target lies inside the import root, and FIFOs, sockets and
devices are never opened. Folder listings are cached, so a lookup costs a few dict probes.

EXIF frames. We store images upright (EXIF orientation applied, re-encoded as PNG when it changed
anything, as the ImageFolder importer does). Annotation tools disagree on which frame they label:
labelImg shows the raw pixels (Qt without auto-transform), labelme and CVAT apply the orientation.
`decide_frame` settles it once per image from the size the annotation declares: when it matches
only the raw frame the coordinates are rotated into the upright frame; when it matches only the
upright frame they are kept. When the size cannot tell (square images with orientation 5-8, the
mirror/180 orientations 2-4 that keep the size, or no declared size at all) the format's default
frame is used and the image is counted as ambiguous in the import report.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from xml.etree.ElementTree import ParseError

from pipeline.core import ui
from pipeline.core.dataset import Obj, RenderedObjects, Sample
from pipeline.core.errors import DataError
from pipeline.core.images import IMAGE_EXTS
from pipeline.core.paths import (
    SafeFiles,
    link_or_copy,  # noqa: F401 - re-exported for the format modules
    read_regular,
)
from pipeline.formats.base import ExportReport, ImportContext

# The errors parsing one XML annotation file can end in: malformed XML, a DTD or entity refused by
# defusedxml (a ValueError), an unknown or multi-byte encoding in the declaration (LookupError, ValueError).
XML_ERRORS = (ParseError, LookupError, ValueError)


def xml_error(exc: Exception, where: str, *, fix: str, encoding_fix: str) -> DataError:
    """One XML parse failure of `where` (one of `XML_ERRORS`) as the one-line error the readers give."""
    from defusedxml import DefusedXmlException

    if isinstance(exc, ParseError):
        line = exc.position[0] if getattr(exc, "position", None) else None
        return DataError(where, f"not well-formed XML ({getattr(exc, 'msg', exc)})", line=line, fix=fix)
    if isinstance(exc, DefusedXmlException):
        return DataError(where, f"refused: {type(exc).__name__} (DTDs, entities and external references are not "
                         "allowed in annotation files)", fix="remove the <!DOCTYPE ...> block")
    return DataError(where, f"unsupported XML encoding ({exc})", line=1, fix=encoding_fix)


IMAGE_FOLDERS = ("images", "jpegimages")  # looked for case-insensitively beside and above annotation files

AMBIGUOUS = "EXIF-rotated images whose annotation frame the declared size cannot tell (format default used)"
ROTATED = "EXIF-rotated images stored upright"
MISMATCH = "images whose size differs from the declared size"
TRUNCATED = "truncated images restored (decodable, stored as PNG)"


# --------------------------------------------------------------------------------------------
# Finding images
# --------------------------------------------------------------------------------------------


def hint_name(hint: str) -> str:
    """The file name of a path written on any machine (``C:\\data\\a.jpg``, ``/Users/x/a.jpg``)."""
    return hint.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip()


class ImageFinder:
    """Finds images by name under one import root (or under ``--images DIR`` alone when given),
    with cached folder listings.

    Search order for an annotation file: a relative hint inside the roots; then by file name in
    the annotation's folder, its parent and the root (with ``--images``: the images folder alone),
    each with its ``images``/``JPEGImages`` subfolder and the `extra_names` subfolders (a split
    folder such as COCO's ``val2017/``); last, anywhere under the images root, when exactly one
    image has that name (two of them: an "ambiguous image name" error naming both)."""

    def __init__(self, root: str | os.PathLike, files: SafeFiles | None = None,
                 images: str | os.PathLike | None = None) -> None:
        self.root = os.path.abspath(root if os.path.isdir(root) else os.path.dirname(os.path.abspath(root)))
        self.images = os.path.abspath(images) if images is not None else None  # --images DIR
        self.safe = files if files is not None else SafeFiles([self.root, *([self.images] if self.images else [])])
        self._files: dict[str, dict[str, str]] = {}  # folder -> casefolded name -> real name
        self._dirs: dict[str, dict[str, str]] = {}  # folder -> casefolded subfolder name -> real name
        self._stems: dict[str, dict[str, list[str]]] = {}  # folder -> casefolded stem -> image names
        self._folders: dict[tuple, list[str]] = {}  # search order per annotation folder
        self._ann_dirs: dict[str, str] = {}  # an annotation file's folder as written -> made absolute
        self._index: dict[str, list[str]] | None = None  # casefolded name -> images anywhere (built on a miss)
        self._stem_index: dict[str, list[str]] | None = None

    @property
    def image_root(self) -> str:
        """Where images are looked up: ``--images DIR``, else the import root."""
        return self.images or self.root

    def rel(self, image: str) -> str:
        """An image's path as the user knows it, with ``/``: relative to ``--images DIR`` when it
        lies there, else to the import root."""
        base = self.images if self.images and self.inside_images(image) else self.root
        prefix = base.rstrip(os.sep) + os.sep
        if image.startswith(prefix) and os.path.normpath(image) == image:  # (the usual case: a slice, no relpath)
            return image[len(prefix):].replace(os.sep, "/")
        return os.path.relpath(image, base).replace(os.sep, "/")

    def inside_images(self, path: str) -> bool:
        return bool(self.images) and (path == self.images or path.startswith(self.images.rstrip(os.sep) + os.sep))

    def allowed(self, path: str) -> bool:
        """Whether an image may be looked up at `path`: inside ``--images DIR`` when given, else
        inside the import root."""
        return self.inside_images(path) if self.images else self.inside(path)

    def inside(self, path: str) -> bool:
        """True when `path` (absolute, normalised) lies inside the import root or the images folder."""
        return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in (self.root, self.images) if r)

    def _list(self, folder: str) -> None:
        files: dict[str, str] = {}
        dirs: dict[str, str] = {}
        stems: dict[str, list[str]] = {}
        sub, names, _reals = self.safe.scan(folder) if self.safe.is_dir(folder) else ([], [], {})
        for name in sub:
            dirs.setdefault(name.casefold(), name)
        for name in names:
            key = name.casefold()
            files.setdefault(key, name)
            stem, ext = os.path.splitext(key)
            if ext in IMAGE_EXTS and not key.startswith("._"):
                stems.setdefault(stem, []).append(name)
        self._files[folder], self._dirs[folder], self._stems[folder] = files, dirs, stems

    def files(self, folder: str) -> dict[str, str]:
        if folder not in self._files:
            self._list(folder)
        return self._files[folder]

    def subdir(self, folder: str, name: str) -> str | None:
        if folder not in self._dirs:
            self._list(folder)
        real = self._dirs[folder].get(name.casefold())
        return os.path.join(folder, real) if real else None

    def folders(self, ann_dir: str, extra: Iterable[str] = (), extra_names: Iterable[str] = ()) -> list[str]:
        """Where the image of an annotation file in `ann_dir` may be, in the order they are tried."""
        key = (ann_dir, tuple(extra), tuple(extra_names))
        cached = self._folders.get(key)
        if cached is not None:
            return cached
        out: list[str] = []
        bases = [self.images] if self.images else [ann_dir, os.path.dirname(ann_dir), self.root]
        for d in [*extra, *bases]:
            d = os.path.normpath(d)
            if not self.allowed(d) or d in out:
                continue
            out.append(d)
            for name in (*extra_names, *IMAGE_FOLDERS):
                sub = self.subdir(d, name)
                if sub and sub not in out:
                    out.append(sub)
                    for inner in extra_names:  # images/val2017/
                        deeper = self.subdir(sub, inner) if name in IMAGE_FOLDERS else None
                        if deeper and deeper not in out:
                            out.append(deeper)
        self._folders[key] = out
        return out

    def _build_index(self) -> None:
        from pipeline.core.dataset import DATASET_JSON

        by_name: dict[str, list[str]] = {}
        by_stem: dict[str, list[str]] = {}
        top = self.image_root
        for dirpath, dirnames, filenames in self.safe.walk(top):
            if dirpath != top and DATASET_JSON in filenames:  # a pipeline dataset inside (an earlier import)
                dirnames[:] = []
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d.casefold() != "__macosx")
            for name in sorted(filenames):
                key = name.casefold()
                if os.path.splitext(key)[1] in IMAGE_EXTS and not key.startswith("._"):
                    by_name.setdefault(key, []).append(os.path.join(dirpath, name))
                    by_stem.setdefault(os.path.splitext(key)[0], []).append(os.path.join(dirpath, name))
        self._index, self._stem_index = by_name, by_stem

    def _anywhere(self, key: str, by_stem: bool, shown: str) -> str | None:
        if self._index is None:
            self._build_index()
        found = (self._stem_index if by_stem else self._index).get(key, [])  # type: ignore[union-attr]
        if len(found) > 1:
            top = self.image_root
            names = [os.path.relpath(f, top).replace(os.sep, "/") for f in found[:3]]
            raise DataError(shown, "ambiguous image name", expected="one image of that name under the images folder",
                            got=names, fix="keep one of them, or point --images at the folder of this split")
        return found[0] if found else None

    def find(self, ann_path: str | os.PathLike, hints: Sequence[str | None], *, stem: str | None = None,
             extra_dirs: Iterable[str] = (), extra_names: Iterable[str] = ()) -> str | None:
        """The image for the annotation file `ann_path`: by each hint (relative path, then file name),
        then by `stem` with any image extension, in the folders of `folders`, then anywhere under
        the images root when the name is unique there. None when not found."""
        ann_path = os.fspath(ann_path)
        folder = os.path.dirname(ann_path)
        ann_dir = self._ann_dirs.get(folder)
        if ann_dir is None:  # a file's folder made absolute once per folder (as abspath would)
            ann_dir = os.path.dirname(os.path.abspath(ann_path))
            if os.path.basename(ann_path) not in ("", ".", ".."):
                self._ann_dirs[folder] = ann_dir
        folders = self.folders(ann_dir, extra_dirs, extra_names)
        for hint in hints:
            if not hint:
                continue
            rel = hint.replace("\\", "/")
            if not rel.startswith("/") and ":" not in rel.split("/", 1)[0] and "/" in rel:
                for base in (self.images,) if self.images else (ann_dir, self.root):
                    cand = os.path.normpath(os.path.join(base, rel))
                    if self.allowed(cand) and self.safe.is_file(cand):
                        return cand
            name = hint_name(hint)
            if not name or name in (".", ".."):
                continue
            key = name.casefold()
            for d in folders:
                real = self.files(d).get(key)
                if real is not None:
                    return os.path.join(d, real)
        if stem:
            key = stem.casefold()
            for d in folders:
                if d not in self._stems:
                    self._list(d)
                names = self._stems[d].get(key)
                if names:
                    return os.path.join(d, names[0])
        for hint in hints:
            name = hint_name(hint) if hint else ""
            if name and name not in (".", ".."):
                found = self._anywhere(name.casefold(), False, name)
                if found:
                    return found
        if stem:
            return self._anywhere(stem.casefold(), True, stem)
        return None


# --------------------------------------------------------------------------------------------
# Image headers: size and EXIF orientation without decoding the pixels
# --------------------------------------------------------------------------------------------


@dataclass
class ImageProbe:
    """An image file's bytes with the facts the importers need."""

    path: str
    data: bytes
    fmt: str
    width: int  # raw pixel array, before EXIF orientation
    height: int
    orientation: int = 1
    truncated: bool = False  # cut short but decodable: stored restored (`add_image_sample`)
    warnings: list[str] = field(default_factory=list)  # library warnings raised while reading it
    sha256: str | None = None  # of `data`, when probed elsewhere (`prefetched`: then `data` is empty)

    @property
    def upright_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _exif_orientation(tiff: bytes) -> int:
    """Orientation tag (0x0112) from an EXIF TIFF block; 1 when absent or broken."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return 1
    e = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(e + "I", tiff, 4)
        (n,) = struct.unpack_from(e + "H", tiff, ifd)
        for i in range(n):
            tag, typ, _count = struct.unpack_from(e + "HHI", tiff, ifd + 2 + 12 * i)
            if tag == 0x0112:
                value = struct.unpack_from(e + "H", tiff, ifd + 2 + 12 * i + 8)[0] if typ == 3 else 1
                return value if 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def _jpeg_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, orientation) from JPEG markers, or None when the markers are not as expected."""
    i, n = 2, len(data)
    orientation = 1
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        if marker in _SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack_from(">HH", data, i + 5)
            return (w, h, orientation) if w and h else None
        if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
            orientation = _exif_orientation(data[i + 10 : i + 2 + length])
        if marker in (0xD9, 0xDA):
            return None
        i += 2 + length
    return None


def _complete(fmt: str, data: bytes) -> bool:
    """A cheap end-of-file check: JPEG ends in EOI, PNG in IEND (else the file gets a full decode)."""
    if fmt == "jpeg":
        return b"\xff\xd9" in data[-4096:]
    if fmt == "png":
        return b"IEND" in data[-16:]
    return False


def probe_bytes(data: bytes, where: str, path: str = "") -> ImageProbe:
    """Size, format and EXIF orientation of an image in memory. A file cut short whose rows still
    decode is marked `truncated`; one that cannot be decoded raises `DataError`."""
    from pipeline.core.images import check_pixels, sniff

    fmt = sniff(data[:16])
    if fmt == "jpeg":
        head = _jpeg_header(data)
        if head is not None and _complete(fmt, data):
            check_pixels(head[0], head[1], where)  # the pixel limit holds without a decode too
            return ImageProbe(path, data, fmt, head[0], head[1], head[2])
    elif fmt == "png" and len(data) >= 24 and data[12:16] == b"IHDR" and b"eXIf" not in data[:65536]:
        w, h = struct.unpack_from(">II", data, 16)
        if w and h and _complete(fmt, data):
            check_pixels(w, h, where)
            return ImageProbe(path, data, fmt, w, h, 1)
    from pipeline.core.images import exif_orientation, open_image_restoring

    with ui.library_warnings() as caught:
        img, truncated = open_image_restoring(data, where)  # a full decode: reports bombs and undecodable files
        orientation = exif_orientation(img)
    return ImageProbe(path, data, (img.format or fmt or "png").lower(), img.width, img.height, orientation,
                      truncated, warnings=caught)


def probe_image(path: str | os.PathLike, where: str) -> ImageProbe:
    """Read an image file once: its bytes (for hashing) and header facts. Only a regular file is
    opened (`read_regular`: a FIFO, socket or device is a `DataError`). Inside `prefetched`, a file
    probed already is not read again."""
    known = _PREFETCHED.get()
    if known is not None:
        probe = known.get(os.path.abspath(path))
        if probe is not None:
            return replace(probe, path=str(path))
    return probe_bytes(read_regular(path, where), where, str(path))


# Probes made before a format's reader runs (by other processes: `import --engine ray`), by
# absolute path; set for the duration of one import by `prefetched`.
_PREFETCHED: ContextVar[dict[str, ImageProbe] | None] = ContextVar("prefetched_probes", default=None)


@contextlib.contextmanager
def prefetched(probes: dict[str, ImageProbe]) -> Iterator[None]:
    """Within the block, `probe_image` answers from `probes` (absolute path -> `light_probe`) for
    the files it holds, and reads the others itself."""
    token = _PREFETCHED.set(probes)
    try:
        yield
    finally:
        _PREFETCHED.reset(token)


def prefetching() -> bool:
    """Whether `probe_image` answers from probes made before the reader ran (`prefetched`)."""
    return _PREFETCHED.get() is not None


def light_probe(path: str) -> ImageProbe | None:
    """The probe of one file without its bytes, with their sha256 (what a worker sends back), or
    None for a file that needs the importer's own look: unreadable, over the pixel limit, rotated
    by EXIF, cut short, or with library warnings (their messages name the file as the format does)."""
    try:
        probe = probe_image(path, path)
    except (DataError, OSError):
        return None
    if probe.orientation != 1 or probe.truncated or probe.warnings:
        return None
    return replace(probe, data=b"", sha256=hashlib.sha256(probe.data).hexdigest())


# --------------------------------------------------------------------------------------------
# EXIF frames
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """Which frame an annotation's coordinates are in, and how to bring them to the stored upright frame."""

    orientation: int  # EXIF orientation of the file, 1..8
    raw_size: tuple[int, int]  # (width, height) of the pixel array as stored in the file
    rotate: bool  # True: coordinates are in the raw frame and get the orientation applied
    ambiguous: bool = False
    mismatch: bool = False  # the declared size matched neither frame

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the stored, upright image."""
        w, h = self.raw_size
        return (h, w) if self.orientation >= 5 else (w, h)

    @property
    def source_size(self) -> tuple[int, int]:
        """(width, height) of the frame the annotation's coordinates are in."""
        return self.raw_size if self.rotate else self.size

    def point(self, x: float, y: float) -> tuple[float, float]:
        """A point of the annotation frame in the stored frame (continuous pixel coordinates)."""
        if not self.rotate:
            return x, y
        w, h = self.raw_size
        o = self.orientation
        # Inverse of what PIL's exif_transpose does to the pixels, point by point.
        if o == 2:
            return w - x, y
        if o == 3:
            return w - x, h - y
        if o == 4:
            return x, h - y
        if o == 5:
            return y, x
        if o == 6:
            return h - y, x
        if o == 7:
            return h - y, w - x
        if o == 8:
            return y, w - x
        return x, y

    def bbox(self, box: Sequence[float]) -> list[float]:
        (ax, ay), (bx, by) = self.point(box[0], box[1]), self.point(box[2], box[3])
        return [min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)]

    def points(self, pts: Sequence[Sequence[float]]) -> list[list[float]]:
        return [[*self.point(p[0], p[1]), *p[2:]] for p in pts]

    def obj(self, o: Obj) -> Obj:
        """A new object with every geometry in the stored frame (the input is not changed)."""
        if not self.rotate or self.orientation == 1:
            return o
        mask = o.mask
        if mask is not None:
            from PIL import Image

            from pipeline.core.geometry import rle_decode, rle_encode

            m = Image.fromarray(rle_decode(mask).astype("uint8"))
            method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                      4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                      6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                      8: Image.Transpose.ROTATE_90}[self.orientation]
            import numpy as np

            mask = rle_encode(np.asarray(m.transpose(method)) > 0)
        return Obj(
            label=o.label,
            bbox=self.bbox(o.bbox) if o.bbox is not None else None,
            polygon=[self.points(r) for r in o.polygon] if o.polygon is not None else None,
            keypoints=self.points(o.keypoints) if o.keypoints is not None else None,
            polyline=self.points(o.polyline) if o.polyline is not None else None,
            mask=mask, weight=o.weight, attributes=dict(o.attributes),
        )


def decide_frame(raw_size: tuple[int, int], orientation: int, declared: tuple[int, int] | None,
                 default: str = "raw") -> Frame:
    """Decide once per image which frame the annotation uses (see the module docstring).

    `default` ("raw" or "upright") is the frame the format's usual tool labels in; it is used when
    the declared size cannot tell. A `Frame` is immutable: the decision for sizes seen before is
    the one made then (most images of a dataset share a few sizes).
    """
    if _int_pair(raw_size) and (declared is None or _int_pair(declared)) and type(orientation) is int:
        return _decided_frame(raw_size, orientation, declared, default)  # (32, 24) only, never (32.0, 24.0)
    return _decide_frame(raw_size, orientation, declared, default)


def _decide_frame(raw_size: tuple[int, int], orientation: int, declared: tuple[int, int] | None,
                  default: str) -> Frame:
    w, h = raw_size
    up = (h, w) if orientation >= 5 else (w, h)
    if orientation == 1:
        return Frame(1, raw_size, False, mismatch=declared is not None and tuple(declared) != (w, h))
    by_default = default == "raw"
    if declared is None:
        return Frame(orientation, raw_size, by_default, ambiguous=True)
    declared = (int(declared[0]), int(declared[1]))
    is_raw, is_up = declared == (w, h), declared == up
    if is_raw and is_up:
        return Frame(orientation, raw_size, by_default, ambiguous=True)
    if is_raw:
        return Frame(orientation, raw_size, True)
    if is_up:
        return Frame(orientation, raw_size, False)
    return Frame(orientation, raw_size, by_default, mismatch=True)


_decided_frame = functools.lru_cache(maxsize=1024)(_decide_frame)


def _int_pair(value: object) -> bool:
    return type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int


# --------------------------------------------------------------------------------------------
# Adding samples
# --------------------------------------------------------------------------------------------


def add_image_sample(ctx: ImportContext, image_path: str | os.PathLike | None, sample: Sample, *,
                     declared_size: tuple[int, int] | None = None, default_frame: str = "raw",
                     probe: ImageProbe | None = None, frame: Frame | None = None, where: str | None = None,
                     objects: RenderedObjects | None = None) -> Sample:
    """Store `sample` with its image the way every format does.

    `sample.objects` are in the annotation's frame; they are converted to the stored upright frame.
    The image is hard-linked (or copied) as it is, or re-encoded upright as PNG when its EXIF
    orientation changes the pixels or when the file was cut short but decodes (``meta.truncated``,
    a warning, counted; `check` reports it as ``truncated-image``). Width, height, sha256 and
    ``meta.exif_orientation`` are set here. `objects`: the sample's objects already rendered (a
    streaming reader's), only for an image whose frame needs no conversion.
    """
    where = where or str(sample.source.get("file") or image_path)
    if probe is None:
        if image_path is None:
            raise ValueError("add_image_sample needs image_path or probe")
        probe = probe_image(image_path, where)
    if frame is None:
        frame = decide_frame((probe.width, probe.height), probe.orientation, declared_size, default_frame)
    _library_warnings(ctx, where, probe, probe.warnings)
    if frame.mismatch and declared_size is not None:
        ctx.report.counts[MISMATCH] += 1
        ctx.warn(f"{where}: declared size {declared_size[0]}x{declared_size[1]} but the image is "
                 f"{frame.size[0]}x{frame.size[1]}; coordinates kept as written")
    if frame.ambiguous:
        ctx.report.counts[AMBIGUOUS] += 1
        sample.meta["exif_frame"] = "assumed raw" if frame.rotate else "assumed upright"
    if objects is not None and frame.rotate and frame.orientation != 1:
        raise ValueError("add_image_sample: rendered objects of an image whose frame is converted")
    if sample.objects and frame.rotate and frame.orientation != 1:
        sample.objects = [frame.obj(o) for o in sample.objects]
    sample.width, sample.height = frame.size
    if frame.orientation != 1 or probe.truncated:
        from pipeline.core.images import encode_png, open_image_restoring

        with ui.library_warnings() as caught:
            img, _ = open_image_restoring(probe.data, where, exif_transpose=True)
        _library_warnings(ctx, where, probe, [w for w in caught if w not in probe.warnings])
        if img.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
            img = img.convert("RGB")  # CMYK/YCbCr JPEGs: PNG holds RGB
        if frame.orientation != 1:
            sample.meta["exif_orientation"] = frame.orientation
            ctx.report.counts[ROTATED] += 1
        if probe.truncated:
            sample.meta["truncated"] = True
            ctx.report.counts[TRUNCATED] += 1
            image = sample.source.get("image") or (os.path.basename(probe.path) if probe.path else "")
            ctx.warn(f"{where}: image {image or 'file'} is truncated (cut short before its end); kept with "
                     "the rows that decode, stored as PNG")
        return ctx.add(sample, data=encode_png(img), ext="png", objects=objects)
    sample.sha256 = probe.sha256 or hashlib.sha256(probe.data).hexdigest()
    ext = os.path.splitext(probe.path)[1] if probe.path else ""
    if probe.path:
        return ctx.add(sample, src=probe.path, ext=ext or "." + probe.fmt, objects=objects)
    return ctx.add(sample, data=probe.data, ext={"jpeg": "jpg"}.get(probe.fmt, probe.fmt), objects=objects)


def _library_warnings(ctx: ImportContext, where: str, probe: ImageProbe, texts: list[str]) -> None:
    """Warnings a library raised while reading the image, as our own lines naming the file (once each)."""
    if not texts:
        return
    for text in dict.fromkeys(texts):
        ctx.warn(f"{where}: image {os.path.basename(probe.path) or 'data'}: {text}")


class Labels:
    """Class names through the registry (``--map``, ``--classes``), each name checked once."""

    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.seen: dict[str, str] = {}  # name as written -> class name (checked)

    def __call__(self, name: str, where: str, field: str = "label") -> str:
        found = self.seen.get(name)
        if found is None:  # a bad name is never cached: every file that uses it is reported
            found = self.ctx.label(name, where, field)
            self.seen[name] = found
        return found


# --------------------------------------------------------------------------------------------
# Export: links and file names
# --------------------------------------------------------------------------------------------




class ExportNames:
    """Unique, safe, case-insensitively distinct file stems for exported samples.

    Flat stems keep the source file's own stem (the last part of the sample id: ``2007_000027``
    for ``obj_train_data/2007_000027``) when no other sample of `samples` has it; otherwise the
    whole id with ``__`` for ``/`` (``train__a`` beside ``val__a``), and a hash of the id when
    even that is taken. Without `samples`, every flat stem is the whole id. With `report`, every
    flat stem of an id with folders is counted there as not representable (the id does not come
    back from the file name): `fmt` names the format in that line.

    Ten million samples fit: the ids are read in a few passes (a streamed dataset's without
    parsing its lines) and only the names that two samples could share are remembered, found by
    their hashes first and compared as strings after."""

    def __init__(self, samples: Iterable[Sample] = (), report: ExportReport | None = None,
                 fmt: str = "") -> None:
        self._report, self._folders = report, f"folders of sample ids ({fmt} file names are flat: a/b/img -> img)"
        ids = _id_source(samples)
        own_hashes, shared_hashes = _name_hashes(ids)
        counts: dict[str, int] = {}
        for sid in ids():
            key = _own_stem(sid).casefold()
            if hash(key) in own_hashes:
                counts[key] = counts.get(key, 0) + 1
        self._shared = {k for k, n in counts.items() if n > 1}  # own stems of several samples
        self._everyone = ids is _NO_IDS  # no samples given: every flat stem is the whole id
        self._maybe = shared_hashes  # hashes of names more than one sample could take
        self._used: set[str] = set()  # stems given whose hash is in `_maybe` (all without samples), and every hashed one

    def stem(self, sample: Sample, flat: bool = True) -> str:
        from pipeline.core.paths import export_stem

        stem = export_stem(sample.id)
        if flat:
            if "/" in stem and self._report is not None:  # (a/b/img -> img, or a__b__img where img is taken)
                self._report.dropped[self._folders] += 1
            own = _own_stem(sample.id)
            alone = not self._everyone and own.casefold() not in self._shared
            stem = own if alone else stem.replace("/", "__")
        key = stem.casefold()
        if key in self._used:
            stem = f"{stem}-{hashlib.sha1(sample.id.encode()).hexdigest()[:8]}"
            self._used.add(stem.casefold())
        elif self._everyone or hash(key) in self._maybe:
            self._used.add(key)
        return stem


def _NO_IDS() -> Iterable[str]:
    return ()


def _id_source(samples: Iterable[Sample]):
    """A function giving the samples' ids again on each call: a streamed dataset's ids read from
    its lines, any other samples' ids held once."""
    from pipeline.core.dataset import SampleStream

    if isinstance(samples, SampleStream):
        return samples.ids
    held = [s.id for s in samples]
    return (lambda: held) if held else _NO_IDS


def _name_hashes(ids) -> tuple[set[int], set[int]]:
    """Hashes of the case-folded own stems two samples share, and of every stem (own, whole id
    flat or nested) that two samples could both be given: a superset of the names that can meet."""
    import numpy as np

    from pipeline.core.paths import export_stem

    own_h, other_h = array("q"), array("q")
    for sid in ids():
        whole = export_stem(sid)
        own = whole.rsplit("/", 1)[-1].casefold()
        own_h.append(hash(own))
        for name in {own, whole.casefold(), whole.replace("/", "__").casefold()} - {own}:
            other_h.append(hash(name))
    own_arr = np.frombuffer(own_h, dtype=np.int64) if own_h else np.zeros(0, dtype=np.int64)
    every = np.concatenate([own_arr, np.frombuffer(other_h, dtype=np.int64) if other_h else np.zeros(0, np.int64)])
    return set(_repeated(own_arr).tolist()), set(_repeated(every).tolist())


def _repeated(values):
    """The values occurring more than once."""
    import numpy as np

    if not len(values):
        return values
    v = np.sort(values)
    return np.unique(v[1:][v[1:] == v[:-1]])


def _own_stem(sample_id: str) -> str:
    from pipeline.core.paths import export_stem

    return export_stem(sample_id).rsplit("/", 1)[-1]


# Folders that only say where a layout keeps its images (Ultralytics' and COCO's images/, VOC's
# JPEGImages/), and split folders as layouts name them (val2017/, obj_train_data/): not part of an id.
IMAGE_FOLDERS = frozenset({"images", "jpegimages"})
_SPLIT_FOLDER = re.compile(r"(?:obj_)?(train|training|val|valid|validation|dev|test|testing)(?:\d{4}|_data)?")


def layout_free_id(rel_image: str, split: str | None, taken: Callable[[str], bool]) -> str:
    """The sample id of the image at `rel_image` (relative to SRC or --images) in a layout whose
    exports put images in an images folder or one folder per split: the path without its
    extension, without a leading images folder and then without a folder naming the sample's own
    `split` (kept in the split field), so that an export, which keeps the source's file names,
    imports back with the same ids. When that id is `taken` (``train/a.jpg`` beside ``val/a.jpg``)
    the whole path is the id."""
    from pipeline.formats.splits import SPLIT_WORDS

    whole = os.path.splitext(rel_image.replace(os.sep, "/"))[0]
    parts = whole.split("/")
    if len(parts) > 1 and parts[0].casefold() in IMAGE_FOLDERS:
        parts = parts[1:]
    if len(parts) > 1 and split is not None:
        m = _SPLIT_FOLDER.fullmatch(parts[0].casefold())
        if m and SPLIT_WORDS.get(m.group(1)) == split:
            parts = parts[1:]
    short = "/".join(parts)
    return whole if short != whole and taken(short) else short


def count_attributes(report: ExportReport | None, obj: Obj, fmt: str, kept: Iterable[str] = ()) -> None:
    """Count in the export summary each attribute of `obj` that format `fmt` cannot hold (all but `kept`)."""
    if report is None:
        return
    keep = set(kept)
    for key in obj.attributes or {}:
        if key not in keep:
            report.dropped[f"object attribute {key!r} ({fmt} holds no such attribute)"] += 1


def split_of(sample: Sample) -> str:
    """The folder name of a sample's split in split-aware exports."""
    return sample.split or "train"


def walk_files(root: Path, suffixes: tuple[str, ...], files: SafeFiles | None = None) -> list[str]:
    """Files under `root` whose lower-cased name ends in one of `suffixes`, natural-sorted, skipping
    hidden folders and macOS ``._`` companions. Paths are absolute strings. Only what `files` (an
    import's `ctx.files`; default: the rule for `root` alone) allows is listed."""
    from pipeline.core.paths import natural_key

    out: list[tuple[tuple, str]] = []
    base = os.path.abspath(root)
    cut = len(base.rstrip(os.sep)) + 1
    safe = files if files is not None else SafeFiles([base])
    for dirpath, dirnames, filenames in safe.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d.casefold() != "__macosx"]
        for f in filenames:
            low = f.lower()
            if low.endswith(suffixes) and not f.startswith("._"):
                full = os.path.join(dirpath, f)
                out.append((natural_key(full[cut:].replace(os.sep, "/")), full))
    out.sort()
    return [p for _k, p in out]


# --------------------------------------------------------------------------------------------
# Coordinates outside the image (--on-invalid)
# --------------------------------------------------------------------------------------------

EDGE_TOLERANCE = 1.0  # pixels a box may reach past the image edge before --on-invalid applies
OUTSIDE_CLIPPED = "objects outside the image, clipped (--on-invalid clip)"
OUTSIDE_SKIPPED = "objects outside the image, left out (--on-invalid skip)"


def fit_box(box: list[float], width: int, height: int, on_invalid: str, ctx: ImportContext | None,
            where: str, field: str, line: int | None = None) -> list[float] | None:
    """A box checked against the image: inside (within `EDGE_TOLERANCE`, then clipped exactly) it is
    returned; further out it is an error, clipped, or dropped (None) as `on_invalid` says."""
    from pipeline.core.geometry import clip_bbox

    x1, y1, x2, y2 = box
    t = EDGE_TOLERANCE
    if x1 >= -t and y1 >= -t and x2 <= width + t and y2 <= height + t:
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            return clip_bbox(box, width, height)
        return box
    if on_invalid == "clip":
        if ctx is not None:
            ctx.report.counts[OUTSIDE_CLIPPED] += 1
        return clip_bbox(box, width, height)
    if on_invalid == "skip":
        if ctx is not None:
            ctx.report.counts[OUTSIDE_SKIPPED] += 1
        return None
    raise DataError(where, "box outside the image", line=line, field=field,
                    expected=f"inside 0..{width} x 0..{height}", got=[round(v, 3) for v in box],
                    fix="fix the label, or import with --on-invalid clip|skip")


def unused_images(finder: ImageFinder, used: set[str]) -> list[str]:
    """Images in the folders the finder listed that no annotation file claimed (absolute paths)."""
    out: list[str] = []
    for folder, stems in sorted(finder._stems.items()):
        for names in stems.values():
            for n in names:
                p = os.path.join(folder, n)
                if p not in used:
                    out.append(p)
    return sorted(set(out))

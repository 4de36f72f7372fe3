"""Crop every labelled object into a classification sample.

Each object with an area (a box, or the bounds of its polygon or mask) becomes one image of its
class, in the split of the image it came from. Provenance is kept in the new sample's ``source``:
the parent sample id, the object's index, its box and the crop actually taken. So digits boxed in
photos become training data for NumberModel through the ordinary `pipeline train`.

Crop geometry (`crop_box`): the box grows by ``pad`` times its width/height on each side; with
``square`` the shorter side grows to the longer one around the same centre. A square crop is moved
inside the image when it fits; where it cannot (larger than the image), the part outside is filled
by repeating the edge pixels, so the crop stays square without a black border.

With ``--engine ray`` (`pipeline.engines`) Ray workers decode, crop and encode chunks of parent
images; this process writes the crops in the same order, so the dataset is the same bytes.

Encoding (`encode`): by default (``"auto"``) a crop of a JPEG source is written as a JPEG of
quality 95 (`JPEG_QUALITY`) with the source's own chroma subsampling, since re-encoding a lossy
photo losslessly only makes the file larger (and PNG encoding was most of the stage's time); a crop
of a lossless source (PNG, BMP, TIFF, ...) is written as PNG, pixel for pixel. ``"png"`` writes
every crop as PNG. Each source image is decoded once for all its crops.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.dataset import Dataset, DatasetWriter, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.geometry import object_box
from pipeline.engines import Engine, chunks, given

ENCODINGS = ("auto", "png")  # auto: JPEG crops of JPEG sources, PNG of the others; png: PNG always
JPEG_QUALITY = 95  # near-transparent re-encoding of a photo that was already a JPEG
CHUNK = 16  # parent images per Ray task (`--engine ray`): a photo's decode outweighs a task's overhead

@dataclass
class CropReport:
    """What `crop_dataset` wrote and what it left out (reason -> count)."""

    written: int = 0
    per_split: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def crop_box(box: list[float], width: int, height: int, *, pad: float = 0.0,
             square: bool = False) -> tuple[int, int, int, int]:
    """Integer crop ``(x1, y1, x2, y2)`` for `box` in a `width` x `height` image.

    Without `square` the result lies inside the image. With `square` it is square and moved inside
    the image when it fits; a square larger than the image extends past it (see `crop_image`).
    """
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    x1, x2 = x1 - pad * w, x2 + pad * w
    y1, y2 = y1 - pad * h, y2 + pad * h
    if square:
        side = max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        side_i = max(1, math.ceil(side - 1e-9))
        ix1 = math.floor(cx - side_i / 2 + 1e-9)
        iy1 = math.floor(cy - side_i / 2 + 1e-9)
        ix1 = _shift_inside(ix1, side_i, width)
        iy1 = _shift_inside(iy1, side_i, height)
        return ix1, iy1, ix1 + side_i, iy1 + side_i
    ix1 = max(0, math.floor(x1 + 1e-9))
    iy1 = max(0, math.floor(y1 + 1e-9))
    ix2 = min(width, math.ceil(x2 - 1e-9))
    iy2 = min(height, math.ceil(y2 - 1e-9))
    return ix1, iy1, max(ix1, ix2), max(iy1, iy2)


def _shift_inside(start: int, side: int, limit: int) -> int:
    if side >= limit:
        return start  # cannot fit: stay centred, the edges are filled by crop_image
    return min(max(start, 0), limit - side)


def crop_image(img: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """`img` cropped to `box`; parts of `box` outside the image repeat the nearest edge pixels."""
    x1, y1, x2, y2 = box
    w, h = img.size
    cx1, cy1, cx2, cy2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    part = img.crop((cx1, cy1, cx2, cy2))
    if (cx1, cy1, cx2, cy2) == (x1, y1, x2, y2):
        return part
    arr = np.asarray(part)
    widths = [(cy1 - y1, y2 - cy2), (cx1 - x1, x2 - cx2)] + ([(0, 0)] if arr.ndim == 3 else [])
    return Image.fromarray(np.pad(arr, widths, mode="edge"), mode=part.mode)


def crop_dataset(
    dataset: Dataset,
    out: str | Path,
    *,
    pad: float = 0.0,
    square: bool = False,
    min_size: float = 0.0,
    encode: str = "auto",
    progress=None,
    overwrite: bool = False,
    engine: Engine | None = None,
) -> tuple[Dataset, CropReport]:
    """Write one classification sample per labelled object of `dataset` into a new dataset at `out`
    (an earlier dataset there replaced only with `overwrite`).

    `encode`: ``"auto"`` (JPEG crops of JPEG sources, PNG of the others) or ``"png"`` (PNG always).
    `engine` (`pipeline.engines`): where the images are decoded, cropped and encoded (default:
    here); the crops are written here in the same order either way."""
    if encode not in ENCODINGS:
        raise UsageError(f"encode {encode!r}: expected one of {', '.join(ENCODINGS)}")
    if pad < 0:
        raise UsageError(f"--pad {pad}: expected a fraction >= 0", fix="e.g. --pad 0.1 adds 10% of the box per side")
    if min_size < 0:
        raise UsageError(f"--min-size {min_size}: expected pixels >= 0")
    if not any(s.objects for s in dataset.samples):
        raise UsageError(f"{dataset.root}: no labelled objects to crop (a {dataset.task} dataset)",
                         fix="crop a detection or segmentation dataset, e.g. one made by `pipeline import voc`")
    report = CropReport()
    params = {"pad": pad, "square": square, "min_size": min_size}
    options = CropOptions(pad=pad, square=square, min_size=min_size, encode=encode)
    engine = engine or Engine()
    with DatasetWriter(
        out, task="classification", stage="crop", classes=dataset.classes,
        class_ids=dataset.info.class_ids, params=params,
        inputs={str(dataset.root): dataset.content_hash}, parent_lineage=dataset.info.lineage,
        reads=[dataset.root], overwrite=overwrite,
    ) as writer, engine:
        samples = [s for s in dataset.samples if s.objects]
        parents = progress(samples) if progress else samples
        if engine.is_local:
            for parent in parents:
                _store(writer, report, _crop_sample(dataset, parent, options))
        else:  # Ray workers crop and encode; the crops are written here, in the same order
            spec = (Dataset(Path(dataset.root).resolve(), dataset.info, []), options)  # (images only: no samples)
            for results in engine.map(given, spec, _crop_chunk, chunks(parents, CHUNK)):
                for result in results:
                    _store(writer, report, result)
        if not writer.samples:
            raise UsageError(f"{dataset.root}: no object passed the filters ({_skipped_text(report)})",
                             fix="lower --min-size")
        result = writer.commit()
    return result, report


def _skipped_text(report: CropReport) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(report.skipped.items())) or "nothing skipped"


def _encoder(img: Image.Image, encode: str):
    """A function encoding one crop of `img` to ``(bytes, extension)``: JPEG for a JPEG source under
    ``auto`` (quality `JPEG_QUALITY`, the source's chroma subsampling), PNG otherwise."""
    from pipeline.core.images import encode_png

    if encode == "auto" and img.format == "JPEG" and img.mode in ("L", "RGB"):
        from PIL import JpegImagePlugin

        sampling = JpegImagePlugin.get_sampling(img)  # 4:4:4 -> 0, 4:2:2 -> 1, 4:2:0 -> 2; -1 for grey

        def jpeg(piece: Image.Image) -> tuple[bytes, str]:
            buf = io.BytesIO()
            piece.save(buf, format="JPEG", quality=JPEG_QUALITY,
                       **({"subsampling": sampling} if sampling >= 0 else {}))
            return buf.getvalue(), "jpg"

        return jpeg
    return lambda piece: (encode_png(piece), "png")


@dataclass(frozen=True)
class CropOptions:
    """How `crop_dataset` crops: `pad`, `square`, `min_size` and `encode` as documented there."""

    pad: float = 0.0
    square: bool = False
    min_size: float = 0.0
    encode: str = "auto"


@dataclass
class Cropped:
    """The crops of one parent image, encoded, and what was left out of it (reason -> count)."""

    crops: list[tuple[Sample, bytes, str]] = field(default_factory=list)  # (sample, image bytes, extension)
    skipped: Counter = field(default_factory=Counter)
    problem: str | None = None


def _store(writer: DatasetWriter, report: CropReport, result: Cropped) -> None:
    """One parent's crops into the new dataset, and into the report."""
    report.skipped.update(result.skipped)
    if result.problem is not None:
        report.problems.append(result.problem)
    for sample, data, ext in result.crops:
        writer.add(sample, data=data, ext=ext)
        report.written += 1
        report.per_split[sample.split or "unsplit"] += 1


def _crop_chunk(context: tuple[Dataset, CropOptions], parents: list[Sample]) -> list[Cropped]:
    """The crops of a chunk of parents (on a Ray worker)."""
    dataset, options = context
    return [_crop_sample(dataset, parent, options) for parent in parents]


def _crop_sample(dataset: Dataset, parent: Sample, options: CropOptions) -> Cropped:
    """The crops of one parent image: decoded once, cropped, encoded."""
    out = Cropped()
    jobs = []
    for i, obj in enumerate(parent.objects or []):
        box = object_box(obj, points=False)  # the box of its area: none for points and lines
        if box is None:
            out.skipped["objects without an area (points, lines)"] += 1
            continue
        bw, bh = box[2] - box[0], box[3] - box[1]
        if bw <= 0 or bh <= 0:
            out.skipped["boxes without area"] += 1
            continue
        if min(bw, bh) < options.min_size:
            out.skipped["smaller than --min-size"] += 1
            continue
        jobs.append((i, obj, box))
    if not jobs:
        return out
    try:
        img = dataset.open_image(parent)
    except (DataError, OSError) as err:
        out.problem = f"{parent.id}: {err}"
        out.skipped["objects of unreadable images"] += len(jobs)
        return out
    encoder = _encoder(img, options.encode)  # from the source's format, before any conversion
    if img.mode not in ("L", "RGB", "RGBA", "I;16", "I", "F"):
        img = img.convert("RGB")
    for i, obj, box in jobs:
        cb = crop_box(box, img.size[0], img.size[1], pad=options.pad, square=options.square)
        if cb[2] - cb[0] <= 0 or cb[3] - cb[1] <= 0:
            out.skipped["boxes outside the image"] += 1
            continue
        piece = crop_image(img, cb)
        source = {"parent": parent.id, "object": i, "box": [round(v, 3) for v in box], "crop": list(cb)}
        if parent.source.get("file"):
            source["file"] = parent.source["file"]
        sample = Sample(id=f"{parent.id}/{i}", label=obj.label, split=parent.split, width=piece.size[0],
                        height=piece.size[1], source=source)
        if obj.attributes:
            sample.meta["attributes"] = dict(obj.attributes)
        data, ext = encoder(piece)
        out.crops.append((sample, data, ext))
    return out

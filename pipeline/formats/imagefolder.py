"""ImageFolder: one folder per class, as torchvision's `datasets.ImageFolder` reads it.

Layouts read::

    root/<class>/**/<image>                 no split
    root/{train,val,test}/<class>/**/<image> splits from the folder names ("valid"/"validation" = val)

Images are found recursively inside a class folder (as torchvision does), listed in natural
order; ids are the relative path without extension, so they are deterministic. Non-images
(`.DS_Store`, `Thumbs.db`, text files) are skipped and counted. Unreadable or truncated images
and decompression bombs are reported and left out. EXIF orientation is applied here, once: a
rotated photo is stored upright (as PNG) and its sample records the original orientation.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core.dataset import Dataset, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import (
    IMAGE_EXTS,
    JUNK_NAMES,
    encode_png,
    exif_orientation,
    open_image_bytes,
    sniff,
)
from pipeline.core.paths import natural_key, natural_sorted, sha256_bytes
from pipeline.formats.base import Detection, ExportReport, ImportContext

NAME = "imagefolder"
TASK = "classification"

SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
              "test": "test", "testing": "test"}


def _subdirs(path: Path) -> list[Path]:
    return natural_sorted((p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _has_image(path: Path, limit: int = 2000) -> bool:
    seen = 0
    for _dirpath, _dirs, files in os.walk(path):
        for f in files:
            if Path(f).suffix.lower() in IMAGE_EXTS:
                return True
            seen += 1
            if seen > limit:
                return False
    return False


def layout(root: Path) -> list[tuple[str | None, Path]]:
    """The (split, folder-of-class-folders) pairs of an ImageFolder tree; [] when it is none."""
    if not root.is_dir():
        return []
    dirs = _subdirs(root)
    split_dirs = [d for d in dirs if d.name.lower() in SPLIT_DIRS]
    if split_dirs and all(any(_subdirs(d)) for d in split_dirs):
        if all(any(_has_image(c) for c in _subdirs(d)) for d in split_dirs):
            return [(SPLIT_DIRS[d.name.lower()], d) for d in split_dirs]
    if dirs and any(_has_image(d) for d in dirs):
        return [(None, root)]
    return []


def detect(root: Path) -> Detection | None:
    found = layout(root)
    if not found:
        return None
    classes = {c.name for _, d in found for c in _subdirs(d)}
    splits = [s for s, _ in found if s]
    desc = f"ImageFolder tree with {len(classes)} class folders" + (f" in splits {', '.join(splits)}" if splits else "")
    # Weak evidence: any tree of folders with images matches, so annotation formats win ties.
    return Detection(score=10, description=desc)


def _walk_images(class_dir: Path, ctx: ImportContext) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            p = Path(dirpath) / name
            low = name.lower()
            if low in JUNK_NAMES or low.startswith("._"):
                ctx.skip("system files (.DS_Store, Thumbs.db, ...)")
            elif p.suffix.lower() in IMAGE_EXTS:
                files.append(p)
            else:
                ctx.skip("non-image files")
    files.sort(key=lambda p: natural_key(str(p.relative_to(class_dir))))
    return files


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    found = layout(root)
    if not found:
        raise UsageError(
            f"{root}: not an ImageFolder tree (expected <class>/<image> or train|val|test/<class>/<image>)",
            fix="check the path, or name the right format: pipeline import --help",
        )
    for name in sorted(p.name for p in root.iterdir() if p.is_file()):
        ctx.skip("files outside class folders" if name.lower() not in JUNK_NAMES else "system files (.DS_Store, Thumbs.db, ...)")
    jobs: list[tuple[str | None, str, Path, Path]] = []
    for split, base in found:
        for class_dir in _subdirs(base):
            label = ctx.label(class_dir.name, where=class_dir, field="folder")
            for f in _walk_images(class_dir, ctx):
                jobs.append((split, label, f, base))
    for split, label, path, _base in ctx.progress(jobs, total=len(jobs), desc="import imagefolder", unit="img"):
        rel = path.relative_to(root)
        try:
            _add_one(ctx, rel, path, split, label)
        except DataError as err:
            ctx.bad(err)


def _add_one(ctx: ImportContext, rel: Path, path: Path, split: str | None, label: str) -> None:
    where = ctx.rel(path)
    data = path.read_bytes()
    if sniff(data[:16]) is None and path.suffix.lower() not in (".webp", ".pbm"):
        raise DataError(where, "not an image (unknown file signature)", fix="remove the file or fix its extension")
    img = open_image_bytes(data, where)
    orientation = exif_orientation(img)
    sid = rel.with_suffix("").as_posix()
    source = {"file": rel.as_posix()}
    sample = Sample(id=sid, split=split, label=label, source=source)
    if orientation != 1:
        from PIL import ImageOps

        upright = ImageOps.exif_transpose(img)
        blob = encode_png(upright)
        sample.width, sample.height = upright.size
        sample.meta = {"exif_orientation": orientation}
        ctx.add(sample, data=blob, ext="png")
        ctx.report.counts["EXIF-rotated images stored upright"] += 1
    else:
        sample.width, sample.height = img.size
        sample.sha256 = sha256_bytes(data)
        ctx.add(sample, src=path, ext=path.suffix)


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """One folder per class (and per split when the dataset has splits); images hard-linked or copied."""
    import shutil

    if dataset.task != "classification":
        has_labels = any(s.label for s in dataset.samples)
        if not has_labels:
            raise UsageError(
                f"{dataset.root}: a {dataset.task} dataset has no image-level labels for ImageFolder",
                fix="crop its objects first: pipeline crop DATASET --out DIR, then export that",
            )
    use_splits = any(s.split for s in dataset.samples)
    used: set[str] = set()
    for s in dataset.samples:
        label = s.label
        if label is None and s.soft_label:
            label = max(s.soft_label.items(), key=lambda kv: (kv[1], kv[0]))[0]
            report.converted["soft label -> its largest class"] += 1
        if label is None:
            report.dropped["samples without a label"] += 1
            continue
        if s.objects:
            report.dropped["objects (ImageFolder holds image labels only)"] += len(s.objects)
        parts = ([s.split or "unsplit"] if use_splits else []) + [label]
        name = Path(s.image).name
        rel = Path(*parts) / name
        if str(rel) in used:
            rel = Path(*parts) / f"{Path(s.id).name}-{s.sha256[:8]}{Path(s.image).suffix}"
        used.add(str(rel))
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = dataset.image_path(s)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copyfile(src, dest)
        report.written += 1
        report.files += 1

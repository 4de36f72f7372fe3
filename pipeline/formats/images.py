"""Unlabelled image folders (`pipeline import images DIR`): every image under DIR, no labels.

A dataset to pre-label and review: each image becomes a classification sample without ``label``
(and without ``objects``), ready for `pipeline export labelstudio` or a model's predictions.
Images are found recursively and listed in natural order (``2.png`` before ``10.png``); a sample's
id is the image's path relative to DIR without its extension (``street/0001``), and two files that
differ only by extension both keep it. Hidden and system folders (``.git``, ``__MACOSX``) are not
entered; system files (``.DS_Store``, ``Thumbs.db``, ``._*``) and other non-image files are skipped
and counted in the summary. EXIF orientation is applied as every importer does (stored upright,
``meta.exif_orientation`` recorded); unreadable or truncated images follow ``--on-error``.
Split folders (``train/``, ``val/``, ``test/``) give splits, as in every format.

`detect` never claims a folder (any folder of images would match): this format is only chosen by
name. Export writes the images under their ids (``<id>.<ext>``, in ``<split>/`` when the sample
has a split and its id does not already start with it); labels, objects, annotations and
predictions are not representable there and are counted.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core.dataset import Dataset, Sample
from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import IMAGE_EXTS, JUNK_NAMES
from pipeline.core.paths import SafeFiles, export_stem, natural_key
from pipeline.formats.base import Detection, ExportReport, ImportContext
from pipeline.formats.common import add_image_sample, probe_image
from pipeline.formats.splits import split_from_path

NAME = "images"
LOOKS_FOR = "nothing: named only (pipeline import images DIR)"
TASK = "classification"
NAMED_ONLY = True  # `detect_format` never tries it: every folder of images would match

SKIP_DIRS = {"__macosx", "@eadir", "$recycle.bin", "system volume information"}
SYSTEM_FILES = "system files (.DS_Store, Thumbs.db, ...)"
NON_IMAGES = "non-image files"


def detect(root: Path) -> Detection | None:
    """Never: an unlabelled folder is imported only when named (`pipeline import images DIR`)."""
    return None


def list_images(root: Path, ctx: ImportContext | None = None) -> list[str]:
    """Image paths under `root` relative to it (posix), natural-sorted; junk counted through `ctx`."""
    found: list[tuple[tuple, str]] = []
    files = ctx.files if ctx is not None else SafeFiles([root])
    for dirpath, dirnames, filenames in files.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d.casefold() not in SKIP_DIRS]
        for name in filenames:
            low = name.casefold()
            if low in JUNK_NAMES or low.startswith("._"):
                if ctx is not None:
                    ctx.skip(SYSTEM_FILES)
                continue
            if os.path.splitext(low)[1] not in IMAGE_EXTS:
                if ctx is not None:
                    ctx.skip(NON_IMAGES)
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            found.append((natural_key(rel), rel))
    found.sort()
    return [rel for _k, rel in found]


def _ids(rels: list[str]) -> dict[str, str]:
    """Sample ids: the path without its extension, or with it where two files share a stem."""
    stems: dict[str, int] = {}
    for rel in rels:
        key = os.path.splitext(rel)[0].casefold()
        stems[key] = stems.get(key, 0) + 1
    return {rel: rel if stems[os.path.splitext(rel)[0].casefold()] > 1 else os.path.splitext(rel)[0] for rel in rels}


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder", fix="point at the folder holding the images")
    rels = list_images(root, ctx)
    ids = _ids(rels)
    for rel in ctx.progress(rels, total=len(rels), desc="import images", unit="image"):
        try:
            path = root / rel
            probe = probe_image(path, rel)
            split = split_from_path(os.path.dirname(rel))
            sample = Sample(id=ids[rel], split=split, source={"file": rel})
            add_image_sample(ctx, path, sample, probe=probe, where=rel)
        except DataError as err:
            ctx.bad(err)


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """The images under their ids; labels and objects listed as not representable."""
    out = Path(out)
    used: set[str] = set()
    for s in dataset.samples:
        stem = export_stem(s.id)  # the source's own names (spaces, parentheses) kept
        if s.split and split_from_path(os.path.dirname(stem)) != s.split:
            stem = f"{s.split}/{stem}"
        name = f"{stem}{Path(s.image).suffix.lower() or '.png'}"
        if name.casefold() in used:
            name = f"{stem}-{len(used)}{Path(s.image).suffix.lower() or '.png'}"
        used.add(name.casefold())
        dataset.copy_image(s, out / name)
        if s.label is not None or s.soft_label:
            report.dropped["image-level labels (an image folder holds none)"] += 1
        if s.objects:
            report.dropped["objects (an image folder holds none)"] += len(s.objects)
        report.written += 1
        report.files += 1

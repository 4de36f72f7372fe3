"""ImageFolder: one folder per class, as torchvision's `datasets.ImageFolder` reads it.

Layouts read::

    root/<class>/**/<image>                   no split
    root/{train,val,test}/<class>/**/<image>  splits from the folder names
                                              ("training" = train, "valid"/"validation" = val, "testing" = test)

Images are found recursively inside a class folder (as torchvision does) and listed in natural
order (``2.png`` before ``10.png``). A sample's id is its path relative to the root without the
extension (``train/cat/001``), so ids are deterministic; when two files differ only by extension
both keep it (``cat/a.jpg``, ``cat/a.png``). Non-images (``.DS_Store``, ``Thumbs.db``, ``._*``,
text files, ``__MACOSX/``) are skipped and counted. Any Pillow mode is accepted (grayscale, RGB,
palette, RGBA, 16-bit); the file is kept byte for byte. A JPEG or PNG cut short after its pixel
data began is kept restored (`pipeline.core.images.open_image_restoring`: stored as PNG with
``meta.truncated``, warned about and counted). Unreadable images, files cut in their header and
images over the pixel limit (``--max-pixels``; decompression bombs) are listed and left out, never a crash. EXIF
orientation is applied here, once: a rotated photo is stored upright as PNG and its sample records
the original orientation in ``meta.exif_orientation``; everything downstream sees upright pixels.
Files are read ahead by a few threads and decoded in order, so the output never depends on timing.

Export writes ``<split>/<class>/<file>`` (or ``<class>/<file>`` without splits), hard-linking the
dataset's images where possible.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.dataset import Dataset, Sample, is_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.core.images import (
    IMAGE_EXTS,
    JUNK_NAMES,
    encode_png,
    exif_orientation,
    open_image_restoring,
    sniff,
)
from pipeline.core.paths import SafeFiles, export_stem, natural_key, natural_sorted, read_regular
from pipeline.formats.base import Detection, ExportReport, ImportContext
from pipeline.formats.common import TRUNCATED
from pipeline.formats.splits import split_from_path

NAME = "imagefolder"
LOOKS_FOR = "class folders of images (ImageFolder: ROOT/<class>/*.jpg, or ROOT/<split>/<class>/*.jpg)"
TASK = "classification"

SKIP_DIRS = {"__macosx", "@eadir", "$recycle.bin", "system volume information"}  # archive/NAS/OS debris

SYSTEM_FILES = "system files (.DS_Store, Thumbs.db, ...)"
NON_IMAGES = "non-image files"
OUTSIDE = "files outside class folders"
SKIPPED_DIRS = "hidden or system folders"

READ_THREADS = 4  # read-ahead threads; decoding stays on one thread (Pillow on small images holds the GIL)



# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def _skip_dir(name: str) -> bool:
    return name.startswith(".") or name.lower() in SKIP_DIRS


def _subdirs(path: Path, files: SafeFiles | None = None) -> list[Path]:
    """The class (or split) folders in `path`: folders, and links to folders inside the import root."""
    safe = files if files is not None else SafeFiles([path])
    dirs = safe.scan(path)[0] if safe.is_dir(path) else []
    return natural_sorted((path / d for d in dirs if not _skip_dir(d)), key=lambda p: p.name)


def _has_image(path: Path, safe: SafeFiles, limit: int = 2000) -> bool:
    seen = 0
    for _dirpath, dirnames, files in safe.walk(path):
        dirnames[:] = [d for d in dirnames if not _skip_dir(d)]
        for f in files:
            if Path(f).suffix.lower() in IMAGE_EXTS and not f.startswith("._"):
                return True
            seen += 1
            if seen > limit:
                return False
    return False


def layout(root: Path, files: SafeFiles | None = None) -> list[tuple[str | None, Path]]:
    """The (split, folder-of-class-folders) pairs of an ImageFolder tree; [] when it is none.

    A split layout is recognised when at least one of train/val/test (or their aliases) holds
    class folders with images; otherwise any folder of class folders with images is one tree.
    Only what `files` (default: the rule for `root`) allows is looked at.
    """
    if not root.is_dir():
        return []
    safe = files if files is not None else SafeFiles([root])
    dirs = _subdirs(root, safe)
    # Only the top folder names the split: the folders below it are classes.
    labelled = [d for d in dirs if split_from_path(d.name) and any(_has_image(c, safe) for c in _subdirs(d, safe))]
    if labelled:
        return [(split_from_path(d.name), d) for d in labelled]
    if any(_has_image(d, safe) for d in dirs):
        return [(None, root)]
    return []


def detect(root: Path) -> Detection | None:
    safe = SafeFiles([root])
    found = layout(root, safe)
    if not found:
        return None
    classes = {c.name for _, d in found for c in _subdirs(d, safe)}
    splits = [s for s, _ in found if s]
    desc = f"ImageFolder tree with {len(classes)} class folders" + (f" in splits {', '.join(splits)}" if splits else "")
    # Weak evidence: any tree of folders with images matches, so annotation formats win ties.
    return Detection(score=10, description=desc)


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    split: str | None
    label: str
    path: Path
    rel: str  # posix path relative to the import root
    sid: str


@dataclass
class _Probe:
    """What decoding one file found out (no side effects on the dataset)."""

    width: int = 0
    height: int = 0
    sha256: str = ""
    blob: bytes | None = None  # upright re-encoded PNG when EXIF rotated it, else None (keep the file)
    orientation: int = 1
    error: DataError | None = None
    truncated: bool = False  # cut short but decodable: `blob` holds the restored PNG


def _count_file(name: str, ctx: ImportContext, outside: bool) -> None:
    low = name.lower()
    if low in JUNK_NAMES or low.startswith("._"):
        ctx.skip(SYSTEM_FILES)
    elif outside:
        ctx.skip(OUTSIDE)
    else:
        ctx.skip(NON_IMAGES)


def _walk_images(class_dir: Path, ctx: ImportContext) -> list[Path]:
    files: list[Path] = []

    def unreadable(err: OSError) -> None:
        ctx.bad(DataError(ctx.rel(err.filename or class_dir), f"cannot list folder ({err.strerror or err})",
                          fix="check its permissions"))

    for dirpath, dirnames, filenames in ctx.files.walk(class_dir, onerror=unreadable):
        kept = [d for d in dirnames if not _skip_dir(d)]
        if len(kept) != len(dirnames):
            ctx.skip(SKIPPED_DIRS, len(dirnames) - len(kept))
        dirnames[:] = kept
        for name in filenames:
            low = name.lower()
            if low in JUNK_NAMES or low.startswith("._") or Path(low).suffix not in IMAGE_EXTS:
                _count_file(name, ctx, outside=False)
            else:
                files.append(Path(dirpath) / name)
    files.sort(key=lambda p: natural_key(p.relative_to(class_dir).as_posix()))
    return files


def _count_loose(folder: Path, ctx: ImportContext) -> None:
    """Count the files sitting directly in a folder that should hold only class folders."""
    dirs, files, _reals = ctx.files.scan(folder)
    for name in files:
        _count_file(name, ctx, outside=True)
    for name in dirs:
        if _skip_dir(name) and ".tmp-" not in name:  # not our own writer's temp folder
            ctx.skip(SKIPPED_DIRS)


def _with_ids(jobs: list[_Job]) -> list[_Job]:
    """Ids are paths without extension; files that collide that way keep their extension."""
    stems = Counter(j.sid for j in jobs)
    for j in jobs:
        if stems[j.sid] > 1:
            j.sid = j.rel
    return jobs


def _scan(root: Path, found: list[tuple[str | None, Path]], ctx: ImportContext) -> list[_Job]:
    _count_loose(root, ctx)
    if found[0][0] is not None:
        used = {d for _, d in found}
        for d in _subdirs(root, ctx.files):
            if d not in used:
                hint = ("no class folders with images" if split_from_path(d.name)
                        else "outside the train/val/test folders")
                ctx.warn(f"{ctx.rel(d)}/: {hint}; left out")
        for _, d in found:
            _count_loose(d, ctx)
    jobs: list[_Job] = []
    for split, base in found:
        for class_dir in _subdirs(base, ctx.files):
            if is_dataset(class_dir):  # e.g. an earlier import written inside the tree
                ctx.warn(f"{ctx.rel(class_dir)}/: a pipeline dataset, not a class folder; left out")
                continue
            try:
                label = ctx.label(class_dir.name, where=class_dir, field="folder")
            except DataError as err:  # a folder name that cannot be a class name: reported, the others go on
                ctx.bad(err)
                continue
            files = _walk_images(class_dir, ctx)
            if not files:
                ctx.warn(f"{ctx.rel(class_dir)}/: no images; class {class_dir.name!r} left out")
            for f in files:
                rel = f.relative_to(root).as_posix()
                jobs.append(_Job(split, label, f, rel, rel.rsplit(".", 1)[0]))
    return _with_ids(jobs)


_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}


def _read(path: Path) -> bytes | DataError:
    try:
        return read_regular(path)  # never a FIFO or a device (the walk left them out already)
    except DataError as exc:
        return exc


def _prefetch(paths: list[Path], threads: int | None = None, chunk: int = 32) -> Iterator[bytes | DataError]:
    """The bytes of each file, in order, read ahead by a few threads in chunks (file reads release
    the GIL, so a cold disk or a network share is read in parallel while this thread decodes)."""
    threads = READ_THREADS if threads is None else threads
    if threads <= 1:
        yield from map(_read, paths)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="imagefolder-read") as pool:
        window: deque[Future] = deque()
        for start in range(0, len(paths), chunk):
            window.append(pool.submit(lambda part: [_read(p) for p in part], paths[start:start + chunk]))
            if len(window) >= 2 * threads:
                yield from window.popleft().result()
        while window:
            yield from window.popleft().result()


def _probe(data: bytes | DataError, where: str) -> _Probe:
    try:
        if isinstance(data, DataError):
            raise DataError(where, data.message.rsplit(": ", 1)[-1], fix="check the file's permissions")
        head = data[:16]
        if sniff(head) is None and head[:2] not in (b"P1", b"P2", b"P3", b"P4"):
            raise DataError(where, "not an image (unknown file signature)", fix="remove the file or fix its extension")
        img, truncated = open_image_restoring(data, where)
        orientation = exif_orientation(img)
        if orientation == 1 and not truncated:
            return _Probe(img.width, img.height, hashlib.sha256(data).hexdigest())
        from PIL import ImageOps

        upright = ImageOps.exif_transpose(img)
        if upright.mode not in _PNG_MODES:
            upright = upright.convert("RGBA" if "A" in upright.getbands() else "RGB")
        blob = encode_png(upright)
        return _Probe(upright.width, upright.height, hashlib.sha256(blob).hexdigest(), blob, orientation,
                      truncated=truncated)
    except DataError as err:
        return _Probe(error=err)


def read(root: Path, ctx: ImportContext) -> None:
    root = Path(root)
    found = layout(root, ctx.files)
    if not found:
        raise UsageError(
            f"{root}: not an ImageFolder tree (expected <class>/<image> or train|val|test/<class>/<image>)",
            fix="check the path, or name the right format: pipeline import --help",
        )
    jobs = _scan(root, found, ctx)
    # closed here, also when an error (--strict) ends the loop early: a reader pool left to the
    # garbage collector is shut down from whichever thread triggers the collection, and one that
    # is starting a thread at that moment deadlocks in CPython's threading module
    with contextlib.closing(_prefetch([j.path for j in jobs])) as blobs:
        for job, data in ctx.progress(zip(jobs, blobs, strict=True), total=len(jobs), desc="import imagefolder",
                                      unit="img"):
            probe = _probe(data, job.rel)
            if probe.error is not None:
                ctx.bad(probe.error)
                continue
            sample = Sample(id=job.sid, split=job.split, label=job.label, width=probe.width, height=probe.height,
                            sha256=probe.sha256, source={"file": job.rel})
            try:
                if probe.blob is not None:
                    if probe.orientation != 1:
                        sample.meta["exif_orientation"] = probe.orientation
                        ctx.report.counts["EXIF-rotated images stored upright"] += 1
                    if probe.truncated:
                        sample.meta["truncated"] = True
                        ctx.report.counts[TRUNCATED] += 1
                        ctx.warn(f"{job.rel}: the image is truncated (cut short before its end); kept with the rows "
                                 "that decode, stored as PNG")
                    ctx.add(sample, data=probe.blob, ext="png")
                else:
                    ctx.add(sample, src=job.path, ext=job.path.suffix)
            except DataError as err:  # e.g. a file name that is not UTF-8
                ctx.bad(err)


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------

_UNSAFE_DIR = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


def folder_name(label: str) -> str:
    """A class name as a single safe folder name (no separators, not '.'/'..', no leading dot)."""
    name = _UNSAFE_DIR.sub("_", label).strip()
    if not name or set(name) == {"."}:
        name = "_" + name
    if name.startswith("."):
        name = "_" + name[1:]
    return name


def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None:
    """One folder per class (and per split when the dataset has splits); images hard-linked or copied."""
    if dataset.task != "classification":
        has_labels = any(s.label or s.soft_label for s in dataset.samples)
        if not has_labels:
            raise UsageError(
                f"{dataset.root}: a {dataset.task} dataset has no image-level labels for ImageFolder",
                fix="crop its objects first: pipeline crop DATASET --out DIR, then export that",
            )
    use_splits = any(s.split for s in dataset.samples)
    used: set[str] = set()
    folders: dict[str, str] = {}
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
        if label not in folders:
            folders[label] = folder_name(label)
            taken = {v for k, v in folders.items() if k != label}
            if folders[label] in taken:
                folders[label] += "-" + hashlib.sha1(label.encode()).hexdigest()[:6]
            if folders[label] != label:
                report.warnings.append(f"class {label!r} written as folder {folders[label]!r}")
        if use_splits and not s.split:
            report.converted["samples without a split -> unsplit/"] += 1
        parts = ([s.split or "unsplit"] if use_splits else []) + [folders[label]]
        name = export_stem(s.id).rsplit("/", 1)[-1] + Path(s.image).suffix  # the source's own file name
        rel = Path(*parts) / name
        if rel.as_posix() in used:
            rel = Path(*parts) / f"{Path(name).stem}-{hashlib.sha1(s.id.encode()).hexdigest()[:8]}{Path(s.image).suffix}"
        used.add(rel.as_posix())
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dataset.copy_image(s, dest, make_parent=False)
        report.written += 1
        report.files += 1

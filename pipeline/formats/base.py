"""Shared types for format modules: import options, the import context and report, export report, detection."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core import ui
from pipeline.core.dataset import DatasetWriter, RenderedObjects, Sample
from pipeline.core.errors import DataError, UsageError, printable

ON_ERROR = ("skip", "error")

ON_INVALID = ("error", "clip", "skip")


@dataclass
class Detection:
    """What `detect` found: a confidence (higher wins), a one-line description for the user, and
    the annotation files it recognised (relative to the root, ``/``-separated; those it looked at,
    which for a large tree may be a first part): `pipeline detect` shows them and `--format auto`
    refuses a tree where two formats each recognise files of their own."""

    score: float
    description: str
    files: list[str] = field(default_factory=list)


def relative_files(root: Path, files: list[str]) -> list[str]:
    """`files` (absolute or relative to the working folder) relative to `root`, with ``/``; the
    file's own name when `root` is that file."""
    base = os.path.abspath(root)
    if os.path.isfile(base):
        return [os.path.basename(base)]
    return [os.path.relpath(os.path.abspath(f), base).replace(os.sep, "/") for f in files]


@dataclass
class ImportOptions:
    classes: list[str] | None = None  # fixed names and order (--classes FILE); None = the source's, then sorted
    class_map: dict[str, str] = field(default_factory=dict)  # --map old=new
    on_error: str = "skip"  # a bad file: report and go on (skip) or stop at the first (error)
    on_invalid: str = "error"  # out-of-range coordinates: error | clip | skip
    extra: dict[str, Any] = field(default_factory=dict)  # format-specific options
    images: Path | None = None  # --images DIR: images are looked up here; None = the import root (SRC)
    workers: int | None = None  # processes reading one large file (COCO); None = the CPUs this process may use, at most 2


@dataclass
class ImportReport:
    """Counts and problems of one import; the command prints it as the summary."""

    imported: int = 0
    problems: list[DataError] = field(default_factory=list)  # bad files left out
    skipped: Counter = field(default_factory=Counter)  # reason -> count (non-images, junk files, ...)
    counts: Counter = field(default_factory=Counter)  # objects, polygons, keypoints, ...
    warnings: list[str] = field(default_factory=list)
    detected: str | None = None


class ImportContext:
    """What a format's `read` uses to add samples, resolve classes and report problems.

    `files` is the one rule for what the import may open (`pipeline.core.paths.SafeFiles`): every
    directory walk and image lookup of a reader goes through it; a link pointing outside the
    import folder, a broken link, a loop and a FIFO, socket or device are skipped, counted in the
    summary and warned about, naming the link and where it points."""

    def __init__(self, root: Path, writer: DatasetWriter, options: ImportOptions, report: ImportReport,
                 roots: Iterable[str | os.PathLike] = ()) -> None:
        from pipeline.core.paths import SafeFiles

        self.root = Path(root)
        self.writer = writer
        self.options = options
        self.report = report
        self.inputs: dict[str, str] = {}  # annotation files read: path relative to root -> sha256
        # The fix a bad file's error gets when its reader named none (each reader sets its own).
        self.default_fix = "correct the named field or line, or move the file out of the import folder"
        images = [options.images] if options.images is not None else []  # --images DIR: a second root
        self.files = SafeFiles([self.root, *images, *roots], on_refused=self._refused)

    def _refused(self, refused) -> None:
        self.skip(refused.reason)
        path, root = os.path.abspath(refused.path), os.path.abspath(self.root)
        shown = os.path.relpath(path, root) if path.startswith(root.rstrip(os.sep) + os.sep) else path
        self.warn(refused.describe(shown.replace(os.sep, "/")))

    @property
    def images_root(self) -> Path:
        """Where images are looked up: `--images DIR`, else the import root (its folder for a file)."""
        if self.options.images is not None:
            return Path(self.options.images)
        return self.root if self.root.is_dir() else self.root.parent

    def input_file(self, path: str | os.PathLike, data: bytes) -> None:
        """Record an annotation file read (its hash goes into the lineage's input hash)."""
        from pipeline.core.paths import sha256_bytes

        self.inputs[self.rel(path)] = sha256_bytes(data)

    def label(self, name: str, where: str | os.PathLike = "", field: str = "label") -> str:
        """Map and check a class name against the registry (an unknown class in a fixed list is an error);
        a name (after --map) longer than `MAX_CLASS_NAME`, not UTF-8 or holding control characters is an
        error too."""
        from pipeline.core.limits import check_class_name

        rel = self.rel(where) if where else ""
        return check_class_name(self.writer.resolve_label(str(name), where=rel, field=field), rel or "input", field)

    def declare_classes(self, names: Iterable[str], ids: Iterable[int] | None = None, where: str = "") -> None:
        """The source's own class list (names as the file writes them, --map applied here), in its
        order and with its ids where it has them: recorded in dataset.json so that exports write
        the same ids (`DatasetWriter.declare_classes`). An id that cannot be kept is warned about."""
        names = [self.writer.class_map.get(str(n), str(n)) for n in names]
        for note in self.writer.declare_classes(names, ids):
            self.warn(f"{where}: {note}" if where else note)

    def rel(self, path: str | os.PathLike) -> str:
        """A path as the user knows it: relative to the import root when inside it."""
        p = Path(path)
        try:
            return str(p.relative_to(self.root))
        except ValueError:
            return str(p)

    def add(self, sample: Sample, *, data: bytes | None = None, src: str | os.PathLike | None = None,
            ext: str | None = None, objects: RenderedObjects | None = None) -> Sample:
        """Add a sample (its image from `data` or `src`; `objects`: its objects rendered, see
        `DatasetWriter.add`); a file name that is not UTF-8 is a `DataError`."""
        check_names(sample, str(sample.source.get("file") or sample.id))
        self.writer.add(sample, data=data, src=src, ext=ext, objects=objects)
        self.report.imported += 1
        return sample

    def bad(self, error: DataError) -> None:
        """A bad file: stop (`--on-error error`) or record it and go on (`skip`, the default)."""
        if not error.fix:
            error.fix = self.default_fix
        if self.options.on_error == "error":
            raise error
        self.report.problems.append(error)

    def skip(self, reason: str, n: int = 1) -> None:
        """Count a file that is not data (e.g. `.DS_Store`), shown in the summary."""
        self.report.skipped[reason] += n

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)

    def progress(self, items: Iterable, total: int | None = None, desc: str = "import", unit: str = "file"):
        return ui.progress(items, total=total, desc=desc, unit=unit)


@dataclass
class ExportReport:
    """What an export wrote and what the target format could not hold (converted or left out)."""

    written: int = 0
    files: int = 0
    converted: Counter = field(default_factory=Counter)  # e.g. "polygon -> bbox": 12
    dropped: Counter = field(default_factory=Counter)  # e.g. "keypoints (VOC has none)": 3
    warnings: list[str] = field(default_factory=list)


def check_names(sample: Sample, where: str) -> None:
    """A `DataError` when the sample's id or source paths hold a file name that is not UTF-8 (the
    dataset's files are UTF-8 JSON); the name is shown with its undecodable bytes escaped."""
    if sample.id.isascii():  # the usual names: ASCII text always encodes (one look per value)
        for value in sample.source.values():
            if isinstance(value, str) and not value.isascii():
                break
        else:
            return
    for key, value in (("id", sample.id), *sorted(sample.source.items())):
        if isinstance(value, str) and not _utf8(value):
            raise DataError(where, f"file name is not UTF-8 ({printable(value)})",
                            field=f"source.{key}" if key != "id" else "id",
                            fix="rename the file (e.g. `convmv -f latin1 -t utf8`) and import again")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_class_map(pairs: Iterable[str]) -> dict[str, str]:
    """`--map old=new` options into a dict (old names may repeat to merge several into one)."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--map {pair!r}: expected OLD=NEW", fix="e.g. --map raccon=raccoon")
        old, new = pair.split("=", 1)
        if not old or not new:
            raise UsageError(f"--map {pair!r}: both OLD and NEW must be non-empty", fix="e.g. --map raccon=raccoon")
        out[old] = new
    return out


def read_classes_file(path: str | os.PathLike) -> list[str]:
    """A class list file: one name per line; blank lines and surrounding whitespace ignored."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such file", fix="point --classes at a text file with one class name per line")
    from pipeline.core.limits import MAX_CLASSES, check_class_name, check_count, decode_text, read_capped

    text = decode_text(read_capped(p, str(p), what="class list file"), str(p), fix="save the class list as UTF-8")
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n]
    check_count(len(names), MAX_CLASSES, str(p), "classes")
    for i, n in enumerate(names, start=1):
        check_class_name(n, str(p), "class", line=i)
    if not names:
        raise DataError(p, "no class names", fix="one class name per line")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(p, "duplicate class names", expected="unique names", got=dup, fix="one class name per line, each once")
    return names

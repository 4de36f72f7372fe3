"""Which formats a folder holds: every candidate with the files it recognised, and why each other
format said no (`pipeline detect SRC`, as datumaro's ``detect-format``), and the choice that
``--format auto`` makes from them.

Each format module's `detect` (see `formats/__init__.py`) says yes with a `Detection` (a score,
a description and the annotation files it recognised) or no: None (the reason is then "no
LOOKS_FOR found") or a UsageError whose message is the reason. ``--format auto`` takes the
best-scoring candidate, unless another candidate recognises annotation files of its own (a
labelme folder with a COCO file beside its JSONs): importing one would leave the other's files
out without a word, so the choice is refused with the list.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline import formats
from pipeline.core.errors import UsageError

SHOWN_FILES = 3  # files named per candidate in messages
COUNT_MAX_BYTES = 256 << 20  # annotation files larger than this in all are not counted (`pipeline detect`)


@dataclass
class Candidate:
    """One format's answer for a folder: accepted (with a score) or rejected (with the reason)."""

    format: str
    accepted: bool
    description: str  # what was found, or why not
    score: float | None = None
    files: list[str] = field(default_factory=list)  # annotation files recognised, relative to SRC
    counts: dict[str, int] = field(default_factory=dict)  # images, objects, classes (`survey(count=True)`)
    note: str | None = None  # why there are no counts

    def to_json(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One line for messages: ``coco: COCO instances JSON (1 file(s)) [a.json]``."""
        if not self.accepted:
            return f"{self.format}: {self.description}"
        shown = ", ".join(self.files[:SHOWN_FILES]) + (", ..." if len(self.files) > SHOWN_FILES else "")
        return f"{self.format}: {self.description}" + (f" [{shown}]" if shown else "")


def survey(src: Path, *, count: bool = False, images: Path | None = None) -> list[Candidate]:
    """Every format `--format auto` tries, on `src`: accepted ones first (best score first), then
    the rejected ones, each in the registry's order. `count`: each accepted format's cheap count
    of images, objects and classes (its module's optional `count`, a parse of the recognised
    files without images), as `pipeline detect` shows. `images` (``--images DIR``): the images
    are there, so `src` may hold label files alone (a format whose `detect` takes an ``images``
    argument is told; the others look at the label files anyway)."""
    src = Path(src)
    if not src.exists():
        raise UsageError(f"{src}: no such file or folder", fix="check the path")
    if images is not None and not Path(images).is_dir():
        raise UsageError(f"--images {images}: no such folder", fix="point --images at the folder holding the images")
    accepted: list[Candidate] = []
    rejected: list[Candidate] = []
    for name in formats.available():
        module = importlib.import_module(formats.FORMATS[name])
        if getattr(module, "NAMED_ONLY", False):  # chosen by name only (`pipeline import images`)
            continue
        try:
            found = _with_images(module.detect, images)(src)
        except UsageError as err:
            rejected.append(Candidate(name, False, err.message))
            continue
        if found is None:
            rejected.append(Candidate(name, False, f"no {module.LOOKS_FOR} found"))
        else:
            accepted.append(Candidate(name, True, found.description, found.score, list(found.files)))
            if count:
                _count(module, src, accepted[-1], images)
    accepted.sort(key=lambda c: -(c.score or 0))  # (stable: the registry's order among equal scores)
    return accepted + rejected


def _with_images(fn, images: Path | None):
    """`fn` with ``images=`` bound when given and `fn` takes it (YOLO pairs label files with images)."""
    if images is None or "images" not in inspect.signature(fn).parameters:
        return fn
    return functools.partial(fn, images=Path(images))


def _count(module, src: Path, candidate: Candidate, images: Path | None = None) -> None:
    """Fill `candidate.counts` from `module.count`, or say in `candidate.note` why not."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException

    from pipeline.core.errors import DataError

    counter = getattr(module, "count", None)
    if counter is None:
        return
    paths = [src] if src.is_file() else [src / f for f in candidate.files]
    try:
        size = sum(p.stat().st_size for p in paths)
    except OSError as exc:
        candidate.note = f"not counted ({exc.strerror})"
        return
    if size > COUNT_MAX_BYTES:
        candidate.note = f"not counted ({size >> 20} MiB of annotation files; the import reads them)"
        return
    try:
        candidate.counts = _with_images(counter, images)(src, paths)
    except (OSError, ValueError, TypeError, AttributeError, KeyError, ParseError, DefusedXmlException,
            DataError, RecursionError) as exc:
        candidate.note = f"not counted: {type(exc).__name__} in a recognised file (the import names it)"


def rivals(candidates: list[Candidate]) -> list[Candidate]:
    """The accepted candidates beside the best one that recognise annotation files the best one
    does not: each covers a part of the tree an import of the best would leave out."""
    accepted = [c for c in candidates if c.accepted]
    if len(accepted) < 2:
        return []
    best = set(accepted[0].files)
    return [c for c in accepted[1:] if c.files and not set(c.files) <= best]


def choose(src: Path, images: Path | None = None) -> tuple[str, str]:
    """The format `--format auto` imports `src` as, and what was found; a UsageError naming every
    format and its reason when none fits, or the candidates when two formats cover parts of it.
    `images`: ``--images DIR`` (see `survey`)."""
    candidates = survey(src, images=images)
    accepted = [c for c in candidates if c.accepted]
    if not accepted:
        reasons = "; ".join(c.line() for c in candidates)
        raise UsageError(
            f"{src}: no known layout found (tried {', '.join(c.format for c in candidates)}); {reasons}",
            fix="name the format explicitly, e.g. `pipeline import voc SRC --out DIR`; see pipeline import --help",
        )
    others = rivals(candidates)
    if others:
        listed = "; ".join(c.line() for c in [accepted[0], *others])
        raise UsageError(
            f"{src}: {len(others) + 1} formats each cover a part of this folder ({listed}); "
            f"importing one would leave the others' files out",
            fix=f"name the format (`pipeline import {accepted[0].format} SRC ...`) or point SRC at one format's "
                "folder; `pipeline detect SRC` lists what each would read",
        )
    return accepted[0].format, accepted[0].description

"""Caps on what a reader parses, and the loaders that apply them: one place per limit.

Every annotation reader, the YOLO ``data.yaml`` reader and the config and recipe files use these
numbers and functions, so a hostile or broken file ends in one `DataError` naming the file (and
line or field) instead of gigabytes of memory, minutes of work or a traceback:

===========================  =========  =========================================================
limit                        default    applies to
===========================  =========  =========================================================
`MAX_LINE_CHARS`             1 MiB      one line of a text label file (YOLO labels)
`MAX_POINTS`                 100,000    vertices of one polygon, line, ring or keypoint list
`MAX_OBJECTS`                100,000    objects of one image (one label file, one entry)
`MAX_CLASS_NAME`             256        characters of a class name (UTF-8, no control characters)
`MAX_CLASSES`                100,000    class ids of a class list (``nc``, ``names``)
`MAX_DOCUMENT_BYTES`         1 GiB      a document read whole: COCO, CreateML, CVAT, Label Studio
`MAX_DOCUMENT_ENTRIES`       2,000,000  images, tasks or shapes of one CVAT / Label Studio file
`MAX_TEXT_BYTES`             64 MiB     a VOC XML or YOLO txt file, class files and list files
`MAX_EMBEDDED_IMAGE_CHARS`   64 Mi      base64 characters of a labelme ``imageData``
`MAX_ANNOTATION_JSON_BYTES`  32 MiB     a labelme file beside its embedded image
`MAX_XML_DEPTH`              32         element nesting of a CVAT document
`MAX_LABEL_CONFIG_BYTES`     1 MiB      a Label Studio labelling config
`MAX_YAML_BYTES`             4 MiB      ``data.yaml``, training configs, augment recipes
`MAX_YAML_DEPTH`             100        nesting levels of those YAML files
===========================  =========  =========================================================

YAML is read with PyYAML's safe loader and **without aliases**: an alias (``*name``) is refused
where it appears, so a "billion laughs" document fails at its first alias instead of expanding.
JSON documents over Python's integer-digit limit (a 5,000-digit number), nested too deeply, or
not UTF-8 are a `DataError` naming the file and line, never a bare ``ValueError``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from pipeline.core.errors import DataError, printable

MAX_LINE_CHARS = 2**20  # a YOLO polygon of 100,000 points at 4 decimals is about 1.2 MB: the line cap comes first
MAX_POINTS = 100_000  # dense mask-to-polygon tracings stay in the low thousands; also runs of one CVAT mask
MAX_OBJECTS = 100_000  # crowded scenes (SKU-110K, crowd counting) stay below a few thousand per image
MAX_CLASS_NAME = 256  # characters; names are printed in summaries and written into every export
MAX_CLASSES = 100_000  # ImageNet-21k has 21,841 classes
MAX_DOCUMENT_BYTES = 2**30
MAX_TEXT_BYTES = 64 * 2**20
MAX_YAML_BYTES = 4 * 2**20
MAX_EMBEDDED_IMAGE_CHARS = 64 * 2**20  # base64 of an image inside an annotation (labelme imageData): ~48 MB
MAX_ANNOTATION_JSON_BYTES = 32 * 2**20  # a per-image JSON annotation (labelme) beside its embedded image
MAX_DOCUMENT_ENTRIES = 2_000_000  # images, tasks or shapes of one document (COCO train2017: 860k annotations)
MAX_XML_DEPTH = 32  # element nesting of a CVAT document (CVAT's own go 6 deep)
MAX_LABEL_CONFIG_BYTES = 2**20  # a Label Studio labelling config (XML)
MAX_YAML_DEPTH = 100  # nesting levels of a YAML document (configs use three or four)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


def _read_up_to(fd: int, n: int, size: int = -1) -> bytes:
    """Up to `n` bytes from `fd`: fewer only at the end of the file (a short read is continued,
    unless it brought the file's `size` as ``fstat`` gave it: a regular file reads short only at
    its end)."""
    data = os.read(fd, n)
    if len(data) == n or len(data) == size or not data:
        return data
    chunks = [data]
    got = len(data)
    while got < n:
        more = os.read(fd, n - got)
        if not more:
            break
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


def read_capped(path: str | os.PathLike, where: str, limit: int = MAX_TEXT_BYTES, *, what: str = "annotation file",
                fix: str | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is a `DataError` naming `where`.

    Opened without blocking and checked with ``fstat`` before reading, so a FIFO or a device named
    like an annotation file is refused instead of hanging the import.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise DataError(where, f"cannot read the {what} ({exc.strerror or exc})",
                        fix="check that the file exists and is readable") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DataError(where, f"not a regular file ({what} expected)", fix="remove it or replace it with the file")
        if info.st_size > limit:
            raise DataError(where, f"{what} too large", expected=f"at most {_mib(limit)}",
                            got=f"{_mib(info.st_size)}", fix=fix or "split the file or remove what does not belong in it")
        # the size fstat gave (plus one byte to see growth): reading `limit + 1` at once would
        # allocate the whole cap for every small file. Raw reads: a buffered file object costs more
        # to set up than a small file costs to read.
        data = _read_up_to(fd, min(limit, info.st_size) + 1, info.st_size)
        if len(data) > info.st_size:  # grew since fstat: the rest in 1 MiB steps, up to the cap
            chunks = [data]
            total = len(data)
            while total <= limit:
                more = _read_up_to(fd, min(1 << 20, limit + 1 - total))
                if not more:
                    break
                chunks.append(more)
                total += len(more)
            data = b"".join(chunks)
    except OSError as exc:
        raise DataError(where, f"cannot read the {what} ({exc.strerror or exc})",
                        fix="check that the file is readable") from None
    finally:
        os.close(fd)
    if len(data) > limit:  # grew while being read
        raise DataError(where, f"{what} too large", expected=f"at most {_mib(limit)}", got=f"more than {_mib(limit)}",
                        fix=fix or "split the file or remove what does not belong in it")
    return data


def decode_text(raw: bytes, where: str, *, fix: str = "re-save the file as UTF-8") -> str:
    """UTF-8 text (a BOM is dropped); other bytes are a `DataError` naming the file and the byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(where, f"not UTF-8 text (byte {exc.start})", line=line, fix=fix) from None


def load_json(raw: bytes, where: str, *, limit: int = MAX_DOCUMENT_BYTES,
              fix: str = "re-save or re-export the file from the labelling tool") -> Any:
    """A JSON document of at most `limit` bytes; every way it can be broken is a `DataError`."""
    if len(raw) > limit:
        raise DataError(where, "JSON document too large", expected=f"at most {_mib(limit)}", got=_mib(len(raw)),
                        fix="split the file")
    return load_json_text(decode_text(raw, where, fix=fix), where, fix=fix)


def load_json_text(text: str, where: str, *, fix: str = "re-save or re-export the file from the labelling tool") -> Any:
    """`load_json` of text already decoded (and within its limit)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(where, f"not valid JSON ({exc.msg} at column {exc.colno})", line=exc.lineno, fix=fix) from None
    except RecursionError:
        raise DataError(where, "not valid JSON (nested too deeply)", fix=fix) from None
    except ValueError as exc:  # a number over Python's integer-digit limit (sys.get_int_max_str_digits)
        digits = re.search(r"has (\d+) digits", str(exc))
        raise DataError(where, "number too long", expected="numbers of at most 4300 digits",
                        got=f"{digits.group(1)} digits" if digits else str(exc), fix=fix) from None


def check_class_name(name: str, where: str, field: str = "label", line: int | None = None) -> str:
    """`name` when it is a usable class name: at most `MAX_CLASS_NAME` characters, no control characters."""
    if len(name) > MAX_CLASS_NAME:
        raise DataError(where, "class name too long", line=line, field=field,
                        expected=f"at most {MAX_CLASS_NAME} characters", got=f"{len(name):,} characters",
                        fix="shorten the class name (or rename it with --map OLD=NEW)")
    if _CONTROL.search(name):
        raise DataError(where, "control characters in a class name", line=line, field=field,
                        expected="printable text", got=name, fix="rename the class in the labelling tool")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a folder name that is not UTF-8 (ImageFolder), decoded with surrogate escapes
        raise DataError(where, f"class name is not UTF-8 ({printable(name)})", line=line, field=field,
                        fix="rename the folder or class (e.g. `convmv -f latin1 -t utf8`)") from None
    return name


def check_count(n: int, limit: int, where: str, what: str, *, field: str | None = None,
                line: int | None = None) -> None:
    """A `DataError` when a count (points, objects, classes) passes its limit."""
    if n > limit:
        raise DataError(where, f"too many {what}", line=line, field=field, expected=f"at most {limit:,}",
                        got=f"{n:,}", fix=f"split the {what} over several entries, or drop what is not needed")


# --------------------------------------------------------------------------------------------
# YAML without aliases
# --------------------------------------------------------------------------------------------


def _no_alias_loader():
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """PyYAML's safe loader refusing aliases where they appear (before anything is expanded)."""

        depth = 0

        def compose_node(self, parent, index):  # type: ignore[override]
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} (aliases are not allowed)",
                                                  event.start_mark)
            if self.depth >= MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                                                  self.peek_event().start_mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return NoAliasLoader


_LOADER: list = []


def load_yaml(text: str, where: str, *, fix: str = "fix the YAML syntax") -> Any:
    """A YAML document (safe types only, no aliases, at most `MAX_YAML_BYTES`); errors are one line
    naming the file and line."""
    import yaml

    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise DataError(where, "YAML file too large", expected=f"at most {_mib(MAX_YAML_BYTES)}",
                        got=_mib(len(text.encode("utf-8", "surrogatepass"))), fix="this should be a short config file")
    _check_flow_depth(text, where, fix)
    if not _LOADER:
        _LOADER.append(_no_alias_loader())
    try:
        return yaml.load(text, Loader=_LOADER[0])  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        column = f" at column {mark.column + 1}" if mark is not None else ""
        raise DataError(where, f"not valid YAML ({problem}{column})", line=mark.line + 1 if mark else None,
                        fix=fix) from None
    except yaml.YAMLError as exc:
        raise DataError(where, f"not valid YAML ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                        fix=fix) from None
    except RecursionError:
        raise DataError(where, "not valid YAML (nested too deeply)", fix=fix) from None
    except ValueError as exc:  # an integer over Python's digit limit, a bad date or base-60 number
        raise DataError(where, f"not valid YAML (a value Python cannot hold: {str(exc).split(':', 1)[0]})",
                        fix=fix) from None


_FLOW_TOKENS = re.compile(r"""'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|#[^\n]*|[\[\]{}]""")


def _check_flow_depth(text: str, where: str, fix: str) -> None:
    """Refuse ``[[[[...`` nesting before PyYAML's scanner, which slows down with the square of it."""
    if text.count("[") + text.count("{") <= MAX_YAML_DEPTH:
        return
    depth = 0
    for m in _FLOW_TOKENS.finditer(text):
        token = m.group()
        if token in "[{":
            depth += 1
            if depth > MAX_YAML_DEPTH:
                line = text.count("\n", 0, m.start()) + 1
                raise DataError(where, f"not valid YAML (nested deeper than {MAX_YAML_DEPTH} levels)", line=line,
                                fix=fix)
        elif token in "]}":
            depth = max(0, depth - 1)


def read_yaml_file(path: str | os.PathLike, where: str | None = None, *, fix: str = "fix the YAML syntax") -> Any:
    """`load_yaml` of a file (at most `MAX_YAML_BYTES`, UTF-8)."""
    where = where if where is not None else str(path)
    raw = read_capped(Path(path), where, MAX_YAML_BYTES, what="YAML file", fix="this should be a short config file")
    return load_yaml(decode_text(raw, where), where, fix=fix)

"""Edits files: the one record of label changes that `relabel`, `view` and `label-issues` share.

An edits file is JSON Lines (UTF-8, one object per line), appended to as a person works::

    {"id": "train-00007", "label": "3"}                      set the image-level class (null clears it)
    {"id": "img-12", "objects": [{"label": "dog", "bbox": [1.0, 2.0, 30.0, 40.0]}]}   replace the objects
    {"id": "train-00042", "remove": true}                    leave the sample out ("remove": false takes that back)

Optional on every line: ``"source"`` (what made it: ``"view"``, ``"labelstudio:export.json"``, a
reviewer's name) and ``"time"`` (ISO 8601, UTC). For one sample id a later line overrides an
earlier one field by field (`net_edits`); undo is appending the previous value. Objects are the
dataset's canonical objects (``datasets/README.md``), checked here for their shape; whether their
classes exist is checked against a dataset when the edits are applied (`pipeline.labeling.relabel`).
A bad line is one error, ``edits.jsonl:LINE: field: expected …, got …``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.core.dataset.validation import _check_obj as check_object  # the dataset's own object rule
from pipeline.core.errors import DataError
from pipeline.core.limits import MAX_ANNOTATION_JSON_BYTES, MAX_OBJECTS, check_class_name, check_count
from pipeline.core.paths import fsync_dir

KEYS = ("id", "label", "objects", "remove", "source", "time")
FIX = "correct or delete that line (a later line for the same id overrides it)"


class _Unset:
    """The value of `Edit.label` when the line does not set the label (null clears it)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class _AnyClass:
    """Every class name: objects are checked for shape here, for their classes against a dataset."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(name)


@dataclass(frozen=True)
class Edit:
    """One line of an edits file: what to change on the sample `id`.

    `label`: the new image-level class, None to clear it, `UNSET` to leave it; `objects`: the new
    objects (canonical JSON dicts), None to leave them; `remove`: True leaves the sample out of the
    new version, False takes an earlier removal back, None says nothing."""

    id: str
    label: Any = UNSET  # str | None | UNSET
    objects: list | None = None
    remove: bool | None = None
    source: str | None = None
    time: str | None = None

    def to_json(self) -> dict:
        out: dict[str, Any] = {"id": self.id}
        if self.label is not UNSET:
            out["label"] = self.label
        if self.objects is not None:
            out["objects"] = self.objects
        if self.remove is not None:
            out["remove"] = self.remove
        if self.source is not None:
            out["source"] = self.source
        if self.time is not None:
            out["time"] = self.time
        return out

    def sets_anything(self) -> bool:
        return self.label is not UNSET or self.objects is not None or self.remove is not None


def parse_edit(text: str, *, where: str = "edits.jsonl", line: int | None = None) -> Edit:
    """One edits line as an `Edit`; every problem is a `DataError` naming `where:line: field`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(where, f"not valid JSON ({exc.msg} at column {exc.colno})", line=line, fix=FIX) from None
    except (RecursionError, ValueError) as exc:  # nested too deeply; a number over Python's digit limit
        reason = "nested too deeply" if isinstance(exc, RecursionError) else "number too long"
        raise DataError(where, f"not valid JSON ({reason})", line=line, fix=FIX) from None
    if not isinstance(data, dict):
        raise _fail(where, line, "line", "a JSON object", type(data).__name__)
    extra = sorted(set(data) - set(KEYS))
    if extra:
        raise _fail(where, line, extra[0], f"only the keys {', '.join(KEYS)}", extra[0])
    sid = data.get("id")
    if not isinstance(sid, str) or not sid:
        raise _fail(where, line, "id", "a sample id (a non-empty string)", sid)
    label = data.get("label", UNSET)
    if label is not UNSET and label is not None:
        if not isinstance(label, str) or not label:
            raise _fail(where, line, "label", "a class name or null", label)
        check_class_name(label, where, "label", line)
    objects = data.get("objects")
    if "objects" in data:
        if not isinstance(objects, list):
            raise _fail(where, line, "objects", "a list of objects (empty for none)", objects)
        check_count(len(objects), MAX_OBJECTS, where, "objects", field="objects", line=line)
        for i, obj in enumerate(objects):
            check_object(obj, _AnyClass(), where, line, f"objects[{i}]")  # type: ignore[arg-type]
            check_class_name(obj["label"], where, f"objects[{i}].label", line)
    remove = data.get("remove")
    if remove is not None and not isinstance(remove, bool):
        raise _fail(where, line, "remove", "true or false", remove)
    for key in ("source", "time"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise _fail(where, line, key, "a string or null", value)
    time = data.get("time")
    if time is not None and not _is_iso(time):
        raise _fail(where, line, "time", "an ISO 8601 time such as 2026-12-06T22:55:00Z", time)
    edit = Edit(id=sid, label=label, objects=objects, remove=remove, source=data.get("source"), time=time)
    if not edit.sets_anything():
        raise _fail(where, line, "line", "at least one of label, objects, remove", text.strip())
    return edit


def read_edits(path: str | os.PathLike) -> list[Edit]:
    """Every edit of an edits file, in file order (blank lines skipped)."""
    path = Path(path)
    where = str(path)
    if path.exists() and not path.is_file():  # (a FIFO would block the read)
        raise DataError(where, "not a regular file (an edits file expected)", fix="point at a .jsonl edits file")
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise DataError(where, f"cannot read the edits file ({exc.strerror or exc})",
                        fix="check the path") from None
    edits = []
    with fh:
        for number, raw in enumerate(iter(lambda: fh.readline(MAX_ANNOTATION_JSON_BYTES + 1), b""), start=1):
            if len(raw) > MAX_ANNOTATION_JSON_BYTES:
                raise DataError(where, "line too long", line=number,
                                expected=f"at most {MAX_ANNOTATION_JSON_BYTES // 2**20} MiB", got="more", fix=FIX)
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(where, f"not UTF-8 text (byte {exc.start} of the line)", line=number,
                                fix="re-save the file as UTF-8") from None
            if not text.strip():
                continue
            edits.append(parse_edit(text, where=where, line=number))
    return edits


def append_edits(path: str | os.PathLike, edits: Iterable[Edit]) -> None:
    """Append `edits` to the edits file at `path` (created when absent), flushed to the disk before
    returning. A last line left unfinished by a writer that was killed is closed first, so the new
    lines stay lines of their own (the unfinished one remains an error to fix by hand)."""
    path = Path(path)
    lines = "".join(json.dumps(e.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n" for e in edits)
    created = not path.exists()
    with open(path, "ab") as fh:
        if not created and fh.tell() > 0:
            with open(path, "rb") as check:
                check.seek(-1, os.SEEK_END)
                if check.read(1) != b"\n":
                    lines = "\n" + lines
        fh.write(lines.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())
    if created:
        fsync_dir(path.parent if str(path.parent) else Path("."))


def net_edits(edits: Iterable[Edit]) -> dict[str, Edit]:
    """The edits folded per sample id, in order of each id's first edit: a later edit overrides an
    earlier one field by field; `source` and `time` are those of the last edit of the id that gave them."""
    out: dict[str, Edit] = {}
    for edit in edits:
        before = out.get(edit.id)
        if before is None:
            out[edit.id] = edit
            continue
        out[edit.id] = replace(
            before,
            label=edit.label if edit.label is not UNSET else before.label,
            objects=edit.objects if edit.objects is not None else before.objects,
            remove=edit.remove if edit.remove is not None else before.remove,
            source=edit.source if edit.source is not None else before.source,
            time=edit.time if edit.time is not None else before.time,
        )
    return out


def _is_iso(text: str) -> bool:
    try:
        _dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _fail(where: str, line: int | None, field: str, expected: str, got: object) -> DataError:
    return DataError(where, "", line=line, field=field, expected=expected, got=got, fix=FIX)

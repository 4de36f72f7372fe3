"""Exports we recognise but do not read, refused by name instead of being mis-read.

A Roboflow multi-label classification CSV (``_classes.csv`` with ``filename`` and one 0/1 column
per class, images beside it in ``train/ valid/ test/``) would otherwise import as an ImageFolder
whose classes are the split folders; a VoTT export (a ``.vott`` project, a ``*-export.json`` with
VoTT's ``assets`` map, or a ``*-export.csv`` with ``image,xmin,ymin,xmax,ymax,label``) as
unlabelled or background images. Both would exit 0 with every label lost, so `refusal` names what
the folder is and `pipeline import` stops with that one line.

Only the top of the tree is looked at (the import root and the folders two levels below it, at
most `MAX_FILES` file names), and only the first `HEAD_BYTES` of a candidate file are read,
through `SafeFiles` (links leaving the root are not followed, special files never opened).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from pipeline.core.paths import SafeFiles

MAX_DEPTH = 2  # folders below the root that are looked at (Roboflow: train/_classes.csv)
MAX_FILES = 5000  # file names looked at in all
HEAD_BYTES = 1 << 16  # bytes read from a candidate file

VOTT_KEYS = ("securityToken", "exportFormat", "videoSettings", "activeLearningSettings")
VOTT_CSV = ["image", "xmin", "ymin", "xmax", "ymax", "label"]


def _head(path: str, files: SafeFiles) -> bytes:
    if not files.is_file(path):
        return b""
    try:
        with open(path, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except OSError:
        return b""


def roboflow_multilabel(head: bytes) -> bool:
    """A Roboflow multi-label classification CSV: ``filename`` then class columns of 0/1 values."""
    try:
        rows = list(csv.reader(io.StringIO(head.decode("utf-8-sig", errors="replace"))))
    except csv.Error:
        return False
    if len(rows) < 2 or len(rows[0]) < 2 or rows[0][0].strip().lower() != "filename":
        return False
    complete = [r for r in rows[1:-1] or rows[1:] if r]  # the last row may be cut by HEAD_BYTES
    return bool(complete) and all(len(r) == len(rows[0]) and all(v.strip() in ("0", "1") for v in r[1:])
                                  for r in complete)


def vott_json(head: bytes) -> bool:
    """A VoTT JSON export or project: an object with an ``assets`` map and VoTT's own keys."""
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if not text.startswith("{") or '"assets"' not in text:
        return False
    if len(head) < HEAD_BYTES:
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return False
        return isinstance(doc, dict) and isinstance(doc.get("assets"), dict) and any(k in doc for k in VOTT_KEYS)
    return any(f'"{k}"' in text for k in VOTT_KEYS)  # too large to parse here: its keys are enough


def vott_csv(head: bytes) -> bool:
    """VoTT's CSV export: the header ``image,xmin,ymin,xmax,ymax,label``."""
    first = head.decode("utf-8-sig", errors="replace").split("\n", 1)[0]
    return [c.strip().strip('"').lower() for c in first.split(",")] == VOTT_CSV


def refusal(root: str | os.PathLike) -> str | None:
    """One line naming the unsupported export `root` is (a file or a folder), or None."""
    root = os.path.abspath(root)
    if os.path.isfile(root):
        return _judge(root, SafeFiles([os.path.dirname(root)]))
    if not os.path.isdir(root):
        return None
    files = SafeFiles([root])
    seen = 0
    for dirpath, dirnames, filenames in files.walk(root):
        depth = 0 if dirpath == root else os.path.relpath(dirpath, root).count(os.sep) + 1
        dirnames[:] = [] if depth >= MAX_DEPTH else sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            seen += 1
            if seen > MAX_FILES:
                return None
            found = _judge(os.path.join(dirpath, name), files, root)
            if found:
                return found
    return None


def _judge(path: str, files: SafeFiles, root: str | None = None) -> str | None:
    name = os.path.basename(path)
    low = name.lower()
    if not (low.endswith((".vott", ".csv")) or low.endswith("-export.json")):
        return None  # the common case, decided on the name alone
    shown = os.path.relpath(path, root).replace(os.sep, "/") if root else name
    if low.endswith(".vott"):
        return f"{shown}: a VoTT project, which is not read (export it from VoTT as Pascal VOC, then import voc)"
    if low == "_classes.csv" and roboflow_multilabel(_head(path, files)):
        return (f"{shown}: a Roboflow multi-label classification CSV, which is not read (its folders are splits, "
                "not classes; download the dataset from Roboflow in another format)")
    if low.endswith("-export.json") and vott_json(_head(path, files)):
        return f"{shown}: a VoTT JSON export, which is not read (export it from VoTT as Pascal VOC, then import voc)"
    if low.endswith(".csv") and vott_csv(_head(path, files)):
        return f"{shown}: a VoTT CSV export, which is not read (export it from VoTT as Pascal VOC, then import voc)"
    return None


def refuse(root: str | os.PathLike) -> None:
    """Raise a `UsageError` when `root` is an export this package recognises but does not read."""
    from pipeline.core.errors import UsageError

    reason = refusal(Path(root))
    if reason:
        raise UsageError(reason, fix="see docs/formats.md for the formats that are read")

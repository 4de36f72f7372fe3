"""Annotation formats: one module per format, each with `detect`, `read` and `write`.

Contract of a format module (see `base.py` for the shared types)::

    NAME: str                       # the name used on the command line
    TASK: str                       # default task of imported datasets
    def detect(root: Path) -> Detection | None         # for --format auto
    def read(root: Path, ctx: ImportContext) -> None   # adds samples through ctx
    def write(dataset: Dataset, out: Path, report: ExportReport, options: dict) -> None
    HOLDS_REVIEWS: bool = False     # optional: True when write keeps samples' annotations/predictions
                                    # (else the export counts them as not representable)
    NAMED_ONLY: bool = False        # optional: True when --format auto never tries it (`images`)
    LOOKS_FOR: str                  # what `detect` looks for, as `pipeline detect` says when it is not found
    def count(root: Path, paths: list[Path]) -> dict[str, int]   # optional: images, objects, classes in
                                    # the files `detect` recognised, for `pipeline detect` (no image opened)

`detect` returns None when the folder is not in the format (`pipeline detect` then says
"no LOOKS_FOR found"), or raises a UsageError whose message is the reason (e.g. MIT LabelMe XML).

`read` converts the format's coordinates to absolute-pixel xyxy and `write` converts back; that
conversion lives in the format module and nowhere else.

Imports and exports go through `ingest.py`: `detect_format`, `import_dataset`, `export_dataset`,
and `import_any` for whatever a download holds (the table readers of `tables.py` included).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from pipeline.core.errors import UsageError

FORMATS: dict[str, str] = {
    "imagefolder": "pipeline.formats.imagefolder",
    "voc": "pipeline.formats.voc",
    "yolo": "pipeline.formats.yolo",
    "createml": "pipeline.formats.createml",
    "labelme": "pipeline.formats.labelme",
    "coco": "pipeline.formats.coco",
    "cvat": "pipeline.formats.cvat",
    "labelstudio": "pipeline.formats.labelstudio",
    "webdataset": "pipeline.formats.webdataset",  # tar shards (streaming training, Ray Data)
    "images": "pipeline.formats.images",  # unlabelled images; never detected, only named
}


def available() -> list[str]:
    """Format names whose module is importable (all of them in a complete install)."""
    import importlib.util

    return [n for n, m in FORMATS.items() if importlib.util.find_spec(m) is not None]


def get(name: str) -> ModuleType:
    """The format module for `name`; an unknown name lists the valid ones."""
    if name not in FORMATS or name not in available():
        raise UsageError(f"unknown format {name!r}", fix=f"use one of: auto, {', '.join(available())}")
    return importlib.import_module(FORMATS[name])

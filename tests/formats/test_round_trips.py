"""Round trips between every pair of annotation formats: export to A, import, export to B, import;
the result equals the source in what both formats hold (boxes within 0.5 px; polygons, masks and
splits where both hold them). Format modules are loaded through `pipeline.formats.get`, so a
format added to the registry joins the matrix by being listed in HOLDS."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from pipeline import formats
from pipeline.formats.ingest import export_dataset, import_dataset
from tests.formats.contract import BOXES, EMPTY, MASKS, POLYGONS, SPLITS, assert_same_objects, make_source

HOLDS: dict[str, set[str]] = {
    "voc": {BOXES, POLYGONS, SPLITS, EMPTY},
    "yolo": {BOXES, POLYGONS, SPLITS, EMPTY},
    "createml": {BOXES, SPLITS, EMPTY},
    "coco": {BOXES, POLYGONS, MASKS, SPLITS, EMPTY},
    "labelme": {BOXES, POLYGONS, MASKS, EMPTY},
    "cvat": {BOXES, POLYGONS, MASKS, SPLITS, EMPTY},
    "labelstudio": {BOXES, POLYGONS, SPLITS, EMPTY},
}

PAIRS = [(a, b) for a, b in itertools.permutations(sorted(HOLDS), 2)]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_pair_round_trip(tmp_path: Path, first: str, second: str) -> None:
    if first not in formats.available() or second not in formats.available():
        pytest.skip("format module not installed")
    common = HOLDS[first] & HOLDS[second]
    src = make_source(tmp_path / "src", common)
    export_dataset(src.root, first, tmp_path / "a")
    mid, report = import_dataset(first, tmp_path / "a", tmp_path / "a-ds")
    assert not report.problems, [str(p) for p in report.problems]
    export_dataset(mid.root, second, tmp_path / "b")
    back, report = import_dataset(second, tmp_path / "b", tmp_path / "b-ds")
    assert not report.problems, [str(p) for p in report.problems]
    assert back.classes == src.classes
    assert_same_objects(src, back, polygons=POLYGONS in common, masks=MASKS in common, splits=SPLITS in common)

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
    "labelme": {BOXES, POLYGONS, MASKS, SPLITS, EMPTY},
    "cvat": {BOXES, POLYGONS, MASKS, SPLITS, EMPTY},
    "labelstudio": {BOXES, POLYGONS, SPLITS, EMPTY},
}

PAIRS = [(a, b) for a, b in itertools.permutations(sorted(HOLDS), 2)]

# Formats whose exports keep the folders of an id (``sub/img-004``); the others write flat file
# names (the id's own stem where unique), so an id's sub-folder does not survive them.
KEEP_FOLDERS = {"labelme", "cvat", "labelstudio"}


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_pair_round_trip(tmp_path: Path, first: str, second: str) -> None:
    if first not in formats.available() or second not in formats.available():
        pytest.skip("format module not installed")
    common = HOLDS[first] & HOLDS[second]
    src = make_source(tmp_path / "src", common, nested={first, second} <= KEEP_FOLDERS)
    export_dataset(src.root, first, tmp_path / "a")
    mid, report = import_dataset(first, tmp_path / "a", tmp_path / "a-ds")
    assert not report.problems, [str(p) for p in report.problems]
    export_dataset(mid.root, second, tmp_path / "b")
    back, report = import_dataset(second, tmp_path / "b", tmp_path / "b-ds")
    assert not report.problems, [str(p) for p in report.problems]
    assert back.classes == src.classes
    assert_same_objects(src, back, polygons=POLYGONS in common, masks=MASKS in common, splits=SPLITS in common)
    # ids come from the file names, which exports keep, not from either format's folders
    assert {s.sha256: s.id for s in back.samples} == {s.sha256: s.id for s in mid.samples}


# -- nothing dropped without a word: whatever the source held is in the target or counted ------------


def _rich_source(root: Path):
    """Objects with attributes (VOC's difficult/truncated and one of the tool's own), polygons,
    a mask, keypoints and a polyline, in splits; one sample's id in a sub-folder."""
    import numpy as np

    from pipeline.core.dataset import DatasetWriter, Obj, Sample
    from pipeline.core.geometry import mask_bbox, rle_encode
    from tests.helpers import png

    m = np.zeros((48, 64), bool)
    m[20:30, 40:60] = True
    objects = [
        Obj("cat", bbox=[4.0, 6.0, 30.0, 40.0], polygon=[[[4.0, 6.0], [30.0, 6.0], [30.0, 40.0]]],
            attributes={"difficult": 1, "truncated": 0, "colour": "red"}),
        Obj("dog", bbox=mask_bbox(m), mask=rle_encode(m)),
        Obj("dog", keypoints=[[10.0, 10.0, 2], [20.0, 12.0, 2]]),
        Obj("cat", polyline=[[1.0, 1.0], [20.0, 30.0]]),
    ]
    with DatasetWriter(root, task="detection", stage="test-fixture", classes=["cat", "dog"]) as w:
        w.add(Sample(id="a", width=64, height=48, split="train", objects=objects), data=png(64, 48), ext="png")
        w.add(Sample(id="sub/b", width=64, height=48, split="val", objects=[Obj("cat", bbox=[1.0, 1.0, 9.0, 9.0])]),
              data=png(64, 48, (1, 2, 3)), ext="png")
        return w.commit()


def _features(ds) -> set[str]:
    """What a dataset holds, as words an export summary names when it cannot hold them."""
    found: set[str] = set()
    for s in ds.samples:
        if "/" in s.id:
            found.add(f"folders {s.id.rsplit('/', 1)[0]}")
        if s.split:
            found.add(f"split {s.split}")
        for o in s.objects or []:
            found |= {f"attribute {k}" for k in o.attributes}
            found |= {kind for kind in ("polygon", "mask", "keypoints", "polyline") if getattr(o, kind)}
    return found


def _counted(feature: str, reports) -> bool:
    word = feature.split()[-1] if feature.startswith("attribute") else feature.split()[0]
    keys = [k for r in reports for k in (*r.dropped, *r.converted)]
    if feature.startswith("attribute"):  # by name, or among a format's count of all object attributes
        return any(f"'{word}'" in k or k.startswith("object attributes") for k in keys)
    return any(word in k for k in keys)


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_pair_holds_or_counts_everything(tmp_path: Path, first: str, second: str) -> None:
    src = _rich_source(tmp_path / "src")
    _, one = export_dataset(src.root, first, tmp_path / "a")
    mid, _ = import_dataset(first, tmp_path / "a", tmp_path / "a-ds")
    _, two = export_dataset(mid.root, second, tmp_path / "b")
    back, _ = import_dataset(second, tmp_path / "b", tmp_path / "b-ds")
    lost = _features(src) - _features(back)
    silent = sorted(f for f in lost if not _counted(f, (one, two)))
    assert not silent, (silent, dict(one.dropped), dict(two.dropped))

"""`pipeline.labeling.relabel.apply_edits`: a new version with the edits applied, every change
recorded in the sample and in the lineage, the source untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.labeling.edits import Edit
from pipeline.labeling.relabel import LINEAGE_OBJECTS, apply_edits, object_diff
from tests.helpers import make_classification_dataset, make_detection_dataset


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def cls_ds(tmp_path_factory) -> Path:
    return make_classification_dataset(tmp_path_factory.mktemp("cls") / "ds", classes=3, per_class=4)


@pytest.fixture(scope="module")
def det_ds(tmp_path_factory) -> Path:
    return make_detection_dataset(tmp_path_factory.mktemp("det") / "ds", n=4)


def test_label_changes_removals_and_no_ops(cls_ds: Path, tmp_path: Path) -> None:
    before = _tree_hash(cls_ds)
    edits = [
        Edit(id="0-000", label="2", source="alice", time="2026-12-06T23:00:00+00:00"),
        Edit(id="1-001", label="1"),  # the label it has: no change
        Edit(id="2-002", remove=True),
        Edit(id="0-003", remove=True),
        Edit(id="0-003", remove=False),  # taken back
        Edit(id="1-002", label=None),  # cleared
    ]
    report = apply_edits(cls_ds, edits, tmp_path / "new", source="edits.jsonl")
    assert (report.changed, report.removed, report.unchanged) == (2, 1, 2)
    assert report.unknown_ids == [] and report.samples == 11
    assert _tree_hash(cls_ds) == before  # the source is never modified

    new = load_dataset(tmp_path / "new")
    by_id = {s.id: s for s in new.samples}
    assert "2-002" not in by_id and len(new) == 11
    assert by_id["0-000"].label == "2" and by_id["1-002"].label is None
    assert by_id["0-000"].meta["relabel"] == [
        {"field": "label", "old": "0", "new": "2", "source": "alice", "time": "2026-12-06T23:00:00+00:00"}]
    (entry,) = by_id["1-002"].meta["relabel"]
    assert entry["source"] == "edits.jsonl" and entry["old"] == "1" and entry["new"] is None
    assert "relabel" not in by_id["1-001"].meta and "relabel" not in by_id["0-003"].meta
    old = {s.id: s for s in load_dataset(cls_ds).samples}
    for sid in ("1-001", "0-003", "2-000"):  # untouched samples are carried byte for byte
        assert by_id[sid].to_json() == old[sid].to_json()
        assert new.read_image_bytes(by_id[sid]) == load_dataset(cls_ds).read_image_bytes(old[sid])

    lineage = new.info.lineage[-1]
    assert lineage["stage"] == "relabel" and new.info.lineage[:-1] == load_dataset(cls_ds).info.lineage
    assert lineage["params"] == {"source": "edits.jsonl", "changed": 2, "removed": 1, "unchanged": 2,
                                 "added_classes": []}
    assert lineage["changes"] == [
        {"id": "0-000", "field": "label", "old": "0", "new": "2"},
        {"id": "1-002", "field": "label", "old": "1", "new": None},
        {"id": "2-002", "field": "removed", "old": False, "new": True},
    ]
    assert str(cls_ds) in lineage["inputs"]


def test_history_is_kept_across_versions(cls_ds: Path, tmp_path: Path) -> None:
    apply_edits(cls_ds, [Edit(id="0-001", label="1", time="2026-12-06T23:00:00Z")], tmp_path / "v2", source="a")
    apply_edits(tmp_path / "v2", [Edit(id="0-001", label="2", time="2026-12-06T23:05:00Z")], tmp_path / "v3",
                source="b")
    sample = next(s for s in load_dataset(tmp_path / "v3").samples if s.id == "0-001")
    assert [(h["old"], h["new"], h["source"]) for h in sample.meta["relabel"]] == [("0", "1", "a"), ("1", "2", "b")]
    assert [e["stage"] for e in load_dataset(tmp_path / "v3").info.lineage][-2:] == ["relabel", "relabel"]


def test_unknown_ids_are_an_error_listing_them(cls_ds: Path, tmp_path: Path) -> None:
    edits = [Edit(id="0-000", label="1"), Edit(id="nope", label="1"), Edit(id="ghost", remove=True)]
    with pytest.raises(DataError, match=r"2 edited id\(s\) not in the dataset .*'nope', 'ghost'"):
        apply_edits(cls_ds, edits, tmp_path / "new", source="edits.jsonl")
    assert not (tmp_path / "new").exists()


def test_unknown_class_is_an_error_unless_added(cls_ds: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"class\(es\) not in the dataset's class list: '7'"):
        apply_edits(cls_ds, [Edit(id="0-000", label="7")], tmp_path / "new", source="s")
    assert not (tmp_path / "new").exists()
    report = apply_edits(cls_ds, [Edit(id="0-000", label="7")], tmp_path / "new", source="s", add_classes=True)
    assert report.added_classes == ["7"]
    new = load_dataset(tmp_path / "new")
    assert new.classes == ["0", "1", "2", "7"]
    assert new.info.lineage[-1]["params"]["added_classes"] == ["7"]


def test_out_is_claimed_like_every_output(cls_ds: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is an input of this command"):
        apply_edits(cls_ds, [Edit(id="0-000", label="1")], cls_ds, source="s", overwrite=True)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="refusing to replace it"):
        apply_edits(cls_ds, [], tmp_path / "taken", source="s", overwrite=True)
    apply_edits(cls_ds, [], tmp_path / "new", source="s")
    with pytest.raises(UsageError, match="--overwrite"):
        apply_edits(cls_ds, [], tmp_path / "new", source="s")
    report = apply_edits(cls_ds, [Edit(id="0-000", label="1")], tmp_path / "new", source="s", overwrite=True)
    assert report.changed == 1 and load_dataset(tmp_path / "new").samples[0].label == "1"


def test_objects_replaced_and_recorded(det_ds: Path, tmp_path: Path) -> None:
    ds = load_dataset(det_ds)
    first = ds.samples[0]
    old = [o.to_json() for o in first.objects]
    new_objects = [old[0], {"bbox": [1.0, 2.0, 10.0, 12.0], "label": "green"}]  # key order is not a change
    same = [dict(reversed(list(o.items()))) for o in [o.to_json() for o in ds.samples[1].objects]]
    report = apply_edits(det_ds, [Edit(id=first.id, objects=new_objects),
                                  Edit(id=ds.samples[1].id, objects=same)], tmp_path / "new", source="s")
    assert (report.changed, report.unchanged) == (1, 1)
    out = load_dataset(tmp_path / "new")
    assert [o.to_json() for o in out.samples[0].objects] == [old[0], {"label": "green", "bbox": [1.0, 2.0, 10.0, 12.0]}]
    (change,) = out.info.lineage[-1]["changes"]
    assert change == {"id": first.id, "field": "objects", "old": old,
                      "new": [old[0], {"label": "green", "bbox": [1.0, 2.0, 10.0, 12.0]}],
                      "added": 0, "removed": 0, "changed": 1}
    assert out.samples[0].meta["relabel"][0]["old"] == old


def test_large_object_changes_are_summarised_in_the_lineage(det_ds: Path, tmp_path: Path) -> None:
    sid = load_dataset(det_ds).samples[0].id
    many = [{"label": "red", "bbox": [float(i), 0.0, float(i) + 2, 2.0]} for i in range(LINEAGE_OBJECTS)]
    apply_edits(det_ds, [Edit(id=sid, objects=many)], tmp_path / "new", source="s")
    out = load_dataset(tmp_path / "new")
    (change,) = out.info.lineage[-1]["changes"]
    assert change["old"] == {"count": 2} and change["new"] == {"count": LINEAGE_OBJECTS}
    assert change["added"] == LINEAGE_OBJECTS - 2 and change["changed"] == 2 and change["removed"] == 0
    assert len(out.samples[0].meta["relabel"][0]["new"]) == LINEAGE_OBJECTS  # the sample keeps them in full
    json.dumps(out.info.lineage)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ([], [], (0, 0, 0)),
    (["a"], ["a"], (0, 0, 0)),  # identical objects pair first
    (["a", "b"], ["b", "a"], (0, 0, 0)),  # order is not a change of objects
    (["a"], ["a", "c"], (1, 0, 0)),
    (["a", "b"], ["c"], (0, 1, 1)),
    (["a", "a"], ["a"], (0, 1, 0)),  # duplicates count one each
])
def test_object_diff(old: list[str], new: list[str], expected: tuple[int, int, int]) -> None:
    box = {"a": [0, 0, 1, 1], "b": [1, 1, 2, 2], "c": [2, 2, 3, 3]}
    counts = object_diff([{"label": "x", "bbox": box[k]} for k in old], [{"label": "x", "bbox": box[k]} for k in new])
    assert (counts["added"], counts["removed"], counts["changed"]) == expected


def test_objects_in_another_order_are_no_change(det_ds: Path, tmp_path: Path) -> None:
    sample = load_dataset(det_ds).samples[0]
    flipped = [o.to_json() for o in reversed(sample.objects)]
    report = apply_edits(det_ds, [Edit(id=sample.id, objects=flipped)], tmp_path / "new", source="s")
    assert (report.changed, report.unchanged) == (0, 1)

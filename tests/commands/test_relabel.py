"""`pipeline relabel`: reviewed labels from Label Studio, labelme, CVAT files and edits files come
back as a new dataset version, matched by sample id; mismatches are one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.formats.ingest import export_dataset
from tests.helpers import make_classification_dataset, make_detection_dataset


@pytest.fixture(scope="module")
def ds(tmp_path_factory) -> Path:
    return make_classification_dataset(tmp_path_factory.mktemp("cls") / "ds", classes=3, per_class=3)


def _labels(path: Path) -> dict[str, str | None]:
    return {s.id: s.label for s in load_dataset(path).samples}


def test_edits_file(main, ds: Path, tmp_path: Path) -> None:
    edits = tmp_path / "edits.jsonl"
    edits.write_text('{"id": "0-000", "label": "1"}\n{"id": "2-001", "remove": true}\n{"id": "1-000", "label": "1"}\n')
    done = main("relabel", ds, "--from", edits, "--out", tmp_path / "new")
    assert done.returncode == 0, done.stderr
    assert re.search(r"changed\s+1 samples", done.stdout) and re.search(r"removed\s+1 samples", done.stdout)
    assert re.search(r"unchanged\s+1 samples", done.stdout) and str(tmp_path / "new") in done.stdout
    labels = _labels(tmp_path / "new")
    assert labels["0-000"] == "1" and "2-001" not in labels
    assert load_dataset(tmp_path / "new").info.lineage[-1]["params"]["source"] == "edits:edits.jsonl"


def test_bad_edits_line_is_one_line_exit_2(main, ds: Path, tmp_path: Path) -> None:
    edits = tmp_path / "edits.jsonl"
    edits.write_text('{"id": "0-000", "label": 1}\n')
    done = main("relabel", ds, "--from", edits, "--out", tmp_path / "new")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {edits}:1: label: expected a class name or null, got 1. "
                                                "Fix: correct or delete that line (a later line for the same id "
                                                "overrides it)"]
    assert not (tmp_path / "new").exists()


def test_labelme_review(main, ds: Path, tmp_path: Path) -> None:
    export_dataset(ds, "labelme", tmp_path / "lm")
    files = sorted((tmp_path / "lm").rglob("0-001.json"))
    assert len(files) == 1
    doc = json.loads(files[0].read_text())
    doc["flags"] = {"0": False, "1": False, "2": True}  # the reviewer ticks another class
    files[0].write_text(json.dumps(doc))
    done = main("relabel", ds, "--from", tmp_path / "lm", "--out", tmp_path / "new")
    assert done.returncode == 0, done.stderr
    old, new = _labels(ds), _labels(tmp_path / "new")
    assert {k for k in old if old[k] != new[k]} == {"0-001"} and new["0-001"] == "2"
    assert load_dataset(tmp_path / "new").info.lineage[-1]["changes"] == [
        {"id": "0-001", "field": "label", "old": "0", "new": "2"}]


def test_cvat_review(main, ds: Path, tmp_path: Path) -> None:
    export_dataset(ds, "cvat", tmp_path / "cvat")
    xml = tmp_path / "cvat" / "annotations.xml"
    text = xml.read_text()
    text, n = re.subn(r'(<image [^>]*name="1-002\.png"[^>]*>\s*<tag label=")1(")', r"\g<1>0\2", text)
    assert n == 1, text[:2000]
    xml.write_text(text)
    done = main("relabel", ds, "--from", xml, "--out", tmp_path / "new")
    assert done.returncode == 0, done.stderr
    old, new = _labels(ds), _labels(tmp_path / "new")
    assert {k for k in old if old[k] != new[k]} == {"1-002"} and new["1-002"] == "0"


def test_labelstudio_review_with_an_unannotated_task(main, ds: Path, tmp_path: Path) -> None:
    export_dataset(ds, "labelstudio", tmp_path / "ls")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    by_id = {t["data"]["sample_id"]: t for t in tasks}
    by_id["2-000"]["annotations"][0]["result"][0]["value"]["choices"] = ["1"]
    by_id["0-002"]["annotations"] = []  # nobody looked at it: left as it is
    (tmp_path / "ls" / "tasks.json").write_text(json.dumps(tasks))
    done = main("relabel", ds, "--from", tmp_path / "ls" / "tasks.json", "--out", tmp_path / "new")
    assert done.returncode == 0, done.stderr
    assert re.search(r"not reviewed\s+1", done.stdout)
    old, new = _labels(ds), _labels(tmp_path / "new")
    assert {k for k in old if old[k] != new[k]} == {"2-000"} and new["2-000"] == "1"


def test_unmatched_items_are_an_error_listing_them(main, ds: Path, tmp_path: Path) -> None:
    other = make_classification_dataset(tmp_path / "other", classes=2, per_class=4)
    export_dataset(other, "labelme", tmp_path / "lm")
    done = main("relabel", ds, "--from", tmp_path / "lm", "--out", tmp_path / "new")
    assert done.returncode == 2
    assert "reviewed item(s) match no sample" in done.stderr and "1-003'" in done.stderr and "0-003'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "new").exists()


def test_unknown_class_refused_unless_added(main, ds: Path, tmp_path: Path) -> None:
    edits = tmp_path / "edits.jsonl"
    edits.write_text('{"id": "0-000", "label": "cat"}\n')
    done = main("relabel", ds, "--from", edits, "--out", tmp_path / "new")
    assert done.returncode == 2 and "'cat'" in done.stderr and "--add-classes" in done.stderr
    done = main("relabel", ds, "--from", edits, "--out", tmp_path / "new", "--add-classes")
    assert done.returncode == 0, done.stderr
    assert load_dataset(tmp_path / "new").classes == ["0", "1", "2", "cat"]


def test_detection_objects_from_labelme(main, tmp_path: Path) -> None:
    det = make_detection_dataset(tmp_path / "det", n=3)
    export_dataset(det, "labelme", tmp_path / "lm")
    path = sorted((tmp_path / "lm").rglob("img-001.json"))[0]
    doc = json.loads(path.read_text())
    doc["shapes"] = doc["shapes"][:1]  # the reviewer deletes a box
    path.write_text(json.dumps(doc))
    done = main("relabel", det, "--from", tmp_path / "lm", "--out", tmp_path / "new")
    assert done.returncode == 0, done.stderr
    new = {s.id: s for s in load_dataset(tmp_path / "new").samples}
    assert len(new["img-001"].objects) == 1
    (change,) = load_dataset(tmp_path / "new").info.lineage[-1]["changes"]
    assert change["id"] == "img-001" and change["field"] == "objects" and change["removed"] == 1

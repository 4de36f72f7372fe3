"""The DuckDB index of samples.jsonl: validation as `load_dataset`, findings as `pipeline check`,
filters, the cache (reused, rebuilt when the samples change) and the parallel build."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.check import check_dataset
from pipeline.core.dataset import load_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.view import index as index_module
from pipeline.view.index import Filters, open_index
from tests.helpers import make_classification_dataset, make_detection_dataset, png
from tests.view.conftest import packed_dataset, write_dataset


def sample(i: str, **fields) -> dict:
    data = png(40, 30, (int(hashlib.sha256(i.encode()).hexdigest()[:2], 16), 10, 10))
    base = {"id": i, "image": f"images/{i}.png", "width": 40, "height": 30,
            "sha256": hashlib.sha256(data).hexdigest(), "split": "train", "label": None}
    return {**base, **fields}


@pytest.fixture
def flawed(tmp_path: Path) -> Path:
    """A detection dataset with a box outside its image, a sample without labels, a duplicate image
    across splits (leakage), a non-ASCII id and a class no sample uses."""
    same = png(40, 30, (1, 2, 3))
    digest = hashlib.sha256(same).hexdigest()
    lines = [
        sample("a-ok", objects=[{"label": "cat", "bbox": [1.0, 1.0, 20.0, 20.0]}]),
        sample("b-outside", objects=[{"label": "cat", "bbox": [30.0, 1.0, 80.0, 20.0]}]),
        sample("c-empty"),
        sample("d-dup", sha256=digest, split="val", objects=[{"label": "dog", "bbox": [0.0, 0.0, 5.0, 5.0]}]),
        sample("e-dup", sha256=digest, split="test", objects=[{"label": "dog", "bbox": [0.0, 0.0, 5.0, 5.0]}]),
        sample("f-ünï", objects=[{"label": "dog", "polygon": [[[1, 1], [9, 1], [5, 8]]]}]),
    ]
    images = {line["image"]: png(40, 30) for line in lines}
    return write_dataset(tmp_path / "flawed", "detection", ["cat", "dog", "unused"], lines, images)


def all_rows(ix, f: Filters = Filters()) -> list[str]:
    total, rows = ix.query(f, 0, 500)
    assert total == len(rows)
    return [r.id for r in rows]


def test_findings_are_check_s_findings(flawed: Path, tmp_path: Path) -> None:
    ix = open_index(flawed, cache=tmp_path / "cache")
    report = check_dataset(load_dataset(flawed), images=False)
    expected: dict[str, set[str]] = {}
    for f in report.findings:
        for member in f.detail.get("samples", [f.sample]) if f.sample else []:
            expected.setdefault(member, set()).add(f.code)
    indexed = {sid: {f["code"] for f in ix.findings_of(sid)} for sid in all_rows(ix)}
    assert {k: v for k, v in indexed.items() if v} == expected
    assert set(all_rows(ix, Filters(finding="split-leakage"))) == {"d-dup", "e-dup"}
    assert all_rows(ix, Filters(finding="box-outside-image")) == ["b-outside"]
    assert "c-empty" in all_rows(ix, Filters(finding="any"))
    assert [(f["code"], f["message"]) for f in ix.meta["dataset_findings"]] == \
        [(f.code, f.message) for f in report.findings if f.sample is None]


def test_filters_and_counts(flawed: Path, tmp_path: Path) -> None:
    ix = open_index(flawed, cache=tmp_path / "cache")
    assert all_rows(ix) == ["a-ok", "b-outside", "c-empty", "d-dup", "e-dup", "f-ünï"]  # id order
    assert all_rows(ix, Filters(split="val")) == ["d-dup"]
    assert all_rows(ix, Filters(label="dog")) == ["d-dup", "e-dup", "f-ünï"]
    assert all_rows(ix, Filters(q="ÜN")) == ["f-ünï"]  # case-insensitive, in the id or the image path
    assert all_rows(ix, Filters(q="images/c-")) == ["c-empty"]
    assert ix.query(Filters(), 5, 10)[1][0].id == "f-ünï" and ix.query(Filters(), 50, 10) == (6, [])
    stats = ix.stats(Filters(label="dog"))
    assert stats["total"] == 3 and stats["classes"] == {"cat": 0, "dog": 3, "unused": 0}
    assert stats["splits"] == {"train": 1, "val": 1, "test": 1}
    row = ix.row("f-ünï")
    assert row is not None and ix.sample(row).objects[0].polygon == [[[1, 1], [9, 1], [5, 8]]]
    assert ix.row("nope") is None


def test_augmented_and_packed(tmp_path: Path) -> None:
    ix = open_index(packed_dataset(tmp_path / "packed"), cache=tmp_path / "cache")
    assert all_rows(ix, Filters(augmented=True)) == ["p-2"]
    assert all_rows(ix, Filters(augmented=False)) == ["p-0", "p-1"]


def test_the_index_is_cached_and_rebuilt_when_the_samples_change(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=3)
    cache = tmp_path / "cache"
    first = open_index(data, cache=cache)
    first.close()
    second = open_index(data, cache=cache)
    assert second.path == first.path and second.meta == first.meta  # read back, not rebuilt
    second.close()
    make_classification_dataset(data, classes=2, per_class=4, overwrite=True)
    third = open_index(data, cache=cache)
    assert third.path != first.path and len(third) == 8
    assert not first.path.parent.exists()  # the stale index of the same folder is gone
    third.close()


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "x", "image": "../../etc/passwd", "width": 1, "height": 1, "sha256": "' + "0" * 64 + '"}',
     "samples.jsonl:2: image: expected a relative path inside the dataset folder"),
    ('{"id": "x", "image": "images/x.png", "width": -3, "height": 1, "sha256": "' + "0" * 64 + '"}',
     "samples.jsonl:2: width: expected a positive integer"),
    ('{"id": "0-000", "image": "images/x.png", "width": 3, "height": 1, "sha256": "' + "0" * 64 + '"}',
     "samples.jsonl:2: id: duplicate id"),
    ("not json", "samples.jsonl:2: not valid JSON"),
])
def test_bad_lines_name_the_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=1, per_class=1, splits=None)
    text = (data / "samples.jsonl").read_text() + line + "\n"
    (data / "samples.jsonl").write_text(text)
    info = json.loads((data / "dataset.json").read_text())
    info["samples_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    (data / "dataset.json").write_text(json.dumps(info))
    with pytest.raises(DataError) as err:
        open_index(data, cache=tmp_path / "cache")
    assert str(err.value).startswith(message)
    assert not list((tmp_path / "cache" / "view").iterdir())  # nothing half-built left behind


def test_a_hand_edited_file_and_a_missing_dataset_are_refused(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=1, per_class=2, splits=None)
    with open(data / "samples.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n")
    with pytest.raises(DataError, match="samples_sha256"):
        open_index(data, cache=tmp_path / "cache")
    with pytest.raises(UsageError, match="not a pipeline dataset"):
        open_index(tmp_path / "nothing", cache=tmp_path / "cache")


def test_ranges_split_on_line_starts_and_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"".join(f"line {i} {'x' * (i % 7)}\n".encode() for i in range(100)))
    ranges = index_module._ranges(path, 4)
    data = path.read_bytes()
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    for (start, end, line), nxt in zip(ranges, [*ranges[1:], None], strict=True):
        assert start == 0 or data[start - 1:start] == b"\n"
        assert data[:start].count(b"\n") + 1 == line
        if nxt:
            assert nxt[0] == end


def test_parallel_build_equals_the_single_process_one(tmp_path: Path, monkeypatch) -> None:
    data = make_detection_dataset(tmp_path / "det", n=12)
    single = open_index(data, cache=tmp_path / "one")
    monkeypatch.setattr(index_module, "_workers", lambda size: 2)
    parallel = open_index(data, cache=tmp_path / "two")
    for f in (Filters(), Filters(label="red"), Filters(split="val")):
        assert single.query(f, 0, 100) == parallel.query(f, 0, 100)
        assert single.stats(f) == parallel.stats(f)


def test_session_tables_filter_issues_predictions_and_edits(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=2, splits=None)
    ix = open_index(data, cache=tmp_path / "cache")
    ix.add_issues([("2-001", 2, 0.3, "2", "1", "label"), ("0-000", 1, 0.9, "0", "2", "label")])
    assert all_rows(ix, Filters(issues=True)) == ["0-000", "2-001"]  # rank order
    assert all_rows(ix, Filters(issues=True, max_rank=1)) == ["0-000"]
    ids = all_rows(ix)
    ix.add_predictions(ids, ["0", "0", "1", "1", "1", "2"], [0.9] * 6)
    assert all_rows(ix, Filters(disagree=True)) == ["2-000"]
    ix.mark_edited(["1-000", "1-000"])
    assert all_rows(ix, Filters(edited=True)) == ["1-000"]
    assert ix.issue_of("0-000") == {"rank": 1, "score": 0.9, "given": "0", "suggested": "2", "kind": "label"}
    assert ix.prediction_of("2-000") == {"label": "1", "score": pytest.approx(0.9)}

"""--issues (issues.json of `pipeline label-issues`) and --run (a run's predictions, cached)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.errors import DataError, UsageError
from pipeline.view.index import Filters, open_index
from pipeline.view.inputs import read_issues, run_predictions
from tests.helpers import invoke, make_classification_dataset
from tests.view.conftest import session_for, write_issues


def entry(sid: str, rank: int, given: str = "0", suggested: str = "1", score: float = 0.5,
          kind: str = "label", **more) -> dict:
    return {"id": sid, "given": given, "suggested": suggested, "score": score, "rank": rank, "kind": kind, **more}


def test_issues_are_read_and_checked(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    ix = open_index(data, cache=tmp_path / "cache")
    folder = write_issues(tmp_path / "issues", [entry("1-001", 1, "1", "0", 0.12), entry("0-000", 2, "0", "1", 0.4)],
                          dataset_sha256=ix.meta["samples_sha256"])
    rows, note = read_issues(folder, ix)
    assert rows == [("1-001", 1, 0.12, "1", "0", "label"), ("0-000", 2, 0.4, "0", "1", "label")]
    assert note.startswith("2 label issues from") and "another version" not in note
    ix.add_issues(rows)
    assert [r.id for r in ix.query(Filters(issues=True), 0, 10)[1]] == ["1-001", "0-000"]
    other = write_issues(tmp_path / "old", [entry("1-001", 1)], dataset_sha256="0" * 64)
    assert "another version" in read_issues(other, ix)[1]
    unknown = write_issues(tmp_path / "unknown", [entry("zz", 1)])
    with pytest.raises(DataError, match="names 1 id"):
        read_issues(unknown, ix)
    with pytest.raises(UsageError, match="no issues.json"):
        read_issues(tmp_path / "nowhere", ix)


def test_a_detection_report_shows_each_sample_at_its_best_ranked_box(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    ix = open_index(data, cache=tmp_path / "cache")
    folder = write_issues(tmp_path / "issues", [
        entry("1-001", 1, "1", "0", 0.05, "box-label", object=2),
        entry("0-000", 2, "0", "1", 0.1, "box-label", object=0),
        entry("1-001", 3, "1", "0", 0.3, "box-label", object=0),
    ])
    rows, note = read_issues(folder, ix)
    assert rows == [("1-001", 1, 0.05, "1", "0", "box-label"), ("0-000", 2, 0.1, "0", "1", "box-label")]
    assert note.startswith("3 label issues on 2 samples from")


@pytest.mark.parametrize(("doc", "message"), [
    ([], "expected a JSON object"),
    ({"issues": []}, "dataset: expected str"),
    ({"dataset": "d", "dataset_sha256": "0", "params": {}, "issues": [7]}, "issues[0]: expected an object"),
    ({"dataset": "d", "dataset_sha256": "0", "params": {}, "issues": [entry("a", 2)]}, "issues[0].rank: expected 1"),
    ({"dataset": "d", "dataset_sha256": "0", "params": {}, "issues": [entry("a", 1, score="high")]},
     "issues[0].score: expected a number in [0, 1]"),
    ({"dataset": "d", "dataset_sha256": "0", "params": {}, "issues": [entry("a", 1, suggested=3)]},
     "issues[0].suggested: expected a string"),
])
def test_a_bad_report_is_refused_naming_the_field(tmp_path: Path, doc: object, message: str) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1, splits=None)
    ix = open_index(data, cache=tmp_path / "cache")
    (tmp_path / "issues").mkdir()
    (tmp_path / "issues" / "issues.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_issues(tmp_path / "issues", ix)
    assert message in str(err.value) and "issues.json" in str(err.value)


def test_predictions_are_computed_once_and_cached(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=4)
    result = invoke("train", data, "--out", tmp_path / "run", "--epochs", "1", "--batch-size", "8",
                    "--set", "threads=1", "--set", "log_images=0", "--device", "cpu")
    assert result.exit_code == 0, result.output
    ids, predicted, scores, note = run_predictions(tmp_path / "run", data, tmp_path / "cache" / "view")
    assert ids == sorted(ids) and len(ids) == 12 and set(predicted) <= {"0", "1", "2"} and note.endswith("run")
    assert all(0.0 < s <= 1.0 for s in scores)
    again = run_predictions(tmp_path / "run", data, tmp_path / "cache" / "view")
    assert again[:3] == (ids, predicted, scores) and again[3].endswith("(cached)")
    with pytest.raises(UsageError):
        run_predictions(tmp_path / "ds", data, tmp_path / "cache" / "view")  # not a run
    session = session_for(data, tmp_path, run=tmp_path / "run")  # (the cached predictions)
    assert session.run_note.endswith("(cached)") and session.info_json()["predictions"] is True
    disagree = session.page(Filters(disagree=True), 0, 20)
    expected = [i for i, p in zip(ids, predicted, strict=True) if p != i.split("-")[0]]
    assert [s["id"] for s in disagree["samples"]] == expected
    assert all(s["prediction"]["label"] != s["label"] for s in disagree["samples"])

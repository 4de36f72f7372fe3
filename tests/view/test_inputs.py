"""--issues (issues.json of `pipeline label-issues`) and --run (a run's predictions, cached)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import DataError, UsageError
from pipeline.view.index import Filters, open_index
from pipeline.view.inputs import parse_issues, read_issues, run_predictions
from tests.helpers import invoke, make_classification_dataset
from tests.view.conftest import session_for, write_issues


def test_issues_are_read_and_checked(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    ix = open_index(data, cache=tmp_path / "cache")
    folder = write_issues(tmp_path / "issues", [
        {"id": "1-001", "given": "1", "suggested": "0", "score": 0.12, "rank": 1, "kind": "label"},
        {"id": "0-000", "given": "0", "suggested": "1", "score": 0.4, "rank": 2, "kind": "label"},
    ], dataset_sha256=ix.meta["samples_sha256"])
    rows, note = read_issues(folder, ix)
    assert rows == [("1-001", 1, 0.12, "1", "0", "label"), ("0-000", 2, 0.4, "0", "1", "label")]
    assert note.startswith("2 label issues") and "another version" not in note
    ix.add_issues(rows)
    assert [r.id for r in ix.query(Filters(issues=True), 0, 10)[1]] == ["1-001", "0-000"]
    other = write_issues(tmp_path / "old", rows_as_dicts(rows[:1]), dataset_sha256="0" * 64)
    assert "another version" in read_issues(other, ix)[1]
    unknown = write_issues(tmp_path / "unknown", [{"id": "zz", "rank": 1}])
    with pytest.raises(DataError, match="names 1 id"):
        read_issues(unknown, ix)
    with pytest.raises(UsageError, match="no issues.json"):
        read_issues(tmp_path / "nowhere", ix)


def rows_as_dicts(rows: list[tuple]) -> list[dict]:
    return [dict(zip(("id", "rank", "score", "given", "suggested", "kind"), r, strict=True)) for r in rows]


@pytest.mark.parametrize(("doc", "message"), [
    ([], "issues: expected an object with an \"issues\" list"),
    ({"issues": [7]}, "issues[0]: expected an object"),
    ({"issues": [{"rank": 1}]}, "issues[0].id: expected a sample id"),
    ({"issues": [{"id": "a", "rank": 0}]}, "issues[0].rank: expected an integer >= 1"),
    ({"issues": [{"id": "a", "rank": True}]}, "issues[0].rank: expected an integer >= 1"),
    ({"issues": [{"id": "a", "rank": 1, "score": "high"}]}, "issues[0].score: expected a number or null"),
    ({"issues": [{"id": "a", "rank": 1, "suggested": 3}]}, "issues[0].suggested: expected a string or null"),
    ({"issues": [{"id": "a", "rank": 1}, {"id": "a", "rank": 2}]}, "issues[1].id: expected an id listed once"),
])
def test_bad_issues_name_the_entry_and_field(doc: object, message: str) -> None:
    with pytest.raises(DataError) as err:
        parse_issues(doc, "issues.json")
    assert f"issues.json: {message}" in str(err.value)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=3), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["issues", "dataset", "params"]), json_values | st.lists(
    st.dictionaries(st.sampled_from(["id", "rank", "score", "given", "suggested", "kind", "other"]), json_values),
    max_size=4)))
def test_fuzz_issues_documents_parse_or_fail_with_a_data_error(doc: dict) -> None:
    try:
        rows = parse_issues(doc, "issues.json")
    except DataError as err:
        assert str(err).startswith("issues.json: ")
        return
    for sid, rank, score, *texts in rows:
        assert isinstance(sid, str) and isinstance(rank, int) and rank >= 1
        assert score is None or isinstance(score, float)
        assert all(t is None or isinstance(t, str) for t in texts)
    json.dumps(rows)


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

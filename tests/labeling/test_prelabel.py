"""`pipeline.labeling.prelabel`: a run's predictions written for Label Studio, labelme and CVAT with
the formats' own writers, read back by their readers; label-issues' output as given + suggested."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import load_dataset
from pipeline.core.errors import DataError, PipelineError, UsageError
from pipeline.formats.ingest import import_dataset
from pipeline.labeling.prelabel import (
    Issue,
    issues_json,
    model_version,
    predict_samples,
    prelabel,
    read_issues,
)
from pipeline.labeling.relabel import relabel
from tests.helpers import make_detection_dataset


def _version(run: Path) -> str:
    return f"run@{hashlib.sha256((run / 'best.pt').read_bytes()).hexdigest()[:12]}"


def test_model_version_is_run_name_and_checkpoint_hash(trained) -> None:
    assert model_version(trained.run) == _version(trained.run)


def test_labelstudio_tasks_carry_predictions_and_sample_ids(trained, tmp_path: Path) -> None:
    report = prelabel(trained.run, trained.data, "labelstudio", tmp_path / "ls")
    predicted = predict_samples(load_dataset(trained.data), trained.run)
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert report.samples == len(tasks) == 36 and report.model_version == _version(trained.run)
    for task in tasks:
        label, score = predicted[task["data"]["sample_id"]]
        assert task["annotations"] == []  # nothing labelled: the reviewer starts from the prediction
        (pred,) = task["predictions"]
        assert pred["model_version"] == report.model_version and pred["score"] == score
        (result,) = pred["result"]
        assert result["type"] == "choices" and result["value"] == {"choices": [label]}
        assert task["data"]["image"].startswith("/data/local-files/?d=images/")
        assert (tmp_path / "ls" / task["data"]["image"].split("?d=")[1]).is_file()
    config = (tmp_path / "ls" / "label_config.xml").read_text()
    assert re.findall(r'<Choice value="(\w+)"/>', config) == ["0", "1", "2"]
    assert all(0 < s[1] <= 1 for s in predicted.values())
    # read back by the import: predictions kept, no labels
    ds, _ = import_dataset("labelstudio", tmp_path / "ls", tmp_path / "back")
    assert {s.id: (s.predictions[0].label, s.predictions[0].score) for s in ds.samples} == predicted
    assert all(s.label is None for s in ds.samples)


def test_labelme_ticks_the_prediction_and_shows_its_score(trained, tmp_path: Path) -> None:
    prelabel(trained.run, trained.data, "labelme", tmp_path / "lm")
    predicted = predict_samples(load_dataset(trained.data), trained.run)
    docs = sorted((tmp_path / "lm").rglob("*.json"))
    assert len(docs) == 36
    doc = json.loads(docs[0].read_text())
    sid = docs[0].stem
    label, score = predicted[sid]
    assert {k: v for k, v in doc["flags"].items() if not k.startswith("__")} == {c: c == label for c in "012"}
    assert f"__model {_version(trained.run)}: {label} (score {score:.3f})__" in doc["flags"]
    # accepted as it is, the review gives the predictions as labels
    report, review = relabel(trained.data, tmp_path / "lm", tmp_path / "new")
    new = {s.id: s.label for s in load_dataset(tmp_path / "new").samples}
    assert new == {k: v[0] for k, v in predicted.items()}
    old = {s.id: s.label for s in load_dataset(trained.data).samples}
    assert report.changed == sum(old[k] != new[k] for k in old) and review.items == 36


def test_cvat_tags_carry_score_and_model_version(trained, tmp_path: Path) -> None:
    prelabel(trained.run, trained.data, "cvat", tmp_path / "cvat")
    predicted = predict_samples(load_dataset(trained.data), trained.run)
    ds, _ = import_dataset("cvat", tmp_path / "cvat", tmp_path / "back")
    for s in ds.samples:
        (tag,) = s.meta["tags"]
        assert s.label == tag["label"] == predicted[s.id][0]
        assert float(tag["attributes"]["score"]) == pytest.approx(predicted[s.id][1], abs=1e-6)
        assert tag["attributes"]["model_version"] == _version(trained.run)


def _issues(tmp_path: Path) -> Path:
    folder = tmp_path / "issues"
    folder.mkdir()
    (folder / "issues.json").write_text(issues_json([
        Issue("1-004", given="1", suggested="2", score=0.12, rank=2, kind="label"),
        Issue("0-003", given="0", suggested="1", score=0.05, rank=1, kind="label"),
    ]))
    return folder


@pytest.mark.parametrize("fmt", ["labelstudio", "labelme", "cvat"])
def test_issues_show_given_and_suggested(trained, tmp_path: Path, fmt: str) -> None:
    report = prelabel(trained.run, trained.data, fmt, tmp_path / "out", issues=_issues(tmp_path))
    assert report.samples == 2 and report.from_issues
    if fmt == "labelstudio":
        tasks = {t["data"]["sample_id"]: t for t in json.loads((tmp_path / "out" / "tasks.json").read_text())}
        assert set(tasks) == {"0-003", "1-004"}
        assert tasks["1-004"]["annotations"][0]["result"][0]["value"] == {"choices": ["1"]}
        assert tasks["1-004"]["predictions"][0]["result"][0]["value"] == {"choices": ["2"]}
        assert tasks["1-004"]["predictions"][0]["score"] == 0.12
    elif fmt == "labelme":
        doc = json.loads(next((tmp_path / "out").rglob("1-004.json")).read_text())
        assert doc["flags"]["1"] is True and doc["flags"]["2"] is False and "__suggested 2 (score 0.120)__" in doc["flags"]
    else:
        text = (tmp_path / "out" / "annotations.xml").read_text()
        assert re.search(r'name="1-004\.png".*?<tag label="1".*?<attribute name="suggested">2</attribute>', text, re.S)
    # reviewed as they are, nothing changes
    report, _ = relabel(trained.data, tmp_path / "out", tmp_path / "new", fmt="auto")
    assert (report.changed, report.unchanged) == (0, 2)


def test_detection_datasets_are_refused(trained, tmp_path: Path) -> None:
    det = make_detection_dataset(tmp_path / "det", n=2)
    with pytest.raises(UsageError, match="a detection dataset; prelabel needs a classification dataset"):
        prelabel(trained.run, det, "labelstudio", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_out_is_claimed(trained, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("x")
    with pytest.raises(UsageError, match="refusing to replace it"):
        prelabel(trained.run, trained.data, "labelstudio", tmp_path / "out", overwrite=True)
    with pytest.raises(UsageError, match="is an input of this command"):
        prelabel(trained.run, trained.data, "labelstudio", trained.data, overwrite=True)


def _report(*entries: dict) -> dict:
    return {"dataset": "d", "dataset_sha256": "0" * 64, "params": {}, "issues": list(entries)}


_GOOD = {"id": "a", "given": "0", "suggested": "1", "score": 0.1, "rank": 1, "kind": "label"}


@pytest.mark.parametrize(("doc", "message"), [
    ([{"id": "a"}], "not an issues report: expected a JSON object, got 'list'"),
    (_report({**_GOOD, "id": 3}), r"issues\[0\].id: expected a string, got '3'"),
    (_report({**_GOOD, "score": "high"}), r"issues\[0\].score: expected a number in \[0, 1\]"),
    (_report({**_GOOD, "rank": 1.5}), r"issues\[0\].rank: expected 1"),
    (_report({**_GOOD, "given": 1}), r"issues\[0\].given: expected a string"),
    (_report("a"), r"issues\[0\]: expected an object"),
])
def test_bad_issues_files(tmp_path: Path, doc: object, message: str) -> None:
    (tmp_path / "issues.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=message):
        read_issues(tmp_path / "issues.json")


def test_issue_ids_must_be_in_the_dataset(trained, tmp_path: Path) -> None:
    folder = tmp_path / "issues"
    folder.mkdir()
    (folder / "issues.json").write_text(issues_json([Issue("ghost", "1", "2", 0.1, 1, "label")]))
    with pytest.raises(DataError, match="1 issue id.s. not in .*'ghost'"):
        prelabel(trained.run, trained.data, "labelstudio", tmp_path / "out", issues=folder)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=120), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
        st.sampled_from(["id", "given", "suggested", "score", "rank", "kind", "x"]), inner, max_size=6)),
    max_leaves=12).map(lambda d: json.dumps(d).encode())))
def test_fuzz_issues_reader(tmp_path_factory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "issues.json"
    path.write_bytes(raw)
    try:
        read_issues(path)
    except PipelineError as err:
        assert "\n" not in str(err)


def test_issues_written_by_label_issues_become_review_tasks(trained, tmp_path: Path) -> None:
    """The report `pipeline label-issues` writes is what `prelabel --issues` reads."""
    from pipeline.labeling.issues import find_issues, load_issues

    find_issues(trained.data, tmp_path / "issues", folds=2, epochs=1, threshold=1.0)
    report = load_issues(tmp_path / "issues")
    assert report["issues"]  # (threshold 1: every sample is listed)
    prelabel(trained.run, trained.data, "labelstudio", tmp_path / "out", issues=tmp_path / "issues")
    tasks = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert sorted(t["data"]["sample_id"] for t in tasks) == sorted({e["id"] for e in report["issues"]})

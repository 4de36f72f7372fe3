"""A browsing session: edits appended to the edits file as they come (and read back by the next
session), validated by the samples.jsonl validator, Save as through `apply_edits`."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.core.errors import DataError, UsageError
from pipeline.labeling.edits import Edit, append_edits, read_edits
from pipeline.view.index import Filters
from pipeline.view.session import default_edits_path
from tests.helpers import make_classification_dataset, make_detection_dataset
from tests.view.conftest import session_for


def test_edits_are_kept_as_they_come_and_survive_a_restart(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=2)
    first = session_for(data, tmp_path)
    cards = first.add_edits([{"id": "0-000", "label": "2"}, {"id": "1-001", "remove": True}])
    assert [(c["id"], c["edit"]) for c in cards] == [("0-000", {"label": "2"}), ("1-001", {"remove": True})]
    edits = read_edits(first.edits_path)
    assert [(e.id, e.label if e.remove is None else e.remove, e.source) for e in edits] == \
        [("0-000", "2", "view"), ("1-001", True, "view")]
    first.index.close()
    second = session_for(data, tmp_path)  # the browser closed, the server restarted: nothing lost
    assert set(second.pending) == {"0-000", "1-001"}
    assert [c["id"] for c in second.page(Filters(edited=True), 0, 10)["samples"]] == ["0-000", "1-001"]
    second.add_edits([{"id": "0-000", "label": "0"}])  # undo: the previous value appended
    assert second.pending["0-000"].label == "0"


@pytest.mark.parametrize(("edit", "error", "message"), [
    ({"id": "0-000", "label": "cat"}, DataError, "edits[0]: label: expected a class listed in dataset.json"),
    ({"id": "0-000", "label": 3}, DataError, "edits[0]: label: expected a class name or null"),
    ({"id": "0-000", "remove": "yes"}, UsageError, "edits[0].remove: expected true or false"),
    ({"id": "0-000", "colour": "red"}, UsageError, "edits[0]: unknown field 'colour'"),
    ({"id": "0-000"}, UsageError, "edits[0]: nothing to change"),
    ({"id": "0-000", "objects": [{"label": "0", "bbox": [5, 5, 1, 1]}]}, DataError,
     "edits[0]: objects[0].bbox: expected x1 <= x2 and y1 <= y2"),
    ({"id": "0-000", "objects": "none"}, UsageError, "edits[0].objects: expected a list of objects"),
    ({"id": "no-such"}, LookupError, "no sample with id 'no-such'"),
    ({"label": "1"}, UsageError, "every edit needs an \"id\""),
])
def test_bad_edits_are_refused_and_nothing_is_written(tmp_path: Path, edit: dict, error: type,
                                                      message: str) -> None:
    session = session_for(make_classification_dataset(tmp_path / "ds", classes=2, per_class=1), tmp_path)
    with pytest.raises(error) as err:
        session.add_edits([edit])
    assert message in str(err.value)
    assert not session.edits_path.exists() and not session.pending


def test_save_as_writes_a_new_version_beside_the_source(tmp_path: Path) -> None:
    data = make_detection_dataset(tmp_path / "det", n=3)
    before = (data / "samples.jsonl").read_bytes()
    session = session_for(data, tmp_path)
    with pytest.raises(UsageError, match="nothing to save"):
        session.save("det-v2")
    box = {"label": "green", "bbox": [1.0, 2.0, 11.0, 12.0]}
    session.add_edits([{"id": "img-000", "objects": [box]}, {"id": "img-002", "remove": True}])
    result = session.save("det-v2")
    assert result == {"out": str(tmp_path / "det-v2"), "changed": 1, "removed": 1, "unchanged": 0, "unknown_ids": []}
    saved = {s.id: s for s in load_dataset(tmp_path / "det-v2").samples}
    assert sorted(saved) == ["img-000", "img-001"] and saved["img-000"].objects[0].to_json() == box
    assert saved["img-000"].meta["relabel"][0]["source"] == "view"
    assert (data / "samples.jsonl").read_bytes() == before  # the source is never modified
    with pytest.raises(UsageError, match="already holds"):
        session.save("det-v2")  # an existing version is never replaced


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "..", "x" * 101, 7, None])
def test_save_as_takes_a_folder_name_never_a_path(tmp_path: Path, name: object) -> None:
    session = session_for(make_classification_dataset(tmp_path / "ds", classes=2, per_class=1), tmp_path)
    session.add_edits([{"id": "0-000", "label": "1"}])
    with pytest.raises(UsageError, match="expected a folder name"):
        session.save(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "ds", "ds.edits.jsonl"]


def test_an_edits_file_of_another_dataset_is_refused(tmp_path: Path) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1)
    append_edits(tmp_path / "ds.edits.jsonl", [Edit(id="elsewhere-7", remove=True)])
    with pytest.raises(DataError, match="names 1 id"):
        session_for(data, tmp_path)


def test_the_default_edits_file_sits_beside_the_dataset(tmp_path: Path) -> None:
    assert default_edits_path(tmp_path / "sets" / "mnist") == (tmp_path / "sets" / "mnist.edits.jsonl").resolve()


def test_detail_lists_findings_and_parents(tmp_path: Path) -> None:
    from tests.view.conftest import packed_dataset

    session = session_for(packed_dataset(tmp_path / "packed"), tmp_path)
    detail = session.detail("p-2")
    assert detail is not None and detail["parents"] == ["p-0"] and detail["findings"] == []
    assert session.detail("nope") is None
    info = session.info_json()
    assert info["classes"] == ["0", "1", "2"] and info["samples"] == 3 and info["pending"] == 0

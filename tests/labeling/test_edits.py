"""`pipeline.labeling.edits`: the edits file (read, append, fold), its errors and a fuzz test."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.errors import DataError, PipelineError
from pipeline.labeling.edits import UNSET, Edit, append_edits, net_edits, parse_edit, read_edits

FUZZ = settings(max_examples=int(os.environ.get("EDITS_FUZZ_EXAMPLES", "60")), deadline=timedelta(seconds=5),
                derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_reads_every_kind_of_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "edits.jsonl",
        '{"id": "train-00007", "label": "3"}',
        "",  # blank lines are skipped
        '{"id": "img-12", "objects": [{"label": "dog", "bbox": [1.0, 2.0, 30.0, 40.0]}], "source": "view"}',
        '{"id": "train-00042", "remove": true, "time": "2026-12-06T22:55:00Z"}',
        '{"id": "train-00008", "label": null, "source": "ann\u00e9"}',
    )
    edits = read_edits(path)
    assert edits == [
        Edit(id="train-00007", label="3"),
        Edit(id="img-12", objects=[{"label": "dog", "bbox": [1.0, 2.0, 30.0, 40.0]}], source="view"),
        Edit(id="train-00042", remove=True, time="2026-12-06T22:55:00Z"),
        Edit(id="train-00008", label=None, source="ann\u00e9"),
    ]
    assert edits[0].objects is None and edits[0].remove is None and edits[2].label is UNSET


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "a", "label": 3}', "edits.jsonl:2: label: expected a class name or null, got 3"),
    ('{"id": "", "label": "3"}', "edits.jsonl:2: id: expected a sample id (a non-empty string), got ''"),
    ('{"label": "3"}', "edits.jsonl:2: id: expected a sample id (a non-empty string), got None"),
    ('{"id": "a", "lable": "3"}', "edits.jsonl:2: lable: expected only the keys id, label, objects, remove, source, time"),
    ('{"id": "a"}', "edits.jsonl:2: line: expected at least one of label, objects, remove"),
    ('{"id": "a", "remove": "yes"}', "edits.jsonl:2: remove: expected true or false, got 'yes'"),
    ('{"id": "a", "objects": {"label": "x"}}', "edits.jsonl:2: objects: expected a list of objects"),
    ('{"id": "a", "objects": null}', "edits.jsonl:2: objects: expected a list of objects"),
    ('{"id": "a", "objects": [{"label": "x"}]}', "edits.jsonl:2: objects[0]: expected at least one of bbox"),
    ('{"id": "a", "objects": [{"label": "x", "bbox": [5, 0, 1, 1]}]}',
     "edits.jsonl:2: objects[0].bbox: expected x1 <= x2 and y1 <= y2, got [5, 0, 1, 1]"),
    ('{"id": "a", "label": "3", "time": "yesterday"}', "edits.jsonl:2: time: expected an ISO 8601 time"),
    ('{"id": "a", "label": "3", "source": 7}', "edits.jsonl:2: source: expected a string or null, got 7"),
    ('["a", "3"]', "edits.jsonl:2: line: expected a JSON object, got 'list'"),
    ('{"id": "a", "label": "3"', "edits.jsonl:2: not valid JSON"),
    ('{"id": "a", "label": "a\\u0007b"}', "edits.jsonl:2: label: control characters in a class name"),
])
def test_a_bad_line_is_one_error_naming_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path / "edits.jsonl", '{"id": "ok", "label": "1"}', line)
    with pytest.raises(DataError) as err:
        read_edits(path)
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]) + message[len("edits.jsonl"):]), err.value
    assert "\n" not in str(err.value)


def test_not_utf8_and_not_a_file_are_errors(tmp_path: Path) -> None:
    bad = tmp_path / "edits.jsonl"
    bad.write_bytes(b'{"id": "a", "label": "1"}\n{"id": "\xff"}\n')
    with pytest.raises(DataError, match=r"edits.jsonl:2: not UTF-8"):
        read_edits(bad)
    with pytest.raises(DataError, match="not a regular file"):
        read_edits(tmp_path)
    with pytest.raises(DataError, match="cannot read the edits file"):
        read_edits(tmp_path / "missing.jsonl")


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "edits.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "label": "1"}\n')
    assert read_edits(path) == [Edit(id="a", label="1")]


def test_append_creates_then_appends_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "edits.jsonl"
    first = [Edit(id="a", label="1", source="view", time="2026-12-06T22:55:00+00:00"), Edit(id="b", remove=True)]
    append_edits(path, first)
    second = [Edit(id="a", label=None), Edit(id="c", objects=[{"label": "d\u00f6g", "bbox": [0.0, 0.0, 1.0, 1.0]}])]
    append_edits(path, second)
    assert read_edits(path) == first + second
    assert path.read_text(encoding="utf-8").splitlines()[0] == \
        '{"id":"a","label":"1","source":"view","time":"2026-12-06T22:55:00+00:00"}'


def test_append_after_a_torn_line_keeps_new_lines_whole(tmp_path: Path) -> None:
    path = tmp_path / "edits.jsonl"
    path.write_text('{"id": "a", "label": "1"}\n{"id": "b", "lab', encoding="utf-8")  # a writer killed mid-line
    append_edits(path, [Edit(id="c", label="2")])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[-1] == '{"id":"c","label":"2"}' and lines[1] == '{"id": "b", "lab'
    with pytest.raises(DataError, match=r":2: not valid JSON"):
        read_edits(path)


def test_net_edits_fold_field_by_field_later_wins() -> None:
    edits = [
        Edit(id="a", label="1", source="alice"),
        Edit(id="b", remove=True),
        Edit(id="a", objects=[]),
        Edit(id="b", remove=False, source="bob"),  # takes the removal back
        Edit(id="a", label="2", time="2026-12-06T23:00:00Z"),
        Edit(id="c", label=None),
    ]
    net = net_edits(edits)
    assert list(net) == ["a", "b", "c"]
    assert net["a"] == Edit(id="a", label="2", objects=[], source="alice", time="2026-12-06T23:00:00Z")
    assert net["b"] == Edit(id="b", remove=False, source="bob")
    assert net["c"].label is None


def test_undo_is_appending_the_previous_value(tmp_path: Path) -> None:
    path = tmp_path / "edits.jsonl"
    append_edits(path, [Edit(id="a", label="7")])
    append_edits(path, [Edit(id="a", label="1")])  # back to what the dataset had
    assert net_edits(read_edits(path))["a"].label == "1"


_VALID = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=8)},
    optional={
        "label": st.one_of(st.none(), st.text(max_size=5)),
        "objects": st.lists(st.fixed_dictionaries({"label": st.text(max_size=4), "bbox": st.lists(
            st.one_of(st.floats(allow_nan=True), st.integers(-5, 5)), max_size=5)}), max_size=3),
        "remove": st.one_of(st.booleans(), st.integers(0, 1)),
        "source": st.one_of(st.none(), st.text(max_size=5), st.integers()),
        "time": st.one_of(st.none(), st.text(max_size=25), st.just("2026-12-06T22:55:00+00:00")),
        "extra": st.integers(),
    },
)


@FUZZ
@given(doc=_VALID)
def test_fuzz_documents_parse_or_fail_cleanly(doc: dict) -> None:
    text = json.dumps(doc)
    try:
        edit = parse_edit(text, line=1)
    except PipelineError as err:
        assert "\n" not in str(err) and str(err).startswith("edits.jsonl:1")
        return
    assert parse_edit(json.dumps(edit.to_json())) == edit  # what parses writes back the same


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_bytes_read_or_fail_cleanly(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "edits.jsonl"
    path.write_bytes(raw)
    try:
        read_edits(path)
    except PipelineError as err:
        assert "\n" not in str(err)

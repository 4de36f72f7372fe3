"""`open_dataset`: the samples `load_dataset` gives, in its order and with its errors, streamed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import (
    DatasetInfo,
    Obj,
    Sample,
    is_streamed,
    load_dataset,
    open_dataset,
    sorted_lines,
    write_lines,
)
from pipeline.core.dataset.writer import _info_bytes
from pipeline.core.errors import DataError, UsageError
from tests.helpers import make_classification_dataset, make_detection_dataset

CLASSES = ["cat", "dög", "x y"]
_ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_numbers = st.floats(min_value=0, max_value=500, allow_nan=False)


@st.composite
def samples(draw) -> Sample:
    w, h = draw(st.integers(1, 640)), draw(st.integers(1, 640))
    objects = None
    if draw(st.booleans()):
        objects = []
        for _ in range(draw(st.integers(0, 3))):
            x1, y1 = draw(_numbers), draw(_numbers)
            objects.append(Obj(label=draw(st.sampled_from(CLASSES)), bbox=[x1, y1, x1 + draw(_numbers),
                                                                             y1 + draw(_numbers)]))
    return Sample(id="", image=f"images/{draw(st.integers(0, 5))}.png", width=w, height=h,
                  sha256=draw(st.sampled_from(["a" * 64, "0123456789abcdef" * 4])),
                  split=draw(st.sampled_from([None, "train", "val", "test"])),
                  label=draw(st.sampled_from([None, *CLASSES])), objects=objects,
                  source={"file": draw(_ids)}, meta=draw(st.sampled_from([{}, {"exif_orientation": 6}])))


def _write(root: Path, items: list[Sample]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    digest = write_lines(root / "samples.jsonl", sorted_lines(items))
    info = DatasetInfo(task="detection", classes=CLASSES, samples_sha256=digest)
    (root / "dataset.json").write_bytes(_info_bytes(info))
    return root


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_ids, samples()), max_size=12, unique_by=lambda t: t[0]))
def test_streamed_samples_are_the_loaded_ones_in_the_same_order(tmp_path_factory, drawn) -> None:
    items = []
    for sid, sample in drawn:
        sample.id = sid
        items.append(sample)
    root = _write(tmp_path_factory.mktemp("ds"), items)
    assert _outcome(lambda: open_dataset(root)) == _outcome(lambda: load_dataset(root))
    try:
        streamed, loaded = open_dataset(root), load_dataset(root)
    except DataError:
        return  # (a line break str.splitlines knows inside a string: both refuse it alike, above)
    assert len(streamed.samples) == len(loaded.samples) and streamed.info == loaded.info
    if is_streamed(streamed):  # (ids our writer escapes are left to load_dataset)
        assert list(streamed.samples.ids()) == [s.id for s in loaded.samples]
        assert list(streamed.samples) == list(streamed.samples)  # iterated again, the same


def _outcome(read) -> tuple:
    """The samples as JSON, or the error's type and text."""
    try:
        return ("samples", [s.to_json() for s in read().samples])
    except (DataError, UsageError) as err:
        return (type(err).__name__, str(err))


def test_a_file_as_the_writers_leave_it_is_streamed(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=5)
    ds = open_dataset(root)
    assert is_streamed(ds) and len(ds.samples) == 5 and bool(ds.samples)
    assert ds.samples[3].to_json() == load_dataset(root).samples[3].to_json()
    assert [s.id for s in ds.samples.having("objects")] == [s.id for s in ds.samples]
    assert list(ds.samples.having("predictions")) == []


@pytest.mark.parametrize("edit", [
    pytest.param(lambda lines: [lines[1], lines[0], *lines[2:]], id="unsorted"),
    pytest.param(lambda lines: [lines[0], *lines], id="duplicate id"),
    pytest.param(lambda lines: [lines[0].replace('{"id":', '{ "id":'), *lines[1:]], id="id not first"),
    pytest.param(lambda lines: [lines[0] + "\r", *lines[1:]], id="carriage return"),
    pytest.param(lambda lines: [lines[0], "   ", *lines[1:]], id="blank line"),
    pytest.param(lambda lines: [lines[0], "\u00a0", *lines[1:]], id="unicode blank line"),
    pytest.param(lambda lines: [*lines, '{"id":"zzz","image":"a.png"}'], id="bad line last"),
])
def test_any_other_file_gets_load_datasets_samples_or_error(tmp_path: Path, edit) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=3, splits=None)
    lines = (root / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    (root / "samples.jsonl").write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    info = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    info["samples_sha256"] = None
    (root / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    assert _outcome(lambda: open_dataset(root)) == _outcome(lambda: load_dataset(root))


def test_a_bad_line_is_reported_as_load_dataset_reports_it(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=3, splits=None)
    lines = (root / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"width":28', '"width":-1')
    info = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    info["samples_sha256"] = write_lines(root / "samples.jsonl", lines)
    (root / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(DataError) as loaded:
        load_dataset(root)
    streamed = open_dataset(root)
    assert is_streamed(streamed)
    with pytest.raises(DataError) as got:
        list(streamed.samples)
    assert str(got.value) == str(loaded.value) and "samples.jsonl:3: width" in str(got.value)


def test_the_recorded_hash_is_checked_before_anything_is_read(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    with open(root / "samples.jsonl", "a") as fh:
        fh.write("\n")
    with pytest.raises(DataError, match="samples_sha256"):
        open_dataset(root)
    assert len(open_dataset(root, check_hash=False).samples) == 4
    with pytest.raises(UsageError, match="no such folder"):
        open_dataset(tmp_path / "nowhere")


_pieces = st.sampled_from(['{"id":"', '"', "\\", "\n", " ", "\x00", "é", "a", "b", "z", ",", "{", "1"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="abcz19é", min_size=0, max_size=70), max_size=8).map(sorted),
       st.lists(st.tuples(st.integers(0, 400), _pieces), max_size=3), st.text(alphabet="abc", max_size=2))
def test_the_block_check_gives_the_line_by_line_verdict(ids: list[str], edits, prev: str) -> None:
    from pipeline.core.dataset.stream import _lines_one_by_one, _ordered_ids

    body = "".join(f'{{"id":"{i}","x":1}}\n' for i in ids)
    for at, piece in edits:
        body = body[:at] + piece + body[at:]
    body = body.encode("utf-8")
    body = body[:body.rfind(b"\n") + 1]
    if not body:
        return
    ok, count, last = _lines_one_by_one(body, prev.encode())
    fast = _ordered_ids(body, prev.encode())
    assert fast is None or (ok and fast == (count, last))

"""The strict readers: samples.jsonl lines and dataset.json, errors naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.dataset import load_dataset
from pipeline.core.dataset.validation import parse_sample_line, read_info
from pipeline.core.errors import DataError, UsageError
from tests.helpers import make_classification_dataset


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(width=-3), "samples.jsonl:1: width: expected a positive integer, got -3"),
        (lambda d: d.update(split="training"), "split: expected train | val | test | null"),
        (lambda d: d.update(label="zebra"), "label: expected a class listed in dataset.json, got 'zebra'"),
        (lambda d: d.update(sha256="xyz"), "sha256: expected 64 lower-case hex digits"),
        (lambda d: d.update(image="../escape.png"), "image: expected a relative path inside the dataset folder"),
        (lambda d: d.update(soft_label={"0": 0.5, "1": 0.2}), "soft_label: expected weights summing to 1"),
        (lambda d: d.update(objects=[{"label": "0", "bbox": [5, 0, 1, 1]}]), "objects[0].bbox: expected x1 <= x2"),
        (lambda d: d.update(objects=[{"label": "0", "bbox": [0, 0, float("nan"), 1]}]), "bbox: expected [x1, y1, x2, y2] of finite numbers"),
    ],
)
def test_bad_lines_name_line_and_field(tmp_path: Path, mutate, message: str) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=1, splits=None)
    path = root / "samples.jsonl"
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    mutate(first)
    lines[0] = json.dumps(first)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_dataset(root, check_hash=False)
    assert message in str(err.value)


@pytest.mark.parametrize(("pack", "message"), [
    ({"file": "images/packs/p.tar", "offset": 0, "length": 1}, "pack.file: expected a relative path of a .zip pack"),
    ({"file": "images/packs/p.zip", "offset": -1, "length": 1}, "pack.offset: expected an integer >= 0"),
    ({"file": "images/packs/p.zip", "offset": 0, "length": 0}, "pack.length: expected an integer >= 1"),
    ({"file": "images/packs/p.zip", "offset": 0, "length": 1, "crc": 3}, "pack.crc: expected only file, offset"),
])
def test_bad_pack_references_name_the_field(pack: dict, message: str) -> None:
    line = json.dumps({"id": "a", "image": "images/a.png", "pack": pack, "width": 1, "height": 1, "sha256": "0" * 64})
    with pytest.raises(DataError) as err:
        parse_sample_line(line, set(), line=7)
    assert message in str(err.value) and "samples.jsonl:7" in str(err.value)


def test_a_good_line_parses_to_its_sample() -> None:
    line = ('{"id":"a","image":"images/a.png","width":2,"height":3,"sha256":"' + "0" * 64
            + '","split":"val","label":"x","objects":[{"label":"x","polygon":[[[0,0],[1,0],[1,1]]]}]}')
    sample = parse_sample_line(line, {"x"})
    assert (sample.id, sample.split, sample.label, sample.width) == ("a", "val", "x", 2)
    assert sample.objects[0].polygon == [[[0, 0], [1, 0], [1, 1]]]


@pytest.mark.parametrize(("info", "message"), [
    ({"version": 99, "task": "classification", "classes": []}, "version: expected an integer 1..1, got 99"),
    ({"version": 1, "task": "regression", "classes": []}, "task: expected classification | detection"),
    ({"version": 1, "task": "classification", "classes": ["a", "a"]}, "duplicate class names"),
    ({"format": "other", "version": 1, "task": "classification", "classes": []}, "format: expected"),
    # class_ids: one distinct integer >= 0 per class of `classes`
    ({"version": 1, "task": "detection", "classes": ["a"], "class_ids": [0]}, "class_ids: expected an object"),
    ({"version": 1, "task": "detection", "classes": ["a"], "class_ids": {"b": 0}},
     "class_ids does not name the same classes"),
    ({"version": 1, "task": "detection", "classes": ["a"], "class_ids": {"a": -1}}, "class_ids.a: expected"),
    ({"version": 1, "task": "detection", "classes": ["a"], "class_ids": {"a": True}}, "class_ids.a: expected"),
    ({"version": 1, "task": "detection", "classes": ["a", "b"], "class_ids": {"a": 2, "b": 2}},
     "two classes with one id"),
])
def test_read_info_names_the_bad_field(tmp_path: Path, info: dict, message: str) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_info(tmp_path)
    assert message in str(err.value)


def test_read_info_tells_a_missing_folder_from_a_foreign_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such folder"):
        read_info(tmp_path / "missing")
    with pytest.raises(UsageError, match="not a pipeline dataset"):
        read_info(tmp_path)
    (tmp_path / "dataset.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        read_info(tmp_path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"annotations": {}}, "annotations: expected a list"),
        ({"annotations": [{"annotator": "a"}]}, "annotations[0]: expected a label or objects"),
        ({"annotations": [{"label": "0", "who": "a"}]}, "annotations[0].who: expected only annotator, label"),
        ({"annotations": [{"label": "zebra"}]}, "annotations[0].label: expected a class listed in dataset.json"),
        ({"annotations": [{"label": "0", "annotator": 3}]}, "annotations[0].annotator: expected a string or null"),
        ({"annotations": [{"label": "0", "source_id": True}]}, "annotations[0].source_id: expected a string, an integer"),
        ({"annotations": [{"objects": [{"label": "0", "bbox": [3, 0, 1, 1]}]}]},
         "annotations[0].objects[0].bbox: expected x1 <= x2"),
        ({"predictions": [{"label": "0", "score": float("inf")}]}, "predictions[0].score: expected a finite number"),
        ({"predictions": [{"label": "0", "annotator": "a"}]}, "predictions[0].annotator: expected only model_version"),
        ({"predictions": [{"objects": [{"label": "1", "bbox": [0, 0, 1, 1], "score": "high"}]}]},
         "predictions[0].objects[0].score: expected a finite number"),
    ],
)
def test_bad_annotations_and_predictions_name_the_field(extra: dict, message: str) -> None:
    line = {"id": "a", "image": "images/a.png", "width": 2, "height": 2, "sha256": "0" * 64, "label": "0", **extra}
    with pytest.raises(DataError) as err:
        parse_sample_line(json.dumps(line), {"0", "1"}, line=4)
    assert str(err.value).startswith("samples.jsonl:4: ") and message in str(err.value)


def test_good_annotations_and_predictions_parse() -> None:
    line = {"id": "a", "image": "images/a.png", "width": 2, "height": 2, "sha256": "0" * 64, "label": "0",
            "annotations": [{"annotator": "x", "label": "1", "time": "t", "source_id": 3},
                            {"objects": []}],
            "predictions": [{"model_version": "m", "score": 0.3,
                             "objects": [{"label": "1", "bbox": [0, 0, 1, 1], "score": 0.3}]}]}
    sample = parse_sample_line(json.dumps(line), {"0", "1"})
    assert sample.annotations[0].label == "1" and sample.annotations[1].objects == []
    assert sample.predictions[0].objects[0].score == 0.3 and sample.to_json() == line | {"split": None}


def test_class_ids_are_read_in_class_order_and_optional(tmp_path: Path) -> None:
    base = {"version": 1, "task": "detection", "classes": ["b", "a"]}
    (tmp_path / "dataset.json").write_text(json.dumps({**base, "class_ids": {"a": 0, "b": 5}}), encoding="utf-8")
    info = read_info(tmp_path)
    assert list(info.class_ids.items()) == [("b", 5), ("a", 0)] and info.ids() == {"b": 5, "a": 0}
    (tmp_path / "dataset.json").write_text(json.dumps(base), encoding="utf-8")
    info = read_info(tmp_path)  # a dataset written before class ids: ids are positions
    assert info.class_ids is None and info.ids() == {"b": 0, "a": 1}


# -- class_ids: any JSON value reads as valid ids or fails with a DataError naming the field ---------

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 2**70) | st.floats(allow_nan=True)
                     | st.text(max_size=5), lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=3), inner, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(classes=st.lists(st.text(min_size=1, max_size=3), max_size=4, unique=True),
       ids=_JSON | st.dictionaries(st.text(min_size=1, max_size=3), _JSON, max_size=4)
       | st.dictionaries(st.text(min_size=1, max_size=3), st.integers(-2, 5), max_size=4))
def test_fuzzed_class_ids_are_read_or_refused_by_field(tmp_path: Path, classes: list[str], ids: object) -> None:
    info = {"version": 1, "task": "detection", "classes": classes, "class_ids": ids}
    (tmp_path / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    try:
        read = read_info(tmp_path)
    except DataError as err:
        assert "class_ids" in str(err)
        return
    if ids is None:
        assert read.class_ids is None
        return
    assert list(read.class_ids) == classes and len(set(read.class_ids.values())) == len(classes)
    assert all(type(v) is int and v >= 0 for v in read.class_ids.values())

"""Reading a dataset folder: round trips, streaming, the samples.jsonl hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.core.dataset.io import content_hash, is_dataset, iter_samples
from pipeline.core.errors import DataError
from tests.helpers import make_classification_dataset, make_detection_dataset


def test_round_trip_classification(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=3, per_class=4)
    ds = load_dataset(root)
    assert ds.classes == ["0", "1", "2"]
    assert len(ds) == 12
    assert [s.id for s in ds.samples] == sorted(s.id for s in ds.samples)
    assert all(ds.image_path(s).is_file() for s in ds.samples)
    assert ds.info.lineage[-1]["stage"] == "test-fixture"


def test_round_trip_detection_keeps_objects(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det")
    ds = load_dataset(root)
    assert ds.task == "detection"
    assert all(len(s.objects) == 2 for s in ds.samples)
    line = (root / "samples.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["objects"][0]["bbox"] == ds.samples[0].objects[0].bbox


def test_hash_mismatch_detects_interrupted_update(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    with open(root / "samples.jsonl", "a") as fh:
        fh.write("\n")
    with pytest.raises(DataError, match="samples_sha256"):
        load_dataset(root)


def test_streamed_samples_equal_the_loaded_ones_and_the_hash_follows_the_content(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=3, splits=None)
    assert is_dataset(root) and not is_dataset(tmp_path)
    assert list(iter_samples(root)) == load_dataset(root).samples
    before = content_hash(root)
    assert before == load_dataset(root).content_hash
    info = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    info["classes"] = ["1", "0"]
    (root / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    assert content_hash(root) != before


def test_a_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "ds", classes=1, per_class=2, splits=None)
    lines = (root / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    (root / "samples.jsonl").write_text("\n".join([lines[0], lines[1], lines[0]]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="samples.jsonl:3: id: duplicate id: expected an id not already used on line 1"):
        load_dataset(root, check_hash=False)


def test_an_update_cut_between_its_renames_is_finished_by_the_next_reader(tmp_path: Path) -> None:
    from pipeline.core.dataset import rewrite_samples
    from pipeline.core.paths import sha256_bytes

    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    ds = load_dataset(root)
    old_info = (root / "dataset.json").read_bytes()
    for s in ds.samples:
        s.split = "train"
    rewrite_samples(ds, ds.samples, stage="split")
    new_info = (root / "dataset.json").read_bytes()
    dead = root / ".dataset.json.tmp-4206649"  # (above the largest pid: its writer no longer runs)
    dead.write_bytes(new_info)  # as a kill after the first rename leaves it
    (root / "dataset.json").write_bytes(old_info)
    (root / ".dataset.json.tmp-4206650").write_text("{not json")  # another one, damaged: never taken
    again = load_dataset(root)
    assert {s.split for s in again.samples} == {"train"} and again.info.lineage[-1]["stage"] == "split"
    assert (root / "dataset.json").read_bytes() == new_info and not (root / ".dataset.json.tmp-4206649").exists()
    assert json.loads(new_info)["samples_sha256"] == sha256_bytes((root / "samples.jsonl").read_bytes())
    (root / "dataset.json").write_bytes(old_info)  # no pending file that matches: still an error
    with pytest.raises(DataError, match="samples_sha256"):
        load_dataset(root)

"""`pipeline split` on the command line: the summary, in-place update, nothing to do, refusals."""

from __future__ import annotations

import re
from collections import Counter

from pipeline.core.dataset import DatasetWriter, load_dataset
from tests.helpers import invoke, make_classification_dataset


def test_embedded_mnist_becomes_3600_400_1000(tmp_path) -> None:
    from pipeline.sources.mnist import fetch_embedded

    out = tmp_path / "mnist"
    fetch_embedded(out)
    before = {s.id: s.split for s in load_dataset(out).samples}
    result = invoke("split", out, "--val", "0.1", "--seed", "0")
    assert result.exit_code == 0, result.output
    ds = load_dataset(out)  # checks samples_sha256 too: the rewrite is consistent
    assert ds.splits() == {"train": 3600, "val": 400, "test": 1000}
    assert all(before[s.id] == "test" for s in ds.samples if s.split == "test")
    assert Counter(s.label for s in ds.samples if s.split == "val") == Counter({str(d): 40 for d in range(10)})
    assert ds.info.lineage[-1]["stage"] == "split" and ds.info.lineage[-1]["params"]["mode"] == "carved val"
    assert len(ds.info.lineage) == 2
    assert re.search(r"val +400 +\(0: 40, 1: 40", result.output) and "(updated in place)" in result.output
    again = invoke("split", out, "--val", "0.1", "--seed", "0")
    assert "nothing (splits kept" in again.output and len(load_dataset(out).info.lineage) == 2


def test_empty_dataset_is_an_error(tmp_path) -> None:
    with DatasetWriter(tmp_path / "empty", task="classification", stage="test", classes=["a"]):
        pass
    result = invoke("split", tmp_path / "empty", "--val", "0.1")
    assert result.exit_code == 2 and "empty, nothing to split" in result.output


def test_missing_dataset_is_an_error(tmp_path) -> None:
    result = invoke("split", tmp_path / "nope")
    assert result.exit_code == 2 and "no such folder" in result.output


def test_fraction_out_of_range_is_one_line_exit_2(tmp_path, main) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=4, splits=None)
    proc = main("split", data, "--val", "1.5")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "--val 1.5" in proc.stderr


def test_split_keeps_the_source_class_ids(tmp_path) -> None:
    import json

    from tests.helpers import make_detection_dataset

    root = make_detection_dataset(tmp_path / "det", n=8)
    info = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**info, "class_ids": {"red": 4, "green": 9}}))
    result = invoke("split", root, "--val", "0.25", "--seed", "0", "--redo")
    assert result.exit_code == 0, result.output
    ds = load_dataset(root)
    assert ds.classes == ["red", "green"] and ds.info.class_ids == {"red": 4, "green": 9}
    assert ds.info.lineage[-1]["stage"] == "split"

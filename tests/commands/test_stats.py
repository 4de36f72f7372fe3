"""`pipeline stats` on the command line: the table, --json, the PNG, refusals."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import invoke as run
from tests.helpers import make_classification_dataset, make_detection_dataset


def test_stats_table_json_and_png(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=4)
    table = run("stats", root, "--out", tmp_path / "s.png")
    assert table.exit_code == 0, table.output
    assert "objects per class and split" in table.output and (tmp_path / "s.png").is_file()
    data = json.loads(run("stats", root, "--json").output)
    assert data["objects_per_class"]["red"]["total"] == 4 and data["splits"] == {"train": 2, "val": 2}


def test_classification_counts_per_class(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "cls", classes=2, per_class=4)
    data = json.loads(run("stats", root, "--json").output)
    assert data["samples"] == 8 and data["splits"] == {"train": 4, "val": 2, "test": 2}


def test_out_must_be_a_png_and_the_dataset_must_exist(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=2)
    result = run("stats", root, "--out", tmp_path / "s.jpg")
    assert result.exit_code == 2 and "expected a .png file name" in result.output
    missing = run("stats", tmp_path / "nope")
    assert missing.exit_code == 2 and str(tmp_path / "nope") in missing.output

"""`pipeline check` on the command line: exit codes with --strict, --json, --out, --labels-only."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import invoke as run
from tests.helpers import make_classification_dataset, make_detection_dataset


def test_check_strict_exit_codes_and_json(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=4)
    ok = run("check", root, "--strict")
    assert ok.exit_code == 0, ok.output
    assert "red" in ok.output and "checked" in ok.output
    next((root / "images").iterdir()).unlink()
    bad = run("check", root, "--strict", "--json")
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["checks"]["missing-image"]["count"] == 1 and report["summary"]["error"] == 1
    lenient = run("check", root, "--out", tmp_path / "r.json")
    assert lenient.exit_code == 0 and "missing-image" in lenient.output
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == 4


def test_check_on_a_folder_that_is_no_dataset(tmp_path: Path) -> None:
    result = run("check", tmp_path)
    assert result.exit_code == 2 and "not a pipeline dataset" in result.output


def test_labels_only_reads_no_image(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "cls", classes=2, per_class=3)
    next((root / "images").iterdir()).unlink()
    result = run("check", root, "--labels-only", "--strict", "--json")
    assert result.exit_code == 0, result.output
    assert "missing-image" not in json.loads(result.output)["checks"]


def test_examples_below_one_is_a_usage_error(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "cls", classes=2, per_class=3)
    result = run("check", root, "--examples", "0")
    assert result.exit_code == 2 and "Invalid value for '--examples'" in result.output

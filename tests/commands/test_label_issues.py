"""`pipeline label-issues` on the command line: the summary, the report it names, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import make_classification_dataset


def test_a_run_ends_with_its_summary_and_the_report(tmp_path: Path, main) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=8, splits=None)
    (tmp_path / "fast.yaml").write_text("batch_size: 8\nthreads: 1\n")
    done = main("label-issues", data, "--out", tmp_path / "r", "--folds", "2", "--epochs", "2",
                "--config", tmp_path / "fast.yaml")
    assert done.returncode == 0, done.stderr
    assert "2 folds x 2 epochs, out of sample" in done.stdout and f"{tmp_path / 'r'} (issues.json" in done.stdout
    report = json.loads((tmp_path / "r" / "issues.json").read_text())
    assert report["params"]["folds"] == 2 and report["dataset"] == str(data)
    again = main("label-issues", data, "--out", tmp_path / "r", "--folds", "2", "--epochs", "2",
                 "--config", tmp_path / "fast.yaml", "--top", "1")
    assert again.returncode == 0 and "no training" in again.stdout


def test_refusals_are_one_line_with_exit_2(tmp_path: Path, main) -> None:
    done = main("label-issues", tmp_path / "absent", "--out", tmp_path / "r")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no such dataset folder" in done.stderr
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    done = main("label-issues", data, "--out", tmp_path / "r", "--folds", "9")
    assert done.returncode == 2 and "cannot be split into 9 folds" in done.stderr
    assert not (tmp_path / "r").exists()
    assert main("label-issues", data, "--out", tmp_path / "r", "--threshold", "-1").returncode == 2

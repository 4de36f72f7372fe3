"""`pipeline consensus` on the command line: one-line refusals (the CROWDLAB numbers are checked
against cleanlab in tests/labeling/test_consensus.py)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import make_classification_dataset


def test_a_dataset_without_annotators_is_refused_in_one_line(tmp_path: Path, main) -> None:
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=2, splits=None)
    done = main("consensus", data, "--out", tmp_path / "agreed")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--annotations all" in done.stderr
    assert not (tmp_path / "agreed").exists()


def test_help_names_the_method_and_the_inputs(main) -> None:
    done = main("consensus", "--help")
    assert done.returncode == 0 and "CROWDLAB" in done.stdout and "--annotations all" in done.stdout

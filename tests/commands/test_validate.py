"""`pipeline validate` on the command line: the summary, --json, --split and --checkpoint, errors."""

from __future__ import annotations

import json

from tests.helpers import invoke


def test_validate_json_is_one_object_and_writes_the_report(trained):
    result = invoke("validate", str(trained.run), "--data", str(trained.data), "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert report["count"] == 9 and 0 <= report["accuracy"] <= 1 and set(report["per_class"]) == {"0", "1", "2"}
    assert (trained.run / "validate-test" / "confusion.png").is_file()


def test_validate_summary_on_another_split_and_checkpoint(trained):
    result = invoke("validate", str(trained.run), "--data", str(trained.data), "--split", "val", "--checkpoint", "last")
    assert result.exit_code == 0 and "accuracy" in result.output
    assert (trained.run / "validate-val" / "report.json").is_file()
    assert f"validated {trained.run} on {trained.data}" in result.output
    assert "(9 images, split val)" in result.output


def test_a_folder_that_is_no_run_is_one_line_exit_2(tmp_path, main, trained):
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    proc = main("validate", str(empty_run), "--data", str(trained.data))
    assert proc.returncode == 2 and "not a run folder" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unknown_split_is_a_usage_error(trained):
    result = invoke("validate", str(trained.run), "--data", str(trained.data), "--split", "holdout")
    assert result.exit_code == 2 and "Invalid value for '--split'" in result.output


def test_help_has_a_runnable_example():
    result = invoke("validate", "--help")
    assert result.exit_code == 0 and "Example" in result.output and "pipeline validate " in result.output

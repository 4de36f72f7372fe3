"""`pipeline predict` on the command line: top-k lines, --json, a run without a checkpoint, bad images."""

from __future__ import annotations

import json

from tests.helpers import invoke


def test_predict_json_lists_topk_per_image(trained):
    image = trained.data / "images" / "1-000.png"
    result = invoke("predict", str(trained.run), str(image), "--topk", "2", "--json")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["predictions"][0]["image"] == str(image) and len(out["predictions"][0]["topk"]) == 2


def test_predict_prints_one_line_per_image(trained):
    image = trained.data / "images" / "1-000.png"
    result = invoke("predict", str(trained.run), str(image))
    assert result.exit_code == 0 and f"{image}: " in result.output and "top-3" in result.output
    assert "classified 1 of 1 images" in result.output


def test_run_without_checkpoint_is_one_line_exit_2(tmp_path, main, trained):
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    (empty_run / "run.json").write_text(json.dumps({"format": "pipeline-run", "classes": ["0", "1"],
                                                    "in_channels": 1, "preprocess": {}}))
    proc = main("predict", str(empty_run), str(trained.data / "images" / "0-000.png"))
    assert proc.returncode == 2 and "no checkpoint best.pt" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_an_unreadable_image_fails_the_command(tmp_path, main, trained):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    proc = main("predict", str(trained.run), str(bad))
    assert proc.returncode == 2
    assert "1 of 1 images could not be classified" in proc.stderr and "bad.png" in proc.stderr


def test_topk_below_one_is_a_usage_error(trained):
    result = invoke("predict", str(trained.run), str(trained.data / "images" / "0-000.png"), "--topk", "0")
    assert result.exit_code == 2 and "Invalid value for '--topk'" in result.output


def test_help_has_a_runnable_example():
    result = invoke("predict", "--help")
    assert result.exit_code == 0 and "Example" in result.output and "pipeline predict " in result.output

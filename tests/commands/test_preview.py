"""`pipeline preview` on the command line: the contact sheet, its filters and refusals."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.helpers import invoke as run
from tests.helpers import make_classification_dataset, make_detection_dataset


def test_preview_writes_a_png_and_filters(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=6)
    out = tmp_path / "p.png"
    result = run("preview", root, "--out", out, "--n", "3", "--seed", "1", "--split", "train")
    assert result.exit_code == 0, result.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 2 * 256
    again = tmp_path / "q.png"
    run("preview", root, "--out", again, "--n", "3", "--seed", "1", "--split", "train")
    assert out.read_bytes() == again.read_bytes()  # same seed, same sheet
    unknown = run("preview", root, "--out", out, "--class", "blue")
    assert unknown.exit_code == 2 and "not a class" in unknown.output and "red" in unknown.output
    assert run("preview", root, "--out", tmp_path / "p.jpg").exit_code == 2


def test_preview_recipe_branch_hands_over_to_the_recipe_preview(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "c", classes=2, per_class=3)
    result = run("preview", root, "--out", tmp_path / "aug.png", "--recipe", tmp_path / "missing.yaml")
    assert result.exit_code == 2 and "missing.yaml" in result.output
    assert not (tmp_path / "aug.png").exists()


def test_no_sample_matching_the_filter_is_an_error(tmp_path: Path) -> None:
    root = make_classification_dataset(tmp_path / "c", classes=2, per_class=3, splits=None)
    result = run("preview", root, "--out", tmp_path / "p.png", "--split", "val")
    assert result.exit_code == 2 and "no samples match --split val" in result.output
    assert not (tmp_path / "p.png").exists()


def test_summary_counts_samples_and_objects(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=3)
    result = run("preview", root, "--out", tmp_path / "p.png", "--n", "3")
    assert result.exit_code == 0, result.output
    assert "preview of 3 samples" in result.output and "objects drawn  6" in result.output

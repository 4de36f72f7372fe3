"""`pipeline check | preview | stats | crop` on the command line: exit codes, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from pipeline.cli import cli
from pipeline.core.dataset import load_dataset
from tests.helpers import make_classification_dataset, make_detection_dataset, shared_data


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_check_strict_exit_codes_and_json(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=4)
    ok = run("check", root, "--strict")
    assert ok.exit_code == 0, ok.output
    assert "red" in ok.output and "checked" in ok.output
    next((root / "images").iterdir()).unlink()
    bad = run("check", root, "--strict", "--json")
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["checks"]["missing-image"]["count"] == 1 and report["summary"]["error"] >= 1
    lenient = run("check", root, "--out", tmp_path / "r.json")
    assert lenient.exit_code == 0 and "missing-image" in lenient.output
    assert json.loads((tmp_path / "r.json").read_text())["samples"] == 4


def test_check_on_a_folder_that_is_no_dataset(tmp_path: Path) -> None:
    result = run("check", tmp_path)
    assert result.exit_code == 2 and "not a pipeline dataset" in result.output


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


def test_stats_table_json_and_png(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=4)
    table = run("stats", root, "--out", tmp_path / "s.png")
    assert table.exit_code == 0, table.output
    assert "objects per class and split" in table.output and (tmp_path / "s.png").is_file()
    data = json.loads(run("stats", root, "--json").output)
    assert data["objects_per_class"]["red"]["total"] == 4 and data["splits"] == {"train": 2, "val": 2}


def test_crop_then_train_ready_classification_dataset(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=4)
    result = run("crop", root, "--out", tmp_path / "crops", "--pad", "0.1", "--square", "--min-size", "2")
    assert result.exit_code == 0, result.output
    assert "cropped 8 objects" in result.output
    ds = load_dataset(tmp_path / "crops")
    assert ds.task == "classification" and len(ds) == 8 and all(s.width == s.height for s in ds.samples)
    assert run("crop", tmp_path / "crops", "--out", tmp_path / "again").exit_code == 2  # nothing to crop


def test_labelme_examples_through_every_tool(tmp_path: Path) -> None:
    src = shared_data("labelme-examples", "instance_segmentation")
    assert run("import", "labelme", src, "--out", tmp_path / "ds").exit_code == 0
    assert run("check", tmp_path / "ds", "--strict").exit_code == 0
    assert run("preview", tmp_path / "ds", "--out", tmp_path / "p.png", "--class", "sofa").exit_code == 0
    crops = run("crop", tmp_path / "ds", "--out", tmp_path / "crops")
    assert crops.exit_code == 0 and "cropped 14 objects" in crops.output


@pytest.mark.slow
def test_digits_boxed_in_photos_train_number_model_after_crop(tmp_path: Path) -> None:
    """Boxes around digits in larger photos -> crop -> the shared train stage."""
    import numpy as np

    from pipeline.core.dataset import DatasetWriter, Obj, Sample
    from pipeline.core.images import encode_png
    from tests.helpers import digit_like

    with DatasetWriter(tmp_path / "photos", task="detection", stage="test", classes=["0", "1", "2"]) as w:
        for i in range(18):
            canvas = np.full((60, 90), 20, dtype=np.uint8)
            objs = []
            for k in range(2):
                label = (i + k) % 3
                x, y = 5 + 45 * k, 10 + (i % 5) * 3
                canvas[y:y + 28, x:x + 28] = np.asarray(digit_like(label, seed=i * 2 + k))
                objs.append(Obj(str(label), bbox=[float(x), float(y), float(x + 28), float(y + 28)]))
            w.add(Sample(id=f"photo-{i:02d}", width=90, height=60, split="val" if i % 6 == 0 else "train",
                         objects=objs), data=encode_png(Image.fromarray(canvas)))
    assert run("crop", tmp_path / "photos", "--out", tmp_path / "digits", "--square").exit_code == 0
    result = run("train", tmp_path / "digits", "--out", tmp_path / "run", "--epochs", "1", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "best.pt").is_file()

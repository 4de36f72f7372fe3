"""`pipeline crop` on the command line: objects to a classification dataset, and on to `train`."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pipeline.core.dataset import load_dataset
from tests.helpers import invoke as run
from tests.helpers import make_detection_dataset, shared_data


def test_crop_then_train_ready_classification_dataset(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=4)
    result = run("crop", root, "--out", tmp_path / "crops", "--pad", "0.1", "--square", "--min-size", "2")
    assert result.exit_code == 0, result.output
    assert "cropped 8 objects" in result.output
    ds = load_dataset(tmp_path / "crops")
    assert ds.task == "classification" and len(ds) == 8 and all(s.width == s.height for s in ds.samples)
    assert run("crop", tmp_path / "crops", "--out", tmp_path / "again").exit_code == 2  # nothing to crop


def test_min_size_drops_small_objects_and_negative_pad_is_refused(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=4)
    result = run("crop", root, "--out", tmp_path / "big", "--min-size", "100")
    assert result.exit_code == 2  # every box is under 16 px: nothing left to crop
    assert result.output == (f"error: {root}: no object passed the filters (smaller than --min-size: 8). "
                             "Fix: lower --min-size\n")
    assert not (tmp_path / "big").exists()
    bad = run("crop", root, "--out", tmp_path / "x", "--pad", "-1")
    assert bad.exit_code == 2 and "Invalid value for '--pad'" in bad.output


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

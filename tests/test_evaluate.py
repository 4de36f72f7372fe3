"""Validate and predict: metrics against hand-computed values, the run's preprocessing, clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config import load_config
from pipeline.core.dataset import DatasetWriter, Sample
from pipeline.core.errors import UsageError
from pipeline.core.images import encode_png
from pipeline.evaluate import (
    class_mapping,
    classification_report,
    confusion_matrix,
    photo_to_input,
    predict_images,
    validate_run,
)
from pipeline.tensor_cache import to_array
from pipeline.train import Preprocess, train
from tests.helpers import digit_like, make_classification_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run that has learned the synthetic digits (3 classes), and its dataset."""
    root = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_CACHE_DIR", str(root / "cache"))
        data = make_classification_dataset(root / "ds", classes=3, per_class=24)
        config = load_config(options={"epochs": 4, "batch_size": 8, "lr": 0.01, "threads": 1, "log_images": 0})
        train(data, root / "run", config)
    return root


@pytest.fixture(autouse=True)
def _cache_dir(trained, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(trained / "cache"))


def test_confusion_and_report_by_hand():
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    cm = confusion_matrix(true, pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    r = classification_report(cm, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(4 / 6) and r["count"] == 6
    assert r["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                   "support": 3}
    assert r["per_class"]["b"]["precision"] == pytest.approx(0.5) and r["per_class"]["b"]["recall"] == 0.5
    assert r["per_class"]["c"]["precision"] == pytest.approx(0.5) and r["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert r["macro"]["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_report_with_an_absent_class():
    cm = confusion_matrix(np.array([0, 0]), np.array([0, 1]), 3)
    r = classification_report(cm, ["a", "b", "c"])
    assert r["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert r["macro"]["recall"] == pytest.approx(0.5)  # averaged over the classes present


def test_validate_writes_report_and_png(trained):
    report = validate_run(trained / "run", trained / "ds", split="test")
    assert report["count"] == 18 and report["accuracy"] >= 0.9
    folder = trained / "run" / "validate-test"
    saved = json.loads((folder / "report.json").read_text())
    assert saved["accuracy"] == report["accuracy"]
    assert np.array(saved["confusion"]["matrix"]).sum() == 18
    assert (folder / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same numbers by hand: decode, preprocess, normalize and run the model ourselves
    info = json.loads((trained / "run" / "run.json").read_text())
    pre = Preprocess.from_json(info["preprocess"])
    from pipeline.core.dataset import load_dataset
    from pipeline.model import build_model

    ds = load_dataset(trained / "ds")
    test = ds.split("test")
    x = torch.from_numpy(np.stack([to_array(Image.open(ds.image_path(s)), 32) for s in test])).float() / 255
    x = (x - pre.mean[0]) / pre.std[0]
    model = build_model("standard", 1, 3)
    model.load_state_dict(torch.load(trained / "run" / "best.pt", weights_only=True))
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    manual = float(np.mean(pred == np.array([int(s.label) for s in test])))
    assert report["accuracy"] == pytest.approx(manual)


def test_validate_all_and_unsplit(trained, tmp_path):
    assert validate_run(trained / "run", trained / "ds", split="all")["count"] == 72
    unsplit = make_classification_dataset(tmp_path / "u", classes=3, per_class=2, splits=None)
    report = validate_run(trained / "run", unsplit, split="test")
    assert report["count"] == 6 and "no splits" in report["note"]


def test_class_mapping_rules():
    assert class_mapping(["0", "1", "2"], ["0", "1", "2"], "d").tolist() == [0, 1, 2]
    assert class_mapping(["0", "1", "2"], ["2", "0"], "d").tolist() == [2, 0]  # a subset, by name
    with pytest.raises(UsageError, match="not among the run"):
        class_mapping(["0", "1"], ["0", "cat"], "d")


def test_validate_class_mismatch(trained, tmp_path):
    with DatasetWriter(tmp_path / "other", task="classification", stage="t", classes=["cat", "dog"]) as w:
        for i, c in enumerate(["cat", "dog"]):
            w.add(Sample(id=c, label=c, split="test", width=28, height=28), data=encode_png(digit_like(i, i)))
    with pytest.raises(UsageError, match="cat"):
        validate_run(trained / "run", tmp_path / "other")


def test_run_without_checkpoint(trained, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(trained / "run" / "run.json", run / "run.json")
    with pytest.raises(UsageError, match="no checkpoint best.pt"):
        validate_run(run, trained / "ds")
    with pytest.raises(UsageError, match="not a run folder"):
        validate_run(tmp_path, trained / "ds")


def test_class_count_mismatch_with_checkpoint(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained / "run", run)
    info = json.loads((run / "run.json").read_text())
    info["classes"] = info["classes"] + ["extra"]
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(UsageError, match="3 outputs but .* lists 4 classes"):
        predict_images(run, [trained / "ds" / "images" / "0-000.png"])


def test_predict_matches_training_preprocessing(trained):
    images = [trained / "ds" / "images" / f"{c}-00{i}.png" for c in range(3) for i in range(2)]
    results, errors = predict_images(trained / "run", images, topk=2)
    assert not errors and len(results) == 6
    assert [r["class"] for r in results] == ["0", "0", "1", "1", "2", "2"]
    for r in results:
        assert len(r["topk"]) == 2 and r["topk"][0]["probability"] >= r["topk"][1]["probability"]
        assert r["probability"] == r["topk"][0]["probability"] and not r["inverted"]


def _photo(label: int, seed: int) -> Image.Image:
    """A colour 'photo': a dark digit on slightly yellow white paper, larger than 28x28."""
    digit = np.asarray(digit_like(label, seed).resize((84, 84), Image.BILINEAR), dtype=np.float64) / 255
    paper = np.array([235.0, 228.0, 205.0])
    ink = np.array([25.0, 30.0, 60.0])
    rgb = paper * (1 - digit[..., None]) + ink * digit[..., None]
    return Image.fromarray(rgb.astype(np.uint8), mode="RGB")


def test_photo_of_dark_digit_on_paper_is_inverted(trained, tmp_path):
    pre = Preprocess.from_json(json.loads((trained / "run" / "run.json").read_text())["preprocess"])
    arr, inverted = photo_to_input(_photo(2, 7), pre)
    assert inverted and arr.shape == (1, 32, 32)
    assert arr[0, 0].mean() < 30 and arr.max() > 200  # paper became black, ink bright, as in MNIST
    paths = []
    for c in range(3):
        path = tmp_path / f"photo-{c}.jpg"
        _photo(c, 100 + c).save(path, quality=92)
        paths.append(path)
    results, errors = predict_images(trained / "run", paths)
    assert not errors and [r["class"] for r in results] == ["0", "1", "2"] and all(r["inverted"] for r in results)


def test_unreadable_images_are_reported_and_the_rest_classified(trained, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = trained / "ds" / "images" / "1-000.png"
    results, errors = predict_images(trained / "run", [bad, good, tmp_path / "missing.png"])
    assert [r["class"] for r in results] == ["1"]
    assert len(errors) == 2 and "bad.png" in str(errors[0]) and "missing.png" in str(errors[1])

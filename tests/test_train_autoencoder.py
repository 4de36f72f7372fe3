"""The transposed-convolution autoencoder as a trainable variant: train, validate and predict through
the CLI, on labelled and unlabelled images; model options (groups, widths) as config keys."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.config import load_config
from pipeline.core.dataset import DatasetWriter, Sample
from pipeline.core.errors import ConfigError, UsageError
from pipeline.core.images import encode_png
from pipeline.evaluate import load_model, predict_images
from pipeline.train import psnr, reconstruction_errors, train
from tests.helpers import digit_like, make_classification_dataset, make_detection_dataset, run_cli


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


def tiny(**kw):
    return load_config(options={"epochs": 1, "batch_size": 8, "threads": 1, "log_images": 4, **kw})


def _embedded(tmp_path, n: int = 48):
    """The first `n` embedded MNIST images of each of three digits, split train/val/test."""
    from pipeline.sources.idx import read_idx

    images = read_idx("datasets/embedded/mnist5k-images-idx3-ubyte.gz")
    labels = read_idx("datasets/embedded/mnist5k-labels-idx1-ubyte.gz")
    root = tmp_path / "embedded"
    with DatasetWriter(root, task="classification", stage="test-fixture", classes=["0", "1", "2"]) as w:
        for digit in (0, 1, 2):
            rows = np.flatnonzero(labels == digit)[: n // 3]
            for k, row in enumerate(rows):
                split = ("test", "val", "train", "train")[k % 4]
                w.add(Sample(id=f"{digit}-{k:03d}", label=str(digit), split=split, width=28, height=28),
                      data=encode_png(Image.fromarray(images[row], mode="L")), ext="png")
    return root


def test_train_validate_predict_on_the_embedded_set_through_the_cli(tmp_path, capsys):
    data = _embedded(tmp_path)
    run = tmp_path / "ae"
    # --lr 0.002: on a few dozen images the default peak can hold the model at a blurred average for the
    # first epochs (docs/training.md); at 0.002 the validation error falls every epoch (0.092 -> 0.076)
    assert run_cli(["train", str(data), "--out", str(run), "--variant", "autoencoder", "--epochs", "5",
                    "--batch-size", "8", "--lr", "0.002", "--set", "threads=1"]) == 0
    out = capsys.readouterr().out
    assert "trained autoencoder" in out and "reconstruction error" in out and "PSNR" in out
    assert f"tensorboard --logdir {run / 'tensorboard'}" in out
    info = json.loads((run / "run.json").read_text())
    assert info["task"] == "reconstruction" and info["variant"] == "autoencoder"
    metrics = json.loads((run / "metrics.json").read_text())
    last = metrics["history"][-1]
    assert last["train_accuracy"] is None and last["val_accuracy"] is None
    assert 0 < last["val_loss"] < metrics["history"][0]["train_loss"]
    assert last["val_psnr"] == pytest.approx(10 * np.log10(1 / last["val_loss"]))
    assert metrics["best"]["basis"].startswith("val_loss")
    with Image.open(run / "reconstructions.png") as sheet:
        assert sheet.format == "PNG" and sheet.width > sheet.height  # originals above reconstructions

    assert run_cli(["validate", str(run), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "reconstruction" and report["count"] == 12 and report["split"] == "test"
    assert report["psnr"] == pytest.approx(psnr(report["mse"])) and report["mse_median"] <= report["mse_worst"]
    assert (run / "validate-test" / "reconstructions.png").is_file()

    image = tmp_path / "digit.png"
    Image.fromarray(np.asarray(Image.open(next((data / "images").iterdir())))).save(image)
    assert run_cli(["predict", str(run), str(image), "--out", str(tmp_path / "rec")]) == 0
    assert "MSE" in capsys.readouterr().out
    with Image.open(tmp_path / "rec" / "digit.png") as rec:
        assert rec.size == (32, 32) and rec.mode == "L"


def test_the_autoencoder_learns_to_reconstruct(tmp_path):
    data = _embedded(tmp_path, n=96)
    result = train(data, tmp_path / "run", tiny(variant="autoencoder", epochs=4, lr=0.002))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.8 * losses[0], losses
    # the recorded error is the mean squared error in [0, 1] pixels of the best checkpoint
    model, info, pre = load_model(tmp_path / "run")
    assert info["task"] == "reconstruction" and pre.size == 32


def test_unlabelled_and_detection_images_train_an_autoencoder_but_not_a_classifier(tmp_path):
    root = tmp_path / "loose"
    with DatasetWriter(root, task="classification", stage="test-fixture", classes=[]) as w:
        for i in range(10):
            w.add(Sample(id=f"img-{i}", width=28, height=28), data=encode_png(digit_like(i % 3, i)), ext="png")
    result = train(root, tmp_path / "ae", tiny(variant="autoencoder"))
    assert result.task == "reconstruction" and result.history[-1]["val_loss"] is None
    assert any("no `train` split" in n for n in result.notes)
    with pytest.raises(UsageError, match="one class"):
        train(root, tmp_path / "cls", tiny())
    boxes = make_detection_dataset(tmp_path / "boxes")
    assert train(boxes, tmp_path / "ae-boxes", tiny(variant="autoencoder", grayscale=False)).task == "reconstruction"


def test_a_classifier_run_and_an_autoencoder_run_refuse_each_others_commands(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=8)
    train(data, tmp_path / "ae", tiny(variant="autoencoder"))
    image = tmp_path / "x.png"
    digit_like(1, 0).save(image)
    with pytest.raises(UsageError, match="autoencoder run"):
        predict_images(tmp_path / "ae", [image])


def test_reconstruction_error_is_mse_on_unit_pixels():
    images = np.full((2, 1, 4, 4), 255, dtype=np.uint8)
    outputs = torch.ones(2, 1, 4, 4)
    outputs[1] = 0.5
    assert reconstruction_errors(outputs, images).tolist() == pytest.approx([0.0, 0.25])
    assert psnr(0.01) == pytest.approx(20.0) and psnr(0.0) == float("inf")


def test_groups_and_widths_are_config_keys(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=8)
    assert run_cli(["train", str(data), "--out", str(tmp_path / "g4"), "--variant", "grouped", "--epochs", "1",
                    "--set", "groups=4", "--set", "widths=12,16", "--set", "threads=1"]) == 0
    state = torch.load(tmp_path / "g4" / "best.pt", weights_only=True)
    assert state["features.0.weight"].shape == (12, 1, 5, 5)
    assert state["features.3.weight"].shape == (16, 3, 5, 5)  # 12 channels in 4 groups of 3
    model, info, _ = load_model(tmp_path / "g4")
    assert info["model_options"] == {"groups": 4, "widths": [12, 16]}
    train(data, tmp_path / "wide-ae", tiny(variant="autoencoder", widths="8,16,24"))
    assert load_model(tmp_path / "wide-ae")[0].encoder[0].out_channels == 8
    assert load_config(config_file=tmp_path / "g4" / "config.yaml").widths == "12,16"


@pytest.mark.parametrize(("sets", "message"), [
    (["groups=3"], "groups=3"),                        # does not divide 8 and 16
    (["widths=8"], "widths \\[8\\] should be 2"),      # a NumberModel has two convs
    (["widths=8,x"], "comma-separated positive"),     # not numbers
    (["groups=0"], "positive integer"),
])
def test_bad_model_options_are_one_line_errors(tmp_path, capsys, sets, message):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=4)
    args = ["train", str(data), "--out", str(tmp_path / "r"), "--variant", "grouped", "--epochs", "1"]
    for item in sets:
        args += ["--set", item]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert re.search(message, err), err


def test_widths_accept_a_yaml_list(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("variant: standard\nwidths: [12, 32]\n")
    assert load_config(config_file=path).model_options() == {"widths": (12, 32)}
    with pytest.raises(ConfigError, match="widths"):
        load_config(sets={"widths": "0,4"})

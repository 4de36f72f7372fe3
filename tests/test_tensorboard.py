"""What a run shows in TensorBoard, read back with TensorBoard's own reader: scalars, the model graph,
weight and gradient histograms, the batch the model actually saw (after augmentation), the confusion
matrix per epoch, reconstructions for an autoencoder, and the hyperparameters with the final metrics."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pipeline.config import load_config
from pipeline.train import train
from tests.helpers import make_classification_dataset

RECIPE = "configs/augment/digits.yaml"


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


def config(**kw):
    return load_config(options={"epochs": 2, "batch_size": 8, "threads": 1, "log_images": 4, **kw})


def board(run) -> EventAccumulator:
    """Every event of RUN/tensorboard (0 = keep all of each kind, not a sample)."""
    acc = EventAccumulator(str(run / "tensorboard"),
                           size_guidance={"images": 0, "histograms": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def pixels(event) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_classification_dataset(tmp_path_factory.mktemp("tb") / "ds", classes=3, per_class=8)


def test_a_classifier_run_shows_everything_a_course_looks_at(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, config(augment=RECIPE))
    acc = board(run)
    tags = acc.Tags()
    # scalars per epoch
    assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2]
    # the model graph
    assert tags["graph"] is True
    graph = acc.Graph()
    assert any("Conv2d" in node.name or "conv" in node.op.lower() for node in graph.node)
    # weight and gradient histograms of every parameter, every epoch
    weights = [t for t in tags["histograms"] if t.startswith("weights/")]
    grads = [t for t in tags["histograms"] if t.startswith("gradients/")]
    assert "weights/features.0.weight" in weights and len(weights) == len(grads) == 10
    assert [e.step for e in acc.Histograms("gradients/classifier.5.weight")] == [1, 2]
    # the augmented batch the model saw, and the confusion matrix, each epoch
    assert [e.step for e in acc.Images("batch/train (augmented)")] == [1, 2]
    confusion = acc.Images("confusion/val")
    assert [e.step for e in confusion] == [1, 2] and pixels(confusion[0]).ndim == 3
    # hparams with the final metrics
    hp = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hp)
    assert "lr" in hp["_hparams_/session_start_info"].decode("latin-1")
    final = json.loads((run / "metrics.json").read_text())["final"]
    assert acc.Scalars("final/val_accuracy")[0].value == pytest.approx(final["val_accuracy"])


def test_the_logged_batch_is_the_augmented_one(data, tmp_path):
    train(data, tmp_path / "plain", config(epochs=1))
    train(data, tmp_path / "aug", config(epochs=1, augment=RECIPE))
    plain = pixels(board(tmp_path / "plain").Images("batch/train")[0])
    augmented = pixels(board(tmp_path / "aug").Images("batch/train (augmented)")[0])
    # the same rows in the same order (the shuffle derives from the seed alone), different pixels
    assert plain.shape == augmented.shape and not np.array_equal(plain, augmented)


def test_histogram_every_and_graph_are_configurable(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, config(epochs=3, histogram_every=2, log_graph=False, log_images=0))
    tags = board(run).Tags()
    assert tags["graph"] is False and tags["images"] == ["confusion/val"]  # no batch images
    assert [e.step for e in board(run).Histograms("weights/features.0.weight")] == [2]
    train(data, run, config(epochs=1, histogram_every=0))
    assert not board(run).Tags()["histograms"]


def test_an_autoencoder_shows_its_reconstructions(data, tmp_path):
    run = tmp_path / "ae"
    train(data, run, config(variant="autoencoder"))
    acc = board(run)
    assert {"loss/train", "loss/val", "psnr/val"} <= set(acc.Tags()["scalars"])
    assert "accuracy/train" not in acc.Tags()["scalars"] and "confusion/val" not in acc.Tags()["images"]
    recon = acc.Images("reconstructions")
    assert [e.step for e in recon] == [1, 2]
    assert acc.Tags()["graph"] is True and "final/val_psnr" in acc.Tags()["scalars"]

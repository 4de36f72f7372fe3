"""Training streamed from WebDataset shards: shard patterns, the deal by rank, the normalization rule,
accuracy against training from the dataset, resume, and two processes under torchrun."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline import streaming
from pipeline import train as train_mod
from pipeline.config import load_config
from pipeline.core.dataset import load_dataset
from pipeline.core.errors import UsageError
from pipeline.distributed import World
from pipeline.formats.ingest import export_dataset
from pipeline.train import train
from tests.helpers import invoke, make_classification_dataset
from tests.test_distributed import embedded_slice, torchrun


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


def small(**kw):
    return load_config(options={"epochs": 2, "batch_size": 16, "threads": 1, "log_images": 0, **kw})


# --------------------------------------------------------------------------------------------
# Which shards
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("s/train-{000000..000002}.tar", ["s/train-000000.tar", "s/train-000001.tar", "s/train-000002.tar"]),
    ("a-{8..10}.tar", ["a-8.tar", "a-9.tar", "a-10.tar"]),  # no leading zero: no padding
    ("{train,val}-{0..1}.tar", ["train-0.tar", "train-1.tar", "val-0.tar", "val-1.tar"]),
    ("plain.tar", ["plain.tar"]),
    ("x-{5..5}.tar", ["x-5.tar"]),
])
def test_brace_patterns(text, expected):
    assert streaming.expand_braces(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("a-{3..1}.tar", "counts down"),
    ("a-{0..99999999}.tar", "over 1,000,000"),
])
def test_bad_brace_patterns_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        streaming.expand_braces(text)


def test_shards_must_be_local_files(tmp_path):
    with pytest.raises(UsageError, match="local shard files only"):
        streaming.expand("https://example.org/train-{000000..000009}.tar")
    with pytest.raises(UsageError, match="no such shard file"):
        streaming.expand(str(tmp_path / "missing-{0..1}.tar"))


def test_what_counts_as_shards(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=3)
    export_dataset(data, "webdataset", tmp_path / "shards")
    assert streaming.is_stream(tmp_path / "shards")  # an export folder
    assert streaming.is_stream("s/train-{000000..000009}.tar") and streaming.is_stream("a.tar b.tar")
    assert not streaming.is_stream(data) and not streaming.is_stream(tmp_path / "nothing")


def test_each_epoch_deals_every_shard_to_exactly_one_rank():
    shards = [Path(f"s-{i}.tar") for i in range(7)]
    for epoch in (1, 2):
        parts = [streaming.deal(shards, 0, epoch, World(rank=r, size=3, local_size=3)) for r in range(3)]
        assert sorted(p for part in parts for p in part) == sorted(shards)
        assert [len(p) for p in parts] == [3, 2, 2]
    assert streaming.deal(shards, 0, 1, World()) != streaming.deal(shards, 0, 2, World())  # shuffled per epoch
    with pytest.raises(UsageError, match="7 shards for 8 training processes"):
        streaming.deal(shards, 0, 1, World(rank=0, size=8, local_size=8))


def test_every_rank_takes_the_same_number_of_steps():
    shards = [Path(f"s-{i}.tar") for i in range(3)]
    counts = {str(p): n for p, n in zip(shards, (300, 300, 200), strict=True)}
    assert streaming.steps_in(1, shards, counts, 32, 0, World()) == 25  # one process: every sample
    two = streaming.steps_in(1, shards, counts, 16, 0, World(rank=1, size=2, local_size=2))
    assert two in (13, 19)  # the smaller share: one shard of 200 or of 300, in batches of 16


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def test_normalization_is_the_tensor_caches_rule(tmp_path):
    """20x20 images (not MNIST-like): the stream measures the same mean/std and border as the cache."""
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=8, size=20)
    export_dataset(data, "webdataset", tmp_path / "shards", options={"shard_size": 5})
    train(data, tmp_path / "from-ds", small(epochs=1))
    train(tmp_path / "shards", tmp_path / "from-shards", small(epochs=1))
    a = json.loads((tmp_path / "from-ds" / "run.json").read_text())["preprocess"]
    b = json.loads((tmp_path / "from-shards" / "run.json").read_text())["preprocess"]
    assert "mean/std of the" in a["rule"] and a["rule"] == b["rule"] and a["background"] == b["background"]
    assert np.allclose(a["mean"], b["mean"], rtol=1e-9) and np.allclose(a["std"], b["std"], rtol=1e-9)


@pytest.mark.slow
def test_shards_train_as_well_as_the_dataset(tmp_path):
    """The embedded MNIST slice (60 of each digit) exported to shards of 100 samples and trained for
    3 epochs of batch 32: the stream reads the same images in another order (shuffled shards and a
    shuffle buffer instead of one permutation), which moves accuracy as a different seed does. On
    this slice the dataset's validation accuracy after 3 epochs spreads over 0.05 between seeds
    0-3; the band is 0.1 (12 of the 120 validation images)."""
    data = embedded_slice(tmp_path / "slice")
    export_dataset(data, "webdataset", tmp_path / "shards", options={"shard_size": 100})
    config = small(epochs=3, batch_size=32)
    from_ds = train(data, tmp_path / "from-ds", config)
    train_shards = " ".join(str(p) for p in sorted((tmp_path / "shards").glob("train-*.tar")))
    from_shards = train(train_shards, tmp_path / "from-shards", config,
                        val=str(tmp_path / "shards" / "val-{000000..000001}.tar"))
    info = json.loads((tmp_path / "from-shards" / "run.json").read_text())
    assert info["splits"] == {"train": 480, "val": 120} and info["classes"] == [str(d) for d in range(10)]
    assert info["preprocess"] == json.loads((tmp_path / "from-ds" / "run.json").read_text())["preprocess"]
    a, b = from_ds.history[-1]["val_accuracy"], from_shards.history[-1]["val_accuracy"]
    assert abs(a - b) <= 0.1 and b >= 0.75, (a, b)


def test_resume_continues_a_stream_to_the_same_end(tmp_path, monkeypatch):
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=10)
    export_dataset(data, "webdataset", tmp_path / "shards", options={"shard_size": 7})
    shards = tmp_path / "shards"
    straight = train(shards, tmp_path / "straight", small(epochs=3))

    real_write = train_mod.write_json
    writes = {"metrics": 0}

    def dies_after_first_epoch(path, payload):
        real_write(path, payload)
        if path.name == "metrics.json":
            writes["metrics"] += 1
            if writes["metrics"] == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "write_json", dies_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(shards, tmp_path / "cut", small(epochs=3))
    monkeypatch.setattr(train_mod, "write_json", real_write)
    resumed = train(shards, tmp_path / "cut", None, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_accuracy"] == b["val_accuracy"]
    other = make_classification_dataset(tmp_path / "other", classes=3, per_class=4, seed=3)
    export_dataset(other, "webdataset", tmp_path / "other-shards")
    with pytest.raises(UsageError, match="not the shards this run was trained on"):
        train(tmp_path / "other-shards", tmp_path / "cut", None, resume=True)


@pytest.mark.parametrize(("args", "message"), [
    (["--val", "x.tar"], "--val names validation shards"),  # a dataset: --val does not apply
    (["--variant", "autoencoder"], None),  # handled below with shards
])
def test_refusals_are_one_line(tmp_path, args, message):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=3)
    export_dataset(data, "webdataset", tmp_path / "shards")
    target = data if message else tmp_path / "shards"
    result = invoke("train", str(target), "--out", str(tmp_path / "run"), "--epochs", "1", *args)
    assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
    assert (message or "training from shards trains classifiers") in result.output


def test_unlabelled_samples_in_training_shards_are_a_data_error(tmp_path):
    from pipeline.core.dataset import DatasetWriter, Sample
    from tests.helpers import digit_png

    with DatasetWriter(tmp_path / "ds", task="classification", stage="t", classes=["0", "1"]) as w:
        for i in range(4):
            w.add(Sample(id=f"s{i}", label=(None, "0", "1", "1")[i], split="train", width=28, height=28),
                  data=digit_png(i % 2, i))
    export_dataset(tmp_path / "ds", "webdataset", tmp_path / "shards")
    result = invoke("train", str(tmp_path / "shards"), "--out", str(tmp_path / "run"), "--epochs", "1")
    assert result.exit_code == 2 and "sample without a label" in result.output


@pytest.mark.slow
def test_two_processes_read_their_own_shards(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=12)
    export_dataset(data, "webdataset", tmp_path / "shards", options={"shard_size": 6})
    args = ["train", str(tmp_path / "shards"), "--out", str(tmp_path / "run"), "--epochs", "2", "--batch-size", "8",
            "--set", "threads=1", "--set", "log_images=0"]
    done = torchrun(args, tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["world_size"] == 2
    assert done.stdout.count("trained standard NumberModel") == 1

    export_dataset(data, "webdataset", tmp_path / "one-shard", options={"shard_size": 1000})
    few = torchrun(["train", str(tmp_path / "one-shard"), "--out", str(tmp_path / "run2"), "--epochs", "1",
                    "--set", "threads=1"], tmp_path / "cache")
    assert few.returncode != 0
    assert "1 shards for 2 training processes: each needs at least one" in few.stderr, few.stderr[-3000:]


def test_the_shard_stream_gives_every_sample_once_in_a_seeded_order(tmp_path):
    from torch.utils.data import DataLoader

    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=10)
    export_dataset(data, "webdataset", tmp_path / "shards", options={"shard_size": 4})
    shards = sorted((tmp_path / "shards").glob("train-*.tar"))
    stream = streaming.ShardStream(shards, ["0", "1", "2"], 32, True, seed=0, epoch=1)
    first = [(a.tobytes(), y) for a, y in stream]
    assert first == [(a.tobytes(), y) for a, y in stream]  # the same order again
    assert len(first) == sum(1 for s in load_dataset(data).samples if s.split == "train")
    other = [(a.tobytes(), y) for a, y in streaming.ShardStream(shards, ["0", "1", "2"], 32, True, seed=0, epoch=2)]
    assert sorted(other) == sorted(first) and other != first  # another epoch: the same samples, shuffled again
    assert all(a.shape == (1, 32, 32) and a.dtype == np.uint8 for a, _ in stream)
    workers = [(x.numpy().tobytes(), int(y)) for x, y in DataLoader(stream, batch_size=None, num_workers=2)]
    assert sorted(workers) == sorted(first)  # two DataLoader workers: each shard read by one of them

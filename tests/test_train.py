"""The training loop: run folder contents, preprocessing rules, inputs it accepts and refuses, resume."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pipeline import train as train_mod
from pipeline.config import load_config
from pipeline.core.dataset import DatasetWriter, Obj, Sample, load_dataset
from pipeline.core.errors import UsageError
from pipeline.core.images import encode_png
from pipeline.train import MNIST_MEAN, MNIST_STD, train
from tests.helpers import digit_like, make_classification_dataset, make_detection_dataset


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


def small_config(**kw):
    return load_config(options={"epochs": 3, "batch_size": 8, "threads": 1, "log_images": 4, **kw})


def test_run_folder_contents(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=12)
    out = tmp_path / "run"
    result = train(data, out, small_config())
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    for name in ("config.yaml", "run.json", "metrics.json", "best.pt", "last.pt", "resume.pt",
                 "checkpoints/epoch-001.pt", "checkpoints/epoch-003.pt"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # checkpoints are plain state_dicts that load with weights_only=True
    state = torch.load(out / "best.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    resume = torch.load(out / "resume.pt", weights_only=True)
    assert resume["epoch"] == 3 and "optimizer" in resume and "scheduler" in resume
    # the resolved config is saved and loads back to the same config
    assert load_config(config_file=out / "config.yaml") == small_config()
    assert yaml.safe_load((out / "config.yaml").read_text())["batch_size"] == 8
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete" and info["classes"] == ["0", "1", "2"] and info["in_channels"] == 1
    assert info["preprocess"]["mean"] == [MNIST_MEAN] and info["preprocess"]["std"] == [MNIST_STD]
    assert "MNIST" in info["preprocess"]["rule"] and info["preprocess"]["background"] == "dark"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and len(metrics["history"]) == 3
    last = metrics["history"][-1]
    assert 0 <= last["val_accuracy"] <= 1 and last["train_loss"] < metrics["history"][0]["train_loss"]
    assert metrics["best"]["epoch"] in (1, 2, 3) and metrics["samples_per_second"] > 0
    # process CPU time beside the wall time (the measure that holds on a shared machine), cumulative too
    cpu = [h["train_cpu_seconds"] for h in metrics["history"]]
    assert all(c > 0 for c in cpu) and metrics["train_cpu_seconds"] == pytest.approx(sum(cpu))
    assert last["elapsed_train_cpu_seconds"] == pytest.approx(sum(cpu))


def test_learns_the_synthetic_digits(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=24)
    result = train(data, tmp_path / "run", small_config(epochs=4, lr=0.01))
    assert result.best["val_accuracy"] >= 0.9


def test_non_mnist_sizes_get_dataset_statistics(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=8, size=20)
    train(data, tmp_path / "run", small_config(epochs=1))
    pre = json.loads((tmp_path / "run" / "run.json").read_text())["preprocess"]
    assert pre["mean"] != [MNIST_MEAN] and 0 < pre["mean"][0] < 1 and "training images" in pre["rule"]
    forced = tmp_path / "run2"
    train(data, forced, small_config(epochs=1, normalize="mnist"))
    assert json.loads((forced / "run.json").read_text())["preprocess"]["mean"] == [MNIST_MEAN]


def test_without_splits_trains_on_everything_and_says_so(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=6, splits=None)
    result = train(data, tmp_path / "run", small_config(epochs=1))
    assert any("no `train` split" in n for n in result.notes) and any("without validation" in n for n in result.notes)
    assert result.history[-1]["val_accuracy"] is None and result.best["basis"].startswith("train_accuracy")
    assert (tmp_path / "run" / "best.pt").is_file()


def test_val_split_can_be_the_test_split(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=8)
    train(data, tmp_path / "run", small_config(epochs=1, val_split="test"))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["splits"]["val"] == 4


def test_imagefolder_tree_is_imported_on_the_fly(tmp_path):
    tree = tmp_path / "tree"
    for c in range(2):
        (tree / f"digit{c}").mkdir(parents=True)
        for i in range(5):
            digit_like(c * 5, i).save(tree / f"digit{c}" / f"{i}.png")
    (tree / "digit0" / ".DS_Store").write_bytes(b"junk")
    result = train(tree, tmp_path / "run", small_config(epochs=1))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["classes"] == ["digit0", "digit1"] and result.history[-1]["val_accuracy"] is None
    imported = info["dataset"]["path"]
    assert str(tmp_path / "cache") in imported
    train(tree, tmp_path / "run2", small_config(epochs=1))  # unchanged tree: the same import is reused
    assert json.loads((tmp_path / "run2" / "run.json").read_text())["dataset"]["path"] == imported


def test_soft_labels_train_with_probability_targets(tmp_path):
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t", classes=["0", "1"]) as w:
        for i in range(12):
            c = i % 2
            soft = {"0": 0.8, "1": 0.2} if c == 0 else {"0": 0.1, "1": 0.9}
            w.add(Sample(id=f"s{i:02d}", label=str(c), soft_label=soft if i % 3 else None, split="train",
                         width=28, height=28), data=encode_png(digit_like(c * 9, i)))
    result = train(tmp_path / "ds", tmp_path / "run", small_config(epochs=2))
    assert all(np.isfinite(h["train_loss"]) for h in result.history)


@pytest.mark.parametrize("make,message", [
    (lambda p: make_detection_dataset(p), "pipeline crop"),                     # detection: point to crop
    (lambda p: make_classification_dataset(p, classes=1, per_class=4), "one class"),  # nothing to tell apart
    (lambda p: _empty(p), "empty"),                                                  # no samples at all
    (lambda p: p, "no such dataset"),                                                # missing path
])
def test_refused_inputs(tmp_path, make, message):
    data = make(tmp_path / "ds")
    with pytest.raises(UsageError) as err:
        train(data, tmp_path / "run", small_config(epochs=1))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run" / "best.pt").exists()


def _empty(path):
    with DatasetWriter(path, task="classification", stage="t", classes=["a", "b"]):
        pass
    return path


def test_a_folder_in_no_known_layout(tmp_path):
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "notes.txt").write_text("x")
    with pytest.raises(UsageError, match="ImageFolder"):
        train(tmp_path / "loose", tmp_path / "run", small_config(epochs=1))


def test_refuses_to_replace_a_folder_that_is_not_a_run(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=4)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep")
    with pytest.raises(UsageError, match="files no pipeline stage wrote"):
        train(data, tmp_path / "run", small_config(epochs=1))
    assert (tmp_path / "run" / "precious.txt").is_file()


def test_augment_unavailable_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pipeline.augment.online", None)  # as if the module did not exist
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=4)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("ops: []\n")
    with pytest.raises(UsageError, match="augmentation is not available"):
        train(data, tmp_path / "run", small_config(epochs=1, augment=str(recipe)))


def test_online_augmenter_contract(tmp_path, monkeypatch):
    """The loop hands the augmenter uint8 (N,C,32,32) batches and (N,K) soft targets, with the step."""
    calls = []

    class FlipAugmenter:
        def __init__(self, recipe_path, *, classes, seed):
            calls.append(("init", str(recipe_path), list(classes), isinstance(seed, int)))

        def __call__(self, x, y, *, step):
            calls.append((x.dtype, tuple(x.shape[1:]), y.dtype, y.shape[1], float(y.sum(1).mean()), step))
            return x.flip(-1).float(), y

    module = types.ModuleType("pipeline.augment.online")
    module.OnlineAugmenter = FlipAugmenter
    monkeypatch.setitem(sys.modules, "pipeline.augment.online", module)
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=8)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("ops: []\n")
    train(data, tmp_path / "run", small_config(epochs=2, batch_size=4, augment=str(recipe)))
    assert calls[0] == ("init", str(recipe), ["0", "1", "2"], True)
    batches = calls[1:]
    assert len(batches) == 2 * 3  # 12 training images, batch 4, 2 epochs
    assert all(c[:4] == (torch.uint8, (1, 32, 32), torch.float32, 3) for c in batches)
    assert all(c[4] == pytest.approx(1.0) for c in batches)
    assert [c[5] for c in batches] == list(range(6))


def test_resume_after_an_interruption_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=8)
    config = small_config(epochs=3)
    straight = train(data, tmp_path / "straight", config)

    real_write = train_mod.write_json
    writes = {"metrics": 0}

    def dies_after_first_epoch(path, payload):
        real_write(path, payload)
        if path.name == "metrics.json":
            writes["metrics"] += 1
            if writes["metrics"] == 1:
                raise KeyboardInterrupt  # the process stops between epoch 1 and 2

    monkeypatch.setattr(train_mod, "write_json", dies_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path / "cut", config)
    monkeypatch.setattr(train_mod, "write_json", real_write)
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "running"
    resumed = train(data, tmp_path / "cut", None, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3, abs=1e-4)
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=1e-6)


def test_resume_refuses_changed_settings_and_data(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=6)
    train(data, tmp_path / "run", small_config(epochs=1))
    with pytest.raises(UsageError, match="batch_size"):
        train_mod.resume_config(tmp_path / "run", {"batch_size": 64, "device": "cpu"})
    assert train_mod.resume_config(tmp_path / "run", {"device": "cpu"}).batch_size == 8
    other = make_classification_dataset(tmp_path / "other", classes=2, per_class=6, seed=5)
    with pytest.raises(UsageError, match="not the dataset this run was trained on"):
        train(other, tmp_path / "run", None, resume=True)


def test_light_background_is_recorded(tmp_path):
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t", classes=["a", "b"]) as w:
        for i in range(6):
            arr = 255 - np.asarray(digit_like(i % 2 * 9, i))
            w.add(Sample(id=f"s{i}", label="ab"[i % 2], split="train", width=28, height=28),
                  data=encode_png(Image.fromarray(arr)))
    train(tmp_path / "ds", tmp_path / "run", small_config(epochs=1))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["preprocess"]["background"] == "light"


def test_objects_only_samples_are_not_classification(tmp_path):
    # a "classification" dataset whose sample carries no label is reported, naming the sample
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t", classes=["a", "b"]) as w:
        w.add(Sample(id="x", width=28, height=28, split="train",
                     objects=[Obj(label="a", bbox=[1.0, 1.0, 5.0, 5.0])]), data=encode_png(digit_like(1, 1)))
        w.add(Sample(id="y", label="b", width=28, height=28, split="train"), data=encode_png(digit_like(2, 1)))
    with pytest.raises(Exception, match="without a label"):
        train(load_dataset(tmp_path / "ds").root, tmp_path / "run", small_config(epochs=1))


def test_trains_with_the_real_online_augmenter(tmp_path):
    pytest.importorskip("pipeline.augment.online")
    from pathlib import Path

    recipe = Path(__file__).resolve().parents[1] / "configs" / "augment" / "digits.yaml"
    if not recipe.is_file():
        pytest.skip("configs/augment/digits.yaml is absent")
    data = make_classification_dataset(tmp_path / "ds", classes=3, per_class=8)
    result = train(data, tmp_path / "run", small_config(epochs=2, augment=str(recipe)))
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["augment"] == str(recipe)


def test_fit_and_predict_trains_on_some_rows_and_predicts_others(tmp_path):
    """The train stage's hook for cross-validation: the same loop, no run folder; probabilities and the
    penultimate layer's features of the held-out rows, the same for the same seed."""
    from pipeline.tensor_cache import load_or_build

    dataset = load_dataset(make_classification_dataset(tmp_path / "ds", classes=3, per_class=8, splits=None))
    config = small_config(epochs=4, log_images=0)
    cache = load_or_build(dataset, size=config.image_size, grayscale=config.grayscale)
    fit, held = np.arange(0, 24, 2), np.arange(1, 24, 2)
    device = train_mod.setup_torch(config)
    probs, feats = train_mod.fit_and_predict(dataset, cache, fit, held, config, device)
    assert probs.shape == (12, 3) and feats.shape == (12, 84)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    again, _ = train_mod.fit_and_predict(dataset, cache, fit, held, config, device)
    np.testing.assert_array_equal(probs, again)
    assert not list(tmp_path.glob("**/run.json"))


def test_freed_memory_is_kept_for_reuse_under_glibc():
    """Training sets glibc to serve a step's few-MB buffers from its heap, below the program break,
    where freed blocks stay for the next step, instead of mapping (and page-faulting) fresh memory
    each time: in a new process a 24 MB block lands in the heap only after `retain_freed_memory`."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    probe = (
        "import ctypes, sys\n"
        "from pipeline.train import retain_freed_memory\n"
        "kept = retain_freed_memory() if sys.argv[1] == 'yes' else None\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]\n"
        "libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]\n"
        "block = libc.malloc(24 << 20)\n"
        "print(kept, block < libc.sbrk(0))\n"
    )
    def run(flag: str) -> str:
        return subprocess.run([sys.executable, "-c", probe, flag], capture_output=True, text=True, check=True).stdout.split()

    assert run("no") == ["None", "False"]  # glibc's default: a fresh mapping
    assert run("yes") == ["True", "True"]  # from the heap, which keeps what is freed


def test_training_flushes_subnormal_floats_to_zero_and_restores_the_setting(tmp_path, monkeypatch):
    """Within `subnormals_flushed` (around training), subnormal floats (below 1.2e-38) count as zero: as
    one-cycle anneals, gradients and Adam's moments reach that range, where CPU arithmetic on them is many
    times slower. After it, IEEE subnormals are back for everything else in the process."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    assert float(tiny * 1.0) != 0.0  # a subnormal, kept
    seen = []
    real = train_mod.train_one_epoch

    def spy(*args, **kwargs):
        seen.append(float(tiny * 1.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_one_epoch", spy)
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=6)
    train_mod.train(data, tmp_path / "run", small_config(epochs=1, log_images=0))
    assert seen == [0.0]
    assert float(tiny * 1.0) != 0.0

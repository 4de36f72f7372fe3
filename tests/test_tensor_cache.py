"""The uint8 tensor cache: decoded once, keyed by content, memory-mapped, rebuilt when the data changes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.core.dataset import DatasetWriter, Sample, load_dataset, rewrite_samples
from pipeline.core.errors import DataError
from pipeline.core.images import encode_png
from pipeline.tensor_cache import border_level, channel_stats, load_or_build, to_array
from tests.helpers import make_classification_dataset


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


def test_build_then_reuse(tmp_path):
    ds = load_dataset(make_classification_dataset(tmp_path / "ds", classes=3, per_class=4))
    first = load_or_build(ds)
    assert first.build_seconds is not None
    assert first.images.shape == (12, 1, 32, 32) and first.images.dtype == np.uint8
    assert isinstance(first.images, np.memmap)
    assert first.ids == [s.id for s in ds.samples] and first.classes == ["0", "1", "2"]
    assert first.labels.tolist() == [int(s.label) for s in ds.samples]
    # each row is exactly what predict computes for that file
    for i, s in enumerate(ds.samples):
        np.testing.assert_array_equal(first.images[i], to_array(Image.open(ds.image_path(s)), 32))
    again = load_or_build(load_dataset(ds.root))
    assert again.build_seconds is None and again.path == first.path
    assert sorted(p.name for p in (tmp_path / "cache" / "tensors").iterdir()) == [first.path.name]


def test_changed_dataset_gets_a_new_cache_and_the_old_one_goes(tmp_path):
    ds = load_dataset(make_classification_dataset(tmp_path / "ds", classes=2, per_class=4))
    old = load_or_build(ds)
    samples = ds.samples
    samples[0].label = "1" if samples[0].label == "0" else "0"
    changed = rewrite_samples(ds, samples, stage="relabel")
    new = load_or_build(load_dataset(changed.root))
    assert new.path != old.path and new.build_seconds is not None
    assert new.labels[0] != old.labels[0]
    assert not old.path.exists()


def test_splits_and_indices(tmp_path):
    ds = load_dataset(make_classification_dataset(tmp_path / "ds", classes=2, per_class=8))
    cache = load_or_build(ds)
    for split in ("train", "val", "test"):
        assert [cache.ids[i] for i in cache.indices(split)] == [s.id for s in ds.samples if s.split == split]
    assert sum(cache.split_counts().values()) == len(ds)


def test_soft_labels_become_probability_targets(tmp_path):
    with DatasetWriter(tmp_path / "ds", task="classification", stage="t", classes=["a", "b", "c"]) as w:
        img = encode_png(Image.new("L", (10, 10), 80))
        w.add(Sample(id="hard", label="b", width=10, height=10), data=img)
        w.add(Sample(id="soft", label="a", soft_label={"a": 0.7, "c": 0.3}, width=10, height=10), data=img)
    cache = load_or_build(load_dataset(tmp_path / "ds"))
    assert cache.soft is not None
    np.testing.assert_allclose(cache.targets(np.array([0, 1])), [[0, 1, 0], [0.7, 0, 0.3]], rtol=1e-6)
    assert cache.labels.tolist() == [1, 0]


def test_a_broken_image_names_the_file_and_leaves_no_cache(tmp_path):
    root = make_classification_dataset(tmp_path / "ds", classes=2, per_class=3)
    ds = load_dataset(root)
    ds.image_path(ds.samples[2]).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match=ds.samples[2].image.split("/")[-1]):
        load_or_build(ds)
    assert [p for p in (tmp_path / "cache").rglob("*") if not p.is_dir()] == []  # not a file of a cache is left


@pytest.mark.parametrize("mode,shape", [
    ("L", (1, 32, 32)),      # grayscale
    ("RGB", (1, 32, 32)),    # colour converted to luma
    ("RGBA", (1, 32, 32)),   # alpha dropped
    ("P", (1, 32, 32)),      # palette
    ("I;16", (1, 32, 32)),   # 16-bit scaled to 8 bits
])
def test_to_array_modes(mode, shape):
    img = Image.new("RGB", (28, 20), (200, 100, 50)).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.full((20, 28), 40000, dtype=np.uint16))
    arr = to_array(img, 32)
    assert arr.shape == shape and arr.dtype == np.uint8
    if mode == "I;16":
        assert abs(int(arr.mean()) - round(40000 * 255 / 65535)) <= 1


def test_to_array_colour_keeps_three_channels():
    arr = to_array(Image.new("RGB", (8, 8), (255, 0, 0)), 32, grayscale=False)
    assert arr.shape == (3, 32, 32) and arr[0].min() == 255 and arr[1].max() == 0


def test_stats_and_border():
    images = np.zeros((4, 1, 32, 32), dtype=np.uint8)
    images[:, :, 8:24, 8:24] = 255
    mean, std = channel_stats(images, np.arange(4), chunk=3)
    assert mean[0] == pytest.approx(0.25) and std[0] == pytest.approx(np.sqrt(0.25 - 0.0625))
    assert border_level(images, np.arange(4)) == 0.0
    assert border_level(255 - images, np.arange(4)) == 255.0

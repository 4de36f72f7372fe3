"""The engine: deterministic copies, what they record, their names and bytes, every op."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from pipeline.augment.engine import (
    TINY_PNG_PIXELS,
    Augmenter,
    aug_id,
    aug_images,
    aug_stem,
    encode,
    out_ext,
    packs_copies,
)
from pipeline.augment.recipe import OPS, load_recipe
from pipeline.augment.stage import run_augment
from pipeline.core.dataset import Sample, load_dataset
from pipeline.core.images import decode_array, stored_png
from tests.augment.conftest import RECIPES


def test_params_recorded_regenerate_the_image(det_data, tmp_path):
    """The recorded seed regenerates a copy exactly (audit trail)."""
    out = tmp_path / "aug"
    run_augment(det_data, RECIPES / "detection.yaml", out, copies=1, seed=9)
    ds = load_dataset(out)
    copy = next(s for s in ds.samples if "~aug" in s.id)
    aug = Augmenter(load_dataset(det_data), load_recipe(RECIPES / "detection.yaml"), seed=9)
    parent = aug.by_id[copy.source["parents"][0]]
    result = aug.augment(parent, 1)
    assert result.seed == copy.meta["augment"]["seed"]
    assert encode(result.item.image, out_ext(parent)) == ds.read_image_bytes(copy)
    assert json.dumps(result.item.params, sort_keys=True) == json.dumps(copy.meta["augment"]["ops"], sort_keys=True)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_works_on_classification_and_detection_or_refuses_clearly(op, cls_data, det_data):
    from pipeline.augment.recipe import parse_recipe
    from pipeline.core.dataset import dumps_sample, parse_sample_line
    from pipeline.core.errors import ConfigError

    recipe = parse_recipe({"ops": [{"op": op, "p": 1.0}]}, f"{op}.yaml")
    for path in (cls_data, det_data):
        ds = load_dataset(path)
        try:
            aug = Augmenter(ds, recipe, seed=1)
        except ConfigError as exc:
            assert path == det_data and "cannot handle boxes" in str(exc)  # SamplePairing only
            continue
        for sample in ds.split("train")[:2]:
            result = aug.augment(sample, 1)
            new = aug.to_sample(sample, 1, result, image="images/x.png", sha256="0" * 64)
            parse_sample_line(dumps_sample(new), set(ds.classes))  # valid for the core (soft labels sum to 1)
            assert result.item.params and result.item.params[-1]["op"].split(".")[0] == op or op == "grayscale"
            for o in new.objects or ():
                assert 0 <= o.bbox[0] <= o.bbox[2] <= new.width and 0 <= o.bbox[1] <= o.bbox[3] <= new.height


def test_the_same_seed_id_and_copy_give_the_same_copy_whatever_came_before(det_data) -> None:
    ds = load_dataset(det_data)
    recipe = load_recipe(RECIPES / "detection.yaml")
    a, b = Augmenter(ds, recipe, seed=3), Augmenter(ds, recipe, seed=3)
    first, second = ds.split("train")[:2]
    b.augment(second, 2)  # another sample first: no state carried over
    x, y = a.augment(first, 1), b.augment(first, 1)
    assert x.seed == y.seed and np.array_equal(x.item.image, y.item.image) and x.parents == y.parents
    assert x.seed != a.augment(first, 2).seed


@pytest.mark.parametrize(("image", "ext"), [("images/a.JPG", "jpg"), ("images/a.jpeg", "jpg"),
                                            ("images/a.png", "png"), ("images/jpg", "png"), ("images/a.bmp", "png")])
def test_copies_are_named_by_id_and_copy_under_a_hashed_shard(image: str, ext: str) -> None:
    sample = Sample(id="cat/001", image=image, width=10, height=10)
    assert out_ext(sample) == ext
    stem = aug_stem(sample)
    assert stem == f"images/augmented/{hashlib.sha1(b'cat/001').hexdigest()[:2]}/cat/001~aug"
    assert aug_images(sample, 2) == [("cat/001~aug1", f"{stem}1.{ext}"), ("cat/001~aug2", f"{stem}2.{ext}")]
    assert aug_id("cat/001", 2) == "cat/001~aug2"


def test_pack_modes_choose_by_image_area() -> None:
    small, large = Sample(id="s", width=64, height=64), Sample(id="l", width=2048, height=1024)
    assert packs_copies(small, "auto") and not packs_copies(large, "auto")
    assert packs_copies(large, "always") and not packs_copies(small, "never")


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 3), (100, 80), (100, 80, 3)])
@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_encoding_is_deterministic_and_lossless_for_png(shape: tuple[int, ...], ext: str) -> None:
    image = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    data = encode(image, ext)
    assert data == encode(image.copy(), ext)
    back = decode_array(data, "test")
    assert back.shape[:2] == shape[:2]
    if ext == "png":
        assert np.array_equal(back.reshape(image.shape), image)
        stored = shape[0] * shape[1] <= TINY_PNG_PIXELS  # tiny PNGs: stored, not deflated
        assert (data == stored_png(image)) == stored


def test_to_sample_records_labels_provenance_and_draws(cls_data) -> None:
    ds = load_dataset(cls_data)
    aug = Augmenter(ds, load_recipe(RECIPES / "photos.yaml"), seed=4)
    sample = ds.split("train")[0]
    result = aug.augment(sample, 1)
    copy = aug.to_sample(sample, 1, result, image="images/x.png", sha256="1" * 64)
    assert copy.id == aug_id(sample.id, 1) and copy.split == sample.split and copy.image == "images/x.png"
    assert copy.source == {"stage": "augment", "parents": result.parents}
    meta = copy.meta["augment"]
    assert meta["seed"] == result.seed and meta["copy"] == 1 and meta["recipe"] == "photos"
    assert json.dumps(meta["ops"], sort_keys=True) == json.dumps(result.item.params, sort_keys=True)
    assert (copy.width, copy.height) == (result.item.image.shape[1], result.item.image.shape[0])

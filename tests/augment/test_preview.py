"""pipeline.augment.preview: contact sheets of originals, partners and augmented copies."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pipeline.augment.preview import _pick, render_recipe_preview
from pipeline.core.dataset import DatasetWriter, load_dataset
from pipeline.core.errors import UsageError
from tests.helpers import make_classification_dataset, make_detection_dataset


@pytest.fixture(scope="module")
def cls_root(tmp_path_factory) -> Path:
    return make_classification_dataset(tmp_path_factory.mktemp("cls") / "data", per_class=8)


def recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_samples_come_from_the_train_split_and_depend_on_the_seed(cls_root: Path) -> None:
    ds = load_dataset(cls_root)
    picked = _pick(ds, 4, seed=0)
    assert len(picked) == len({s.id for s in picked}) == 4 and all(s.split == "train" for s in picked)
    assert [s.id for s in picked] == [s.id for s in _pick(ds, 4, seed=0)]
    assert any([s.id for s in _pick(ds, 4, seed=i)] != [s.id for s in picked] for i in range(1, 6))
    train = [s for s in ds.samples if s.split == "train"]
    assert len(_pick(ds, 100, seed=0)) == len(train)  # never more than the pool


def test_an_empty_dataset_is_refused(tmp_path: Path) -> None:
    with DatasetWriter(tmp_path / "empty", task="classification", stage="test", classes=["a"]):
        pass
    with pytest.raises(UsageError, match="no samples to preview"):
        _pick(load_dataset(tmp_path / "empty"), 4, seed=0)


def test_the_sheet_is_a_png_reproducible_from_the_seed(cls_root: Path, tmp_path: Path) -> None:
    r = recipe(tmp_path, "ops:\n  - {op: rotate, p: 1.0, degrees: 30}\n  - {op: noise, p: 1.0}\n")
    ds = load_dataset(cls_root)
    first = render_recipe_preview(ds, r, tmp_path / "a.png", n=3, seed=1).read_bytes()
    assert first.startswith(b"\x89PNG")
    assert render_recipe_preview(ds, r, tmp_path / "b.png", n=3, seed=1).read_bytes() == first
    assert render_recipe_preview(ds, r, tmp_path / "c.png", n=3, seed=2).read_bytes() != first


def test_partners_of_multi_sample_ops_get_tiles_of_their_own(tmp_path: Path) -> None:
    root = make_detection_dataset(tmp_path / "det", n=8)
    ds = load_dataset(root)
    single = render_recipe_preview(ds, recipe(tmp_path, "ops:\n  - {op: hflip, p: 1.0}\n"), tmp_path / "s.png", n=1)
    mosaic = render_recipe_preview(ds, recipe(tmp_path, "ops:\n  - {op: mosaic, p: 1.0}\n"), tmp_path / "m.png", n=1)
    with Image.open(single) as a, Image.open(mosaic) as b:
        assert b.size[0] > 2 * a.size[0]  # original, three partners, result against original, result

"""Every stage that takes a dataset takes a curated ImageFolder tree (<class>/<image>) as well, as `train`
does: imported once into the cache, re-imported only when its files change, the tree never written."""

from __future__ import annotations

import json
import os

import pytest

from pipeline.core.dataset import load_dataset
from pipeline.train import dataset_folder
from tests.helpers import digit_like, run_cli


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    for c in range(3):
        folder = root / f"digit {c}"  # a space in a class name, as people name folders
        folder.mkdir(parents=True)
        for i in range(8):
            digit_like(c, c * 100 + i).save(folder / f"{i}.png")
    return root


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_the_tree_is_imported_once_and_again_when_it_changes(tree, tmp_path):
    first = dataset_folder(tree)
    assert first != tree and first.is_relative_to(tmp_path / "cache")
    assert dataset_folder(tree) == first and len(load_dataset(first).samples) == 24
    stamp = (first.parent / (first.name + ".fingerprint")).read_text()
    digit_like(0, 999).save(tree / "digit 0" / "new.png")
    assert dataset_folder(tree) == first and len(load_dataset(first).samples) == 25
    assert (first.parent / (first.name + ".fingerprint")).read_text() != stamp
    dataset = tmp_path / "ds"
    assert run_cli(["import", "imagefolder", str(tree), "--out", str(dataset)]) == 0
    assert dataset_folder(dataset) == dataset  # a dataset folder is itself


def test_check_stats_preview_crop_and_export_read_a_tree(tree, tmp_path, capsys):
    before = snapshot(tree)
    assert run_cli(["stats", str(tree), "--json"]) == 0
    assert "digit 2" in capsys.readouterr().out
    assert run_cli(["check", str(tree), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert run_cli(["preview", str(tree), "--out", str(tmp_path / "p.png"), "--n", "4"]) == 0
    assert (tmp_path / "p.png").is_file()
    assert run_cli(["export", str(tree), "--format", "imagefolder", "--out", str(tmp_path / "exported")]) == 0
    assert sorted(os.listdir(tmp_path / "exported")) == [".pipeline-export", "digit 0", "digit 1", "digit 2"]
    assert snapshot(tree) == before  # nothing written into the tree


def test_split_keeps_its_splits_in_the_import_where_train_and_augment_find_them(tree, tmp_path, capsys):
    assert run_cli(["split", str(tree), "--val", "0.25", "--test", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "the cached import of the tree" in out
    assert load_dataset(dataset_folder(tree)).splits() == {"train": 12, "val": 6, "test": 6}
    assert run_cli(["augment", str(tree), "--recipe", "configs/augment/digits.yaml", "--copies", "1",
                    "--out", str(tmp_path / "aug")]) == 0
    assert len(load_dataset(tmp_path / "aug").samples) == 24 + 12
    assert run_cli(["train", str(tree), "--out", str(tmp_path / "run"), "--epochs", "1", "--set", "threads=1"]) == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["splits"] == {"train": 12, "val": 6}
    assert run_cli(["validate", str(tmp_path / "run"), "--data", str(tree), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["count"] == 6


def test_a_folder_that_is_neither_keeps_the_dataset_errors(tmp_path, capsys):
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "a.txt").write_text("x")
    assert dataset_folder(tmp_path / "loose") == tmp_path / "loose"
    assert run_cli(["stats", str(tmp_path / "loose")]) == 2
    assert "not a pipeline dataset" in capsys.readouterr().err
    assert run_cli(["check", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert run_cli(["train", str(tmp_path / "loose"), "--out", str(tmp_path / "run")]) == 2
    assert "neither a pipeline dataset" in capsys.readouterr().err  # train names both layouts it takes

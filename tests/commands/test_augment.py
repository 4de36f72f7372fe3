"""`pipeline augment` on the command line: the summary, same seed same bytes, refusals (exit 2, one line).

The engine itself (records, packs, resume, workers) is tested in tests/augment/test_stage.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.dataset import load_dataset
from tests.helpers import invoke, make_classification_dataset

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "augment" / "digits.yaml"


@pytest.fixture
def data(tmp_path) -> Path:
    return make_classification_dataset(tmp_path / "ds", classes=2, per_class=4)


def test_one_copy_per_train_sample_with_its_summary(data, tmp_path):
    out = tmp_path / "aug"
    result = invoke("augment", data, "--recipe", RECIPE, "--copies", "1", "--out", out, "--pack", "never")
    assert result.exit_code == 0, result.output
    ds = load_dataset(out)
    train = [s for s in load_dataset(data).samples if s.split == "train"]
    assert len(ds.samples) == 8 + len(train)
    assert "augment: done" in result.output and "originals  8" in result.output
    assert f"augmented  {len(train)}" in result.output and f"output     {out}" in result.output
    assert f"{len(train)} as files under images/augmented/" in result.output


def test_an_unsplit_dataset_is_augmented_whole_as_train_would_train_on_it(tmp_path):
    data = make_classification_dataset(tmp_path / "ds", classes=2, per_class=3, splits=None)
    out = tmp_path / "aug"
    result = invoke("augment", data, "--recipe", RECIPE, "--copies", "2", "--out", out, "--pack", "never")
    assert result.exit_code == 0, result.output
    assert "no `train` split: augmenting the 6 samples without a split" in result.output
    assert len(load_dataset(out).samples) == 6 + 12


def test_a_dataset_with_a_train_split_leaves_its_unsplit_samples_alone(data, tmp_path):
    result = invoke("augment", data, "--recipe", RECIPE, "--copies", "1", "--out", tmp_path / "aug")
    assert result.exit_code == 0, result.output
    assert "without a split" not in result.output


def test_the_same_seed_writes_the_same_samples(data, tmp_path):
    for name in ("a", "b"):
        assert invoke("augment", data, "--recipe", RECIPE, "--out", tmp_path / name, "--seed", "7").exit_code == 0
    assert (tmp_path / "a" / "samples.jsonl").read_bytes() == (tmp_path / "b" / "samples.jsonl").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["--copies", "-1"], "--copies must be >= 0, got -1"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
])
def test_bad_counts_are_one_line_exit_2(data, tmp_path, main, args, message):
    proc = main("augment", data, "--recipe", RECIPE, "--out", tmp_path / "o", *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_missing_recipe_is_one_line_exit_2(data, tmp_path, main):
    proc = main("augment", data, "--recipe", tmp_path / "nope.yaml", "--out", tmp_path / "o")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nope.yaml" in proc.stderr


def test_recipe_is_required(data, tmp_path):
    result = invoke("augment", data, "--out", tmp_path / "o")
    assert result.exit_code == 2 and "Missing option '--recipe'" in result.output

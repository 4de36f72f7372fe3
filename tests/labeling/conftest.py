"""Fixtures of the labeling-loop tests: a private tensor cache and one small trained run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import invoke, make_classification_dataset


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))


@dataclass
class TrainedRun:
    """A run trained for one epoch on a 3-class dataset (`data`), in `run`."""

    data: Path
    run: Path


def train_small(root: Path, *, classes: int = 3, per_class: int = 12) -> TrainedRun:
    data = make_classification_dataset(root / "ds", classes=classes, per_class=per_class)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_CACHE_DIR", str(root / "cache"))
        result = invoke("train", data, "--out", root / "run", "--epochs", "1", "--batch-size", "8",
                        "--set", "threads=1", "--set", "log_images=0", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return TrainedRun(data=data, run=root / "run")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedRun:
    return train_small(tmp_path_factory.mktemp("trained"))

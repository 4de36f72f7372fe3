"""Shared fixtures of the augment tests: small datasets, the shipped recipes, output bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import make_classification_dataset, make_detection_dataset

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "augment"


def _tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file's bytes except dataset.json (whose lineage carries the time of the run)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "dataset.json"}


@pytest.fixture
def tree_bytes() -> Callable[[Path], dict[str, bytes]]:
    """Every file's bytes of a dataset folder except dataset.json, by relative path."""
    return _tree_bytes


@pytest.fixture(scope="module")
def cls_data(tmp_path_factory) -> Path:
    return make_classification_dataset(tmp_path_factory.mktemp("cls") / "data", classes=3, per_class=10)


@pytest.fixture(scope="module")
def det_data(tmp_path_factory) -> Path:
    return make_detection_dataset(tmp_path_factory.mktemp("det") / "data", n=10)

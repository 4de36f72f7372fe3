"""Shared pytest setup. Nothing here touches the network."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "0")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _ui_speaks():
    """Every test starts with the CLI's output on: a command run with --quiet in an earlier test of
    the same process (or a rank other than 0) leaves the process-wide switch off."""
    from pipeline.core import ui

    ui.set_quiet(False)
    yield

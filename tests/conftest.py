"""Shared pytest setup. Nothing here touches the network."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "0")
os.environ.setdefault("TQDM_DISABLE", "1")

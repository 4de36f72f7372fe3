"""One intra-op thread for the model tests: these models are tiny, and on a shared machine two
spinning OpenMP threads per test process cost far more than they gain."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Bounded memory: a stage run as its own process on 50k and on 200k samples peaks at about the
same resident memory (the in-memory dataset took about 1.6 KB a sample: 240 MB more at 200k).

DuckDB's JSON reader fills its buffers over the first few hundred thousand lines and then stays
(about 180 MB for a plain scan of 1M lines and of 10M alike, measured here), which is most of
the growth this allows."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from benchmarks.bench_scale import make_dataset, measure

GROWTH_MB = 120  # allowed growth from 50k to 200k samples; the samples as objects would add ~240 MB

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sizes(tmp_path_factory) -> dict[int, Path]:
    base = tmp_path_factory.mktemp("bounded")
    return {n: make_dataset(base / f"{n}", n, pool=64) for n in (50_000, 200_000)}


@pytest.mark.parametrize("stage", [["stats"], ["check"], ["split", "--val", "0.1", "--test", "0.1"]],
                         ids=lambda s: s[0])
def test_peak_memory_does_not_grow_with_the_samples(sizes, stage: list[str], tmp_path: Path) -> None:
    peaks = {}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for n, root in sizes.items():
        work = shutil.copytree(root, tmp_path / f"{n}", copy_function=os.link)  # (split renames its files in)
        _, peaks[n], out = measure([sys.executable, "-m", "pipeline", stage[0], str(work), *stage[1:]], env=env)
        assert f"{n}" in out.replace(",", "")  # (the summary counts every sample)
    assert peaks[200_000] - peaks[50_000] < GROWTH_MB, peaks


def test_webdataset_export_holds_no_sample_objects(sizes, tmp_path: Path) -> None:
    """The export sorts the ids' hashes and offsets (about 60 bytes a sample), never the samples."""
    peaks = {}
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    for n, root in sizes.items():
        out = tmp_path / f"shards-{n}"
        _, peaks[n], text = measure([sys.executable, "-m", "pipeline", "export", str(root), "--format", "webdataset",
                                     "--out", str(out)], env=env)
        assert f"{n}" in text.replace(",", "") and len(list(out.glob("*.tar"))) == n // 10_000
        shutil.rmtree(out)
    assert peaks[200_000] - peaks[50_000] < GROWTH_MB, peaks
